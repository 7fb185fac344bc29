"""A multi-layer perceptron: the predictor of Fig. 5a and the small decoders of Figs. 3-4."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax

from hjepa_jax import _checks

__all__ = ["MLP"]


class MLP(nn.Module):
    """Dense layers with an activation between them and none after the last.

    Attributes:
      features: widths of each layer; the last is the output size, e.g. (64, 64, 1).
      activation: nonlinearity between layers (default GELU, smooth so that energies built on
        it have smooth gradients for inference).
      dtype: the computation dtype of the layers (e.g. jnp.bfloat16; parameters stay
        float32); None: that of the inputs and parameters.

    Shapes: x [..., D] -> [..., features[-1]].

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.nn import MLP
      >>> net = MLP((16, 1))
      >>> params = net.init(jax.random.PRNGKey(0), jnp.zeros(3))
      >>> net.apply(params, jnp.zeros((4, 3))).shape
      (4, 1)
    """

    features: Sequence[int]
    activation: Callable[[jax.Array], jax.Array] = nn.gelu
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if not self.features:
            _checks.fail("MLP", "features", self.features, "is empty", "give >= 1 layer widths")
        for i, width in enumerate(self.features):
            x = nn.Dense(width, dtype=self.dtype, name=f"dense_{i}")(x)
            if i < len(self.features) - 1:
                x = self.activation(x)
        return x
