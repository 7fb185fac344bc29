"""hjepa_jax.data.two_rooms: the Two Rooms offline trajectories as a local tfds dataset."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hjepa_jax as hj
from hjepa_jax.data import configs
from hjepa_jax.data import two_rooms as ds
from hjepa_jax.envs import two_rooms as tr

SMALL = dict(num_train=64, num_test=16, length=12, seed=5)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="module")
def train(data_dir):
    return hj.data.load("hjepa_two_rooms", "train", data_dir, **SMALL)


def test_load_equals_generate_and_the_environments_own_trajectories(data_dir, train):
    config = ds.make_config(**SMALL)
    again = ds.generate("train", config)
    assert set(train) == set(again)
    for k in again:
        assert train[k].dtype == again[k].dtype, k
        np.testing.assert_array_equal(train[k], again[k], err_msg=k)
    assert train["position"].shape == (64, 13, 2) and train["action"].shape == (64, 12, 2)
    assert train["wall_x"].shape == (64, tr.MAX_WALLS) and train["kind"].shape == (64,)
    # Row i is trajectory i of random_trajectories under the split's key.
    key = jax.random.fold_in(jax.random.PRNGKey(5), 0)
    direct = tr.random_trajectories(key, tr.EnvParams(), tr.mixed_layout, 64, 12, 0.3, 0.2)
    mine = ds.trajectories(train)
    for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(direct), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    test = hj.data.load("hjepa_two_rooms", "test", data_dir, **SMALL)
    assert test["position"].shape == (16, 13, 2)
    assert not np.array_equal(test["position"], train["position"][:16])
    other = ds.generate("train", ds.make_config(**{**SMALL, "seed": 6}))
    assert not np.array_equal(other["position"], train["position"])
    assert config.name.startswith("custom_") and ds.make_config().name == "default"
    assert (data_dir / "hjepa_two_rooms" / config.name / str(ds.HjepaTwoRooms.VERSION)).is_dir()


def test_stored_positions_replay_from_the_stored_actions(train):
    """Independent of the generator: the env's `step` from each stored start, driven by the
    stored actions, lands on every stored position (walls and doors of the stored layout)."""
    data = ds.trajectories(train)
    state = tr.EnvState(
        position=data.positions[:, 0],
        goal=data.positions[:, -1],
        layout=data.layouts,
        t=jnp.zeros(len(data.aimed), jnp.int32),
    )
    step = jax.jit(jax.vmap(lambda s, a: tr.step(s, a, tr.EnvParams())[0]))
    replay = [state.position]
    for t in range(data.actions.shape[1]):
        state = step(state, data.actions[:, t])
        replay.append(state.position)
    np.testing.assert_allclose(np.stack(replay, 1), train["position"], atol=1e-4)


@pytest.mark.parametrize(
    "layout, kinds", [("fixed", {1}), ("three_rooms", {2}), ("mixed", {0, 2}), ("random", {0})]
)
def test_layout_setting_picks_the_layouts(layout, kinds):
    arrays = ds.generate("test", ds.make_config(num_test=64, length=2, layout=layout))
    assert set(arrays["kind"].tolist()) == kinds
    on = arrays["wall_on"]
    np.testing.assert_array_equal(on[:, 1], arrays["kind"] == tr.LayoutKind.THREE_ROOMS)
    assert not on[:, 2].any()  # the third slot: four rooms only
    if layout == "fixed":
        np.testing.assert_array_equal(arrays["wall_x"][:, 0], 32.0)
        np.testing.assert_array_equal(arrays["door_y"][:, 0], 18.0)


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"layout": "four_rooms"}, "layout must be among"),
        ({"num_train": 0}, "must be >= 1"),
        ({"length": 0}, "must be >= 1"),
        ({"door_frac": 0.7, "wall_frac": 0.4}, "is above 1"),
        ({"door_frac": 0.3, "wall_frac": 0.2, "cross_frac": 0.6}, "is above 1"),
        ({"wall_frac": -0.1}, "wall_frac must be finite and >= 0"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(settings, match):
    with pytest.raises(ValueError, match=match):
        ds.generate("train", ds.make_config(**settings))


def test_named_config_is_the_default_unless_a_setting_changes():
    assert configs.named_config(ds.DEFAULT_CONFIG) is ds.DEFAULT_CONFIG
    assert configs.named_config(ds.DEFAULT_CONFIG, seed=0, layout="mixed") is ds.DEFAULT_CONFIG
    a = configs.named_config(ds.DEFAULT_CONFIG, seed=1)
    b = configs.named_config(ds.DEFAULT_CONFIG, seed=2)
    assert a.name != b.name and a.name == configs.named_config(ds.DEFAULT_CONFIG, seed=1).name
    assert configs.settings(a)["seed"] == 1 and '"seed": 1' in a.description
