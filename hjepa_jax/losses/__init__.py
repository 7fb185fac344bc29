"""Training losses for energy-based models (paper Sec. 4)."""

from hjepa_jax.losses.contrastive import (
    hinge,
    infonce,
    log_loss,
    nll,
    square_exponential,
    square_square,
)
from hjepa_jax.losses.regularized import (
    barlow_twins,
    fista,
    gaussian_kl,
    ista,
    kmeans_free_energy,
    soft_threshold,
    sparse_code,
    sparse_coding_energy,
    vae_energy,
    vicreg,
)

__all__ = [
    "barlow_twins",
    "fista",
    "gaussian_kl",
    "ista",
    "kmeans_free_energy",
    "soft_threshold",
    "sparse_code",
    "sparse_coding_energy",
    "vae_energy",
    "vicreg",
    "hinge",
    "infonce",
    "log_loss",
    "nll",
    "square_exponential",
    "square_square",
]
