"""Image input pipeline (grain): JPEG decode and augmentation in worker processes, host
sharding, fixed-shape batches, resumable iterators, prefetch to devices.

For any tfds image dataset prepared locally in array_record (imagenet2012, imagenette,
cifar10, ...), our `hjepa_shapes_images` (built here on first use), or images in memory:

    name, split = parse_dataset("imagenet2012:train")        # --dataset NAME[:SPLIT]
    src = image_source(name, split, data_dir)                 # rows {"image": JPEG bytes, ...}
    loader = train_loader(src, batch_size=1024, image_size=224, seed=0, worker_count=8)
    it = prefetch_to_device(iter(loader), sharding=NamedSharding(mesh, P("data")))
    batch = next(it)           # {"image": [1024, 224, 224, 3] float32 (global), "label": [1024]}
    state = it.get_state()     # bytes: save with the checkpoint; `it.set_state(state)` resumes
    for b in eval_loader(test_src, batch_size=1024, image_size=224): ...  # b["mask"]: real rows

Training (`train_loader`, a `grain.DataLoader`): host p of P reads its own contiguous 1/P of the
rows (grain `ShardOptions(p, P, drop_remainder=True)`), reshuffled every epoch (grain's
`IndexSampler`, seeded), endlessly unless `num_epochs`. Each example is decoded (PIL) and
augmented as in I-JEPA (Assran et al. 2023): a random resized crop (area `scale`, aspect
`ratio`, torchvision's recipe), resized to `image_size` before batching, and a horizontal flip
with probability 1/2. Its randomness is a function of (seed, the example's position in the
stream) only (grain gives each element `Philox(seed + index)`), so it does not depend on the
worker count or on resuming.

Batches are [B / P, H, W, 3] float32 in [0, 1] (or `(x - mean) / std`; or uint8 with
`dtype="uint8"`, a quarter of the bytes to move) with int32 labels.
With `worker_count = W > 0`, W processes each build whole batches from every W-th element,
so which examples share a batch depends on W (the state records W, and grain refuses to
restore it with another W); with W = 0 everything runs in the calling process.

Evaluation (`eval_loader`): each host takes a contiguous slice of the split (the remainder
spread over the first hosts), center crops (`crop_fraction` of the shorter side, the usual
resize-to-S/0.875-then-crop-S), in order, one pass; the last batches are padded to the fixed
shape with `mask` False, and every host yields the same number of batches.

grain is imported with this module (`hj.data.images`), not with `hjepa_jax`.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import queue
import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import grain
import numpy as np

from hjepa_jax.data.sources import DatasetNotPreparedError, source

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ArraySource",
    "BatchStream",
    "CenterCrop",
    "DevicePrefetch",
    "EvalLoader",
    "RandomResizedCrop",
    "center_crop_box",
    "close_workers",
    "crop_resize",
    "eval_loader",
    "head",
    "image_source",
    "open_image",
    "parse_dataset",
    "prefetch_to_device",
    "random_resized_crop_box",
    "train_loader",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Per-channel mean of ImageNet in [0, 1] units (for `mean=`)."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel standard deviation of ImageNet in [0, 1] units (for `std=`)."""

_VERSION = re.compile(r"\d+\.\d+\.\d+")


# ---- naming and opening datasets ----


def parse_dataset(spec: str, default_split: str = "train") -> tuple[str, str]:
    """(name, split) of a `--dataset NAME[:SPLIT]` value.

    NAME may carry a tfds config and version ("imagenet2012/subset:5.1.0"); SPLIT may be a
    tfds slice ("train[:10%]").

    >>> parse_dataset("imagenette")
    ('imagenette', 'train')
    >>> parse_dataset("cifar10:test[:50%]")
    ('cifar10', 'test[:50%]')
    >>> parse_dataset("imagenet2012:5.1.0:validation")
    ('imagenet2012:5.1.0', 'validation')

    Raises:
      ValueError: an empty name or split.
    """
    name, _, split = spec.strip().partition(":")
    version, sep, rest = split.partition(":")
    if _VERSION.fullmatch(version):  # NAME:VERSION[:SPLIT]
        name, split = f"{name}:{version}", rest if sep else ""
    split = split or default_split
    if not name or not split:
        raise ValueError(f"parse_dataset: spec must be NAME[:SPLIT], got {spec!r}")
    return name, split


def image_source(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    *,
    image_key: str = "image",
    **config,
):
    """A random-access tfds source of one split whose `image_key` stays encoded (JPEG bytes).

    Decoding is left to the pipeline's workers (`train_loader`, `eval_loader`).

    Args:
      name: a tfds name prepared locally in array_record, or one of ours
        ("hjepa_shapes_images" is built on first use).
      split: "train", "test", "validation", or a tfds slice.
      data_dir: see `hjepa_jax.data.resolve_data_dir`.
      image_key: the image feature.
      **config: settings of our builders (e.g. `num_train=1000`), or `tfds.builder` keyword
        arguments.

    Returns:
      `src` with `len(src)` rows; `src[i]` is a dict, `src[i][image_key]` bytes.

    Raises:
      DatasetNotPreparedError: the dataset is not prepared under the data dir (the message
        says how to prepare it), or tfds does not know the name.
    """
    import tensorflow_datasets as tfds

    decoders = {image_key: tfds.decode.SkipDecoding()}
    try:
        return source(name, split, data_dir, decoders=decoders, **config)
    except tfds.core.registered.DatasetNotFoundError as err:
        raise DatasetNotPreparedError(
            f"Dataset {name!r} is neither a tfds builder nor prepared under the data dir "
            f"{data_dir or '$TFDS_DATA_DIR'}. Prepare it once where the builder and network "
            f"are available, e.g.\n    tfds build {name} --data_dir=DIR "
            "--file_format=array_record\nor in Python:\n    hj.data.builder(name, DIR)"
            ".download_and_prepare(file_format='array_record')\nthen point data_dir (or "
            "TFDS_DATA_DIR) at DIR."
        ) from err


class ArraySource:
    """An in-memory random-access source: row i is {"image": images[i], "label": labels[i]}.

    Args:
      images: N images, each [H_i, W_i, 3] (or [H_i, W_i] / [H_i, W_i, 1]) uint8, or encoded
        JPEG / PNG bytes; sizes may differ between rows.
      labels: [N] integers.

    Raises:
      ValueError: images and labels differ in length.
    """

    def __init__(self, images: Sequence[np.ndarray | bytes] | np.ndarray, labels: Sequence[int]):
        if len(images) != len(labels):
            raise ValueError(
                f"ArraySource: {len(images)} images but {len(labels)} labels (must be equal)"
            )
        self._images = images
        self._labels = np.asarray(labels, np.int64)

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": self._images[index], "label": self._labels[index]}

    def __repr__(self) -> str:  # grain compares it when restoring a state: no data in it
        return f"ArraySource(len={len(self)})"


# ---- decode and crop (pure functions) ----


def open_image(data):
    """A PIL image of JPEG / PNG bytes (header only: decoded later, see `crop_resize`) or of a
    uint8 array [H, W], [H, W, 1] or [H, W, 3]."""
    from PIL import Image

    if isinstance(data, bytes | bytearray | memoryview):
        return Image.open(io.BytesIO(data))
    array = np.asarray(data)
    if array.dtype != np.uint8:
        raise ValueError(f"open_image: arrays must be uint8, got {array.dtype}")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array)


def random_resized_crop_box(
    rng: np.random.Generator,
    height: int,
    width: int,
    scale: tuple[float, float] = (0.3, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop covering a fraction U(scale) of the image area with
    aspect w / h log-uniform in `ratio` (torchvision's `RandomResizedCrop.get_params`: 10
    tries, then the whole image clamped to `ratio`).

    >>> top, left, h, w = random_resized_crop_box(np.random.default_rng(0), 100, 200)
    >>> 0.3 * 100 * 200 <= h * w * 1.05 and 0 <= top <= 100 - h and 0 <= left <= 200 - w
    True
    """
    area = height * width
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        u, v = rng.random(2).tolist()  # one call: the numpy call overhead dominates here
        target = area * (scale[0] + (scale[1] - scale[0]) * u)
        aspect = math.exp(lo + (hi - lo) * v)
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    aspect = width / height
    if aspect < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif aspect > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def center_crop_box(
    height: int, width: int, size: tuple[int, int], crop_fraction: float = 0.875
) -> tuple[int, int, int, int]:
    """(top, left, h, w) of the centred crop that "resize so the output covers
    size / crop_fraction, then crop `size` in the middle" takes, in input pixels.

    >>> center_crop_box(256, 320, (224, 224))
    (16, 48, 224, 224)
    >>> center_crop_box(64, 64, (64, 64), crop_fraction=1.0)
    (0, 0, 64, 64)
    """
    out_h, out_w = size
    s = max(out_h / (crop_fraction * height), out_w / (crop_fraction * width))
    h, w = min(height, int(round(out_h / s))), min(width, int(round(out_w / s)))
    return (height - h) // 2, (width - w) // 2, h, w


def crop_resize(
    image, box: tuple[int, int, int, int], size: tuple[int, int], flip: bool = False
) -> np.ndarray:
    """Crop `box` of an image, resize it to `size` (PIL bilinear, antialiased when
    shrinking) and optionally flip it left-right.

    A JPEG is decoded here at the smallest of 1/1, 1/2, 1/4, 1/8 scale (libjpeg's DCT
    scaling, `Image.draft`) that keeps the crop at least `size`: large ImageNet photos decode
    several times faster.

    Args:
      image: a PIL image from `open_image` (not yet decoded), or what it accepts.
      box: (top, left, h, w) in the image's pixels.
      size: (H, W) of the output.
      flip: mirror left-right.

    Returns:
      [H, W, 3] uint8.

    >>> crop_resize(np.zeros((10, 20, 3), np.uint8), (0, 5, 10, 10), (4, 4)).shape
    (4, 4, 3)
    """
    from PIL import Image

    img = image if isinstance(image, Image.Image) else open_image(image)
    full_w, full_h = img.size
    top, left, h, w = box
    out_h, out_w = size
    if img.format == "JPEG":
        reduce = 1
        while reduce < 8 and h >= 2 * reduce * out_h and w >= 2 * reduce * out_w:
            reduce *= 2
        if reduce > 1:
            img.draft("RGB", (math.ceil(full_w / reduce), math.ceil(full_h / reduce)))
    img = img.convert("RGB")
    sx, sy = img.size[0] / full_w, img.size[1] / full_h
    region = (left * sx, top * sy, (left + w) * sx, (top + h) * sy)
    out = img.resize((out_w, out_h), Image.Resampling.BILINEAR, box=region)
    if flip:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(out)


def _size(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    h, w = (int(s) for s in image_size)
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    return h, w


def _to_float(pixels: np.ndarray, mean, std, dtype: str = "float32") -> np.ndarray:
    if dtype == "uint8":
        return pixels
    x = pixels.astype(np.float32) * np.float32(1 / 255)
    if mean is not None:
        x -= np.asarray(mean, np.float32)
    if std is not None:
        x /= np.asarray(std, np.float32)
    return x


# ---- grain transforms ----


@dataclasses.dataclass(frozen=True)
class RandomResizedCrop(grain.transforms.RandomMap):
    """Decode, random resized crop to `size`, flip with probability 1/2 if `flip`; returns
    {"image": [H, W, 3] float32, "label": int32} (see `train_loader` for the arguments)."""

    size: tuple[int, int]
    scale: tuple[float, float] = (0.3, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    image_key: str = "image"
    label_key: str | None = "label"
    dtype: str = "float32"

    def random_map(self, element, rng: np.random.Generator):
        img = open_image(element[self.image_key])
        box = random_resized_crop_box(rng, img.size[1], img.size[0], self.scale, self.ratio)
        flip = self.flip and bool(rng.integers(2))
        pixels = crop_resize(img, box, self.size, flip)
        out = {"image": _to_float(pixels, self.mean, self.std, self.dtype)}
        if self.label_key is not None:
            out["label"] = np.int32(element[self.label_key])
        return out


@dataclasses.dataclass(frozen=True)
class CenterCrop(grain.transforms.Map):
    """Decode and center crop to `size` (see `eval_loader`); returns {"image", "label"}."""

    size: tuple[int, int]
    crop_fraction: float = 0.875
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    image_key: str = "image"
    label_key: str | None = "label"
    dtype: str = "float32"

    def map(self, element):
        img = open_image(element[self.image_key])
        box = center_crop_box(img.size[1], img.size[0], self.size, self.crop_fraction)
        pixels = crop_resize(img, box, self.size)
        out = {"image": _to_float(pixels, self.mean, self.std, self.dtype)}
        if self.label_key is not None:
            out["label"] = np.int32(element[self.label_key])
        return out


# ---- loaders ----


def _processes(process_index: int | None, process_count: int | None) -> tuple[int, int]:
    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    return int(process_index), int(process_count)


def _check_dtype(fn: str, dtype: str, mean, std) -> str:
    if dtype not in ("float32", "uint8"):
        raise ValueError(f"{fn}: dtype must be 'float32' or 'uint8', got {dtype!r}")
    if dtype == "uint8" and (mean is not None or std is not None):
        raise ValueError(f"{fn}: mean and std need dtype='float32' (uint8 is left unscaled)")
    return dtype


def _local_batch(fn: str, batch_size: int, process_count: int) -> int:
    if batch_size < 1 or batch_size % process_count:
        raise ValueError(
            f"{fn}: batch_size {batch_size} must be a positive multiple of process_count "
            f"{process_count}"
        )
    return batch_size // process_count


def _flags_for_workers(worker_count: int) -> None:
    """grain's worker processes read absl flags (profiling), which raise until parsed: mark
    them parsed (at their defaults) when no absl app has done it."""
    if worker_count > 0:
        from absl import flags

        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()


def train_loader(
    src,
    *,
    batch_size: int,
    image_size: int | Sequence[int],
    seed: int,
    scale: tuple[float, float] = (0.3, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    dtype: str = "float32",
    worker_count: int = 0,
    worker_buffer_size: int = 2,
    read_threads: int = 0,
    num_epochs: int | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    image_key: str = "image",
    label_key: str | None = "label",
) -> grain.DataLoader:
    """The training pipeline: this host's shuffled shard, decoded, augmented, batched.

    Args:
      src: random-access rows (`image_source`, `ArraySource`, any tfds data source).
      batch_size: the global batch B (all hosts); a multiple of process_count.
      image_size: S or (H, W) of the output images.
      seed: shuffling and augmentation (a non-negative 32-bit integer).
      scale, ratio: the random resized crop's area fraction and aspect (w / h) ranges.
      flip: random horizontal flips.
      mean, std: per-channel; images are `(x / 255 - mean) / std` (default: x / 255).
      dtype: "float32", or "uint8" for the pixels as they are (x in 0..255: a quarter of the
        bytes to move between processes and to the devices; scale them on the device).
      worker_count: processes that decode and augment (0: in this process).
      worker_buffer_size: batches each worker prepares ahead.
      read_threads: threads reading rows from `src` in each process (0: read in the
        worker's own thread, best for local disks and memory; raise it for remote storage).
      num_epochs: stop after this many passes over the shard; None runs forever.
      process_index, process_count: this host and the number of hosts (default: jax's).
      image_key, label_key: the features to read (`label_key=None`: images only).

    Returns:
      A `grain.DataLoader`; `iter(loader)` yields {"image": [B / P, H, W, 3] float32,
      "label": [B / P] int32} and has `get_state()` (bytes) / `set_state(state)`.

    Raises:
      ValueError: bad sizes, process index or seed (grain's own checks).
    """
    p, count = _processes(process_index, process_count)
    local = _local_batch("train_loader", batch_size, count)
    _check_dtype("train_loader", dtype, mean, std)
    if not 0 < scale[0] <= scale[1] <= 1 or not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"train_loader: bad scale {scale} or ratio {ratio}")
    shard = grain.sharding.ShardOptions(shard_index=p, shard_count=count, drop_remainder=True)
    if len(src) // count < local:
        raise ValueError(
            f"train_loader: {len(src)} rows over {count} hosts make no batch of {local}"
        )
    sampler = grain.samplers.IndexSampler(
        num_records=len(src), shard_options=shard, shuffle=True, num_epochs=num_epochs, seed=seed
    )
    augment = RandomResizedCrop(
        size=_size(image_size),
        scale=tuple(scale),
        ratio=tuple(ratio),
        flip=flip,
        mean=None if mean is None else tuple(mean),
        std=None if std is None else tuple(std),
        image_key=image_key,
        label_key=label_key,
        dtype=dtype,
    )
    _flags_for_workers(worker_count)
    return grain.DataLoader(
        data_source=src,
        sampler=sampler,
        operations=[augment, grain.transforms.Batch(local, drop_remainder=True)],
        worker_count=worker_count,
        worker_buffer_size=worker_buffer_size,
        shard_options=shard,
        read_options=grain.ReadOptions(num_threads=read_threads),
    )


class _Slice:
    """Rows [start, stop) of a source, as a source."""

    def __init__(self, src, start: int, stop: int):
        self.src, self.start, self.stop = src, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: int):
        return self.src[self.start + int(index)]

    def __repr__(self) -> str:
        return f"_Slice({self.src!r}, {self.start}, {self.stop})"


def head(src, n: int) -> _Slice:
    """The first `n` rows of a source (all of them if it has fewer), as a source."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"head: n must be an integer >= 1, got {n!r}")
    return _Slice(src, 0, min(n, len(src)))


class EvalLoader:
    """One ordered pass over this host's slice in fixed-shape batches (see `eval_loader`).

    Attributes:
      num_batches: batches per pass, the same on every host.
      local_batch_size: B / P.
      start, stop: this host's rows [start, stop) of the source.
    """

    def __init__(self, loader, local: int, num_batches: int, start: int, stop: int, empty):
        self._loader = loader
        self._empty = empty  # a batch of 0 rows: the shapes and dtypes of the padding
        self.local_batch_size = local
        self.num_batches = num_batches
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        it = iter(self._loader) if self._loader is not None else iter(())
        try:
            for _ in range(self.num_batches):
                batch = next(it, self._empty)  # after this host's rows: padding only
                n = len(batch["image"])
                pad = self.local_batch_size - n
                out = {
                    k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)])
                    for k, v in batch.items()
                }
                out["mask"] = np.arange(self.local_batch_size) < n
                yield out
        finally:
            close_workers(it)  # each pass starts its own workers: stop them after it


def eval_loader(
    src,
    *,
    batch_size: int,
    image_size: int | Sequence[int],
    crop_fraction: float = 0.875,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    dtype: str = "float32",
    worker_count: int = 0,
    worker_buffer_size: int = 2,
    read_threads: int = 0,
    process_index: int | None = None,
    process_count: int | None = None,
    image_key: str = "image",
    label_key: str | None = "label",
) -> EvalLoader:
    """The evaluation pipeline: every row once over all hosts, center crops, no shuffling.

    Host p takes rows [start_p, stop_p) (contiguous; the remainder over the first hosts).

    Args:
      src: random-access rows, as for `train_loader`.
      batch_size: the global batch B; a multiple of process_count.
      image_size: S or (H, W).
      crop_fraction: the crop covers this fraction of the shorter side (1.0: the whole
        shorter side).
      mean, std, dtype, worker_count, worker_buffer_size, read_threads, process_index,
        process_count, image_key, label_key: as for `train_loader`.

    Returns:
      An `EvalLoader`; each `iter()` is one pass of `num_batches` batches {"image":
      [B / P, H, W, 3] float32, "label": [B / P] int32, "mask": [B / P] bool (False on
      padding rows)}.

    Raises:
      ValueError: bad sizes, process index or crop_fraction.
    """
    p, count = _processes(process_index, process_count)
    local = _local_batch("eval_loader", batch_size, count)
    _check_dtype("eval_loader", dtype, mean, std)
    if not 0 < crop_fraction <= 1:
        raise ValueError(f"eval_loader: crop_fraction must be in (0, 1], got {crop_fraction}")
    n = len(src)
    start = p * (n // count) + min(p, n % count)
    stop = start + n // count + (p < n % count)
    num_batches = math.ceil(math.ceil(n / count) / local)
    crop = CenterCrop(
        size=_size(image_size),
        crop_fraction=crop_fraction,
        mean=None if mean is None else tuple(mean),
        std=None if std is None else tuple(std),
        image_key=image_key,
        label_key=label_key,
        dtype=dtype,
    )
    part = _Slice(src, start, stop)
    loader = None
    _flags_for_workers(worker_count)
    if stop > start:
        loader = grain.DataLoader(
            data_source=part,
            sampler=grain.samplers.IndexSampler(num_records=len(part), shuffle=False, num_epochs=1),
            operations=[crop, grain.transforms.Batch(local, drop_remainder=False)],
            worker_count=worker_count,
            worker_buffer_size=worker_buffer_size,
            shard_options=grain.sharding.NoSharding(),
            read_options=grain.ReadOptions(num_threads=read_threads),
        )
    empty = {"image": np.zeros((0, *crop.size, 3), np.dtype(dtype))}
    if label_key is not None:
        empty["label"] = np.zeros(0, np.int32)
    return EvalLoader(loader, local, num_batches, start, stop, empty)


def close_workers(iterator) -> None:
    """Stop the worker processes of a grain loader's iterator (`iter(loader)`) now; anything
    else is left alone. Otherwise they are stopped at interpreter exit, after
    multiprocessing has closed their queues, and each prints "OSError: handle is closed"
    and leaks its shared memory. The iterator cannot be used after this."""
    # grain's DataLoaderIterator has no close of its own: its dataset iterator has
    inner = getattr(iterator, "_iterator", None)
    if isinstance(iterator, grain.DataLoaderIterator) and hasattr(inner, "close"):
        inner.close()


# ---- to the devices ----


class DevicePrefetch:
    """Iterator that puts the next `size` batches on the devices in a background thread.

    Args:
      iterator: host batches (dicts of numpy arrays), e.g. `iter(train_loader(...))`.
      size: batches kept ready on the devices.
      sharding: a `jax.sharding.Sharding` of the global batch: each leaf becomes
        `jax.make_array_from_process_local_data(sharding, local)` (global leading axis
        B = B_local * P). None: `jax.device_put` to the default device.

    `get_state()` is the wrapped iterator's state after the last batch *returned* (not the
    ones prefetched), so `set_state(get_state())` on a fresh pipeline resumes exactly.
    """

    def __init__(self, iterator, size: int = 2, sharding=None):
        if size < 1:
            raise ValueError(f"DevicePrefetch: size must be >= 1, got {size}")
        self._it = iterator
        self._size = size
        self._sharding = sharding
        self._stateful = hasattr(iterator, "get_state")
        self._state = iterator.get_state() if self._stateful else None
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue | None = None
        self._stop = threading.Event()
        self._done = False

    def _put(self, batch):
        import jax

        if self._sharding is None:
            return jax.device_put(batch)
        return jax.tree.map(
            lambda x: jax.make_array_from_process_local_data(self._sharding, x), batch
        )

    def _produce(self, q: queue.Queue, stop: threading.Event) -> None:
        def offer(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            while not stop.is_set():
                try:
                    batch = next(self._it)
                except StopIteration:
                    offer(("end", None, None))
                    return
                state = self._it.get_state() if self._stateful else None
                if not offer(("ok", self._put(batch), state)):
                    return
        except BaseException as err:  # surfaced in the consumer's next()
            offer(("error", err, None))

    def __iter__(self) -> DevicePrefetch:
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        if self._thread is None:
            self._stop = threading.Event()
            self._queue = queue.Queue(maxsize=self._size)
            self._thread = threading.Thread(
                target=self._produce, args=(self._queue, self._stop), daemon=True
            )
            self._thread.start()
        kind, value, state = self._queue.get()
        if kind == "end":
            self._done = True
            raise StopIteration
        if kind == "error":
            self._done = True
            raise value
        self._state = state
        return value

    def close(self) -> None:
        """Stop the background thread. Nothing is lost: the wrapped iterator is set back to
        the state after the last batch returned, so `next` continues from there."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._queue = None
            if self._stateful and not self._done:
                self._it.set_state(self._state)

    @property
    def source(self):
        """The wrapped iterator of host batches."""
        return self._it

    def starved(self) -> bool:
        """True when `next` would wait: no batch is on the devices yet (the iterator is not
        at its end)."""
        return not self._done and (self._queue is None or self._queue.empty())

    def get_state(self):
        """The wrapped iterator's state after the last batch returned by `next`."""
        if not self._stateful:
            raise TypeError("DevicePrefetch: the wrapped iterator has no get_state")
        return self._state

    def set_state(self, state) -> None:
        """Drop the prefetched batches and continue from `state` (of `get_state`)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = self._queue = None
        self._it.set_state(state)
        self._state = state
        self._done = False


def prefetch_to_device(iterator, size: int = 2, sharding=None) -> DevicePrefetch:
    """`DevicePrefetch(iterator, size, sharding)`: batches put on the devices ahead of use."""
    return DevicePrefetch(iterator, size, sharding)


class BatchStream:
    """A batch iterator as `hj.train.train` takes one (`hj.train.is_stream`), timing its waits.

    Args:
      iterator: yields this process's rows of each global batch (host arrays, or global
        jax arrays from `prefetch_to_device` with the train step's data sharding) and has
        `get_state()` / `set_state(state)` (a grain iterator, `DevicePrefetch`).
      global_batch_size: B, the rows of a batch over all processes.

    `waits` holds the seconds each `next` spent waiting for its batch. When the iterator can
    tell that it has no batch ready (`DevicePrefetch.starved`), `hj.train.train` first waits
    for the devices to finish the steps already dispatched, so that each wait is time the
    devices sat idle for want of data: `sum(waits)` of the loop's time. Otherwise (a plain
    grain iterator) a wait may overlap steps still running, and `sum(waits)` counts more
    than the idle time. `get_state()` is a str (JSON, as checkpoints keep it).

    Example:
      >>> import numpy as np
      >>> from hjepa_jax.data import images
      >>> src = images.ArraySource(np.zeros((8, 16, 16, 3), np.uint8), [0] * 8)
      >>> loader = images.train_loader(src, batch_size=4, image_size=8, seed=0,
      ...                              process_index=0, process_count=1)
      >>> stream = images.BatchStream(iter(loader), 4)
      >>> next(stream)["image"].shape, len(stream.waits)
      ((4, 8, 8, 3), 1)
    """

    def __init__(self, iterator, global_batch_size: int):
        self.iterator = iterator
        self.global_batch_size = global_batch_size
        self.waits: list[float] = []

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self):
        start = time.perf_counter()
        batch = next(self.iterator)
        self.waits.append(time.perf_counter() - start)
        return batch

    def starved(self) -> bool:
        """True when the iterator knows that `next` would wait for its batch; False when
        one is ready, or when the iterator cannot tell."""
        starved = getattr(self.iterator, "starved", None)
        return bool(starved is not None and starved())

    def get_state(self) -> str:
        state = self.iterator.get_state()
        return state.decode() if isinstance(state, bytes) else state

    def set_state(self, state) -> None:
        self.iterator.set_state(state.encode() if isinstance(state, str) else state)

    def close(self) -> None:
        """Stop a prefetching iterator's thread and the grain workers under it
        (`close_workers`): the stream is done."""
        inner = self.iterator
        if isinstance(inner, DevicePrefetch):
            inner.close()
            inner = inner.source
        close_workers(inner)
