"""Tests for hjepa_jax.masks: I-JEPA's multi-block masks with fixed shapes."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hjepa_jax import masks as mk

SPEC = mk.MultiBlockSpec(grid=(14, 14))  # I-JEPA's ViT-*/16 at 224 px, default ranges


@pytest.fixture(scope="module")
def big():
    return mk.sample_multiblock(jax.random.PRNGKey(0), 256, SPEC)


def test_fixed_shapes_and_dtypes(big):
    t, c = mk.multiblock_sizes(SPEC)
    assert (t, c) == (30, 51)
    assert big.context_idx.shape == (256, c) and big.context_idx.dtype == jnp.int32
    assert big.target_idx.shape == (256, 4, t) and big.target_idx.dtype == jnp.int32
    assert big.target_hw.shape == (2,) and big.context_hw.shape == (2,)
    ci, ti = np.asarray(big.context_idx), np.asarray(big.target_idx)
    assert ci.min() >= 0 and ci.max() < 196 and ti.min() >= 0 and ti.max() < 196
    # Row-major and without repeats (the reference's ascending nonzero, truncated).
    assert (np.diff(ci, axis=-1) > 0).all() and (np.diff(ti, axis=-1) > 0).all()


def test_context_and_targets_are_disjoint(big):
    ci, ti = np.asarray(big.context_idx), np.asarray(big.target_idx)
    for b in range(len(ci)):
        assert not set(ci[b]) & set(ti[b].ravel()), b


def test_targets_are_blocks_of_the_batch_size_truncated_row_major(big):
    h, w = (int(v) for v in big.target_hw)
    t = big.target_idx.shape[-1]
    assert t <= h * w
    for block in np.asarray(big.target_idx[:16]).reshape(-1, t):
        r, c = np.divmod(block, 14)
        top, left = r.min(), c.min()
        # The first t patches of the h x w block at (top, left), in row-major order.
        full = [(top + i) * 14 + left + j for i in range(h) for j in range(w)]
        assert list(block) == full[:t]
        assert top + h <= 13 and left + w <= 13  # corners in [0, 14 - h) as the reference


def _batches(num: int = 40, batch_size: int = 4) -> mk.MultiBlockMasks:
    """`num` batches, stacked (one compile: vmapped over their keys)."""
    keys = jax.random.split(jax.random.PRNGKey(7), num)
    return jax.vmap(lambda k: mk.sample_multiblock(k, batch_size, SPEC))(keys)


def test_block_sizes_within_the_scale_and_aspect_ranges():
    n = 14 * 14
    batches = _batches()
    for hw, chw in zip(np.asarray(batches.target_hw), np.asarray(batches.context_hw), strict=True):
        h, w = (int(v) for v in hw)
        # h w is within rounding of floor(N s), s in [0.15, 0.2]; h / w within rounding of
        # [0.75, 1.5].
        assert math.floor(0.15 * n) - (h + w) <= h * w <= 0.2 * n + (h + w), (h, w)
        assert 0.75 * (w - 1) / (w + 1) <= h / w <= 1.5 * (w + 1) / (w - 1), (h, w)
        ch, cw = (int(v) for v in chw)
        assert ch == cw == 13  # scale 0.85-1 at aspect 1, at most H - 1 (the reference)


def test_block_size_matches_the_reference_formula():
    rng = np.random.default_rng(0)
    for _ in range(200):
        u, v = rng.random(2, np.float32)
        grid = tuple(int(g) for g in rng.integers(4, 20, 2))
        h, w = mk.block_size(u, v, grid, (0.15, 0.2), (0.75, 1.5))
        k = int(grid[0] * grid[1] * (0.15 + float(u) * 0.05))  # I-JEPA's _sample_block_size
        a = 0.75 + float(v) * 0.75
        hr, wr = int(round(math.sqrt(k * a))), int(round(math.sqrt(k / a)))
        hr, wr = max(1, min(hr, grid[0] - 1)), max(1, min(wr, grid[1] - 1))
        assert (int(h), int(w)) == (hr, wr), (u, v, grid)
    # numpy and jax agree
    u = np.linspace(0, 1, 101, dtype=np.float32)[:-1]
    hn, wn = mk.block_size(u, u, (14, 14), (0.15, 0.2), (0.75, 1.5))
    hj, wj = mk.block_size(jnp.asarray(u), jnp.asarray(u), (14, 14), (0.15, 0.2), (0.75, 1.5))
    np.testing.assert_array_equal(hn, hj)
    np.testing.assert_array_equal(wn, wj)


def test_jits_with_a_traced_key_and_is_a_function_of_the_key():
    @jax.jit
    def step(key):
        m = mk.sample_multiblock(key, 4, SPEC)
        return m.context_idx.sum() + m.target_idx.sum(), m

    _, a = step(jax.random.PRNGKey(1))
    _, b = step(jax.random.PRNGKey(1))
    _, c = step(jax.random.PRNGKey(2))
    np.testing.assert_array_equal(a.context_idx, b.context_idx)
    np.testing.assert_array_equal(a.target_idx, b.target_idx)
    assert not np.array_equal(a.target_idx, c.target_idx)
    direct = mk.sample_multiblock(jax.random.PRNGKey(1), 4, SPEC)
    np.testing.assert_array_equal(direct.target_idx, a.target_idx)
    # vmapped over keys: fixed shapes per batch make it batchable too
    many = _batches()
    assert many.target_idx.shape == (40, 4, 4, 30) and many.context_idx.shape == (40, 4, 51)
    assert len({tuple(hw) for hw in np.asarray(many.target_hw)}) > 1  # sizes vary by batch


def test_explicit_sizes_small_grids_and_untied_draws():
    spec = mk.MultiBlockSpec(
        grid=(8, 8), num_targets=2, num_target_patches=4, num_context_patches=20, tied_draw=False
    )
    m = mk.sample_multiblock(jax.random.PRNGKey(0), 32, spec)
    assert m.target_idx.shape == (32, 2, 4) and m.context_idx.shape == (32, 20)
    ci, ti = np.asarray(m.context_idx), np.asarray(m.target_idx)
    for b in range(32):
        assert not set(ci[b]) & set(ti[b].ravel())
    # C at the largest allowed value: draws often fall short; shapes stay fixed, indices valid
    # and disjoint from the targets (the largest draw, its first index repeated).
    tight = mk.MultiBlockSpec(grid=(6, 6), num_context_patches=25)
    m = mk.sample_multiblock(jax.random.PRNGKey(3), 16, tight)
    ci, ti = np.asarray(m.context_idx), np.asarray(m.target_idx)
    assert ci.shape == (16, 25)
    for b in range(16):
        assert not set(ci[b]) & set(ti[b].ravel())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(grid=(1, 14)), "MultiBlockSpec: grid="),
        (dict(num_targets=0), "MultiBlockSpec: num_targets="),
        (dict(target_scale=(0.3, 0.2)), "MultiBlockSpec: target_scale="),
        (dict(context_scale=(0.5, 1.5)), "MultiBlockSpec: context_scale="),
        (dict(target_aspect=(0.0, 1.0)), "MultiBlockSpec: target_aspect="),
        (dict(num_target_patches=31), "MultiBlockSpec: num_target_patches="),
        (dict(num_context_patches=170), "MultiBlockSpec: num_context_patches="),
        (dict(candidates=0), "MultiBlockSpec: candidates="),
    ],
)
def test_spec_rejects_bad_fields(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mk.MultiBlockSpec(**kwargs)


def test_sample_rejects_bad_arguments():
    with pytest.raises(ValueError, match="sample_multiblock: batch_size="):
        mk.sample_multiblock(jax.random.PRNGKey(0), 0, SPEC)
    with pytest.raises(ValueError, match="sample_multiblock: spec="):
        mk.sample_multiblock(jax.random.PRNGKey(0), 2, (14, 14))


def test_a_random_context_subset_spreads_over_the_context_block():
    """ "first" keeps the context's top rows; "random" keeps C patches from all of it: the
    same sizes, still ascending and disjoint from the targets, and lower in the image."""
    first = mk.MultiBlockSpec(grid=(8, 8))
    spread = mk.MultiBlockSpec(grid=(8, 8), context_subset="random")
    key = jax.random.PRNGKey(0)
    a, b = mk.sample_multiblock(key, 256, first), mk.sample_multiblock(key, 256, spread)
    assert a.context_idx.shape == b.context_idx.shape
    ci, ti = np.asarray(b.context_idx), np.asarray(b.target_idx)
    assert (np.diff(ci, axis=1) > 0).all()
    assert not any(np.intersect1d(ci[i], ti[i]).size for i in range(256))
    np.testing.assert_array_equal(a.target_idx, b.target_idx)  # only the context changes
    rows = lambda idx: np.mean(np.asarray(idx) // 8)
    assert rows(b.context_idx) > rows(a.context_idx) + 0.5
    with pytest.raises(ValueError, match="context_subset"):
        mk.MultiBlockSpec(grid=(8, 8), context_subset="last")
