"""Memory and speed options of the loop: --dtype bfloat16 (parameters, optimizer state and
batch statistics float32), --grad-accum (optax.MultiSteps), --remat, --profile-steps."""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hjepa_jax as hj
from hjepa_jax import checkpoint
from hjepa_jax.envs import two_rooms as tr
from hjepa_jax.experiments import run
from hjepa_jax.models import two_rooms
from hjepa_jax.models.digits_jepa import DigitsJEPA, DigitsJEPAConfig
from hjepa_jax.models.moving_shapes import MovingShapesHJEPA, MovingShapesHJEPAConfig
from hjepa_jax.nn import vit
from hjepa_jax.train import LoopConfig

SMALL = {
    "fig4_ellipse": "--steps 100 --grid 11 --n-train 128 --n-test 32 --inner-steps 10 "
    "--n-starts 4 --hidden 32,32 --log-every 50",
    "jepa_digits": "--steps 40 --hidden 32 --embed-dim 8 --batch-size 32 --log-every 20",
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_bfloat16_reaches_the_float32_loss_with_float32_state(tmp_path, name):
    losses = {}
    for dtype in ("float32", "bfloat16"):
        out = tmp_path / dtype
        args = [name, "--quick", "--out", str(out), "--dtype", dtype, *SMALL[name].split()]
        if dtype == "bfloat16":
            args += ["--ckpt-dir", str(tmp_path / "ckpt"), "--profile-steps", "2:3"]
        assert run.main(args) == 0
        losses[dtype] = json.loads((out / "metrics.json").read_text())["final_loss"]
    assert losses["bfloat16"] == pytest.approx(losses["float32"], rel=0.02)
    ckpts = [tmp_path / "ckpt"] if name == "fig4_ellipse" else list((tmp_path / "ckpt").iterdir())
    for ckpt in ckpts:  # parameters and optimizer state, as saved: float32
        saved = checkpoint.Checkpointer(ckpt)
        tree = saved.manager.item_metadata(saved.latest_step())["state"]
        floats = [str(leaf.dtype) for leaf in jax.tree_util.tree_leaves(tree)]
        floats = [d for d in floats if "int" not in d]
        saved.close()
        assert floats and set(floats) == {"float32"}, (ckpt, set(floats))
    # --profile-steps 2:3 left a trace in the run folder (one per trained model).
    traces = list((tmp_path / "bfloat16").rglob("profile/**/*.xplane.pb"))
    assert len(traces) == len(ckpts), traces


def test_bfloat16_encoders_compute_in_bfloat16_and_batch_statistics_in_float32():
    model = DigitsJEPA(DigitsJEPAConfig(hidden=(32,), embed_dim=8), (8, 8, 1))
    params = model.init(jax.random.PRNGKey(0))
    batch = (jnp.ones((4, 8, 8, 1)), jnp.zeros(4, jnp.int32))
    loss = hj.train.mixed_precision(model.loss, "bfloat16")
    grad = jax.grad(lambda p: loss(p, batch, jax.random.PRNGKey(1))[0])
    text = str(jax.make_jaxpr(grad)(params))
    products = re.findall(r"(\w+)\[([\d,]*)\] = dot_general", text)
    assert ("bf16", "4,32") in products  # the encoder's first layer
    assert ("f32", "8,8") in products  # the covariance of the representations [D, D]
    grads = jax.eval_shape(grad, params)
    assert {str(g.dtype) for g in jax.tree_util.tree_leaves(grads)} == {"float32"}
    value, metrics = jax.eval_shape(loss, params, batch, jax.random.PRNGKey(1))
    assert value.dtype == jnp.float32 and metrics["variance"].dtype == jnp.float32


def shapes_case():
    cfg = MovingShapesHJEPAConfig(channels=(4,), dim1=8, dim2=8, hidden=(16,))
    model = MovingShapesHJEPA(cfg, frame=(16, 16))
    return model, {"video": jnp.zeros((2, 9, 16, 16, 1), jnp.uint8)}


def two_rooms_case():
    model = two_rooms.Model(
        two_rooms.ModelConfig(state="spatial", embed_dim=4, channels=(4, 4, 4), hidden=16)
    )
    data = tr.random_trajectories(jax.random.PRNGKey(1), tr.EnvParams(), tr.fixed_layout, 2, 6)
    return model, (data.positions, data.actions, data.layouts)


@pytest.mark.parametrize("case", [shapes_case, two_rooms_case])
def test_bfloat16_world_models_compute_in_bfloat16_with_float32_losses(case):
    """hjepa_moving_shapes's and planning_two_rooms's networks take their inputs in the
    parameters' dtype (the layers compute in bfloat16), their states come back float32."""
    model, batch = case()
    params = model.init(jax.random.PRNGKey(0))
    loss = hj.train.mixed_precision(model.loss, "bfloat16")
    grad = jax.grad(lambda p: loss(p, batch, jax.random.PRNGKey(1))[0])
    text = str(jax.make_jaxpr(grad)(params))
    products = re.findall(r"(\w+)\[[\d,]*\] = (?:dot_general|conv_general_dilated)", text)
    assert "bf16" in products and "f32" in products  # layers; statistics of the states
    grads = jax.eval_shape(grad, params)
    assert {str(g.dtype) for g in jax.tree_util.tree_leaves(grads)} == {"float32"}
    value, metrics = jax.eval_shape(loss, params, batch, jax.random.PRNGKey(1))
    assert {str(v.dtype) for v in jax.tree_util.tree_leaves((value, metrics))} == {"float32"}


def regression(n=256):
    x = jax.random.normal(jax.random.PRNGKey(0), (n, 3))
    return x, x @ jnp.array([2.0, -1.0, 0.5])


def mse(w, batch, key):
    x, y = batch
    err = x @ w - y
    return jnp.mean(err**2), {"max_err": jnp.max(jnp.abs(err))}


def fit(steps=20, **loop):
    return hj.train.train(
        mse,
        jnp.zeros(3),
        optax.adam(0.05),
        regression(),
        loop=LoopConfig(**{"steps": steps, "batch_size": 32, "log_every": 10, **loop}),
        key=jax.random.PRNGKey(1),
    )


@pytest.mark.parametrize("parallel", ["jit", "pmap"])
def test_grad_accum_makes_one_update_from_the_micro_batches(parallel):
    """A mean-over-examples loss: 4 micro-batches of 8 give the update of the batch of 32."""
    whole, accumulated = fit(parallel=parallel), fit(parallel=parallel, grad_accum=4)
    np.testing.assert_allclose(accumulated.state.params, whole.state.params, rtol=1e-5)
    assert accumulated.history[-1]["loss"] == pytest.approx(whole.history[-1]["loss"], rel=1e-4)
    assert accumulated.history[-1]["grad_norm"] == pytest.approx(
        whole.history[-1]["grad_norm"], rel=1e-4
    )
    state = accumulated.state.opt_state
    assert isinstance(state, optax.MultiStepsState) and int(state.gradient_step) == 20
    assert int(state.mini_step) == 0  # a step ends with its update


def test_grad_accum_needs_a_batch_that_splits():
    with pytest.raises(ValueError, match="batch_size=30 does not split into grad_accum=4"):
        LoopConfig(steps=1, batch_size=30, grad_accum=4)


def vit_fit(remat: bool):
    net = hj.nn.ViTEncoder(features=4, patch_size=2, width=8, depth=1, heads=2)
    images = jax.random.uniform(jax.random.PRNGKey(0), (16, 4, 4, 1))
    seen = []

    def loss(params, batch, key):
        seen.append(vit._REMAT.get())  # the scope at trace time
        return jnp.mean(net.apply(params, batch) ** 2), {}

    res = hj.train.train(
        loss,
        net.init(jax.random.PRNGKey(1), images[:1]),
        optax.sgd(0.1),
        images,
        loop=LoopConfig(steps=2, batch_size=8, log_every=1, remat=remat),
        key=jax.random.PRNGKey(2),
    )
    return res, seen


def test_remat_recomputes_the_blocks_and_trains_alike():
    plain, seen_plain = vit_fit(False)
    remat, seen_remat = vit_fit(True)
    assert seen_plain and not any(seen_plain)
    assert seen_remat and all(seen_remat)  # traced inside remat_blocks: every block remats
    leaves = [jax.tree_util.tree_leaves(r.state.params) for r in (plain, remat)]
    for a, b in zip(*leaves, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    block = hj.nn.TransformerBlock(heads=2, remat=True)
    x = jnp.ones((1, 3, 4))
    params = block.init(jax.random.PRNGKey(0), x)
    text = str(jax.make_jaxpr(jax.grad(lambda p: block.apply(p, x).sum()))(params))
    assert "remat" in text


def test_profile_steps_write_a_trace_to_the_log_folder(tmp_path):
    fit(steps=6, log_dir=str(tmp_path), profile_steps=(2, 4))
    traces = list((tmp_path / "profile").rglob("*.xplane.pb"))
    assert traces and traces[0].stat().st_size > 0
    with pytest.raises(ValueError, match="profile_steps needs a log_dir"):
        LoopConfig(steps=1, batch_size=1, profile_steps=(1, 1))
    with pytest.raises(ValueError, match=r"profile_steps must be \(a, b\)"):
        LoopConfig(steps=1, batch_size=1, profile_steps=(3, 2), log_dir=str(tmp_path))
