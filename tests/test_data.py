"""Tests for hjepa_jax.data: local tfds builders, load, Batches, augmentations.

Every dataset is built under pytest's tmp_path, never in the user's tfds data dir.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from hjepa_jax import data
from hjepa_jax.data import moving_shapes as ms

SMALL = dict(num_train=96, num_test=24, seed=3)  # a quick moving-shapes config


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="module")
def digits_train(data_dir):
    return data.load("hjepa_digits", "train", data_dir)


# ---- digits ----


def test_digits_shapes_and_equal_sklearn(data_dir, digits_train):
    from sklearn.datasets import load_digits

    test = data.load("hjepa_digits", "test", data_dir)
    train = digits_train
    assert train["image"].shape == (1500, 8, 8, 1) and train["image"].dtype == np.float32
    assert test["image"].shape == (297, 8, 8, 1)
    assert train["label"].dtype == np.int64 and set(np.unique(train["label"])) == set(range(10))
    assert 0.0 <= train["image"].min() and train["image"].max() <= 1.0
    sk = load_digits()
    for split in (train, test):
        np.testing.assert_array_equal(split["image"][..., 0] * 16, sk.images[split["index"]])
        np.testing.assert_array_equal(split["label"], sk.target[split["index"]])
    # A partition of sklearn's 1797 rows, fixed by the seed.
    assert sorted(np.concatenate([train["index"], test["index"]])) == list(range(1797))
    np.testing.assert_array_equal(train["index"], data.digits.split_indices(0, 297)["train"])


def test_builders_are_registered_without_clashes():
    names = tfds.list_builders(with_community_datasets=False)
    assert "hjepa_digits" in names and "hjepa_moving_shapes" in names
    assert tfds.builder_cls("hjepa_digits") is data.HjepaDigits
    b = data.HjepaMovingShapes
    assert str(b.VERSION) in b.RELEASE_NOTES


# ---- moving shapes ----


@pytest.fixture(scope="module")
def shapes(data_dir):
    return data.load("hjepa_moving_shapes", "train", data_dir, **SMALL)


def test_moving_shapes_load_equals_generate_and_is_deterministic(data_dir, shapes):
    config = ms.make_config(**SMALL)
    again = ms.generate("train", config)
    assert set(shapes) == set(again)
    for k in again:
        assert shapes[k].dtype == again[k].dtype, k
        np.testing.assert_array_equal(shapes[k], again[k], err_msg=k)
    other = ms.generate("train", ms.make_config(**{**SMALL, "seed": 4}))
    assert not np.array_equal(other["position"], again["position"])
    test = data.load("hjepa_moving_shapes", "test", data_dir, **SMALL)
    assert test["video"].shape == (24, 16, 32, 32, 1) and test["video"].dtype == np.uint8
    assert shapes["position"].shape == (96, 16, 2) and shapes["event"].shape == (96, 16)
    # A custom config lives in its own folder; the default keeps the name "default".
    assert config.name.startswith("custom_") and ms.make_config().name == "default"
    assert (data_dir / "hjepa_moving_shapes" / config.name / "1.0.0").is_dir()


def test_moving_shapes_physics(shapes):
    c = ms.make_config(**SMALL)
    p, v, bounce, event = shapes["position"], shapes["velocity"], shapes["bounce"], shapes["event"]
    assert p.min() >= c.radius - 1e-4 and p.max() <= c.size - c.radius + 1e-4
    # Positions move by the previous velocity, except where the shape bounced off a wall.
    free = ~bounce[:, 1:]
    np.testing.assert_allclose((p[:, 1:] - p[:, :-1])[free], v[:, :-1][free], atol=1e-4)
    # Velocity is constant except at bounces and random events; speed is always conserved.
    calm = ~(bounce | event)[:, 1:]
    np.testing.assert_allclose(v[:, 1:][calm], v[:, :-1][calm], atol=1e-5)
    speed = np.linalg.norm(v, axis=-1)
    np.testing.assert_allclose(speed, speed[:, :1].repeat(16, 1), rtol=1e-5)
    assert ((c.speed[0] <= speed) & (speed <= c.speed[1])).all()


def test_moving_shapes_future_is_multimodal(shapes):
    v, bounce, event = shapes["velocity"], shapes["bounce"], shapes["event"]
    before, after = v[:, :-1], v[:, 1:]
    flipped = np.isclose(after, -before, atol=1e-5)  # [N, T-1, 2] per component
    # Wall bounces: the same approach leads to a specular or a retro reflection.
    at_wall = bounce[:, 1:] & event[:, 1:]
    retro = at_wall & flipped.all(-1)
    specular = at_wall & (flipped.sum(-1) == 1)
    assert retro.sum() > 5 and specular.sum() > 5
    assert (retro | specular).sum() >= 0.9 * at_wall.sum()  # the rest: corner hits
    # Free-flight events: +-90 degree turns to both sides.
    turn = event[:, 1:] & ~bounce[:, 1:]
    cross = before[..., 0] * after[..., 1] - before[..., 1] * after[..., 0]
    np.testing.assert_allclose((before * after).sum(-1)[turn], 0, atol=1e-4)
    assert (cross[turn] > 0).any() and (cross[turn] < 0).any()
    # With no randomness the flag is never set.
    calm = ms.generate("test", ms.make_config(num_test=20, turn_prob=0.0, retro_prob=0.0))
    assert not calm["event"].any() and calm["bounce"].any()


def test_moving_shapes_frames_show_the_shape_at_its_position(shapes):
    video = shapes["video"][..., 0].astype(np.float64)  # [N, T, H, W]
    grid = np.arange(32) + 0.5
    mass = video.sum((-1, -2))
    centroid = np.stack(
        [(video.sum(-1) * grid).sum(-1) / mass, (video.sum(-2) * grid).sum(-1) / mass], -1
    )
    np.testing.assert_allclose(centroid, shapes["position"], atol=0.1)
    area = mass / 255
    is_disc = shapes["shape"][:, None] == ms.DISC
    np.testing.assert_allclose(area[~is_disc.repeat(16, 1)], 36.0, atol=0.5)  # (2 r)^2
    np.testing.assert_allclose(area[is_disc.repeat(16, 1)], np.pi * 9, rtol=0.05)


def test_moving_shapes_two_shapes():
    config = ms.make_config(num_test=8, num_shapes=2)
    out = ms.generate("test", config)
    assert out["position"].shape == (8, 16, 2, 2) and out["event"].shape == (8, 16, 2)
    assert out["shape"].shape == (8, 2) and out["video"].shape == (8, 16, 32, 32, 1)


# ---- load ----


def test_load_respects_tfds_data_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    out = data.load("hjepa_moving_shapes", "test[:4]", num_train=8, num_test=8)
    assert out["video"].shape == (4, 16, 32, 32, 1)
    assert data.resolve_data_dir() == str(tmp_path)
    assert any((tmp_path / "hjepa_moving_shapes").iterdir())


def test_concurrent_first_loads_share_one_build(tmp_path):
    # Hosts on a shared disk may all build at once: one wins, the others read its files.
    code = (
        "import sys; from hjepa_jax import data; "
        "x = data.load('hjepa_moving_shapes', 'test', sys.argv[1], num_train=8, num_test=64); "
        "print(int(x['video'].sum()))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120)[0].split()[-1] for p in procs]  # tfds logs to stdout
    assert all(p.returncode == 0 for p in procs) and len(set(outs)) == 1, outs
    assert [d.name for d in (tmp_path / "hjepa_moving_shapes").glob("custom_*/*")] == ["1.0.0"]


def test_load_missing_remote_dataset_says_how_to_prepare(tmp_path):
    with pytest.raises(data.DatasetNotPreparedError, match="never downloads") as err:
        data.load("mnist", "train", tmp_path)
    assert "tfds build mnist" in str(err.value) and "array_record" in str(err.value)
    assert not (tmp_path / "downloads").exists()


def test_load_mnist_through_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=12):
        out = data.load("mnist", "train", tmp_path)
    assert out["image"].shape == (12, 28, 28, 1) and out["image"].dtype == np.uint8
    assert out["label"].shape == (12,) and out["label"].dtype == np.int64
    with tfds.testing.mock_data(num_examples=12):
        batch = next(data.Batches(data.source("mnist", "test", tmp_path), 4, seed=0))
    assert batch["image"].shape == (4, 28, 28, 1)


# ---- Batches ----


def _table(n=10):
    return {"x": np.arange(n), "y": {"z": np.arange(n) * 10.0}}


def test_batches_cover_every_example_once_per_epoch():
    it = data.Batches(_table(), 3, seed=0, drop_remainder=False, process_count=1, process_index=0)
    assert it.steps_per_epoch == 4 and it.global_batch_size == 3 == it.local_batch_size
    epochs = [np.concatenate([next(it)["x"] for _ in range(4)]) for _ in range(3)]
    for e in epochs:
        assert sorted(e) == list(range(10))
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch
    it = data.Batches(_table(), 3, seed=0, process_count=1, process_index=0)
    first = np.concatenate([next(it)["x"] for _ in range(3)])
    assert len(set(first)) == 9 and it.get_state()["epoch"] == 1
    ordered = data.Batches(
        _table(), 5, seed=0, shuffle=False, num_epochs=1, process_count=1, process_index=0
    )
    batches = list(ordered)
    assert [b["x"].tolist() for b in batches] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    np.testing.assert_array_equal(batches[0]["y"]["z"], batches[0]["x"] * 10.0)


@pytest.mark.parametrize("hosts", [2, 4])
def test_host_shards_concatenate_to_the_one_host_batch(hosts):
    one = data.Batches(_table(24), 8, seed=1, process_index=0, process_count=1)
    shards = [
        data.Batches(_table(24), 8, seed=1, process_index=i, process_count=hosts)
        for i in range(hosts)
    ]
    assert shards[0].local_batch_size == 8 // hosts and shards[0].global_batch_size == 8
    for _ in range(7):  # across epoch boundaries
        want = next(one)
        got = [next(s) for s in shards]
        np.testing.assert_array_equal(np.concatenate([g["x"] for g in got]), want["x"])


def test_batches_resume_equals_uninterrupted():
    def make(**kw):
        augment = lambda rng, b: {**b, "noise": rng.normal(size=len(b["x"]))}
        return data.Batches(
            _table(10), 4, seed=5, augment=augment, process_index=0, process_count=1, **kw
        )

    straight = make()
    want = [next(straight) for _ in range(9)]
    it = make()
    for _ in range(4):
        next(it)
    state = json.loads(json.dumps(it.get_state()))
    resumed = make()
    resumed.set_state(state)
    for w in want[4:]:
        got = next(resumed)
        np.testing.assert_array_equal(got["x"], w["x"])
        np.testing.assert_array_equal(got["noise"], w["noise"])
    # On two hosts, from the same state: the same global batch.
    halves = [
        data.Batches(_table(10), 4, seed=5, process_index=i, process_count=2) for i in range(2)
    ]
    for h in halves:
        h.set_state(state)
    np.testing.assert_array_equal(np.concatenate([next(h)["x"] for h in halves]), want[4]["x"])
    with pytest.raises(ValueError, match="seed"):
        data.Batches(_table(10), 4, seed=6, process_index=0, process_count=1).set_state(state)


def test_batches_over_a_tfds_source_match_the_arrays(data_dir, digits_train):
    src = data.source("hjepa_digits", "train", data_dir)
    a = data.Batches(src, 32, seed=0)  # process index and count from jax
    b = data.Batches(digits_train, 32, seed=0)
    assert a.local_batch_size == 32 and a.steps_per_epoch == 1500 // 32
    for _ in range(2):
        x, y = next(a), next(b)
        for k in y:
            assert x[k].dtype == y[k].dtype
            np.testing.assert_array_equal(x[k], y[k])


def test_batches_reject_bad_sizes():
    with pytest.raises(ValueError, match="multiple"):
        data.Batches(_table(), 3, seed=0, process_index=0, process_count=2)
    with pytest.raises(ValueError, match="no batch"):
        data.Batches(_table(), 11, seed=0, process_index=0, process_count=1)


# ---- augmentations ----


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
@pytest.mark.parametrize("shape", [(6, 8, 8, 1), (6, 4, 8, 8, 3)])
@pytest.mark.parametrize("fn", [data.random_crop, data.gaussian_noise, data.random_erasing])
def test_augmentations_keep_shape_and_dtype(fn, shape, dtype):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, shape)
    x = (x * 255).astype(np.uint8) if dtype == np.uint8 else x.astype(np.float32)
    y = fn(np.random.default_rng(1), x)
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_array_equal(y, fn(np.random.default_rng(1), x))  # deterministic
    assert y.min() >= 0 and (y.max() <= 1 if dtype == np.float32 else True)


def test_random_crop_shifts_whole_videos():
    rng = np.random.default_rng(0)
    frame = rng.uniform(size=(5, 1, 8, 8, 1)).astype(np.float32)
    video = np.repeat(frame, 3, axis=1)  # [B, T, H, W, C], every frame the same
    out = data.random_crop(np.random.default_rng(2), video, pad=2, mode="constant")
    np.testing.assert_array_equal(out[:, 0], out[:, 2])  # one shift per video
    assert not np.array_equal(out, video)
    np.testing.assert_array_equal(data.random_crop(rng, video, pad=0), video)
    # A shifted image is a window of the padded one.
    one = data.random_crop(np.random.default_rng(3), frame[:1, 0], pad=2, mode="constant")
    padded = np.pad(frame[0, 0], ((2, 2), (2, 2), (0, 0)))
    assert any(
        np.array_equal(one[0], padded[i : i + 8, j : j + 8]) for i in range(5) for j in range(5)
    )


def test_random_erasing_fills_one_rectangle():
    x = np.ones((16, 10, 10, 1), np.float32)
    y = data.random_erasing(np.random.default_rng(0), x, prob=1.0, size=(0.3, 0.5))
    for img in y[..., 0]:
        rows, cols = np.nonzero(img == 0)
        h, w = np.ptp(rows) + 1, np.ptp(cols) + 1
        assert 3 <= h <= 5 and 3 <= w <= 5 and len(rows) == h * w
    np.testing.assert_array_equal(data.random_erasing(np.random.default_rng(0), x, prob=0.0), x)


def test_apply_to_for_batches():
    table = {"image": np.zeros((8, 8, 8, 1), np.float32), "label": np.arange(8)}
    augment = data.apply_to("image", data.gaussian_noise, data.random_erasing)
    it = data.Batches(table, 4, seed=0, augment=augment, process_index=0, process_count=1)
    batch = next(it)
    assert batch["image"].shape == (4, 8, 8, 1) and batch["image"].std() > 0
    assert table["image"].std() == 0  # the source is not modified
    np.testing.assert_array_equal(batch["label"], it.local_indices(0, 0))
