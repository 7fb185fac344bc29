"""Small transformers: ViT image encoders (pooled or per patch), an I-JEPA predictor over
patch tokens, and a sequence predictor over states."""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hjepa_jax import _checks
from hjepa_jax.nn.conv import fold_batch, unfold_batch

__all__ = [
    "POS_EMBEDS",
    "TransformerBlock",
    "ViTEncoder",
    "ViTTokens",
    "ViTPredictor",
    "TransformerPredictor",
    "sincos_pos_embed_2d",
]

POS_EMBEDS = ("sincos", "learned")

_POS_INIT = nn.initializers.normal(stddev=0.02)


class TransformerBlock(nn.Module):
    """A pre-LayerNorm transformer block: x + MHA(LN(x)), then x + MLP(LN(x)).

    Attributes:
      heads: attention heads (must divide the width).
      mlp_ratio: hidden width of the MLP over the token width.
      dtype: the computation dtype of its layers (e.g. jnp.bfloat16; parameters stay
        float32); None: that of the inputs and parameters.
      remat: recompute the block's activations in the backward pass instead of keeping them
        (`flax.linen.remat`): less memory, one more forward. None: as `remat_blocks` says
        (off unless inside `with remat_blocks():`, which `hj.train` enters for --remat).
        The parameters are the same either way.

    Shapes: x [N, T, W] -> [N, T, W]; mask broadcastable to [N, heads, T, T] (True = attend).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> block = hj.nn.TransformerBlock(heads=2)
      >>> x = jnp.zeros((1, 5, 8))
      >>> jax.jit(block.apply)(jax.jit(block.init)(jax.random.PRNGKey(0), x), x).shape
      (1, 5, 8)
    """

    heads: int
    mlp_ratio: float = 4.0
    dtype: Any = None
    remat: bool | None = None

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        width = x.shape[-1]
        if width % self.heads:
            fix = f"pick heads dividing the token width {width}"
            _checks.fail("TransformerBlock", "heads", self.heads, f"does not divide {width}", fix)
        if _REMAT.get() if self.remat is None else self.remat:
            return nn.remat(type(self)._body)(self, x, mask)
        return self._body(x, mask)

    def _body(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
        width = x.shape[-1]
        h = nn.LayerNorm(dtype=self.dtype, name="ln_attn")(x)
        h = nn.MultiHeadDotProductAttention(num_heads=self.heads, dtype=self.dtype, name="attn")(
            h, mask=mask, deterministic=True
        )
        x = x + h
        h = nn.LayerNorm(dtype=self.dtype, name="ln_mlp")(x)
        h = nn.Dense(int(width * self.mlp_ratio), dtype=self.dtype, name="mlp_in")(h)
        h = nn.Dense(width, dtype=self.dtype, name="mlp_out")(nn.gelu(h))
        return x + h


_REMAT: contextvars.ContextVar[bool] = contextvars.ContextVar("hjepa_remat", default=False)


@contextlib.contextmanager
def remat_blocks(enabled: bool = True):
    """Within the block, every TransformerBlock whose `remat` is None is traced with
    `flax.linen.remat` (every block of ViTEncoder, ViTTokens, ViTPredictor and
    TransformerPredictor). `hj.train.train` enters it for `LoopConfig(remat=True)` (--remat),
    around the tracing of its step. It acts when a function is traced: a function jitted
    before stays as it was compiled.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> block, x = hj.nn.TransformerBlock(heads=2), jnp.ones((1, 3, 4))
      >>> params = jax.jit(block.init)(jax.random.PRNGKey(0), x)
      >>> loss = lambda p: block.apply(p, x).sum()
      >>> with remat_blocks():
      ...     jaxpr = str(jax.make_jaxpr(jax.grad(loss))(params))
      >>> "remat" in jaxpr, "remat" in str(jax.make_jaxpr(jax.grad(loss))(params))
      (True, False)
    """
    token = _REMAT.set(bool(enabled))
    try:
        yield
    finally:
        _REMAT.reset(token)


class ViTEncoder(nn.Module):
    """A small Vision Transformer: patches -> tokens -> blocks -> mean token -> Dense.

    Patchify is a Conv with kernel = stride = patch_size; learned position embeddings are
    added; `depth` pre-LN blocks; a final LayerNorm; the tokens are averaged; a Dense gives
    the embedding. No class token, no dropout.

    Attributes:
      features: size of the output embedding D.
      patch_size: side of the square patches; H and W must be divisible by it.
      width: token width.
      depth: number of transformer blocks.
      heads: attention heads (must divide width).
      mlp_ratio: MLP hidden width over `width`.
      dtype: the computation dtype of its layers (parameters stay float32); None: that of
        the inputs and parameters.

    Shapes: x [..., H, W, C] -> [..., D]; leading axes may be empty (one example) or many.
    The position embedding has (H / p) * (W / p) rows, so params are tied to the image size.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> net = hj.nn.ViTEncoder(features=6, patch_size=4, width=16, depth=1, heads=2)
      >>> params = jax.jit(net.init)(jax.random.PRNGKey(0), jnp.zeros((8, 8, 1)))
      >>> jax.jit(net.apply)(params, jnp.zeros((3, 8, 8, 1))).shape
      (3, 6)
    """

    features: int
    patch_size: int = 4
    width: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x, batch = fold_batch(x, 3)  # [N, H, W, C]
        _, height, wide, _ = x.shape
        p = self.patch_size
        if height % p or wide % p:
            raise ValueError(
                f"ViTEncoder: image size {height}x{wide} is not divisible by patch_size {p}; "
                "crop or pad the images, or pick a patch size that divides both"
            )
        patchify = nn.Conv(
            self.width, (p, p), strides=(p, p), padding="VALID", dtype=self.dtype, name="patchify"
        )
        x = patchify(x)
        x = x.reshape(x.shape[0], -1, self.width)  # [N, T, W], T = (H / p) * (W / p)
        x = x + self.param("pos_embed", _POS_INIT, x.shape[1:])
        for i in range(self.depth):
            x = TransformerBlock(self.heads, self.mlp_ratio, self.dtype, name=f"block_{i}")(x)
        x = nn.LayerNorm(dtype=self.dtype, name="ln_out")(x)
        x = nn.Dense(self.features, dtype=self.dtype, name="out")(jnp.mean(x, axis=1))
        return unfold_batch(x, batch)


def sincos_pos_embed_2d(grid_h: int, grid_w: int, dim: int) -> np.ndarray:
    """Fixed 2-D sine-cosine position embeddings (MAE, I-JEPA): [grid_h * grid_w, dim].

    Patch i = r * grid_w + c (row-major, the order of the patch tokens) gets
    [emb_1d(r), emb_1d(c)], each half dim / 2 wide, emb_1d(p) = [sin(p w_k), cos(p w_k)] with
    w_k = 10000^(-k / (dim / 4)), k = 0 .. dim/4 - 1. `dim` must be a multiple of 4.

    Example:
      >>> import hjepa_jax as hj
      >>> e = hj.nn.sincos_pos_embed_2d(2, 3, 8)
      >>> e.shape, e.dtype, e[0].tolist()  # patch (0, 0): sin 0 = 0, cos 0 = 1
      ((6, 8), dtype('float32'), [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    """
    fn = "sincos_pos_embed_2d"
    grid_h = _checks.integer(fn, "grid_h", grid_h, fix="pass the patch rows H / p")
    grid_w = _checks.integer(fn, "grid_w", grid_w, fix="pass the patch columns W / p")
    dim = _checks.integer(fn, "dim", dim, fix="pass the token width")
    if dim % 4:
        _checks.fail(fn, "dim", dim, "is not a multiple of 4", 'pick a width 4k, or "learned"')
    omega = 1.0 / 10000.0 ** (np.arange(dim // 4, dtype=np.float64) / (dim // 4))

    def emb_1d(pos):  # [n] -> [n, dim / 2]
        angle = pos[:, None] * omega[None, :]
        return np.concatenate([np.sin(angle), np.cos(angle)], axis=1)

    rows, cols = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")
    emb = np.concatenate([emb_1d(rows.reshape(-1)), emb_1d(cols.reshape(-1))], axis=1)
    return emb.astype(np.float32)


def _pos_table(module: nn.Module, kind: str, grid: tuple[int, int], width: int) -> jax.Array:
    """The [grid_h * grid_w, width] position table of `module`: fixed sincos or learned."""
    name = type(module).__name__
    _checks.one_of(name, "pos_embed", kind, POS_EMBEDS, fix="pick one of them")
    if kind == "sincos":
        if width % 4:
            fix = 'pick a width that is a multiple of 4, or pos_embed="learned"'
            _checks.fail(name, "width", width, "is not a multiple of 4 (sincos)", fix)
        return jnp.asarray(sincos_pos_embed_2d(*grid, width))
    return module.param("pos_embed", _POS_INIT, (grid[0] * grid[1], width))


def _check_index(
    fn: str, name: str, idx, batch: tuple[int, ...], n_patches: int, fix: str
) -> jax.Array:
    """idx: integer [*batch, K] patch indices in [0, n_patches) (values checked if concrete)."""
    idx = jnp.asarray(idx) if not _checks.traced(idx) else idx
    if not jnp.issubdtype(idx.dtype, jnp.integer):
        _checks.broken(fn, f"{name}.dtype", str(idx.dtype), "an integer type", fix)
    _checks.shape(fn, name, idx, (*batch, None), f"[{', '.join(map(str, batch))}, K]", fix)
    if not _checks.traced(idx) and idx.size:
        low, high = int(jnp.min(idx)), int(jnp.max(idx))
        if low < 0 or high >= n_patches:
            problem = f"holds indices in [{low}, {high}], outside [0, {n_patches})"
            _checks.fail(fn, name, idx, problem, fix)
    return idx


class ViTTokens(nn.Module):
    """A Vision Transformer that returns one token per patch (I-JEPA's encoders).

    tokens = Conv_p(x) + pos (the patch embedding, kernel = stride = p, and a 2-D position
    embedding); with `idx` only the patches idx are kept (gathered *before* the blocks, so the
    blocks, and the output, never see the other patches: the context encoder); then `depth`
    pre-LN blocks and a final LayerNorm. No class token, no pooling, no dropout.

    Attributes:
      patch_size: side p of the square patches; H and W must be divisible by it.
      width: token width D.
      depth: number of transformer blocks.
      heads: attention heads (must divide width).
      mlp_ratio: MLP hidden width over `width`.
      pos_embed: "sincos" (fixed 2-D sine-cosine, as I-JEPA; width a multiple of 4) or
        "learned" (a [N, D] parameter: params are then tied to the image size).
      dtype: the computation dtype of its layers (parameters stay float32); None: that of
        the inputs and parameters. The position embedding is cast to the tokens' dtype.

    Shapes: x [..., H, W, C], idx None | integer [..., K] (same leading axes, values in
    [0, N), patches numbered row-major, N = (H / p) * (W / p)) -> [..., N or K, D].
    Indices are checked when concrete; traced ones out of range are clamped by the gather.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> net = hj.nn.ViTTokens(patch_size=4, width=16, depth=1, heads=2)
      >>> params = jax.jit(net.init)(jax.random.PRNGKey(0), jnp.zeros((8, 8, 3)))
      >>> x = jnp.zeros((2, 8, 8, 3))
      >>> apply = jax.jit(net.apply)
      >>> apply(params, x).shape, apply(params, x, jnp.array([[0, 3], [1, 2]])).shape
      ((2, 4, 16), (2, 2, 16))
    """

    patch_size: int = 16
    width: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    pos_embed: str = "sincos"
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, idx: jax.Array | None = None) -> jax.Array:
        fn = "ViTTokens"
        if jnp.ndim(x) < 3:
            _checks.rank(fn, "x", x, 3, "[..., H, W, C]", "pass images with channels last")
        x, batch = fold_batch(x, 3)  # [B, H, W, C]
        _, height, wide, _ = x.shape
        p = self.patch_size
        if height % p or wide % p:
            fix = "crop or pad the images, or pick a patch size that divides both"
            problem = f"does not divide the image size {height}x{wide}"
            _checks.fail(fn, "patch_size", p, problem, fix)
        grid = (height // p, wide // p)
        patchify = nn.Conv(
            self.width, (p, p), strides=(p, p), padding="VALID", dtype=self.dtype, name="patchify"
        )
        x = patchify(x).reshape(x.shape[0], -1, self.width)  # [B, N, D], N = grid_h * grid_w
        x = x + _pos_table(self, self.pos_embed, grid, self.width).astype(x.dtype)
        if idx is not None:
            fix = "pass integer patch indices [..., K], one row per image"
            idx = _check_index(fn, "idx", idx, batch, x.shape[1], fix)
            x = jnp.take_along_axis(x, idx.reshape(x.shape[0], -1, 1), axis=1)  # [B, K, D]
        for i in range(self.depth):
            block = TransformerBlock(
                self.heads, self.mlp_ratio, dtype=self.dtype, name=f"block_{i}"
            )
            x = block(x)
        return unfold_batch(nn.LayerNorm(dtype=self.dtype, name="ln_out")(x), batch)


class ViTPredictor(nn.Module):
    """I-JEPA's narrow predictor: context tokens and mask tokens -> the target tokens.

        h = [Dense_w(context) + pos_w[context_idx] ;  mask + pos_w[target_idx] (+ Dense_w(z))]
        h = blocks(h)                           (full attention over the C + T tokens)
        pred = Dense_D(LN(h))[C:]               (the T outputs at the mask tokens)

    The context tokens [C, D] are projected to the predictor's (narrower) width w; each target
    patch gets the learned mask token plus the position embedding of its patch; an optional
    latent z [Z] is mapped by a Dense to width w and added to every mask token (the latent of
    the energy E13: what the context cannot tell about the target). One call predicts one
    target block; to predict M blocks, give the inputs a leading block axis, as I-JEPA does
    (each block its own pass: the blocks do not see each other).

    Attributes:
      grid: (H / p, W / p), the patch grid the indices refer to.
      width: predictor width w (I-JEPA: 384 for a 768- or 1280-wide encoder).
      depth: number of transformer blocks.
      heads: attention heads (must divide width).
      mlp_ratio: MLP hidden width over `width`.
      pos_embed: "sincos" (fixed, as I-JEPA) or "learned".
      features: output width; None means the context width D.
      dtype: the computation dtype of its layers (parameters stay float32); None: that of
        the inputs and parameters. Position embeddings are cast to the tokens' dtype.

    Shapes: context [..., C, D], context_idx [..., C], target_idx [..., T] (integers in
    [0, grid_h * grid_w)), z None | [..., Z] -> [..., T, features or D]. The `latent_proj`
    parameters exist only if `init` was given a z, so init with one if apply will get one.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> net = hj.nn.ViTPredictor(grid=(4, 4), width=8, depth=1, heads=2)
      >>> ctx, ci, ti = jnp.zeros((2, 5, 16)), jnp.zeros((2, 5), int), jnp.ones((2, 3), int)
      >>> params = jax.jit(net.init)(jax.random.PRNGKey(0), ctx, ci, ti, jnp.zeros((2, 4)))
      >>> jax.jit(net.apply)(params, ctx, ci, ti, jnp.zeros((2, 4))).shape
      (2, 3, 16)
    """

    grid: tuple[int, int]
    width: int = 384
    depth: int = 6
    heads: int = 12
    mlp_ratio: float = 4.0
    pos_embed: str = "sincos"
    features: int | None = None
    dtype: Any = None

    @nn.compact
    def __call__(
        self,
        context: jax.Array,
        context_idx: jax.Array,
        target_idx: jax.Array,
        z: jax.Array | None = None,
    ) -> jax.Array:
        fn = "ViTPredictor"
        if len(tuple(self.grid)) != 2:
            _checks.broken(fn, "grid", self.grid, "(H / p, W / p)", "pass the patch grid")
        grid = tuple(_checks.integer(fn, "grid", g, fix="pass the patch grid") for g in self.grid)
        n_patches = grid[0] * grid[1]
        if jnp.ndim(context) < 2:
            _checks.rank(fn, "context", context, 2, "[..., C, D]", "pass context tokens")
        context, batch = fold_batch(context, 2)  # [B, C, D]
        b, c, d = context.shape
        fix = "pass integer patch indices with the leading axes of context"
        context_idx = _check_index(fn, "context_idx", context_idx, batch, n_patches, fix)
        target_idx = _check_index(fn, "target_idx", target_idx, batch, n_patches, fix)
        _checks.shape(fn, "context_idx", context_idx, (*batch, c), "[..., C] as context", fix)
        x = nn.Dense(self.width, dtype=self.dtype, name="embed")(context)
        pos = _pos_table(self, self.pos_embed, grid, self.width).astype(x.dtype)  # [N, w]
        x = x + pos[context_idx.reshape(b, c)]
        t_idx = target_idx.reshape(b, -1)  # [B, T]
        mask_token = self.param("mask_token", _POS_INIT, (self.width,))
        m = mask_token.astype(x.dtype) + pos[t_idx]  # [B, T, w]
        if z is not None:
            fix = "pass one latent [..., Z] per target block"
            _checks.rank(fn, "z", z, len(batch) + 1, "[..., Z] with context's leading axes", fix)
            _checks.shape(fn, "z", z, (*batch, None), "[..., Z] with context's leading axes", fix)
            proj = nn.Dense(self.width, dtype=self.dtype, name="latent_proj")
            m = m + proj(z.reshape(b, -1))[:, None, :].astype(m.dtype)
        x = jnp.concatenate([x, m], axis=1)  # [B, C + T, w]
        for i in range(self.depth):
            block = TransformerBlock(
                self.heads, self.mlp_ratio, dtype=self.dtype, name=f"block_{i}"
            )
            x = block(x)
        x = nn.LayerNorm(dtype=self.dtype, name="ln_out")(x[:, c:])
        out = d if self.features is None else self.features
        x = nn.Dense(out, dtype=self.dtype, name="out")(x)
        return unfold_batch(x, batch)


class TransformerPredictor(nn.Module):
    """Maps a sequence of states (and an optional condition) to a sequence of predictions.

    tokens_t = Dense(states_t) + pos_t [+ Dense(cond) or Dense(cond_t)];
    h = blocks(tokens) with a causal mask if `causal` (output t sees inputs 0..t only);
    pred_t = Dense(LN(h_t)).

    The condition is a latent z or an action: of shape [..., Z] it is projected once and added
    to every token; of shape [..., T, Z] (same rank as states) each step gets its own, e.g.
    the action taken at step t. A single state is a sequence of length 1:
    `apply(params, s[..., None, :])[..., 0, :]`. The `cond_proj` parameters exist only if
    `init` was given a cond, so init with one if apply will get one.

    Attributes:
      width: token width.
      depth: number of transformer blocks.
      heads: attention heads (must divide width).
      mlp_ratio: MLP hidden width over `width`.
      causal: mask attention to the past and present (a world model predicting forward).
      features: output size per step; None means the state size D.
      max_len: rows of the learned time embedding; longer sequences raise a ValueError.

    Shapes: states [..., T, D], cond None | [..., Z] | [..., T, Z] -> [..., T, features or D].

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> net = hj.nn.TransformerPredictor(width=16, depth=1, heads=2)
      >>> states, actions = jnp.zeros((4, 3)), jnp.zeros((4, 2))
      >>> params = jax.jit(net.init)(jax.random.PRNGKey(0), states, actions)
      >>> jax.jit(net.apply)(params, states, actions).shape
      (4, 3)
    """

    width: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    causal: bool = True
    features: int | None = None
    max_len: int = 128

    @nn.compact
    def __call__(self, states: jax.Array, cond: jax.Array | None = None) -> jax.Array:
        states, batch = fold_batch(states, 2)  # [N, T, D]
        n, t, d = states.shape
        if t > self.max_len:
            fix = "pass shorter sequences or raise max_len (before init)"
            _checks.fail(
                "TransformerPredictor",
                "T",
                t,
                f"is too long: sequence length {t} exceeds max_len {self.max_len}",
                fix,
            )
        x = nn.Dense(self.width, name="embed")(states)
        pos = self.param("pos_embed", _POS_INIT, (self.max_len, self.width))
        x = x + pos[:t]
        if cond is not None:
            if cond.ndim == len(batch) + 1:  # [..., Z]: the same for every step
                c, _ = fold_batch(cond, 1)
                c = c[:, None, :]
            elif cond.ndim == len(batch) + 2:  # [..., T, Z]: one per step
                c, _ = fold_batch(cond, 2)
            else:
                layout = f"[..., Z] or [..., T, Z] for states {batch + (t, d)}"
                fix = "pass one condition per sequence or one per step"
                _checks.broken("TransformerPredictor", "cond", cond, layout, fix)
            x = x + nn.Dense(self.width, name="cond_proj")(c)
        mask = nn.make_causal_mask(jnp.ones((1, t))) if self.causal else None  # [1, 1, T, T]
        for i in range(self.depth):
            x = TransformerBlock(self.heads, self.mlp_ratio, name=f"block_{i}")(x, mask)
        x = nn.LayerNorm(name="ln_out")(x)
        x = nn.Dense(d if self.features is None else self.features, name="out")(x)
        return unfold_batch(x, batch)
