"""Small transformers: a ViT image encoder and a sequence predictor over states."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from hjepa_jax import _checks
from hjepa_jax.nn.conv import fold_batch, unfold_batch

__all__ = ["TransformerBlock", "ViTEncoder", "TransformerPredictor"]

_POS_INIT = nn.initializers.normal(stddev=0.02)


class TransformerBlock(nn.Module):
    """A pre-LayerNorm transformer block: x + MHA(LN(x)), then x + MLP(LN(x)).

    Attributes:
      heads: attention heads (must divide the width).
      mlp_ratio: hidden width of the MLP over the token width.

    Shapes: x [N, T, W] -> [N, T, W]; mask broadcastable to [N, heads, T, T] (True = attend).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> block = hj.nn.TransformerBlock(heads=2)
      >>> x = jnp.zeros((1, 5, 8))
      >>> block.apply(block.init(jax.random.PRNGKey(0), x), x).shape
      (1, 5, 8)
    """

    heads: int
    mlp_ratio: float = 4.0

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        width = x.shape[-1]
        if width % self.heads:
            fix = f"pick heads dividing the token width {width}"
            _checks.fail("TransformerBlock", "heads", self.heads, f"does not divide {width}", fix)
        h = nn.LayerNorm(name="ln_attn")(x)
        h = nn.MultiHeadDotProductAttention(num_heads=self.heads, name="attn")(
            h, mask=mask, deterministic=True
        )
        x = x + h
        h = nn.LayerNorm(name="ln_mlp")(x)
        h = nn.Dense(int(width * self.mlp_ratio), name="mlp_in")(h)
        h = nn.Dense(width, name="mlp_out")(nn.gelu(h))
        return x + h


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

    Shapes: x [..., H, W, C] -> [..., D]; leading axes may be empty (one example) or many.
    The position embedding has (H / p) * (W / p) rows, so params are tied to the image size.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> net = hj.nn.ViTEncoder(features=6, patch_size=4, width=16, depth=1, heads=2)
      >>> params = net.init(jax.random.PRNGKey(0), jnp.zeros((8, 8, 1)))
      >>> net.apply(params, jnp.zeros((3, 8, 8, 1))).shape
      (3, 6)
    """

    features: int
    patch_size: int = 4
    width: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0

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
        x = nn.Conv(self.width, (p, p), strides=(p, p), padding="VALID", name="patchify")(x)
        x = x.reshape(x.shape[0], -1, self.width)  # [N, T, W], T = (H / p) * (W / p)
        x = x + self.param("pos_embed", _POS_INIT, x.shape[1:])
        for i in range(self.depth):
            x = TransformerBlock(self.heads, self.mlp_ratio, name=f"block_{i}")(x)
        x = nn.LayerNorm(name="ln_out")(x)
        x = nn.Dense(self.features, name="out")(jnp.mean(x, axis=1))
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
      >>> params = net.init(jax.random.PRNGKey(0), states, actions)
      >>> net.apply(params, states, actions).shape
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
