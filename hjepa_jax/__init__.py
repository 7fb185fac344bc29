"""hjepa_jax: latent-variable energy-based models, JEPA and H-JEPA in JAX.

Pure functions over pytrees are the public API:

    import hjepa_jax as hj
    res = hj.latent.minimize(energy, params, z0, y, steps=100, optimizer=optax.sgd(0.1))
    f_beta = hj.latent.soft_min(energies, beta)

Docstrings cite the paper's equations by the labels E1-E14 of the repository's
docs/equations.md. Importing hjepa_jax loads neither orbax nor tensorflow_datasets: they are
imported when a checkpoint (`hj.checkpoint.Checkpointer`) or a dataset (`hj.data.load`, the
tfds builders) is first used.
"""

from hjepa_jax import (
    checkpoint,
    collapse,
    constraints,
    critic,
    data,
    energies,
    envs,
    hjepa,
    ijepa,
    jepa,
    latent,
    losses,
    masks,
    nn,
    parallel,
    planning,
    probes,
    sampling,
    search,
    train,
    world_model,
)

__version__ = "0.1.0"
__all__ = [
    "checkpoint",
    "collapse",
    "constraints",
    "critic",
    "data",
    "energies",
    "envs",
    "hjepa",
    "ijepa",
    "jepa",
    "latent",
    "losses",
    "masks",
    "nn",
    "parallel",
    "planning",
    "probes",
    "sampling",
    "search",
    "train",
    "world_model",
]
