"""A small convolutional encoder (images to embedding vectors or feature maps), and a
convolutional action-conditioned predictor on feature maps."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from hjepa_jax import _checks

__all__ = ["fold_batch", "unfold_batch", "ConvEncoder", "ConvPredictor"]


def fold_batch(x: jax.Array, event_ndim: int) -> tuple[jax.Array, tuple[int, ...]]:
    """Reshapes x [*batch, *event] to [N, *event] (N = prod(batch), 1 when there is no batch).

    Returns the folded array and `batch` so that `unfold_batch` can restore it. The modules here
    fold so that one example, a batch and any number of leading axes all run the same code:
    `apply(params, x)` equals `vmap(apply, (None, 0))(params, xs)[i]` for x = xs[i].

    Example:
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.nn.conv import fold_batch
      >>> x, batch = fold_batch(jnp.zeros((2, 3, 4, 5)), 2)
      >>> x.shape, batch
      ((6, 4, 5), (2, 3))
    """
    fix = "pass the event_ndim event axes last, after any batch axes"
    event_ndim = _checks.integer("fold_batch", "event_ndim", event_ndim, minimum=0, fix=fix)
    if x.ndim < event_ndim:
        _checks.fail("fold_batch", "x.shape", x.shape, f"has fewer than {event_ndim} axes", fix)
    batch = x.shape[: x.ndim - event_ndim]
    return x.reshape((math.prod(batch),) + x.shape[x.ndim - event_ndim :]), batch


def unfold_batch(y: jax.Array, batch: tuple[int, ...]) -> jax.Array:
    """Inverse of `fold_batch`: y [N, *rest] -> [*batch, *rest], N = prod(batch).

    Example:
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.nn.conv import fold_batch, unfold_batch
      >>> x, batch = fold_batch(jnp.zeros((2, 3, 4, 5)), 2)
      >>> unfold_batch(x, batch).shape
      (2, 3, 4, 5)
    """
    want = (math.prod(batch), *y.shape[1:])
    fix = "pass the batch shape that fold_batch returned"
    _checks.shape("unfold_batch", "y", y, want, f"[N, ...], N = prod(batch={batch})", fix)
    return y.reshape(batch + y.shape[1:])


def _norm(kind: str | None, channels: int, name: str) -> Callable[[jax.Array], jax.Array]:
    """A per-example normalization (no batch statistics, so `apply` stays pure)."""
    if kind is None:
        return lambda x: x
    if kind == "layer":  # over channels, at each pixel (as ConvNeXt)
        return nn.LayerNorm(name=name)
    if kind == "group":  # over (H, W, channel group), gcd(8, C) groups
        return nn.GroupNorm(num_groups=math.gcd(8, channels), name=name)
    _checks.broken("ConvEncoder", "norm", kind, "None, 'layer' or 'group'", "pick a known norm")


class ConvEncoder(nn.Module):
    """Strided convolutions, then flatten (or mean-pool) and one Dense layer.

    Each stage is Conv(channels[i], kernel_size, strides[i], SAME padding) -> norm -> activation;
    with SAME padding a stride-2 stage maps a side n to ceil(n / 2), so odd sizes work
    (65 -> 33 -> 17 -> 9). The last Dense has no activation.

    Attributes:
      channels: output channels of each conv stage, e.g. (16, 32, 64).
      features: size of the output embedding D.
      strides: stride of each stage (same length as channels); None means 2 for every stage.
      kernel_size: side of the square kernels.
      activation: nonlinearity after each stage (default GELU: smooth, for gradient inference).
      norm: None, "layer" (LayerNorm over channels per pixel) or "group" (GroupNorm with
        gcd(8, C) groups). Both are per example; there is no BatchNorm, so `apply` keeps no
        mutable state and one example gives the same output alone or in a batch.
      pool: "flatten" (keeps where things are: the Dense sees every position, and its size
        depends on the image size), "mean" (global average pooling: translation-invariant,
        same parameters for any image size) or "none" (no pooling: a 1x1 convolution to
        `features` channels keeps the feature map, a spatial state).

    Shapes: x [..., H, W, C] -> [..., D], or [..., H', W', D] for pool="none"; the leading
    axes may be empty (one example) or many.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> net = hj.nn.ConvEncoder((4, 8), features=16)
      >>> params = jax.jit(net.init)(jax.random.PRNGKey(0), jnp.zeros((9, 9, 1)))
      >>> jax.jit(net.apply)(params, jnp.zeros((2, 9, 9, 1))).shape
      (2, 16)
    """

    channels: Sequence[int]
    features: int
    strides: Sequence[int] | None = None
    kernel_size: int = 3
    activation: Callable[[jax.Array], jax.Array] = nn.gelu
    norm: str | None = None
    pool: str = "flatten"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        strides = (2,) * len(self.channels) if self.strides is None else tuple(self.strides)
        if len(strides) != len(self.channels):
            problem = f"and channels={tuple(self.channels)} differ in length"
            _checks.fail("ConvEncoder", "strides", strides, problem, "give one stride per stage")
        fix = "pick a known pooling"
        _checks.one_of("ConvEncoder", "pool", self.pool, ("flatten", "mean", "none"), fix)
        x, batch = fold_batch(x, 3)  # [N, H, W, C]
        k = (self.kernel_size, self.kernel_size)
        for i, (ch, s) in enumerate(zip(self.channels, strides, strict=True)):
            x = nn.Conv(ch, k, strides=(s, s), padding="SAME", name=f"conv_{i}")(x)
            x = _norm(self.norm, ch, f"norm_{i}")(x)
            x = self.activation(x)
        if self.pool == "none":
            return unfold_batch(nn.Conv(self.features, (1, 1), name="out")(x), batch)
        if self.pool == "mean":
            x = jnp.mean(x, axis=(1, 2))
        else:
            x = x.reshape(x.shape[0], -1)
        x = nn.Dense(self.features, name="out")(x)
        return unfold_batch(x, batch)


class ConvPredictor(nn.Module):
    """An action-conditioned predictor on a spatial state (a world model's Pred, Fig. 1):

        s' = s + Conv_1x1(act(Conv(... act(Conv([s, tile(a)])))))

    the action tiled over the map as extra channels, SAME padding, stride 1: local and
    translation-equivariant, so what happens next to a wall is learned once for every place.

    Attributes:
      channels: channels of the hidden 3x3 (kernel_size) convolutions.
      activation: nonlinearity after each hidden convolution.

    Shapes: s [..., H, W, C], a [..., A] (the same leading axes) -> [..., H, W, C].

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> net = hj.nn.ConvPredictor(channels=(8,))
      >>> s, a = jnp.zeros((5, 5, 3)), jnp.zeros(2)
      >>> params = jax.jit(net.init)(jax.random.PRNGKey(0), s, a)
      >>> jax.jit(net.apply)(params, s, a).shape
      (5, 5, 3)
    """

    channels: Sequence[int] = (32, 32)
    kernel_size: int = 3
    activation: Callable[[jax.Array], jax.Array] = nn.gelu

    @nn.compact
    def __call__(self, s: jax.Array, a: jax.Array) -> jax.Array:
        fix = "pass one action [..., A] per state [..., H, W, C], with the same leading axes"
        _checks.rank("ConvPredictor", "a", a, s.ndim - 2, "[..., A]", fix)
        s_flat, batch = fold_batch(s, 3)
        a_flat = a.reshape((s_flat.shape[0], a.shape[-1]))
        tiled = jnp.broadcast_to(a_flat[:, None, None, :], s_flat.shape[:3] + a_flat.shape[-1:])
        x = jnp.concatenate([s_flat, tiled], axis=-1)
        k = (self.kernel_size, self.kernel_size)
        for i, ch in enumerate(self.channels):
            x = self.activation(nn.Conv(ch, k, padding="SAME", name=f"conv_{i}")(x))
        x = nn.Conv(s_flat.shape[-1], (1, 1), name="out")(x)
        return unfold_batch(s_flat + x, batch)
