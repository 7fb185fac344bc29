"""hjepa_jax.nn conv and transformer modules: shapes, batching, jit, gradients, causality."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hjepa_jax.nn.conv import ConvEncoder, ConvPredictor
from hjepa_jax.nn.vit import TransformerPredictor, ViTEncoder

# An "rbg" key: flax init under jit compiles several times faster than with threefry on CPU.
KEY = jax.random.key(0, impl="rbg")
TOL = dict(rtol=1e-5, atol=1e-5)


def _init(module, *example):
    return jax.jit(module.init)(KEY, *example)


def _shape(module, params, *inputs):
    """Output shape without running anything (no compile): shape tests stay fast."""
    return jax.eval_shape(module.apply, params, *inputs).shape


def _images(shape, batch=(), seed=1):
    """Standard normal float32 inputs, made in numpy (no compile per shape)."""
    return np.random.default_rng(seed).normal(size=batch + shape).astype(np.float32)


def _zeros(shape):
    return np.zeros(shape, np.float32)


# --- ConvEncoder -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 8, 1), (32, 32, 1), (64, 64, 2), (65, 65, 2)])
@pytest.mark.parametrize("pool", ["flatten", "mean"])
@pytest.mark.parametrize("norm", [None, "layer", "group"])
def test_conv_encoder_shapes(shape, pool, norm):
    module = ConvEncoder((8, 16, 16), features=12, norm=norm, pool=pool)
    params = jax.eval_shape(module.init, KEY, _zeros(shape))
    kernel = params["params"]["out"]["kernel"].shape
    side = -(-shape[0] // 8)  # three stride-2 SAME stages: ceil(n / 8)
    assert kernel == ((side * side * 16 if pool == "flatten" else 16), 12)
    for batch in [(), (5,), (2, 3)]:
        assert _shape(module, params, _zeros(batch + shape)) == batch + (12,)


def test_conv_encoder_strides_and_mean_pool_params_do_not_depend_on_size():
    module = ConvEncoder((8, 16), features=4, strides=(1, 2), pool="mean")
    params = jax.eval_shape(module.init, KEY, _zeros((8, 8, 2)))
    assert _shape(module, params, _zeros((3, 65, 65, 2))) == (3, 4)  # same params


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(norm="batch"), "norm must be"),
        (dict(pool="max"), "pool must be"),
        (dict(strides=(2,)), "differ in length"),
    ],
)
def test_conv_encoder_bad_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(ConvEncoder((4, 4), features=2, **kwargs).init, KEY, _zeros((8, 8, 1)))


# --- ViTEncoder --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 8, 1), (32, 32, 1), (32, 32, 2)])
def test_vit_encoder_shapes(shape):
    module = ViTEncoder(features=12, patch_size=4, width=32, depth=2, heads=4)
    params = jax.eval_shape(module.init, KEY, _zeros(shape))
    n_tokens = (shape[0] // 4) * (shape[1] // 4)
    assert params["params"]["pos_embed"].shape == (n_tokens, 32)
    for batch in [(), (5,), (2, 3)]:
        assert _shape(module, params, _zeros(batch + shape)) == batch + (12,)


@pytest.mark.parametrize("shape", [(30, 30, 1), (32, 30, 2), (65, 65, 2)])
def test_vit_encoder_indivisible_patch_size_names_the_sizes(shape):
    module = ViTEncoder(features=4, patch_size=4, width=16, depth=1, heads=2)
    msg = f"image size {shape[0]}x{shape[1]} is not divisible by patch_size 4"
    with pytest.raises(ValueError, match=msg):
        jax.eval_shape(module.init, KEY, _zeros(shape))


# --- TransformerPredictor ----------------------------------------------------------------

PRED = TransformerPredictor(width=32, depth=2, heads=4, max_len=8)
T, D, Z = 6, 10, 3


@pytest.mark.parametrize("cond_shape", [None, (Z,), (T, Z)])
def test_predictor_shapes(cond_shape):
    cond = None if cond_shape is None else np.ones(cond_shape, np.float32)
    params = jax.eval_shape(PRED.init, KEY, _zeros((T, D)), cond)
    for batch in [(), (4,), (2, 3)]:
        c = None if cond is None else np.broadcast_to(cond, batch + cond_shape)
        assert _shape(PRED, params, _zeros(batch + (T, D)), c) == batch + (T, D)
    # T=1 (a single state) and any T <= max_len share the parameters.
    c1 = None if cond is None else cond[-1:] if len(cond_shape) == 2 else cond
    assert _shape(PRED, params, _zeros((1, D)), c1) == (1, D)
    c8 = None if cond is None else np.ones((8, Z), np.float32) if len(cond_shape) == 2 else cond
    assert _shape(PRED, params, _zeros((8, D)), c8) == (8, D)


def test_predictor_features_and_errors():
    module = TransformerPredictor(width=16, depth=1, heads=2, features=5, max_len=4)
    params = jax.eval_shape(module.init, KEY, _zeros((2, 4, D)), _zeros((2, Z)))
    assert _shape(module, params, _zeros((2, 4, D)), _zeros((2, Z))) == (2, 4, 5)
    with pytest.raises(ValueError, match="sequence length 5 exceeds max_len 4"):
        _shape(module, params, _zeros((2, 5, D)), _zeros((2, Z)))
    with pytest.raises(ValueError, match="cond must be"):
        _shape(module, params, _zeros((2, 4, D)), _zeros((2, 4, 1, Z)))


@functools.cache
def _pred_params():
    """PRED's parameters for states [2, T, D] and cond [2, Z] (cond [2, T, Z] fits them too)."""
    return _init(PRED, _images((T, D), (2,)), _images((Z,), (2,), seed=2))


@pytest.mark.parametrize("cond_per_step", [False, True])
def test_causal_predictor_output_at_t_ignores_the_future(cond_per_step):
    full = PRED.clone(causal=False)  # same parameter tree
    states = _images((T, D), (2,))
    cond = _images((T, Z) if cond_per_step else (Z,), (2,), seed=2)
    t = 2
    states2, cond2 = states.copy(), cond.copy()
    states2[:, t + 1 :] += 1.0  # change only the future
    if cond_per_step:
        cond2[:, t + 1 :] += 1.0

    @jax.jit
    def both(params, s, c):  # [original; changed] as one batch of 4
        return PRED.apply(params, s, c), full.apply(params, s, c)

    outs = both(_pred_params(), np.concatenate([states, states2]), np.concatenate([cond, cond2]))
    (a, b), (c, d) = [np.split(np.asarray(o), 2) for o in outs]
    assert PRED.causal
    np.testing.assert_allclose(a[:, : t + 1], b[:, : t + 1], **TOL)
    assert np.max(np.abs(a[:, t + 1 :] - b[:, t + 1 :])) > 1e-3
    assert np.min(np.max(np.abs(c[:, : t + 1] - d[:, : t + 1]), axis=-1)) > 1e-3


# --- all modules: batching, vmap, jit, gradients -----------------------------------------

# name -> (module, shapes of its inputs for one example)
CASES = {
    "conv_8x8x1_layer_mean": (
        ConvEncoder((8, 16), features=6, norm="layer", pool="mean"),
        [(8, 8, 1)],
    ),
    "conv_65x65x2_group": (ConvEncoder((8, 16, 16), features=6, norm="group"), [(65, 65, 2)]),
    "conv_feature_map": (ConvEncoder((8, 8), features=3, pool="none"), [(16, 16, 2)]),
    "conv_predictor": (ConvPredictor((8, 8)), [(8, 8, 3), (2,)]),
    "vit_32x32x2": (
        ViTEncoder(features=6, patch_size=4, width=16, depth=2, heads=2),
        [(32, 32, 2)],
    ),
    "pred_causal_cond": (
        TransformerPredictor(width=16, depth=2, heads=2, max_len=T),
        [(T, D), (Z,)],
    ),
}


@functools.cache
def _case(name):
    """(module, inputs: tuple of [4, *shape], params), built once per case for the tests below."""
    module, shapes = CASES[name]
    xs = tuple(_images(shape, (4,), seed=i) for i, shape in enumerate(shapes))
    return module, xs, _init(module, *(x[0] for x in xs))


@pytest.mark.parametrize("name", sorted(CASES))
def test_single_batched_and_vmap_agree(name):
    module, xs, params = _case(name)

    @jax.jit  # one compile for the four ways
    def four_ways(params, xs):
        batched = module.apply(params, *xs)
        singles = jax.lax.map(lambda x: module.apply(params, *x), xs)  # one example at a time
        vmapped = jax.vmap(module.apply, (None,) + (0,) * len(xs))(params, *xs)
        nested = module.apply(params, *(x.reshape((2, 2) + x.shape[1:]) for x in xs))
        return batched, singles, vmapped, nested.reshape(batched.shape)

    batched, *others = four_ways(params, xs)
    for other in others:
        np.testing.assert_allclose(other, batched, **TOL)


@pytest.mark.parametrize("name", ["conv_65x65x2_group", "pred_causal_cond"])
def test_jit_matches_op_by_op(name):
    module, xs, params = _case(name)
    xs = tuple(x[:2] for x in xs)
    with jax.disable_jit():
        eager = module.apply(params, *xs)
    np.testing.assert_allclose(jax.jit(module.apply)(params, *xs), eager, **TOL)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_reaches_every_parameter(name):
    module, xs, params = _case(name)
    w = _images(_shape(module, params, *xs), seed=3)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(w * module.apply(p, *xs))))(params)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert np.all(np.isfinite(g)), path
        assert np.max(np.abs(g)) > 0, jax.tree_util.keystr(path)


# --- a tiny learning check ---------------------------------------------------------------


def _quadrant_data(seed, n, side=16):
    """One bright pixel on a noisy side x side image; label = its quadrant (0..3)."""
    rng = np.random.default_rng(seed)
    row, col = rng.integers(0, side, n), rng.integers(0, side, n)
    images = 0.1 * rng.normal(size=(n, side, side, 1)).astype(np.float32)
    images[np.arange(n), row, col, 0] += 1.0
    labels = 2 * (row >= side // 2) + (col >= side // 2)
    return images, labels


class _Classifier(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(4, name="head")(ConvEncoder((8, 16), features=32, name="encoder")(x))


def test_conv_encoder_learns_which_quadrant():
    """100 Adam steps on fresh batches of 128: > 90% held-out accuracy (~99%, ~3 s on CPU)."""
    x_train, y_train = _quadrant_data(10, 100 * 128)
    x_test, y_test = _quadrant_data(11, 512)
    model, tx = _Classifier(), optax.adam(1e-2)
    params = _init(model, x_test[:1])
    opt_state = tx.init(params)

    def loss_fn(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply(p, x), y).mean()

    @jax.jit
    def step(p, s, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        updates, s = tx.update(g, s, p)
        return optax.apply_updates(p, updates), s, loss

    for i in range(100):
        batch = slice(128 * i, 128 * (i + 1))
        params, opt_state, loss = step(params, opt_state, x_train[batch], y_train[batch])
    logits = jax.jit(model.apply)(params, x_test)
    accuracy = float(np.mean(np.argmax(logits, -1) == y_test))
    assert accuracy > 0.9, (accuracy, float(loss))


def test_conv_predictor_is_local_and_translation_equivariant():
    """A bump moved on the map moves its prediction the same way (away from the borders),
    and the update stays within the receptive field (two 3x3 layers: 2 cells)."""
    module = ConvPredictor((8, 8))
    params = _init(module, _zeros((12, 12, 3)), _zeros((2,)))
    a = jnp.array([0.5, -1.0])
    bump = jnp.zeros((12, 12, 3)).at[4, 4].set(1.0)
    moved = jnp.roll(bump, (3, 2), axis=(0, 1))
    base = module.apply(params, jnp.zeros((12, 12, 3)), a)
    out, out_moved = (module.apply(params, x, a) - base for x in (bump, moved))
    np.testing.assert_allclose(jnp.roll(out, (3, 2), axis=(0, 1)), out_moved, atol=1e-6)
    far = np.ones((12, 12), bool)
    far[2:7, 2:7] = False  # cells within 2 of the bump
    np.testing.assert_allclose(np.asarray(out - bump)[far], 0.0, atol=1e-6)
    assert module.apply(params, bump, a).shape == (12, 12, 3)
