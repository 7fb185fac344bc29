"""Flax (linen) networks: thin modules whose `apply(params, ...)` is a pure function."""

from hjepa_jax.nn.mlp import MLP

__all__ = ["MLP"]
