"""I-JEPA: token encoder, predictor, EMA target, latent per block, VICReg mode, FLOPs.

Tiny sizes: 32x32x3 images, patches of 8 (a 4x4 grid, N = 16), width 32, depth 1-2; masks
built by hand (C = 8 context patches, M = 4 blocks of T = 2 target patches, disjoint).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hjepa_jax import ijepa
from hjepa_jax import train as hj_train
from hjepa_jax.models.ijepa import IJEPA, IJEPAConfig
from hjepa_jax.nn.vit import ViTPredictor, ViTTokens, sincos_pos_embed_2d

KEY = jax.random.key(0, impl="rbg")  # flax init compiles faster with rbg keys on CPU
SHAPE = (32, 32, 3)
N, C, M, T = 16, 8, 4, 2
TINY = dict(patch_size=8, width=32, depth=1, heads=2, pred_width=16, pred_depth=1, pred_heads=2)
TOL = dict(rtol=1e-5, atol=1e-5)


def _masks(seed: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Per image a random split of the 16 patches: 8 target (4 blocks of 2), 8 context."""
    rng = np.random.default_rng(seed)
    ci, ti = [], []
    for _ in range(b):
        perm = rng.permutation(N)
        ti.append(np.sort(perm[: M * T]).reshape(M, T))
        ci.append(np.sort(perm[M * T :]))
    return np.stack(ci).astype(np.int32), np.stack(ti).astype(np.int32)


def _batch(seed: int = 0, b: int = 8) -> dict:
    ci, ti = _masks(seed, b)
    images = np.random.default_rng(seed + 100).uniform(size=(b, *SHAPE)).astype(np.float32)
    return {"image": images, "context_idx": ci, "target_idx": ti}


@functools.cache
def _model(collapse: str = "ema") -> tuple[IJEPA, dict]:
    """ "ema" with a 4-D latent per block; "vicreg" without a latent."""
    latent_dim = 4 if collapse == "ema" else 0
    model = IJEPA(IJEPAConfig(collapse=collapse, latent_dim=latent_dim, **TINY), SHAPE)
    return model, jax.jit(model.init)(KEY)


@functools.cache
def _value_and_grad(collapse: str = "ema"):
    model, _ = _model(collapse)
    return jax.jit(jax.value_and_grad(model.loss, has_aux=True))


def _leaves(tree):
    return [
        (jax.tree_util.keystr(p), np.asarray(v))
        for p, v in jax.tree_util.tree_leaves_with_path(tree)
    ]


# ---- the token encoder ----


@functools.cache
def _encoder():
    net = ViTTokens(patch_size=8, width=32, depth=2, heads=2)
    return net, jax.jit(net.init)(KEY, np.zeros(SHAPE, np.float32)), jax.jit(net.apply)


def test_token_encoder_shapes_and_position_embeddings():
    net, params, _ = _encoder()
    assert "pos_embed" not in params["params"]  # sincos: fixed, no parameter
    x, ci = np.zeros((2, 3, *SHAPE), np.float32), _masks(0, 6)[0]
    assert jax.eval_shape(net.apply, params, x).shape == (2, 3, N, 32)
    assert jax.eval_shape(net.apply, params, x, ci.reshape(2, 3, C)).shape == (2, 3, C, 32)
    learned = ViTTokens(patch_size=8, width=32, depth=1, heads=2, pos_embed="learned")
    p = jax.eval_shape(learned.init, KEY, x[0, 0])
    assert p["params"]["pos_embed"].shape == (N, 32)
    # sincos: row-major patches, [rows half | columns half], sin then cos in each half.
    e = sincos_pos_embed_2d(4, 4, 8)
    r, c = 2, 3  # patch 2 * 4 + 3 = 11; omega = (1, 1e-2) for dim / 4 = 2
    want = [np.sin(r), np.sin(r / 100), np.cos(r), np.cos(r / 100)]
    want += [np.sin(c), np.sin(c / 100), np.cos(c), np.cos(c / 100)]
    np.testing.assert_allclose(e[11], want, rtol=1e-6)


def test_context_encoding_ignores_pixels_outside_the_context():
    """Tokens are gathered before the blocks: pixels of the other patches cannot reach the
    output; a context patch's pixels can; the identity index gives the full encoding, and
    permuting the indices permutes the tokens (attention has no order)."""
    _, params, apply = _encoder()
    batch = _batch(1, b=4)
    x, ci = batch["image"], batch["context_idx"]
    patch_of_pixel = (np.arange(32)[:, None] // 8) * 4 + np.arange(32)[None, :] // 8  # [H, W]
    outside = np.stack([~np.isin(patch_of_pixel, row) for row in ci])[..., None]  # [B, H, W, 1]
    noise = np.random.default_rng(2).normal(size=x.shape).astype(np.float32)
    changed_outside = np.where(outside, x + 10.0 * noise, x)
    changed_inside = np.where(outside, x, x + noise)
    perm = np.stack([np.random.default_rng(i).permutation(N) for i in range(4)]).astype(np.int32)
    every = np.broadcast_to(np.arange(N, dtype=np.int32), (4, N))
    base = apply(params, x, ci)
    np.testing.assert_allclose(apply(params, changed_outside, ci), base, **TOL)
    assert np.min(np.abs(apply(params, changed_inside, ci) - base).max(axis=(1, 2))) > 1e-2
    full = apply(params, x)
    np.testing.assert_allclose(apply(params, x, every), full, **TOL)
    np.testing.assert_allclose(
        apply(params, x, perm), np.take_along_axis(full, perm[..., None], axis=1), **TOL
    )


def test_predictor_shapes_and_blocks_are_separate_passes():
    net = ViTPredictor(grid=(4, 4), width=16, depth=1, heads=2)
    ci, ti = _masks(3, 2)
    ctx = np.random.default_rng(0).normal(size=(2, C, 32)).astype(np.float32)
    z = np.ones((2, M, 3), np.float32)
    ctx_m, ci_m = np.repeat(ctx[:, None], M, 1), np.repeat(ci[:, None], M, 1)  # [B, M, ...]
    params = jax.jit(net.init)(KEY, ctx_m, ci_m, ti, z)
    assert {"embed", "mask_token", "latent_proj", "out"} <= set(params["params"])
    apply = jax.jit(net.apply)
    pred = apply(params, ctx_m, ci_m, ti, z)
    assert pred.shape == (2, M, T, 32)
    ti2, z2 = ti.copy(), z.copy()
    ti2[:, 1:], z2[:, 1:] = (ti[:, 1:] + 1) % N, -1.0  # change every block but block 0
    pred2 = apply(params, ctx_m, ci_m, ti2, z2)
    np.testing.assert_allclose(pred2[:, 0], pred[:, 0], **TOL)
    assert np.abs(pred2[:, 1:] - pred[:, 1:]).max() > 1e-3


# ---- the EMA target ----


def test_momentum_schedule_endpoints_and_ema_update():
    total = 1000
    m = [float(ijepa.momentum_schedule(t, total)) for t in (0, 250, 500, 1000, 5000)]
    assert m[0] == pytest.approx(0.996, abs=1e-7) and m[3] == m[4] == 1.0
    assert m[2] == pytest.approx(0.998, abs=1e-7) and m[0] < m[1] < m[2] < m[3]
    traced = jax.jit(lambda t: ijepa.momentum_schedule(t, total))(jnp.int32(250))
    assert float(traced) == pytest.approx(m[1], abs=1e-7)
    target = {"a": jnp.array([1.0, 2.0]), "b": jnp.array(3.0)}
    online = {"a": jnp.array([3.0, 0.0]), "b": jnp.array(-1.0)}
    new = ijepa.ema_update(target, online, 0.75)
    np.testing.assert_allclose(new["a"], [1.5, 1.5])
    np.testing.assert_allclose(new["b"], 2.0)
    kept = ijepa.ema_update(target, online, 1.0)
    assert all(np.array_equal(kept[k], target[k]) for k in target)


def test_ema_optimizer_moves_the_target_after_the_online_step():
    model, params = _model()
    tx = model.optimizer(optax.adam(1e-2), total_steps=10)
    state = tx.init(params)
    assert set(state.inner[0].mu) == {"context", "predictor"}  # no Adam moments for target
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    updates, state = jax.jit(tx.update)(grads, state, params)
    new = optax.apply_updates(params, updates)
    m = 0.996  # the first update uses step 0's momentum
    want = jax.tree_util.tree_map(
        lambda t, o: m * t + (1 - m) * o, params["target"], new["context"]
    )
    for (path, a), (_, b) in zip(_leaves(new["target"]), _leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=path)
    moved = [
        np.abs(a - b).max()
        for (_, a), (_, b) in zip(_leaves(new["context"]), _leaves(params["context"]), strict=True)
    ]
    assert min(moved) > 1e-3 and int(state.count) == 1


# ---- the loss ----


def test_loss_jits_and_agrees_with_op_by_op():
    model, params = _model()
    batch = _batch()
    (loss, metrics), _ = _value_and_grad()(params, batch, KEY)
    eager_loss, eager_metrics = model.loss(params, batch, KEY)
    assert loss.shape == () and np.isfinite(float(loss))
    np.testing.assert_allclose(eager_loss, loss, rtol=1e-4)
    assert set(eager_metrics) == set(metrics)
    for name in metrics:
        np.testing.assert_allclose(eager_metrics[name], metrics[name], rtol=1e-3, err_msg=name)
    want = {"energy", "energy_z0", "z_norm"}
    want |= {f"{s}_{k}" for s in ("target", "context") for k in ("std", "min_std", "rank")}
    assert set(metrics) == want
    assert all(np.shape(v) == () for v in metrics.values())
    assert 1.0 <= float(metrics["target_rank"]) <= 32.0 and float(metrics["target_std"]) > 0


def test_gradient_reaches_context_encoder_and_predictor_not_the_target():
    _, params = _model()
    _, grads = _value_and_grad()(params, _batch(), KEY)
    for path, g in _leaves(grads["target"]):
        assert np.all(g == 0.0), path
    for part in ("context", "predictor"):
        for path, g in _leaves(grads[part]):
            assert np.all(np.isfinite(g)) and np.abs(g).max() > 0, (part, path)


def test_latent_lowers_the_energy_within_its_ball():
    """F = min over the ball is below E(z = 0); every z_m is within its radius; a tiny ball
    leaves the energy at E(0) (z cannot carry the target)."""
    model, params = _model()
    batch = _batch(4)

    @jax.jit
    def energies(params, batch):
        s_x = model.encode(params["context"], batch["image"], batch["context_idx"])
        s_y = ijepa.gather_tokens(model.target_tokens(params, batch["image"]), batch["target_idx"])
        args = (params["predictor"], s_x, batch["context_idx"], batch["target_idx"], s_y)
        out = {}
        for r in (1.0, 1e-3):
            cfg = ijepa.LatentConfig(dim=4, steps=5, lr=1.0, radius=r)
            out[r] = ijepa.free_energy(model.predict, *args, cfg)
        return out

    out = energies(params, batch)
    big, tiny = out[1.0], out[1e-3]
    assert big.energy.shape == (8, M) and big.z.shape == (8, M, 4) and big.trace.shape == (8, M, 5)
    np.testing.assert_allclose(big.energy_z0, tiny.energy_z0, **TOL)
    assert np.all(big.energy < big.energy_z0)
    assert float(jnp.mean(big.energy)) < 0.95 * float(jnp.mean(big.energy_z0))
    assert np.linalg.norm(big.z, axis=-1).max() <= 1.0 + 1e-5
    assert np.linalg.norm(tiny.z, axis=-1).max() <= 1e-3 + 1e-8
    np.testing.assert_allclose(tiny.energy, tiny.energy_z0, rtol=1e-2)
    (_, metrics), _ = _value_and_grad()(params, batch, KEY)
    assert float(metrics["energy"]) < float(metrics["energy_z0"])
    assert 0.0 < float(metrics["z_norm"]) <= 1.0 + 1e-5


def test_a_few_train_steps_lower_the_loss_and_move_the_ema():
    """The library's train step with the model's optimizer: 15 Adam steps on one batch."""
    model, params = _model()
    tx = model.optimizer(optax.adam(3e-3), total_steps=15)
    step = jax.jit(hj_train.make_train_step(model.loss, tx))
    state, batch, losses = hj_train.init_state(params, tx, KEY), _batch(5), []
    for _ in range(15):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0], losses
    assert int(state.opt_state.count) == 15
    drift = [
        np.abs(a - b).max()
        for (_, a), (_, b) in zip(
            _leaves(state.params["target"]), _leaves(params["target"]), strict=True
        )
    ]
    assert max(drift) > 0


def test_vicreg_mode_has_no_target_and_reports_its_terms():
    """No EMA, no latent: VICReg's terms are in the loss, F = E(z = 0), and the gradient
    reaches the encoder (through the context and the full-image tokens)."""
    model, params = _model("vicreg")
    assert set(params) == {"context", "predictor"}
    assert "latent_proj" not in params["predictor"]["params"]
    tx = optax.sgd(0.1)
    assert model.optimizer(tx, 10) is tx
    (loss, metrics), grads = _value_and_grad("vicreg")(params, _batch(6), KEY)
    for name in (
        "variance",
        "covariance",
        "target_std",
        "target_rank",
        "context_std",
        "context_rank",
    ):
        assert np.isfinite(float(metrics[name])), name
    assert 0.0 <= float(metrics["variance"]) <= 1.0
    assert 1.0 <= float(metrics["context_rank"]) <= 32.0
    direct = model.cfg.prediction * metrics["energy"] + model.cfg.variance * metrics["variance"]
    np.testing.assert_allclose(
        loss, direct + model.cfg.covariance * metrics["covariance"], rtol=1e-5
    )
    assert float(metrics["energy"]) == float(metrics["energy_z0"]) and metrics["z_norm"] == 0
    for path, g in _leaves(grads["context"]):
        assert np.abs(g).max() > 0, path


def test_within_position_statistics_ignore_a_position_code():
    """Tokens that encode only the position look informative over the pooled tokens but are
    collapsed per position: centered, their std is 0 and VICReg's variance term is ~1."""
    rng = np.random.default_rng(0)
    code = rng.normal(size=(N, 6)).astype(np.float32)
    idx = np.stack([rng.permutation(N)[:C] for _ in range(8)])
    tokens = code[idx]  # [8, C, 6]: position only
    centered, dof = ijepa.within_position(jnp.asarray(tokens), idx, N)
    assert float(jnp.abs(centered).max()) < 1e-5
    assert int(dof) == 8 * C - len(np.unique(idx))
    variance, _ = ijepa.variance_covariance(centered, dof)
    assert float(variance) == pytest.approx(0.99, abs=1e-3)
    assert float(ijepa.token_statistics(centered, dof)["std"]) < 1e-5
    spread = tokens + rng.normal(size=tokens.shape).astype(np.float32)  # content on top
    stats = ijepa.token_statistics(*ijepa.within_position(jnp.asarray(spread), idx, N))
    assert float(stats["std"]) == pytest.approx(1.0, abs=0.15) and float(stats["rank"]) > 5


def test_bfloat16_parameters_compute_in_bfloat16_with_float32_statistics():
    """Parameters cast to bfloat16 (as `--dtype bfloat16` does inside the step): the networks
    compute in bfloat16 (the fixed sincos table does not promote them back), the energies
    and statistics are float32. Shapes and dtypes only (jax.eval_shape: nothing compiles)."""
    model, params = _model()
    low = jax.tree_util.tree_map(lambda p: p.astype(jnp.bfloat16), params)
    b = _batch()
    s_x = jax.eval_shape(model.encode, low["context"], b["image"], b["context_idx"])
    assert s_x.dtype == jnp.bfloat16 and s_x.shape == (8, C, 32)
    z = np.zeros((8, 4), np.float32)
    pred = jax.eval_shape(
        model.predict, low["predictor"], s_x, b["context_idx"], b["target_idx"][:, 0], z
    )
    assert pred.dtype == jnp.bfloat16 and pred.shape == (8, T, 32)
    loss, metrics = jax.eval_shape(model.loss, low, b, KEY)
    assert loss.dtype == jnp.float32
    assert all(m.dtype == jnp.float32 for m in metrics.values()), metrics


# ---- FLOPs ----


def test_vit_flops_hand_count_and_xla():
    # 32x32x3, p = 8: N = 16 patches of 8 * 8 * 3 = 192 values; W = 32, H = 128, 2 blocks.
    embed = 2 * 16 * 192 * 32  # 196_608
    qkv, scores, values, proj = (
        2 * 16 * 32 * 96,
        2 * 16 * 16 * 32,
        2 * 16 * 16 * 32,
        2 * 16 * 32 * 32,
    )
    mlp = 2 * (2 * 16 * 32 * 128)
    assert qkv + scores + values + proj + mlp == 425_984
    assert ijepa.vit_flops(32, 8, 32, 2) == embed + 2 * 425_984 == 1_048_576
    assert ijepa.vit_flops((32, 32), 8, 32, 0) == embed
    ctx = ijepa.vit_flops(32, 8, 32, 2, tokens=8)
    assert ctx == embed + 2 * (
        2 * 8 * 32 * 96 + 4 * 8 * 8 * 32 + 2 * 8 * 32 * 32 + 4 * 8 * 32 * 128
    )
    net, params, _ = _encoder()  # XLA counts the same matmuls plus elementwise ops
    xla = jax.jit(net.apply).lower(params, np.zeros((1, *SHAPE), np.float32)).cost_analysis()
    assert 1.0 <= xla["flops"] / 1_048_576 <= 1.15


def test_flops_per_image_adds_up():
    model, _ = _model()
    f = model.flops_per_image(num_context=C, target_size=T, num_targets=M)
    assert f["context_encoder"] == ijepa.vit_flops(32, 8, 32, 1, tokens=C)
    assert f["target_encoder"] == ijepa.vit_flops(32, 8, 32, 1)
    block = 2 * C * 32 * 16 + 2 * T * 16 * 32 + 2 * 4 * 16 + ijepa.transformer_flops(C + T, 16, 1)
    assert f["predictor"] == M * block and f["latent"] == 2 * 3 * M * block
    want = 3 * (f["context_encoder"] + f["predictor"]) + f["target_encoder"] + f["latent"]
    assert f["train_step"] == want


# ---- argument checks ----


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: IJEPAConfig(collapse="byol"), "IJEPAConfig: collapse='byol'"),
        (lambda: IJEPAConfig(width=30, heads=4), "IJEPAConfig: heads=4 does not divide"),
        (lambda: IJEPAConfig(ema_start=0.999, ema_end=0.99), "IJEPAConfig: ema_end=0.99"),
        (lambda: IJEPA(IJEPAConfig(**TINY), (30, 30, 3)), "IJEPA: cfg.patch_size=8"),
        (lambda: ijepa.LatentConfig(steps=0), "LatentConfig: steps=0"),
        (lambda: ijepa.momentum_schedule(0, 0), "momentum_schedule: total_steps=0"),
        (lambda: ijepa.ema_update(jnp.zeros(2), jnp.zeros(3), 0.5), "ema_update: online.shape"),
        (lambda: ijepa.ema_update(jnp.zeros(2), jnp.zeros(2), 1.5), "ema_update: momentum=1.5"),
        (lambda: ijepa.vit_flops(30, 8, 32, 2), "vit_flops: patch=8"),
        (lambda: sincos_pos_embed_2d(4, 4, 6), "sincos_pos_embed_2d: dim=6"),
        (
            lambda: ijepa.gather_tokens(jnp.zeros((2, 4)), jnp.zeros((2, 1), int)),
            "gather_tokens: tokens.shape",
        ),
    ],
)
def test_bad_arguments_name_function_and_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda b: b.pop("target_idx"), "IJEPA.loss: batch="),
        (
            lambda b: b.update(target_idx=b["target_idx"].astype(np.float32)),
            "target_idx'\\]\\.dtype",
        ),
        (
            lambda b: b.update(context_idx=b["context_idx"] + N),
            "context_idx'\\]=.* outside \\[0, 16\\)",
        ),
        (lambda b: b.update(image=b["image"][:, :16]), "IJEPA.loss: batch\\['image'\\]\\.shape"),
        (lambda b: b.update(target_idx=b["target_idx"][:3]), "batch\\['target_idx'\\]\\.shape"),
    ],
)
def test_bad_batches_raise_before_tracing(change, match):
    model, params = _model()
    batch = _batch()
    change(batch)
    with pytest.raises(ValueError, match=match):
        model.loss(params, batch, KEY)


def test_token_encoder_refuses_indices_out_of_range():
    net, params, _ = _encoder()
    with pytest.raises(ValueError, match="ViTTokens: idx=.* outside \\[0, 16\\)"):
        net.apply(params, np.zeros((1, *SHAPE), np.float32), np.array([[0, 16]]))
