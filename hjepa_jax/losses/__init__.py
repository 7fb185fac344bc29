"""Training losses for energy-based models (paper Sec. 4)."""

from hjepa_jax.losses.contrastive import (
    hinge,
    infonce,
    log_loss,
    nll,
    square_exponential,
    square_square,
)

__all__ = ["hinge", "infonce", "log_loss", "nll", "square_exponential", "square_square"]
