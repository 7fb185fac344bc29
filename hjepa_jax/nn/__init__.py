"""Flax (linen) networks: thin modules whose `apply(params, ...)` is a pure function."""

from hjepa_jax.nn.conv import ConvEncoder, ConvPredictor
from hjepa_jax.nn.mlp import MLP
from hjepa_jax.nn.vit import (
    TransformerBlock,
    TransformerPredictor,
    ViTEncoder,
    ViTPredictor,
    ViTTokens,
    sincos_pos_embed_2d,
)

__all__ = [
    "MLP",
    "ConvEncoder",
    "ConvPredictor",
    "TransformerBlock",
    "TransformerPredictor",
    "ViTEncoder",
    "ViTPredictor",
    "ViTTokens",
    "sincos_pos_embed_2d",
]
