"""Digits: scikit-learn's 8x8 handwritten digits (1797 images, 10 classes) as a local tfds dataset.

The images ship with scikit-learn (`sklearn.datasets.load_digits`), so nothing is downloaded.
Pixel values 0..16 are stored as float32 `image = pixels / 16` in [0, 1] (exact). A fixed
permutation drawn from `seed` splits the rows into train (1500) and test (297).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

__all__ = [
    "DEFAULT_CONFIG",
    "DigitsConfig",
    "HjepaDigits",
    "generate",
    "make_config",
    "split_indices",
]


@dataclasses.dataclass(eq=False)
class DigitsConfig(tfds.core.BuilderConfig):
    """Attributes: seed of the train/test permutation; num_test rows in the test split."""

    seed: int = 0
    num_test: int = 297


DEFAULT_CONFIG = DigitsConfig(name="default", description="1500 train / 297 test, seed 0")


def make_config(**settings) -> DigitsConfig:
    """The registered default for default settings, else a config named by the settings."""
    config = DigitsConfig(name="default", **settings)
    if (config.seed, config.num_test) == (DEFAULT_CONFIG.seed, DEFAULT_CONFIG.num_test):
        return DEFAULT_CONFIG
    name = f"seed{config.seed}_test{config.num_test}"
    return dataclasses.replace(config, name=name, description=name)


def split_indices(seed: int, num_test: int, num: int = 1797) -> dict[str, np.ndarray]:
    """Rows of sklearn's digits in each split, in stored order: {"train": [n], "test": [m]}."""
    if not 0 < num_test < num:
        raise ValueError(f"num_test must be in (0, {num}), got {num_test}")
    perm = np.random.default_rng(seed).permutation(num)
    return {"train": perm[num_test:], "test": perm[:num_test]}


def generate(split: str, config: DigitsConfig = DEFAULT_CONFIG) -> dict[str, np.ndarray]:
    """One split as arrays, exactly what the tfds builder stores.

    Returns:
      image: [N, 8, 8, 1] float32 in [0, 1] (sklearn's 0..16 pixels / 16).
      label: [N] int64 in 0..9.
      index: [N] int64, the row in `sklearn.datasets.load_digits()`.
    """
    from sklearn.datasets import load_digits  # slow import; only to build

    digits = load_digits()
    rows = split_indices(config.seed, config.num_test, len(digits.target))[split]
    return {
        "image": (digits.images[rows, :, :, None] / 16.0).astype(np.float32),
        "label": digits.target[rows].astype(np.int64),
        "index": rows.astype(np.int64),
    }


class HjepaDigits(tfds.core.GeneratorBasedBuilder):
    """tfds builder `hjepa_digits`: built from scikit-learn's bundled copy, no download."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: float32 [8, 8, 1] in [0, 1], label, sklearn index."}
    BUILDER_CONFIGS = [DEFAULT_CONFIG]
    # No source files and no checksums. (tfds 4.9.10 computes `code_path` for a builder in a
    # package with `importlib_resources`, which it does not declare as a dependency.)
    code_path = None

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.float32),
                    "label": tfds.features.ClassLabel(num_classes=10),
                    "index": tfds.features.Scalar(dtype=np.int64),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
            disable_shuffling=True,  # row i of a split is row i of `generate`
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {split: self._generate_examples(split) for split in ("train", "test")}

    def _generate_examples(self, split):
        arrays = generate(split, self.builder_config)
        for i in range(len(arrays["label"])):
            yield i, {k: v[i] for k, v in arrays.items()}
