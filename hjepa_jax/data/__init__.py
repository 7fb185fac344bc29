"""Datasets and input pipelines: local tfds builders, whole-split loading, batching.

    from hjepa_jax import data
    train = data.load("hjepa_digits", "train")                 # dict of numpy arrays
    it = data.Batches(train, 256, seed=0, augment=data.apply_to("image", data.random_crop))
    batch = next(it)                                      # this host's rows of a global batch

Nothing here downloads: our datasets are generated here (scikit-learn's bundled digits, moving
shapes, Two Rooms trajectories); other tfds datasets are read only if prepared locally
(array_record).
"""

from hjepa_jax.data import digits, moving_shapes, two_rooms
from hjepa_jax.data.augment import apply_to, gaussian_noise, random_crop, random_erasing
from hjepa_jax.data.digits import HjepaDigits
from hjepa_jax.data.moving_shapes import HjepaMovingShapes, MovingShapesConfig
from hjepa_jax.data.pipeline import Batches
from hjepa_jax.data.sources import (
    BUILDERS,
    DatasetNotPreparedError,
    builder,
    load,
    read,
    resolve_data_dir,
    source,
)
from hjepa_jax.data.two_rooms import HjepaTwoRooms, TwoRoomsConfig

__all__ = [
    "BUILDERS",
    "Batches",
    "DatasetNotPreparedError",
    "HjepaDigits",
    "HjepaMovingShapes",
    "HjepaTwoRooms",
    "MovingShapesConfig",
    "apply_to",
    "builder",
    "digits",
    "gaussian_noise",
    "load",
    "moving_shapes",
    "random_crop",
    "random_erasing",
    "read",
    "resolve_data_dir",
    "source",
    "TwoRoomsConfig",
    "two_rooms",
]
