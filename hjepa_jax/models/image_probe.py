"""Linear and k-NN probes of an image encoder's frozen features, on any number of hosts.

`FrozenProbe` reads fixed probe-train and probe-test images once (labels, and raw pixels
average-pooled for the pixel baseline), then scores any parameters: features of both sets,
a ridge linear probe and a k-NN vote fit on the first and scored on the second
(`hjepa_jax.probes`), and the test features' std and effective rank.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from hjepa_jax import collapse, probes

__all__ = ["FrozenProbe", "pool"]


def _host(x) -> np.ndarray:
    """A global array (or this process's numpy rows) as numpy on every process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


class FrozenProbe:
    """Frozen features of fixed probe-train and probe-test images, and the probes on them.

    Every process takes its slice of each set (`hj.data.images.eval_loader`, center crops,
    uint8); features are computed with the batch split over the devices (`sharding`, the
    data sharding of the training step) and gathered on every process.

    Args:
      encode: `encode(params, images uint8 [B, H, W, 3]) -> [B, D]`, jitted.
      train_src, test_src: random-access image sources (the probe's fit and score sets).
      sharding: the batch's sharding.
      batch_size, image_size, crop_fraction, workers: of the eval loaders.
      knn_k: neighbours of the k-NN probe.
    """

    def __init__(
        self, encode, train_src, test_src, sharding, *, batch_size: int, image_size: int,
        crop_fraction: float = 0.875, workers: int = 0, knn_k: int = 20,
    ):  # fmt: skip
        from hjepa_jax.data import images as im

        kwargs = dict(
            batch_size=batch_size,
            image_size=image_size,
            crop_fraction=crop_fraction,
            dtype="uint8",
            worker_count=workers,
        )
        self.loaders = {
            "train": im.eval_loader(train_src, **kwargs),
            "test": im.eval_loader(test_src, **kwargs),
        }
        self.sharding, self.knn_k, self._encode = sharding, knn_k, encode
        self.labels, self.pixels = {}, {}
        for name, loader in self.loaders.items():
            rows = [self._rows(batch, lambda x: x) for batch in loader]
            self.labels[name] = np.concatenate([r["label"] for r in rows])
            self.pixels[name] = np.concatenate([pool(r["image"]) for r in rows])

    def _rows(self, batch, fn) -> dict[str, np.ndarray]:
        """`fn` of a batch's images (global, sharded), with labels; padding rows dropped."""
        place = lambda x: jax.make_array_from_process_local_data(self.sharding, x)
        mask = _host(place(batch["mask"]))
        return {
            "image": _host(fn(place(batch["image"])))[mask],
            "label": _host(place(batch["label"]))[mask],
        }

    def features(self, params) -> dict[str, np.ndarray]:
        """{"train": [N_train, D], "test": [N_test, D]} float32 features of `params`."""
        encode = lambda x: self._encode(params, x)
        return {
            name: np.concatenate([self._rows(b, encode)["image"] for b in loader])
            for name, loader in self.loaders.items()
        }

    def scores(self, features: dict[str, np.ndarray]) -> dict[str, float]:
        """Linear probe and k-NN accuracy on the test images, and the test features' spread."""
        y_train, y_test = self.labels["train"], self.labels["test"]
        train, test = features["train"], features["test"]
        stats = collapse.collapse_metrics(jnp.asarray(test))
        return {
            "probe_acc": probes.classification_accuracy(train, y_train, test, y_test),
            "knn_acc": probes.knn_accuracy(train, y_train, test, y_test, self.knn_k),
            "embedding_std": float(stats["embedding_std"]),
            "effective_rank": float(stats["effective_rank"]),
        }

    def pixel_accuracy(self) -> float:
        p = self.pixels
        return probes.classification_accuracy(
            p["train"], self.labels["train"], p["test"], self.labels["test"]
        )


def pool(images: np.ndarray, size: int = 32) -> np.ndarray:
    """uint8 [B, H, W, 3] -> float32 [B, h, w, 3] average-pooled by the smallest integer
    factor that brings the side to at most `size` (the raw-pixel baseline's features)."""
    b, h, w, c = images.shape
    f = -(-max(h, w) // size)
    h2, w2 = h // f, w // f
    x = images[:, : h2 * f, : w2 * f].astype(np.float32).reshape(b, h2, f, w2, f, c)
    return x.mean(axis=(2, 4))
