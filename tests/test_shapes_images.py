"""Tests for hjepa_jax.data.shapes_images: the generator and its local tfds builder.

Tiny configs (tens of images); the dataset is built under pytest's tmp_path.
"""

import pickle

import numpy as np
import pytest
import tensorflow_datasets as tfds

from hjepa_jax import data
from hjepa_jax.data import shapes_images as si

TINY = dict(num_train=40, num_test=12, seed=5, image_size=32)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


def test_generate_shapes_dtypes_and_labels():
    config = si.make_config(num_train=200, num_test=10)
    out = si.generate("train", config)
    assert out["image"].shape == (200, 64, 64, 3) and out["image"].dtype == np.uint8
    assert out["label"].shape == (200,) and out["label"].dtype == np.int64
    assert set(np.unique(out["label"])) == set(range(len(si.CLASSES))) and len(si.CLASSES) >= 10
    # Not a constant image: background texture, noise and a shape in every image.
    assert (out["image"].reshape(200, -1).std(1) > 5).all()


def test_generate_is_deterministic_per_row_and_split_independent():
    config = si.make_config(**TINY)
    a = si.generate("train", config)
    b = si.generate("train", config)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    # Row i depends only on (seed, split, i): a range equals the same rows of the whole split.
    part = si.generate("train", config, 7, 19)
    np.testing.assert_array_equal(part["image"], a["image"][7:19])
    np.testing.assert_array_equal(part["label"], a["label"][7:19])
    test = si.generate("test", config)
    assert not np.array_equal(test["image"], a["image"][:12])
    other = si.generate("train", si.make_config(**{**TINY, "seed": 6}))
    assert not np.array_equal(other["image"], a["image"])


def test_generate_rejects_bad_arguments():
    with pytest.raises(ValueError, match="generate: split"):
        si.generate("validation", si.make_config(**TINY))
    with pytest.raises(ValueError, match="rows"):
        si.generate("train", si.make_config(**TINY), 0, 41)
    with pytest.raises(ValueError, match="image_size"):
        si.generate("train", si.make_config(image_size=8))


def test_tfds_round_trip_equals_the_jpeg_of_the_generator(data_dir):
    loaded = data.load("hjepa_shapes_images", "train", data_dir, **TINY)
    config = si.make_config(**TINY)
    raw = si.generate("train", config)
    assert loaded["image"].shape == (40, 32, 32, 3) and loaded["image"].dtype == np.uint8
    np.testing.assert_array_equal(loaded["label"], raw["label"])
    # Stored as JPEG bytes, decoded with PIL: exactly the decoded JPEG of the generator's pixels.
    decoded = np.stack(
        [si.decode_jpeg(si.encode_jpeg(x, config.jpeg_quality)) for x in raw["image"]]
    )
    np.testing.assert_array_equal(loaded["image"], decoded)
    # JPEG (4:2:0 chroma, quality 90) smooths the pixel noise away but keeps the picture.
    error = np.abs(loaded["image"].astype(int) - raw["image"]).mean()
    assert error < 20 and np.corrcoef(loaded["image"].ravel(), raw["image"].ravel())[0, 1] > 0.9
    # The raw bytes are JPEG (the same decode path as ImageNet's).
    src = data.source(
        "hjepa_shapes_images",
        "test",
        data_dir,
        decoders={"image": tfds.decode.SkipDecoding()},
        **TINY,
    )
    assert len(src) == 12 and src[0]["image"][:2] == b"\xff\xd8"
    assert (data_dir / "hjepa_shapes_images" / config.name / "1.0.0").is_dir()


def test_registered_with_the_other_builders():
    assert data.BUILDERS["hjepa_shapes_images"][0] is data.HjepaShapesImages
    assert tfds.builder_cls("hjepa_shapes_images") is data.HjepaShapesImages
    assert data.ShapesImagesConfig is si.ShapesImagesConfig
    assert si.make_config().name == "default" and si.make_config(**TINY).name.startswith("custom_")


def test_configs_unpickle_as_tfds_requires():
    # grain pickles data sources (and their builder) into its worker processes; tfds then
    # requires the registered default config to come back as the class's own object.
    assert pickle.loads(pickle.dumps(si.DEFAULT_CONFIG)) is si.DEFAULT_CONFIG
    custom = si.make_config(**TINY)
    again = pickle.loads(pickle.dumps(custom))
    assert again.name == custom.name and again.image_size == 32
