"""I-JEPA's multi-block masks (Assran et al. 2023), in JAX with fixed shapes, so they jit.

On a grid of H x W patches (numbered row-major, N = H W), each image gets M target blocks
(default 4, each covering a fraction 0.15-0.2 of the patches with aspect h / w in
0.75-1.5) and one context block (fraction 0.85-1.0, aspect 1) from which every target
patch is removed, as in I-JEPA's `MaskCollator` (`src/masks/multiblock.py`):

  * per batch, one target block size (h, w) and one context size are drawn: k = floor(N s)
    patches, h = round(sqrt(k a)), w = round(sqrt(k / a)), each at most H - 1 (W - 1), with
    s uniform in the scale range and a in the aspect range (I-JEPA draws s and a from one
    uniform number: `tied_draw=True`, the default; False draws them independently);
  * per image, the blocks' top-left corners are uniform in [0, H - h) x [0, W - w) (the
    reference's `randint(0, H - h)`, whose upper bound is excluded: with the default ranges
    on 14 x 14 the context block is always the 13 x 13 at the top-left corner, as there),
    targets first, then the context, minus the targets;
  * index lists are row-major (ascending) and truncated to common lengths: T for every
    target block, C for the context, as the reference truncates to the batch's minimum.
    The reference keeps the first C context patches, i.e. the top rows of the context;
    `context_subset="random"` keeps C of them drawn uniformly instead, so that the context
    still covers the whole block when C is a small share of it (small grids: on 8 x 8, C is
    11 of a context of about 20).

Fixed shapes: T and C are static (`multiblock_sizes`), not the minimum of each batch, so
one compiled program serves every batch. T is the smallest block size the ranges allow (a
bigger block loses its last rows' patches, as the reference's truncation does). C defaults
to the 1% quantile of the context size under this recipe (estimated once from 4096 draws
of a fixed seed), about the reference's minimum over a batch of 128; an image whose draw
leaves fewer than C context patches is redrawn (targets and context together, up to
`candidates` draws; the reference instead moves the context block and relaxes its
constraints), so context and targets never overlap. If every draw falls short, which the
default C makes practically impossible, the largest is kept and its first index repeated.

    spec = MultiBlockSpec(grid=(14, 14))            # ViT-*/16 at 224 px
    masks = sample_multiblock(key, 256, spec)
    masks.context_idx   # [256, C] int32
    masks.target_idx    # [256, 4, T] int32
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hjepa_jax import _checks

__all__ = [
    "MultiBlockMasks",
    "MultiBlockSpec",
    "block_size",
    "multiblock_sizes",
    "sample_multiblock",
]

CONTEXT_SUBSETS = ("first", "random")
_SIM_BATCHES, _SIM_BATCH, _SIM_QUANTILE = 64, 64, 0.01  # how the default C is estimated


class MultiBlockMasks(NamedTuple):
    """Masks of a batch of B images (patch indices row-major in [0, H W), ascending per row).

    Attributes:
      context_idx: [B, C] int32, the patches the context encoder sees.
      target_idx: [B, M, T] int32, the M target blocks' patches.
      target_hw: [2] int32, this batch's target block (h, w) before truncation to T.
      context_hw: [2] int32, this batch's context block (h, w) before removing the targets.
    """

    context_idx: jax.Array
    target_idx: jax.Array
    target_hw: jax.Array
    context_hw: jax.Array


def _pair(fn: str, name: str, value, positive: bool, at_most: float | None) -> tuple:
    fix = f"pass {name}=(low, high) with low <= high"
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        _checks.broken(fn, name, value, "a pair (low, high) of numbers", fix)
    rule = "0 < low <= high" + (f" <= {at_most}" if at_most is not None else "")
    if not (lo > 0 if positive else lo >= 0) or lo > hi or (at_most is not None and hi > at_most):
        _checks.broken(fn, name, value, rule, fix)
    return lo, hi


@dataclasses.dataclass(frozen=True)
class MultiBlockSpec:
    """The mask recipe (hashable: a static argument under jit). Defaults: I-JEPA's.

    Attributes:
      grid: (H, W) patches, each >= 2 (e.g. (14, 14) for 224 px images and 16 px patches).
      num_targets: M target blocks per image.
      target_scale, target_aspect: ranges of a target block's fraction of the N patches and
        of its aspect h / w.
      context_scale, context_aspect: the same for the context block.
      num_target_patches: T; None: the smallest target block the ranges allow.
      num_context_patches: C; None: the 1% quantile of the context size (module doc).
      candidates: draws per image to find one with at least C context patches.
      tied_draw: draw a block's scale and aspect from one uniform number, as I-JEPA does.
      context_subset: which C context patches are kept: "first" (row-major, the
        reference's truncation) or "random" (uniform among the context's).

    Raises:
      ValueError: a bad field (named in the message), or T or C larger than the smallest
        target or context block the ranges allow.
    """

    grid: tuple[int, int] = (14, 14)
    num_targets: int = 4
    target_scale: tuple[float, float] = (0.15, 0.2)
    target_aspect: tuple[float, float] = (0.75, 1.5)
    context_scale: tuple[float, float] = (0.85, 1.0)
    context_aspect: tuple[float, float] = (1.0, 1.0)
    num_target_patches: int | None = None
    num_context_patches: int | None = None
    candidates: int = 8
    tied_draw: bool = True
    context_subset: str = "first"

    def __post_init__(self):
        fn = "MultiBlockSpec"
        fix = "pass grid=(H, W), the number of patches along each side, each >= 2"
        try:
            grid = tuple(int(g) for g in self.grid)
        except (TypeError, ValueError):
            _checks.broken(fn, "grid", self.grid, "a pair of integers >= 2", fix)
        if len(grid) != 2 or min(grid) < 2:
            _checks.broken(fn, "grid", self.grid, "a pair of integers >= 2", fix)
        object.__setattr__(self, "grid", grid)
        _checks.one_of(fn, "context_subset", self.context_subset, CONTEXT_SUBSETS, "pick one")
        for name in ("num_targets", "candidates"):
            value = _checks.integer(fn, name, getattr(self, name), fix=f"pass {name} >= 1")
            object.__setattr__(self, name, value)
        for name in ("target_scale", "context_scale"):
            object.__setattr__(self, name, _pair(fn, name, getattr(self, name), True, 1.0))
        for name in ("target_aspect", "context_aspect"):
            object.__setattr__(self, name, _pair(fn, name, getattr(self, name), True, None))
        for name, scale, aspect in (
            ("num_target_patches", self.target_scale, self.target_aspect),
            ("num_context_patches", self.context_scale, self.context_aspect),
        ):
            smallest = _smallest_block(grid, scale, aspect, self.tied_draw)
            value = getattr(self, name)
            if value is not None:
                fix = f"pass {name} <= {smallest}, the smallest block these ranges allow, or None"
                value = _checks.integer(fn, name, value, maximum=smallest, fix=fix)
                object.__setattr__(self, name, value)


def block_size(u, v, grid: tuple[int, int], scale, aspect):
    """(h, w) of a block from uniform numbers u (scale) and v (aspect) in [0, 1).

    I-JEPA's `_sample_block_size`: k = floor(H W s) with s = scale[0] + u (scale[1] -
    scale[0]), a = aspect[0] + v (aspect[1] - aspect[0]), h = round(sqrt(k a)), w =
    round(sqrt(k / a)), then h <= H - 1, w <= W - 1 (and >= 1). Computed in float32, with
    numpy for numpy inputs and jax.numpy otherwise.

    Args:
      u, v: uniform numbers, any (same) shape.
      grid: (H, W).
      scale, aspect: (low, high) ranges.

    Returns:
      (h, w), int32 arrays of u's shape.

    >>> block_size(np.float32(0.0), np.float32(0.0), (14, 14), (0.15, 0.2), (0.75, 1.5))
    (np.int32(5), np.int32(6))
    """
    xp = np if isinstance(u, np.ndarray | np.generic | float) else jnp
    f32 = xp.float32
    u, v = xp.asarray(u, f32), xp.asarray(v, f32)
    s = f32(scale[0]) + u * f32(scale[1] - scale[0])
    k = xp.floor(f32(grid[0] * grid[1]) * s)
    a = f32(aspect[0]) + v * f32(aspect[1] - aspect[0])
    h = xp.clip(xp.round(xp.sqrt(k * a)), 1, grid[0] - 1).astype(xp.int32)
    w = xp.clip(xp.round(xp.sqrt(k / a)), 1, grid[1] - 1).astype(xp.int32)
    return h, w


@functools.lru_cache(maxsize=256)
def _smallest_block(grid, scale, aspect, tied: bool) -> int:
    """The smallest h w over the draws (dense grids of u and v, endpoints included)."""
    if tied:
        u = v = np.linspace(0, 1, 65537, dtype=np.float32)
    else:
        u, v = np.meshgrid(*(np.linspace(0, 1, 1025, dtype=np.float32),) * 2)
    h, w = block_size(u, v, grid, scale, aspect)
    return int((h.astype(np.int64) * w).min())


@functools.lru_cache(maxsize=256)
def _default_num_context(spec: MultiBlockSpec) -> int:
    """The `_SIM_QUANTILE` quantile of the context size (one draw per image, no redraws),
    from `_SIM_BATCHES` batches of `_SIM_BATCH` images of a fixed seed (numpy)."""
    rng = np.random.default_rng(0)
    (hh, ww), m = spec.grid, spec.num_targets
    rows, cols = np.arange(hh)[:, None], np.arange(ww)[None, :]

    def blocks(h, w, shape):
        top = np.floor(rng.random(shape, np.float32) * (hh - h)).astype(int)[..., None, None]
        left = np.floor(rng.random(shape, np.float32) * (ww - w)).astype(int)[..., None, None]
        return (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)

    counts = []
    for _ in range(_SIM_BATCHES):
        th, tw = _draw_size(rng.random(2, np.float32), spec, "target")
        ch, cw = _draw_size(rng.random(2, np.float32), spec, "context")
        targets = blocks(th, tw, (_SIM_BATCH, m)).any(1)
        context = blocks(ch, cw, (_SIM_BATCH,)) & ~targets
        counts.append(context.sum((1, 2)))
    c = int(np.floor(np.quantile(np.concatenate(counts), _SIM_QUANTILE)))
    smallest = _smallest_block(spec.grid, spec.context_scale, spec.context_aspect, spec.tied_draw)
    return min(max(c, 1), smallest)


def multiblock_sizes(spec: MultiBlockSpec) -> tuple[int, int]:
    """(T, C): the static patches per target block and in the context (see module doc).

    >>> multiblock_sizes(MultiBlockSpec(grid=(14, 14)))
    (30, 51)
    """
    t = spec.num_target_patches
    if t is None:
        t = _smallest_block(spec.grid, spec.target_scale, spec.target_aspect, spec.tied_draw)
    c = spec.num_context_patches
    return t, _default_num_context(spec) if c is None else c


def _draw_size(uv, spec: MultiBlockSpec, which: str):
    """A block size from two uniform numbers (only the first if `spec.tied_draw`)."""
    u, v = uv[0], uv[0] if spec.tied_draw else uv[1]
    scale, aspect = getattr(spec, f"{which}_scale"), getattr(spec, f"{which}_aspect")
    return block_size(u, v, spec.grid, scale, aspect)


def _indices(mask: jax.Array, size: int, priority: jax.Array | None = None) -> jax.Array:
    """[..., size] int32: `size` set entries of mask [..., K], ascending: the first ones, or
    those of lowest `priority` [..., K] (uniform numbers: a uniform subset); if fewer are
    set, the first one fills the rest."""
    rank = (~mask).astype(jnp.float32) if priority is None else jnp.where(mask, priority, 2.0)
    idx = jnp.argsort(rank, axis=-1, stable=True)[..., :size].astype(jnp.int32)
    order = jnp.where(jnp.take_along_axis(mask, idx, -1), idx, mask.shape[-1] + idx)
    idx = jnp.take_along_axis(idx, jnp.argsort(order, axis=-1), -1)  # set ones ascending
    return jnp.where(jnp.take_along_axis(mask, idx, -1), idx, idx[..., :1])


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _sample(key, batch_size: int, spec: MultiBlockSpec, t: int, c: int) -> MultiBlockMasks:
    (hh, ww), m, r = spec.grid, spec.num_targets, spec.candidates
    # One draw for everything (threefry dominates the compile time): 2 x 2 for the two block
    # sizes, then the top-left corners of the R candidate draws of M targets and a context.
    u = jax.random.uniform(key, (4 + batch_size * r * (m + 1) * 2,))
    th, tw = _draw_size(u[0:2], spec, "target")
    ch, cw = _draw_size(u[2:4], spec, "context")
    corner = u[4:].reshape(batch_size, r, m + 1, 2)
    size = jnp.stack([jnp.stack([th, tw])] * m + [jnp.stack([ch, cw])])  # [M + 1, 2]
    top_left = jnp.floor(corner * (jnp.array([hh, ww]) - size)).astype(jnp.int32)
    top, left = top_left[..., 0, None, None], top_left[..., 1, None, None]
    h, w = size[:, 0, None, None], size[:, 1, None, None]
    rows, cols = jnp.arange(hh)[:, None], jnp.arange(ww)[None, :]
    blocks = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
    blocks = blocks.reshape(batch_size, r, m + 1, hh * ww)  # [B, R, M + 1, N]
    targets = blocks[:, :, :m]
    context = blocks[:, :, m] & ~targets.any(2)  # [B, R, N]
    counts = context.sum(-1)
    enough = counts >= c
    pick = jnp.where(enough.any(1), jnp.argmax(enough, 1), jnp.argmax(counts, 1))  # [B]
    rows_b = jnp.arange(batch_size)
    priority = None
    if spec.context_subset == "random":
        priority = jax.random.uniform(jax.random.fold_in(key, 1), (batch_size, hh * ww))
    context_idx = _indices(context[rows_b, pick], c, priority)
    target_idx = _indices(targets[rows_b, pick], t)
    return MultiBlockMasks(context_idx, target_idx, jnp.stack([th, tw]), jnp.stack([ch, cw]))


def sample_multiblock(
    key: jax.Array, batch_size: int, spec: MultiBlockSpec = MultiBlockSpec()
) -> MultiBlockMasks:
    """Draw the multi-block masks of a batch (the module doc gives the recipe).

    Jitted (batch_size and spec static); callable inside jit with a traced key.

    Args:
      key: a jax PRNG key; the masks are a function of it.
      batch_size: B images.
      spec: the recipe.

    Returns:
      `MultiBlockMasks`: context_idx [B, C], target_idx [B, M, T] (int32; T, C =
      `multiblock_sizes(spec)`), and the batch's block sizes.

    Raises:
      ValueError: batch_size is not a positive integer, or spec is not a MultiBlockSpec.

    >>> m = sample_multiblock(jax.random.PRNGKey(0), 8, MultiBlockSpec(grid=(14, 14)))
    >>> m.context_idx.shape, m.target_idx.shape
    ((8, 51), (8, 4, 30))
    """
    fn = "sample_multiblock"
    batch_size = _checks.integer(fn, "batch_size", batch_size, fix="pass the number of images")
    if not isinstance(spec, MultiBlockSpec):
        _checks.broken(fn, "spec", spec, "a MultiBlockSpec", "pass MultiBlockSpec(grid=...)")
    t, c = multiblock_sizes(spec)
    return _sample(key, batch_size, spec, t, c)
