"""Find, build and read datasets through tfds, without TensorFlow and without downloading.

    train = load("hjepa_digits", "train")             # {"image": [1500, 8, 8, 1], ...}
    src = source("hjepa_moving_shapes", "train")      # random access, rows are dicts
    test = load("mnist", "test", data_dir="/data")    # yours, if prepared (array_record)

Our datasets (`BUILDERS`: tfds names "hjepa_digits", "hjepa_moving_shapes",
"hjepa_two_rooms" and "hjepa_shapes_images") are generated locally on first use
(`download_and_prepare`, seconds) into the data dir, then read with
`builder.as_data_source(split)`. Any other name goes through
`tfds.builder(name, data_dir=...)` and must already be prepared there in a random-access
format (array_record or parquet); it is never downloaded at run time.

The data dir is, in order: the `data_dir` argument, $TFDS_DATA_DIR, ~/tensorflow_datasets.

tensorflow_datasets (most of a second to import) and our builder modules, which register our
builders with tfds, are imported on first use (`builder`, `source`, `load`, `resolve_data_dir`,
`BUILDERS`), not with `hjepa_jax`; `read` needs neither.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import tensorflow_datasets as tfds

__all__ = [
    "BUILDERS",
    "DatasetNotPreparedError",
    "builder",
    "load",
    "read",
    "resolve_data_dir",
    "source",
]

# Our tfds names, with the module of hjepa_jax.data that defines the builder and its class.
_OURS = {
    "hjepa_digits": ("digits", "HjepaDigits"),
    "hjepa_moving_shapes": ("moving_shapes", "HjepaMovingShapes"),
    "hjepa_two_rooms": ("two_rooms", "HjepaTwoRooms"),
    "hjepa_shapes_images": ("shapes_images", "HjepaShapesImages"),
}
_RANDOM_ACCESS = ("array_record", "parquet")


BUILDERS: dict[str, tuple[type[tfds.core.GeneratorBasedBuilder], Callable[..., Any]]]
"""Our builders by tfds name, with the function that turns keyword settings into a config.

Made on first access (it imports tfds and the builder modules, registering the builders)."""


def _builders() -> dict[str, tuple[type[tfds.core.GeneratorBasedBuilder], Callable[..., Any]]]:
    """`BUILDERS`: importing the builder modules registers every builder with tfds."""
    out = {}
    for name, (module, cls) in _OURS.items():
        mod = importlib.import_module(f"hjepa_jax.data.{module}")
        out[name] = (getattr(mod, cls), mod.make_config)
    return out


def __getattr__(name: str):
    if name == "BUILDERS":  # PEP 562: first access; then a plain module global
        value = globals()["BUILDERS"] = _builders()
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class DatasetNotPreparedError(FileNotFoundError):
    """A dataset that is not ours is not prepared locally in a random-access format."""


def resolve_data_dir(path: str | os.PathLike | None = None) -> str:
    """The tfds data dir: `path`, else $TFDS_DATA_DIR (read now), else ~/tensorflow_datasets."""
    if path:
        return os.fspath(path)
    import tensorflow_datasets as tfds

    return tfds.core.constants.get_default_data_dir()


def builder(name: str, data_dir: str | os.PathLike | None = None, **config):
    """The tfds builder for `name`, prepared if it is ours.

    Args:
      name: one of `BUILDERS` (built here on first use), or any tfds name
        such as "mnist", "cifar10" or "mnist:3.0.1" (only read; must be prepared already).
      data_dir: see `resolve_data_dir`.
      **config: for ours, the config's fields (e.g. `seed=1, num_train=100`); for others,
        `tfds.builder` keyword arguments (e.g. `config="..."`, `version="..."`).
    """
    import tensorflow_datasets as tfds

    root = resolve_data_dir(data_dir)
    ours = _builders()  # imported (and so registered with tfds) even when `name` is not ours
    if name in ours:
        cls, make_config = ours[name]
        make = lambda: cls(data_dir=root, config=make_config(**config), file_format="array_record")
        b = make()
        if not b.is_prepared():
            try:
                b.download_and_prepare()
            except FileExistsError:
                # Another process (another host on a shared disk) finished the same
                # deterministic build first; tfds removed our copy. Read theirs.
                b = make()
                if not b.is_prepared():
                    raise
        return b
    return tfds.builder(name, data_dir=root, **config)


def source(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    *,
    decoders: dict | None = None,
    **config,
):
    """A random-access source of one split: `len(src)` rows, `src[i]` a dict of arrays.

    `split` may be a tfds slice such as "train[:10%]". `decoders` is passed to tfds's
    `as_data_source` (e.g. `{"image": tfds.decode.SkipDecoding()}` keeps the encoded bytes).
    Raises `DatasetNotPreparedError` (with the command that prepares it) for a dataset that is
    not ours and not prepared locally.
    """
    b = builder(name, data_dir, **config)
    if name in _OURS or _readable(b):
        return b.as_data_source(split, decoders=decoders)
    try:  # works under `tfds.testing.mock_data`, where nothing is prepared
        return b.as_data_source(split, decoders=decoders)
    except (KeyError, NotImplementedError) as err:
        raise DatasetNotPreparedError(_not_prepared_message(name, b)) from err


def _readable(b) -> bool:
    fmt = b.info.file_format
    return b.is_prepared() and fmt is not None and fmt.value in _RANDOM_ACCESS


def _not_prepared_message(name: str, b) -> str:
    where = os.fspath(b.data_dir)
    root = os.fspath(b.data_dir_root)
    if b.is_prepared():
        state = f"is prepared at {where} in the {b.info.file_format.value} format, which has"
        state += " no random access; prepare it again in array_record (another data_dir)"
    else:
        state = f"is not prepared at {where}"
    return (
        f"Dataset {name!r} {state}. hjepa_jax never downloads at run time. Prepare it once, on "
        "a machine with network access (tfds's own builders such as mnist need TensorFlow to "
        "prepare, not to read):\n"
        f"    tfds build {name} --data_dir={root} --file_format=array_record\n"
        "or in Python:\n"
        f"    tfds.builder({name!r}, data_dir={root!r}).download_and_prepare(\n"
        "        file_format='array_record')\n"
        "then copy the folder here or point TFDS_DATA_DIR (or data_dir=) at it."
    )


def read(src, indices: Sequence[int] | np.ndarray | None = None) -> dict[str, Any]:
    """Rows of a random-access source stacked into arrays: {key: [len(indices), ...]}.

    `src` is a tfds data source (or any sequence of dicts of arrays), or a dict of arrays
    with a common leading axis. Nested dicts stay nested. `indices=None` reads all rows.
    """
    if isinstance(src, dict):
        if indices is None:
            return src
        idx = np.asarray(indices, dtype=np.int64)
        return {k: read(v, idx) if isinstance(v, dict) else v[idx] for k, v in src.items()}
    indices = range(len(src)) if indices is None else [int(i) for i in indices]
    # One row at a time: as fast as `__getitems__` on local array_record files, and it works
    # on every source (tfds's `mock_data` breaks `__getitems__` in 4.9.10).
    rows = [src[i] for i in indices]
    if not rows:
        raise ValueError("no rows to read")
    # tfds decodes scalar features to Python numbers; restore the declared dtypes.
    info = getattr(src, "dataset_info", None)
    dtypes = info.features.np_dtype if info is not None and info.features is not None else None
    return _stack(rows, dtypes)


def _stack(rows: list, dtypes) -> Any:
    first = rows[0]
    if isinstance(first, dict):
        sub = dtypes if isinstance(dtypes, dict) else {}
        return {k: _stack([r[k] for r in rows], sub.get(k)) for k in first}
    out = np.stack([np.asarray(r) for r in rows])
    if dtypes is not None and not isinstance(dtypes, dict):
        dtype = np.dtype(dtypes)
        if dtype.kind in "biuf" and out.dtype != dtype:
            out = out.astype(dtype)
    return out


def load(
    name: str, split: str, data_dir: str | os.PathLike | None = None, **config
) -> dict[str, np.ndarray]:
    """A whole split as numpy arrays (built on first use if it is ours).

    Args:
      name: "hjepa_digits", "hjepa_moving_shapes", "hjepa_two_rooms", "hjepa_shapes_images",
        or a tfds name prepared locally.
      split: "train", "test", or a tfds slice ("train[:100]").
      data_dir: see `resolve_data_dir`.
      **config: settings of our builders, or `tfds.builder` keyword arguments.

    Returns:
      {feature: [N, ...]}; e.g. hjepa_digits: image [N, 8, 8, 1] float32, label [N] int64,
      index [N] int64; hjepa_moving_shapes and hjepa_two_rooms: see their `generate`.

    Raises:
      DatasetNotPreparedError: `name` is not ours and not prepared under the data dir.
    """
    return read(source(name, split, data_dir, **config))
