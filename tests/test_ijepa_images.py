"""The ijepa_images experiment's parts: the image stream in the training loop (exact resume,
evaluations kept in checkpoints), the pod preset, the probes' baselines."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hjepa_jax as hj
from hjepa_jax.data import images as im
from hjepa_jax.experiments import common, ijepa_images, run
from hjepa_jax.models import image_probe
from hjepa_jax.models.ijepa import IJEPA, adamw_recipe, masked_image_loss


def _stream(src) -> im.BatchStream:
    loader = im.train_loader(
        src, batch_size=4, image_size=8, seed=0, dtype="uint8", process_index=0, process_count=1
    )
    return im.BatchStream(iter(loader), 4)


def _train(src, steps: int, ckpt_dir):
    def loss(params, batch, key):  # a mean image, fitted by SGD: depends on every batch
        del key
        err = batch["image"].astype(jnp.float32) / 255.0 - params["w"]
        return jnp.mean(err**2), {}

    loop = hj.train.LoopConfig(
        steps=steps,
        batch_size=4,
        log_every=1,
        ckpt_dir=str(ckpt_dir),
        ckpt_every=2,
        eval_every=2,
    )
    evaluate = lambda params: {"mean": float(jnp.mean(params["w"]))}
    params = {"w": jnp.zeros((8, 8, 3))}
    return hj.train.train(
        loss,
        params,
        optax.sgd(0.5),
        _stream(src),
        loop=loop,
        key=jax.random.PRNGKey(0),
        evaluate=evaluate,
    )


def test_an_image_stream_resumes_exactly_with_its_evaluations(tmp_path):
    rng = np.random.default_rng(0)
    src = im.ArraySource(rng.integers(0, 256, (24, 12, 12, 3), np.uint8), [0] * 24)
    first = _train(src, 3, tmp_path / "a")  # stops at 3: checkpoints at 2 and 3
    resumed = _train(src, 7, tmp_path / "a")
    whole = _train(src, 7, tmp_path / "b")
    assert resumed.summary["resumed_from_step"] == 3
    np.testing.assert_array_equal(resumed.state.params["w"], whole.state.params["w"])
    assert [e["step"] for e in first.evaluations] == [2, 3]
    assert [e["step"] for e in resumed.evaluations] == [2, 3, 4, 6, 7]
    assert resumed.evaluations[2:] == [e for e in whole.evaluations if e["step"] > 3]


def test_the_pod_preset_is_ijepa_vit_b16_on_imagenet():
    cfg = common.config_from_args(
        ijepa_images.Config,
        run.build_parser().parse_args(
            ["ijepa_images", "--out", "x", "--preset", "vit_b16_imagenet", "--workers", "8"]
        ),
        quick=False,
    )
    assert (cfg.width, cfg.depth, cfg.heads, cfg.patch_size, cfg.image_size) == (
        768,
        12,
        12,
        16,
        224,
    )
    assert (cfg.batch_size, cfg.learning_rate, cfg.workers) == (2048, 1e-3, 8)  # flag wins
    assert cfg.steps == 187_500 and cfg.warmup_steps == 25_000  # 300 and 40 epochs
    model = IJEPA(cfg.model_config(), (224, 224, 3))
    t, c = hj.masks.multiblock_sizes(hj.masks.MultiBlockSpec(grid=model.grid))
    flops = model.flops_per_image(c, t)
    # The target encoder's forward pass is ViT-B/16's published 17.6 G multiply-adds.
    assert flops["target_encoder"] / 2e9 == pytest.approx(17.6, rel=0.02)
    assert flops["target_encoder"] < flops["train_step"] < 4 * flops["target_encoder"]


def test_the_schedules_follow_ijepa():
    cfg = ijepa_images.Config(steps=100, warmup_steps=10)
    tx = adamw_recipe(cfg.steps, cfg.warmup_steps)
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    state = tx.init(params)
    zero = jax.tree_util.tree_map(jnp.zeros_like, params)
    updates, _ = tx.update(zero, state, params)  # step 0: only weight decay moves w
    np.testing.assert_allclose(updates["w"], -cfg.start_lr * cfg.weight_decay, rtol=1e-5)
    np.testing.assert_array_equal(updates["b"], 0.0)  # no decay on biases


def test_pooled_pixels_average_blocks():
    x = np.arange(2 * 64 * 64 * 3, dtype=np.uint8).reshape(2, 64, 64, 3)
    pooled = image_probe.pool(x)
    assert pooled.shape == (2, 32, 32, 3)
    np.testing.assert_allclose(pooled[0, 0, 0], x[0, :2, :2].reshape(4, 3).mean(0))


@pytest.mark.parametrize("collapse", ["ema", "vicreg"])
def test_the_masked_loss_draws_masks_from_its_key(collapse):
    cfg = ijepa_images.Config(
        image_size=16,
        patch_size=4,
        width=8,
        depth=1,
        heads=2,
        pred_width=8,
        pred_depth=1,
        pred_heads=2,
        collapse=collapse,
        steps=2,
        warmup_steps=1,
    )
    model = IJEPA(cfg.model_config(), (16, 16, 3))
    loss = jax.jit(masked_image_loss(model, hj.masks.MultiBlockSpec(grid=model.grid)))
    params = model.init(jax.random.PRNGKey(0))
    batch = {
        "image": jnp.asarray(np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)), jnp.uint8)
    }
    a, _ = loss(params, batch, jax.random.PRNGKey(1))
    b, _ = loss(params, batch, jax.random.PRNGKey(2))
    again, metrics = loss(params, batch, jax.random.PRNGKey(1))
    assert a == again and a != b and np.isfinite(float(a))
    assert {"energy", "target_std", "target_rank"} <= set(metrics)
