"""Tests for hjepa_jax.data.images: the grain image pipeline.

In-memory sources of a few dozen small images (of different sizes), and a tiny
hjepa_shapes_images built under pytest's tmp_path; one test starts a grain worker process.
"""

import multiprocessing

import jax
import numpy as np
import pytest

from hjepa_jax import data
from hjepa_jax.data import images as im
from hjepa_jax.data import shapes_images as si

TINY = dict(num_train=48, num_test=10, seed=2, image_size=32)


def _source(n: int = 40, seed: int = 0) -> im.ArraySource:
    """n random uint8 images of sizes 12..60 (some grayscale), label i = row i."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        h, w = (int(s) for s in rng.integers(12, 60, 2))
        shape = (h, w) if i % 7 == 3 else (h, w, 3)
        images.append(rng.integers(0, 256, shape, dtype=np.uint8))
    return im.ArraySource(images, np.arange(n))


def _train(src, **kw):
    args = dict(batch_size=8, image_size=16, seed=3, process_index=0, process_count=1)
    return im.train_loader(src, **{**args, **kw})


def _take(it, n):
    return [next(it) for _ in range(n)]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert set(x) == set(y)
        for k in x:
            np.testing.assert_array_equal(np.asarray(x[k]), np.asarray(y[k]), err_msg=k)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


# ---- naming and opening ----


def test_parse_dataset():
    assert im.parse_dataset("imagenet2012") == ("imagenet2012", "train")
    assert im.parse_dataset("imagenet2012:validation") == ("imagenet2012", "validation")
    assert im.parse_dataset("cifar10:test[:10%]") == ("cifar10", "test[:10%]")
    assert im.parse_dataset("imagenet2012:5.1.0") == ("imagenet2012:5.1.0", "train")
    assert im.parse_dataset("imagenette/320px-v2:1.0.0:validation", "test") == (
        "imagenette/320px-v2:1.0.0",
        "validation",
    )
    assert im.parse_dataset("hjepa_shapes_images", default_split="test")[1] == "test"
    with pytest.raises(ValueError, match="parse_dataset"):
        im.parse_dataset(":train")


def test_not_prepared_datasets_raise_a_named_error(tmp_path):
    with pytest.raises(data.DatasetNotPreparedError, match="tfds build imagenette"):
        im.image_source("imagenette", "train", tmp_path)
    with pytest.raises(data.DatasetNotPreparedError, match="neither a tfds builder"):
        im.image_source("no_such_dataset_hjepa", "train", tmp_path)


def test_image_source_keeps_jpeg_bytes(data_dir):
    src = im.image_source("hjepa_shapes_images", "train", data_dir, **TINY)
    row = src[0]
    assert len(src) == 48 and isinstance(row["image"], bytes) and row["image"][:2] == b"\xff\xd8"
    raw = si.generate("train", si.make_config(**TINY))
    np.testing.assert_array_equal(
        si.decode_jpeg(row["image"]),
        data.load("hjepa_shapes_images", "train[:1]", data_dir, **TINY)["image"][0],
    )
    assert int(row["label"]) == raw["label"][0]


# ---- crops ----


def test_random_resized_crop_box_follows_the_ranges():
    rng = np.random.default_rng(0)
    fractions, ratios = [], []
    for _ in range(500):
        hh = int(rng.integers(60, 400))
        ww = int(hh * rng.uniform(0.6, 1.6))  # photo-like: the 10 tries rarely all miss
        top, left, h, w = im.random_resized_crop_box(rng, hh, ww, (0.3, 1.0), (3 / 4, 4 / 3))
        assert 0 <= top and top + h <= hh and 0 <= left and left + w <= ww and h > 0 and w > 0
        fractions.append(h * w / (hh * ww))
        ratios.append(w / h)
    # The fallback (whole image clamped to the ratio) aside, area in [0.3, 1] up to rounding.
    assert np.quantile(fractions, 0.02) >= 0.27 and max(fractions) <= 1.0
    assert np.quantile(ratios, 0.02) >= 0.7 and np.quantile(ratios, 0.98) <= 1.4


def test_center_crop_and_crop_resize():
    assert im.center_crop_box(256, 320, (224, 224)) == (16, 48, 224, 224)
    assert im.center_crop_box(100, 50, (32, 32), 1.0) == (25, 0, 50, 50)
    x = np.zeros((10, 20, 3), np.uint8)
    x[:, 10:] = 255
    out = im.crop_resize(x, (0, 0, 10, 20), (5, 10))
    assert out.shape == (5, 10, 3) and out.dtype == np.uint8
    assert out[:, 0].max() == 0 and out[:, -1].min() == 255
    flipped = im.crop_resize(x, (0, 0, 10, 20), (5, 10), flip=True)
    np.testing.assert_array_equal(flipped, out[:, ::-1])
    # JPEG bytes take the same path (decoded at reduced scale when the crop allows it).
    big = np.tile(np.linspace(0, 255, 256, dtype=np.uint8)[None, :, None], (256, 1, 3))
    small = im.crop_resize(si.encode_jpeg(big), (0, 0, 256, 256), (32, 32))
    assert small.shape == (32, 32, 3) and abs(int(small[:, -1].mean()) - 250) < 8


# ---- training batches ----


def test_train_batches_have_fixed_shapes_from_images_of_different_sizes():
    it = iter(_train(_source()))
    for batch in _take(it, 6):  # more than one epoch of 40 rows
        assert batch["image"].shape == (8, 16, 16, 3) and batch["image"].dtype == np.float32
        assert batch["label"].shape == (8,) and batch["label"].dtype == np.int32
        assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    norm = next(iter(_train(_source(), mean=im.IMAGENET_MEAN, std=im.IMAGENET_STD)))
    first = next(iter(_train(_source())))
    expected = (first["image"] - np.float32(im.IMAGENET_MEAN)) / np.float32(im.IMAGENET_STD)
    np.testing.assert_allclose(norm["image"], expected, rtol=1e-5, atol=1e-5)
    raw = next(iter(_train(_source(), dtype="uint8")))
    assert raw["image"].dtype == np.uint8
    np.testing.assert_allclose(raw["image"] / np.float32(255), first["image"], rtol=1e-6)
    with pytest.raises(ValueError, match="train_loader: mean and std need"):
        _train(_source(), dtype="uint8", mean=im.IMAGENET_MEAN)


def test_train_is_deterministic_shuffled_and_covers_each_epoch():
    a = _take(iter(_train(_source())), 10)
    b = _take(iter(_train(_source())), 10)
    _same(a, b)
    c = _take(iter(_train(_source(), seed=4)), 10)
    assert not np.array_equal(a[0]["label"], c[0]["label"])
    # 40 rows, batches of 8: each epoch (5 batches) visits every row once, in a new order.
    epoch0 = np.concatenate([x["label"] for x in a[:5]])
    epoch1 = np.concatenate([x["label"] for x in a[5:]])
    assert sorted(epoch0) == sorted(epoch1) == list(range(40))
    assert not np.array_equal(epoch0, epoch1) and not np.array_equal(epoch0, np.arange(40))


def test_resuming_from_a_saved_state_gives_the_same_next_batches():
    it = iter(_train(_source()))
    _take(it, 3)
    state = it.get_state()
    expected = _take(it, 6)  # across the epoch boundary
    fresh = iter(_train(_source()))
    fresh.set_state(state)
    _same(_take(fresh, 6), expected)


def test_hosts_read_disjoint_shards_and_a_global_batch_splits_over_them():
    src = _source(41)
    hosts = [_train(src, process_index=p, process_count=2) for p in range(2)]
    batches = [_take(iter(h), 5) for h in hosts]  # 20 rows per host and epoch: 5 batches of 4
    for b in batches[0] + batches[1]:
        assert b["image"].shape == (4, 16, 16, 3)
    rows = [np.concatenate([b["label"] for b in host]) for host in batches]
    assert sorted(rows[0]) == list(range(20)) and sorted(rows[1]) == list(range(20, 40))
    with pytest.raises(ValueError, match="train_loader: batch_size 7"):
        _train(src, batch_size=7, process_index=0, process_count=2)


def test_workers_decode_tfds_jpegs_and_resume_exactly(data_dir):
    src = im.image_source("hjepa_shapes_images", "train", data_dir, **TINY)
    kw = dict(batch_size=6, image_size=24, seed=0, worker_count=1, process_index=0, process_count=1)
    it = iter(im.train_loader(src, **kw))
    first = _take(it, 2)
    state = it.get_state()
    expected = _take(it, 3)
    assert first[0]["image"].shape == (6, 24, 24, 3)
    fresh = iter(im.train_loader(src, **kw))
    fresh.set_state(state)
    _same(_take(fresh, 3), expected)
    # One worker or none: the same batches (each example's draws depend on its position only).
    inline = _take(iter(im.train_loader(src, **{**kw, "worker_count": 0})), 5)
    _same(inline, first + expected)


# ---- evaluation ----


def test_eval_covers_every_row_once_in_order_with_padding_masks():
    src = _source(23)
    loaders = [
        im.eval_loader(src, batch_size=8, image_size=16, process_index=p, process_count=2)
        for p in range(2)
    ]
    assert [ld.num_batches for ld in loaders] == [3, 3]  # ceil(ceil(23 / 2) / 4)
    seen = []
    for ld in loaders:
        batches = list(ld)
        assert len(batches) == ld.num_batches
        for b in batches:
            assert b["image"].shape == (4, 16, 16, 3) and b["mask"].dtype == bool
            assert not b["image"][~b["mask"]].any()
            seen += list(b["label"][b["mask"]])
    assert seen == list(range(23))
    # No randomness: two passes agree.
    _same(list(loaders[0]), list(loaders[0]))
    one = next(
        iter(
            im.eval_loader(
                src,
                batch_size=4,
                image_size=16,
                crop_fraction=1.0,
                process_index=0,
                process_count=1,
            )
        )
    )
    box = im.center_crop_box(*src[0]["image"].shape[:2], (16, 16), 1.0)
    pixels = im.crop_resize(src[0]["image"], box, (16, 16))
    np.testing.assert_allclose(one["image"][0], pixels / 255, rtol=1e-6)


# ---- to the devices ----


def test_prefetch_to_device_keeps_order_and_an_exact_state():
    plain = _take(iter(_train(_source())), 7)
    it = iter(_train(_source()))
    dev = im.prefetch_to_device(it, size=2)
    got = _take(dev, 3)
    assert isinstance(got[0]["image"], jax.Array)
    _same(got, plain[:3])
    state = dev.get_state()  # after the 3 returned, though more were prefetched
    fresh = im.prefetch_to_device(iter(_train(_source())), size=3)
    fresh.set_state(state)
    _same(_take(fresh, 4), plain[3:])
    dev.close()  # nothing is lost: next continues after the last returned batch
    _same(_take(dev, 2), plain[3:5])
    dev.close()
    fresh.close()
    # With a sharding: a global array from this process's rows.
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    put = im.prefetch_to_device(iter(_train(_source())), sharding=sharding)
    batch = next(put)
    assert batch["image"].sharding == sharding and batch["image"].shape == (8, 16, 16, 3)
    put.close()
    # Iterators without state and their end.
    ev = im.prefetch_to_device(
        iter(
            im.eval_loader(_source(5), batch_size=4, image_size=8, process_index=0, process_count=1)
        )
    )
    assert len(list(ev)) == 2
    with pytest.raises(TypeError):
        ev.get_state()


def test_closing_a_stream_stops_its_grain_workers():
    """`BatchStream.close` and the end of an eval pass stop grain's worker processes. (Left
    running, they are stopped at interpreter exit, after multiprocessing has closed their
    queues: each prints "OSError: handle is closed" and leaks its shared memory.)"""
    src = _source()
    stream = im.BatchStream(im.prefetch_to_device(iter(_train(src, worker_count=1))), 8)
    next(stream)
    assert multiprocessing.active_children()  # the worker
    stream.close()
    assert not multiprocessing.active_children()
    kw = dict(batch_size=8, image_size=16, worker_count=1, process_index=0, process_count=1)
    batches = iter(im.eval_loader(src, **kw))
    next(batches)
    assert multiprocessing.active_children()
    assert sum(1 for _ in batches) == 4  # the rest of the pass (40 rows)
    assert not multiprocessing.active_children()
