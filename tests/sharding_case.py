"""The small ViT run that tests/test_sharding.py repeats on different meshes."""

import functools

import jax
import numpy as np
import optax

from hjepa_jax import train
from hjepa_jax.models.digits_jepa import DigitsJEPA, DigitsJEPAConfig

# ViT width 64 (DigitsJEPA's), predictor 128 wide: every large matrix divides by 8.
CFG = DigitsJEPAConfig(encoder="vit", hidden=(128,), embed_dim=64, latent_dim=0)
SHAPE = (8, 8, 1)


def data(n: int = 128):
    images = np.random.default_rng(0).uniform(size=(n, *SHAPE)).astype(np.float32)
    return images, np.zeros(n, np.int32)


def run(mesh: str | None, steps: int = 5, lazy: bool = False, **loop_kwargs):
    """`steps` steps, batch 32, f32; `lazy`: params from an init function (made sharded).

    SGD, not Adam: the attention's key bias has a zero gradient (softmax ignores a shift of
    all scores), which Adam's normalization would turn from rounding noise into steps of
    the learning rate's size, different on each mesh."""
    model = DigitsJEPA(CFG, SHAPE)
    init = functools.partial(model.init, jax.random.PRNGKey(1))
    loop = train.LoopConfig(
        **{"steps": steps, "batch_size": 32, "log_every": 1, "mesh": mesh, **loop_kwargs}
    )
    return train.train(
        model.loss,
        init if lazy else init(),
        optax.sgd(2e-3, momentum=0.9),
        data(),
        loop=loop,
        key=jax.random.PRNGKey(2),
        config={"case": "sharding"},
    )


def flat_params(params) -> dict:
    """{"enc/params/block_0/...": array} of every leaf (gathered to this host)."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(params)
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}
