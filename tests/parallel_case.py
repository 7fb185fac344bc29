"""The small training run that tests/test_parallel.py repeats on different devices/hosts."""

import jax
import numpy as np
import optax

from hjepa_jax import train
from hjepa_jax.models import ellipse

CFG = ellipse.EllipseConfig(hidden=(16,), n_starts=4, inner_steps=10)


def run(mesh=None, **loop_kwargs) -> dict:
    """3 steps of the Fig. 4 model, batch 16; returns flat params, last loss, device count."""
    model = ellipse.EllipseModel(CFG)
    data = ellipse.ellipse_points(jax.random.PRNGKey(0), 64, CFG)
    loop = train.LoopConfig(**{"steps": 3, "batch_size": 16, "log_every": 1, **loop_kwargs})
    res = train.train(
        model.loss,
        model.init(jax.random.PRNGKey(1)),
        optax.adam(1e-2),
        data,
        loop=loop,
        key=jax.random.PRNGKey(2),
        mesh=mesh,
    )
    flat = jax.tree_util.tree_leaves(res.state.params)
    return {
        "params": [np.asarray(x).ravel().tolist() for x in flat],
        "loss": res.summary["final_loss"],
        "devices": jax.device_count(),
        "resumed_from_step": res.summary["resumed_from_step"],
    }
