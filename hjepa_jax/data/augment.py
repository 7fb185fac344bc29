"""Image augmentations for JEPA views: pure numpy functions `f(rng, images) -> images`.

Images are [B, ..., H, W, C] (e.g. [B, H, W, C] or videos [B, T, H, W, C]); each of the B
examples gets its own random draw, shared over the middle axes (a video is shifted as one).
Every function keeps the shape and dtype; integer images are clipped to the dtype's range.
To use them in `Batches`, `apply_to("image", f, g)` makes `augment(rng, batch)`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["Augmentation", "apply_to", "gaussian_noise", "random_crop", "random_erasing"]

Augmentation = Callable[[np.random.Generator, np.ndarray], np.ndarray]


def _scale(images: np.ndarray) -> float:
    """1 for float images in [0, 1], 255 for uint8: the size of the unit interval."""
    return float(np.iinfo(images.dtype).max) if np.issubdtype(images.dtype, np.integer) else 1.0


def random_crop(
    rng: np.random.Generator, images: np.ndarray, pad: int = 2, mode: str = "edge"
) -> np.ndarray:
    """Random shift: pad by `pad` pixels on every side, then crop back to [H, W].

    out[b, ..., i, j] = padded[b, ..., i + dy_b, j + dx_b],  dy_b, dx_b ~ U{0 .. 2 pad}.

    Args:
      rng: numpy generator.
      images: [B, ..., H, W, C].
      pad: maximal shift in pixels.
      mode: `np.pad` mode for the border ("edge", "constant" (zeros), "reflect", ...).
    """
    if pad == 0:
        return images
    b, (h, w) = images.shape[0], images.shape[-3:-1]
    widths = [(0, 0)] * (images.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)]
    padded = np.pad(images, widths, mode=mode)
    dy, dx = rng.integers(0, 2 * pad + 1, (2, b))
    x = padded.reshape(b, -1, h + 2 * pad, w + 2 * pad, images.shape[-1])
    rows = (dy[:, None] + np.arange(h))[:, None, :, None]  # [B, 1, H, 1]
    cols = (dx[:, None] + np.arange(w))[:, None, None, :]  # [B, 1, 1, W]
    out = x[
        np.arange(b)[:, None, None, None], np.arange(x.shape[1])[None, :, None, None], rows, cols
    ]
    return out.reshape(images.shape)


def gaussian_noise(rng: np.random.Generator, images: np.ndarray, std: float = 0.05) -> np.ndarray:
    """images + N(0, std^2) per pixel, clipped to [0, 1] (std in units of [0, 1] intensity).

    Args:
      rng: numpy generator.
      images: [B, ..., H, W, C], float in [0, 1] or uint8 in [0, 255].
      std: noise standard deviation, as a fraction of the full intensity range.
    """
    scale = _scale(images)
    noisy = images.astype(np.float32) + rng.normal(0.0, std * scale, images.shape)
    noisy = np.clip(noisy, 0.0, scale)
    if np.issubdtype(images.dtype, np.integer):
        noisy = np.round(noisy)
    return noisy.astype(images.dtype)


def random_erasing(
    rng: np.random.Generator,
    images: np.ndarray,
    prob: float = 0.5,
    size: tuple[float, float] = (0.2, 0.5),
    value: float = 0.0,
) -> np.ndarray:
    """Random erasing: with probability `prob`, fill one rectangle of each image with `value`.

    The rectangle's height and width are fractions U(size) of H and W (at least one pixel);
    its position is uniform inside the image.

    Args:
      rng: numpy generator.
      images: [B, ..., H, W, C].
      prob: probability that an example is erased.
      size: (min, max) side of the rectangle as a fraction of the image side.
      value: fill value, in the images' units.
    """
    b, (h, w) = images.shape[0], images.shape[-3:-1]
    hit = rng.random(b) < prob
    eh = np.maximum(1, np.round(rng.uniform(*size, b) * h)).astype(int)
    ew = np.maximum(1, np.round(rng.uniform(*size, b) * w)).astype(int)
    y0 = rng.integers(0, h - eh + 1)
    x0 = rng.integers(0, w - ew + 1)
    ys, xs = np.arange(h), np.arange(w)
    in_y = (ys >= y0[:, None]) & (ys < (y0 + eh)[:, None])  # [B, H]
    in_x = (xs >= x0[:, None]) & (xs < (x0 + ew)[:, None])  # [B, W]
    mask = (in_y[:, :, None] & in_x[:, None, :]) & hit[:, None, None]  # [B, H, W]
    mask = mask.reshape((b,) + (1,) * (images.ndim - 4) + (h, w, 1))
    return np.where(mask, np.asarray(value, images.dtype), images)


def apply_to(key: str, *fns: Augmentation) -> Callable:
    """`augment(rng, batch)` for `Batches`: applies fns in order to batch[key], rest unchanged."""

    def augment(rng: np.random.Generator, batch: dict) -> dict:
        x = batch[key]
        for f in fns:
            x = f(rng, x)
        return {**batch, key: x}

    return augment
