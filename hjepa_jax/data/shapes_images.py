"""Shapes images: procedurally generated labelled RGB images (10 shape classes), JPEG-encoded.

A local stand-in for ImageNet that runs on a CPU and in CI: the same storage (tfds
`features.Image` JPEG bytes in array_record) and so the same decode path
(`hjepa_jax.data.images`). Each image shows one shape of `CLASSES` with a random position,
scale, rotation, stretch and colour, drawn (anti-aliased) over a textured background (two
colours blended by a random sinusoidal grating) with three random line segments as clutter,
plus Gaussian pixel noise. The label is the shape kind; colour, position and texture carry no
information about it, so raw pixels are a weak linear baseline and an encoder that sees shape
does better.

    arrays = hj.data.load("hjepa_shapes_images", "train", num_train=1000)
    arrays["image"]  # [1000, 64, 64, 3] uint8, decoded from the stored JPEG bytes
    arrays["label"]  # [1000] int64 in 0..9, names `CLASSES`

Example i of a split is a pure function of (config.seed, split, i) (numpy's
`default_rng([seed, split_id, i])`, split_id 0 for train and 1 for test): rendering a range of
rows gives the same pixels as rendering them all, and the splits are independent draws.
`generate` returns the pixels before JPEG; the builder stores `encode_jpeg` of them (PIL, no
TensorFlow needed), which `hj.data.load` decodes back with PIL.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import tensorflow_datasets as tfds

from hjepa_jax.data import configs

__all__ = [
    "CLASSES",
    "DEFAULT_CONFIG",
    "HjepaShapesImages",
    "ShapesImagesConfig",
    "decode_jpeg",
    "encode_jpeg",
    "generate",
    "make_config",
]

CLASSES = (
    "disc",
    "square",
    "triangle",
    "cross",
    "ring",
    "star",
    "crescent",
    "ell",
    "frame",
    "bowtie",
)
"""The label names: label k is the shape `CLASSES[k]`."""

_SPLITS = {"train": 0, "test": 1}
_CHUNK = 256  # images rendered at once (bounds the float32 temporaries)
_NUM_LINES = 3
# Sub-pixel sample offsets for anti-aliasing: each pixel averages a 2 x 2 grid of samples.
_SUBPIXEL = ((0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75))


@dataclasses.dataclass(eq=False)
class ShapesImagesConfig(tfds.core.BuilderConfig):
    """Sizes and seed of a shapes-images dataset (one tfds config per setting).

    Attributes:
      seed: all randomness (train and test draw from independent streams of it).
      num_train, num_test: images per split.
      image_size: images are [image_size, image_size, 3].
      jpeg_quality: PIL JPEG quality of the stored images (1..95).
      noise: standard deviation of the Gaussian pixel noise, in [0, 1] intensity units.
    """

    seed: int = 0
    num_train: int = 10000
    num_test: int = 2000
    image_size: int = 64
    jpeg_quality: int = 90
    noise: float = 0.06

    def __reduce__(self):
        # Unpickled as `make_config(**settings)`: the default is then the class's own object,
        # which tfds requires when it re-creates a pickled builder (grain sends data sources
        # to its worker processes by pickling them).
        return (_from_settings, (configs.settings(self),))


DEFAULT_CONFIG = ShapesImagesConfig(name="default", description="10000 / 2000 64x64, seed 0")


def make_config(**settings) -> ShapesImagesConfig:
    """The registered default for default settings, else a config named by their hash."""
    return configs.named_config(DEFAULT_CONFIG, **settings)


def _from_settings(settings: dict) -> ShapesImagesConfig:
    return make_config(**settings)


def _check(config: ShapesImagesConfig) -> None:
    if min(config.num_train, config.num_test) < 1:
        raise ValueError(
            f"ShapesImagesConfig: num_train ({config.num_train}) and num_test "
            f"({config.num_test}) must be >= 1"
        )
    if config.image_size < 16:
        raise ValueError(f"ShapesImagesConfig: image_size must be >= 16, got {config.image_size}")
    if not 1 <= config.jpeg_quality <= 95:
        raise ValueError(
            f"ShapesImagesConfig: jpeg_quality must be in [1, 95], got {config.jpeg_quality}"
        )
    if config.noise < 0:
        raise ValueError(f"ShapesImagesConfig: noise must be >= 0, got {config.noise}")


# ---- one example's random draws ----


def _draw(rng: np.random.Generator, size: int, noise: float) -> dict[str, np.ndarray]:
    """The random parameters of one image (a fixed sequence of draws from `rng`)."""
    label = rng.integers(len(CLASSES))
    centre = rng.uniform(0.3, 0.7, 2) * size  # (x, y) pixels
    radius = rng.uniform(0.16, 0.3) * size
    angle = rng.uniform(0, 2 * np.pi)
    stretch = np.exp(rng.uniform(-0.15, 0.15))
    bg0 = rng.uniform(0, 1, 3)
    bg1 = np.clip(bg0 + rng.normal(0, 0.25, 3), 0, 1)
    freq = rng.uniform(1, 4) / size  # grating: cycles per pixel
    theta = rng.uniform(0, 2 * np.pi)
    phase = rng.uniform(0, 2 * np.pi)
    # Foreground: far from the background's mean colour in every channel (cyclically).
    fg = ((bg0 + bg1) / 2 + rng.uniform(0.3, 0.7, 3)) % 1.0
    lines = rng.uniform(0, size, (_NUM_LINES, 4))  # (x0, y0, x1, y1)
    line_colour = rng.uniform(0, 1, (_NUM_LINES, 3))
    line_width = rng.uniform(1.0, 2.0, _NUM_LINES)
    pixel_noise = (
        rng.normal(0, noise, (size, size, 3)) if noise > 0 else np.zeros((size,) * 2 + (3,))
    )
    return {
        "label": np.int64(label),
        "centre": centre,
        "radius": np.float64(radius),
        "angle": np.float64(angle),
        "stretch": np.float64(stretch),
        "bg0": bg0,
        "bg1": bg1,
        "grating": np.array([freq * np.cos(theta), freq * np.sin(theta), phase]),
        "fg": fg,
        "lines": lines,
        "line_colour": line_colour,
        "line_width": line_width,
        "noise": pixel_noise,
    }


def _draws(seed: int, split: str, start: int, stop: int, size: int, noise: float) -> dict:
    """`_draw` of rows [start, stop), stacked: {name: [n, ...]}."""
    split_id = _SPLITS[split]
    rows = [
        _draw(np.random.default_rng([seed, split_id, i]), size, noise) for i in range(start, stop)
    ]
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


# ---- rendering ----


def _inside(kind: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of shape `kind` in its own frame (unit size: about [-1, 1]^2)."""
    au, av = np.abs(u), np.abs(v)
    name = CLASSES[kind]
    if name == "disc":
        return u * u + v * v <= 1.0
    if name == "square":
        return np.maximum(au, av) <= 0.8
    if name == "triangle":  # equilateral, circumradius 1.1, a vertex up
        out = np.ones(u.shape, bool)
        for a in np.pi / 2 + 2 * np.pi * np.arange(3) / 3:
            out &= u * np.cos(a) + v * np.sin(a) >= -0.55
        return out
    if name == "cross":
        return ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95))
    if name == "ring":
        r2 = u * u + v * v
        return (r2 <= 1.0) & (r2 >= 0.36)
    if name == "star":  # five points: the radius goes linearly from 0.42 (valleys) to 1 (tips)
        tip = np.abs(((5 * np.arctan2(v, u) / (2 * np.pi)) % 1.0) - 0.5) * 2
        return np.sqrt(u * u + v * v) <= 0.42 + 0.58 * tip
    if name == "crescent":
        return (u * u + v * v <= 1.0) & ((u - 0.5) ** 2 + v * v > 0.64)
    if name == "ell":
        return ((u >= -0.9) & (u <= -0.35) & (av <= 0.9)) | ((au <= 0.9) & (v >= 0.35) & (v <= 0.9))
    if name == "frame":
        m = np.maximum(au, av)
        return (m <= 0.85) & (m >= 0.5)
    if name == "bowtie":
        return (av <= 0.9 * au) & (au <= 0.95)
    raise ValueError(f"_inside: no shape {kind}")


def _coverage(d: dict, size: int) -> np.ndarray:
    """[n, size, size] fraction of each pixel covered by the example's shape (2 x 2 samples)."""
    n = len(d["label"])
    cos, sin = np.cos(d["angle"])[:, None, None], np.sin(d["angle"])[:, None, None]
    sx = (d["radius"] * d["stretch"])[:, None, None]
    sy = (d["radius"] / d["stretch"])[:, None, None]
    out = np.zeros((n, size, size), np.float32)
    for oy, ox in _SUBPIXEL:
        y, x = np.meshgrid(np.arange(size) + oy, np.arange(size) + ox, indexing="ij")
        dx = x[None] - d["centre"][:, 0, None, None]
        dy = y[None] - d["centre"][:, 1, None, None]
        u = ((dx * cos + dy * sin) / sx).astype(np.float32)
        v = ((-dx * sin + dy * cos) / sy).astype(np.float32)
        for kind in range(len(CLASSES)):
            rows = np.flatnonzero(d["label"] == kind)
            if rows.size:
                out[rows] += _inside(kind, u[rows], v[rows])
    return out / len(_SUBPIXEL)


def _line_alpha(d: dict, size: int) -> np.ndarray:
    """[n, L, size, size] coverage of each line segment (distance-based anti-aliasing)."""
    centres = np.arange(size, dtype=np.float32) + 0.5
    lines = d["lines"].astype(np.float32)
    a = lines[..., :2, None, None]  # [n, L, 2, 1, 1]
    ab = lines[..., 2:, None, None] - a
    px = centres[None, None, None, :] - a[:, :, 0]  # [n, L, 1, size]
    py = centres[None, None, :, None] - a[:, :, 1]  # [n, L, size, 1]
    t = (px * ab[:, :, 0] + py * ab[:, :, 1]) / np.maximum((ab**2).sum(2), 1e-6)
    t = np.clip(t, 0, 1)  # [n, L, size, size]
    dist = np.sqrt((px - t * ab[:, :, 0]) ** 2 + (py - t * ab[:, :, 1]) ** 2)
    half = d["line_width"].astype(np.float32)[..., None, None] / 2
    return np.clip(half + 0.5 - dist, 0, 1)


def _render(d: dict, size: int) -> np.ndarray:
    """[n, size, size, 3] uint8 images of the draws `d`."""
    centres = np.arange(size, dtype=np.float32) + 0.5
    g = d["grating"].astype(np.float32)
    arg = 2 * np.pi * (g[:, 0, None, None] * centres + g[:, 1, None, None] * centres[:, None])
    wave = 0.5 + 0.5 * np.sin(arg + g[:, 2, None, None])  # [n, size, size]
    bg0 = d["bg0"][:, None, None].astype(np.float32)
    bg1 = d["bg1"][:, None, None].astype(np.float32)
    img = bg0 + (bg1 - bg0) * wave[..., None]
    alpha = _line_alpha(d, size)
    colours = d["line_colour"].astype(np.float32)
    for k in range(alpha.shape[1]):
        ak = alpha[:, k, ..., None]
        img = img * (1 - ak) + colours[:, k, None, None] * ak
    shape = _coverage(d, size)[..., None]
    img = img * (1 - shape) + d["fg"][:, None, None].astype(np.float32) * shape
    img = np.clip(img + d["noise"].astype(np.float32), 0, 1)
    return np.round(img * 255).astype(np.uint8)


def generate(
    split: str,
    config: ShapesImagesConfig = DEFAULT_CONFIG,
    start: int = 0,
    stop: int | None = None,
) -> dict[str, np.ndarray]:
    """Rows [start, stop) of a split, before JPEG encoding (row i depends only on seed, split, i).

    Args:
      split: "train" or "test".
      config: the dataset's settings.
      start, stop: the rows; `stop=None` is the split's size.

    Returns:
      image: [n, S, S, 3] uint8 (S = config.image_size).
      label: [n] int64 in 0..9 (`CLASSES`).

    Raises:
      ValueError: an unknown split, bad settings or rows outside the split.
    """
    if split not in _SPLITS:
        raise ValueError(f"generate: split must be 'train' or 'test', got {split!r}")
    _check(config)
    num = config.num_train if split == "train" else config.num_test
    stop = num if stop is None else stop
    if not 0 <= start <= stop <= num:
        raise ValueError(f"generate: rows [{start}, {stop}) are not inside [0, {num})")
    size = config.image_size
    images = np.empty((stop - start, size, size, 3), np.uint8)
    labels = np.empty(stop - start, np.int64)
    for a in range(start, stop, _CHUNK):
        b = min(a + _CHUNK, stop)
        d = _draws(config.seed, split, a, b, size, config.noise)
        images[a - start : b - start] = _render(d, size)
        labels[a - start : b - start] = d["label"]
    return {"image": images, "label": labels}


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of one [H, W, 3] uint8 image (PIL, 4:2:0 chroma subsampling)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """[H, W, 3] uint8 RGB pixels of JPEG (or PNG) bytes, decoded with PIL as tfds does."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


class HjepaShapesImages(tfds.core.GeneratorBasedBuilder):
    """tfds builder `hjepa_shapes_images`: generated locally, nothing is downloaded."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "First release: 10 shape classes over textured backgrounds, JPEG-encoded."
    }
    BUILDER_CONFIGS = [DEFAULT_CONFIG]
    code_path = None  # as in HjepaMovingShapes: no source files, no checksums

    def _info(self) -> tfds.core.DatasetInfo:
        s = self.builder_config.image_size
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(s, s, 3), encoding_format="jpeg"),
                    "label": tfds.features.ClassLabel(names=list(CLASSES)),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,  # row i of a split is row i of `generate`
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {split: self._generate_examples(split) for split in _SPLITS}

    def _generate_examples(self, split):
        config = self.builder_config
        num = config.num_train if split == "train" else config.num_test
        for a in range(0, num, _CHUNK):
            rows = generate(split, config, a, min(a + _CHUNK, num))
            for i, (image, label) in enumerate(zip(rows["image"], rows["label"], strict=True)):
                # Bytes, not the array: tfds encodes arrays with TensorFlow, bytes as they are.
                yield a + i, {"image": encode_jpeg(image, config.jpeg_quality), "label": label}
