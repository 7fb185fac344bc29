"""Datasets and input pipelines: local tfds builders, whole-split loading, batching.

    from hjepa_jax import data
    train = data.load("hjepa_digits", "train")                 # dict of numpy arrays
    it = data.Batches(train, 256, seed=0, augment=data.apply_to("image", data.random_crop))
    batch = next(it)                                      # this host's rows of a global batch

Nothing here downloads: our datasets are generated here (scikit-learn's bundled digits, moving
shapes, Two Rooms trajectories, shapes images); other tfds datasets are read only if prepared
locally (array_record).

tensorflow_datasets is imported on first use, not with `hjepa_jax`: the builder modules
(`digits`, `moving_shapes`, `two_rooms`, `shapes_images`, whose classes subclass tfds's) are
imported, and so registered with tfds, together, the first time any of them or their names
(`HjepaDigits`, `MovingShapesConfig`, `BUILDERS`, ...) is looked up here, or a dataset is
loaded. `images` (the grain input pipeline for image datasets, which imports grain) is
likewise imported when first looked up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from hjepa_jax.data.augment import apply_to, gaussian_noise, random_crop, random_erasing
from hjepa_jax.data.pipeline import Batches
from hjepa_jax.data.sources import (
    DatasetNotPreparedError,
    builder,
    load,
    read,
    resolve_data_dir,
    source,
)

if TYPE_CHECKING:
    from hjepa_jax.data import digits, images, moving_shapes, shapes_images, two_rooms
    from hjepa_jax.data.digits import HjepaDigits
    from hjepa_jax.data.moving_shapes import HjepaMovingShapes, MovingShapesConfig
    from hjepa_jax.data.shapes_images import HjepaShapesImages, ShapesImagesConfig
    from hjepa_jax.data.sources import BUILDERS
    from hjepa_jax.data.two_rooms import HjepaTwoRooms, TwoRoomsConfig

# Names that need tensorflow_datasets, with the module (of hjepa_jax.data) that defines them.
_LAZY = {
    "digits": None,
    "moving_shapes": None,
    "two_rooms": None,
    "shapes_images": None,
    "HjepaDigits": "digits",
    "HjepaMovingShapes": "moving_shapes",
    "MovingShapesConfig": "moving_shapes",
    "HjepaTwoRooms": "two_rooms",
    "TwoRoomsConfig": "two_rooms",
    "HjepaShapesImages": "shapes_images",
    "ShapesImagesConfig": "shapes_images",
    "BUILDERS": "sources",
}
_BUILDER_MODULES = ("digits", "moving_shapes", "two_rooms", "shapes_images")


def __getattr__(name: str):
    """The tfds-backed names, imported on first use (PEP 562). Any of them imports all the
    builder modules, so every builder of ours is registered with tfds from then on. `images`
    (grain) is imported alone."""
    if name == "images":
        value = globals()[name] = importlib.import_module(f"{__name__}.images")
        return value
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for module in _BUILDER_MODULES:
        globals()[module] = importlib.import_module(f"{__name__}.{module}")
    module = _LAZY[name]
    value = globals()[name] if module is None else getattr(globals()[module], name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"images"})


__all__ = [
    "BUILDERS",
    "Batches",
    "DatasetNotPreparedError",
    "HjepaDigits",
    "HjepaMovingShapes",
    "HjepaShapesImages",
    "HjepaTwoRooms",
    "MovingShapesConfig",
    "apply_to",
    "builder",
    "digits",
    "gaussian_noise",
    "images",
    "load",
    "moving_shapes",
    "random_crop",
    "random_erasing",
    "read",
    "resolve_data_dir",
    "ShapesImagesConfig",
    "shapes_images",
    "source",
    "TwoRoomsConfig",
    "two_rooms",
]
