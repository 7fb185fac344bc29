"""Two Rooms offline data: random-policy trajectories as a local tfds dataset.

Rows are trajectories of `hjepa_jax.envs.two_rooms.random_trajectories` (a persistent,
slowly turning heading, steps of about 1 px; optionally a fraction aimed through a door, a
fraction pushing into a wall beside it, and a fraction of the free walk started so as to
cross a door, as EB-JEPA's data), each in its own layout drawn by the config's `layout`
(`envs.two_rooms.LAYOUTS`: "random", "fixed", "three_rooms", "three_rooms_fixed",
"four_rooms_fixed" or "mixed": half random walls, half three rooms). No
expert data: nothing in a trajectory knows a goal.

Observations are not stored: an observation is a pure function of (position, layout),
`envs.two_rooms.render_position`, rendered on demand (inside the jitted loss, say). A row is
about 330 bytes instead of the 575 KB of its 17 float32 frames of 65 x 65 x 2.

    arrays = hj.data.load("hjepa_two_rooms", "train", num_train=1000, layout="fixed")
    data = hj.data.two_rooms.trajectories(arrays)   # envs.two_rooms.Trajectories
    frames = jax.vmap(jax.vmap(render_position, (0, None, None)), (0, 0, None))(
        data.positions, data.layouts, EnvParams())  # [N, T + 1, 65, 65, 2]

`generate` is a function of the config (jax's threefry keys; the float dynamics may differ
in the last bits between backends); the train and test splits draw from independent keys,
fold_in(PRNGKey(seed), 0) and fold_in(PRNGKey(seed), 1).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds

from hjepa_jax.data import configs
from hjepa_jax.envs import two_rooms as env

__all__ = [
    "DEFAULT_CONFIG",
    "HjepaTwoRooms",
    "TwoRoomsConfig",
    "generate",
    "make_config",
    "trajectories",
]


@dataclasses.dataclass(eq=False)
class TwoRoomsConfig(tfds.core.BuilderConfig):
    """Attributes:
    seed: all randomness (train and test draw from independent keys of it).
    num_train, num_test: trajectories per split.
    length: T, actions per trajectory (T + 1 positions).
    layout: a name in `envs.two_rooms.LAYOUTS`.
    door_frac: fraction aimed through a door; wall_frac: fraction pushing into a wall.
    policy: the free walk, "turn" or "open_loop" (EB-JEPA's; `envs.two_rooms.POLICIES`).
    cross_frac: fraction of the free walk started so as to cross a door (EB-JEPA's 0.35).
    """

    seed: int = 0
    num_train: int = 10000
    num_test: int = 400
    length: int = 16
    layout: str = "mixed"
    door_frac: float = 0.3
    wall_frac: float = 0.2
    policy: str = "turn"
    cross_frac: float = 0.0


DEFAULT_CONFIG = TwoRoomsConfig(name="default", description="10000 / 400 mixed layouts, seed 0")


def make_config(**settings) -> TwoRoomsConfig:
    """The registered default for default settings, else a config named by their hash."""
    return configs.named_config(DEFAULT_CONFIG, **settings)


def _check(config: TwoRoomsConfig) -> None:
    if config.layout not in env.LAYOUTS:
        raise ValueError(f"layout must be among {tuple(env.LAYOUTS)}, got {config.layout!r}")
    if min(config.num_train, config.num_test, config.length) < 1:
        raise ValueError(
            f"num_train ({config.num_train}), num_test ({config.num_test}) and length "
            f"({config.length}) must be >= 1"
        )
    env.check_fractions("two_rooms", config.door_frac, config.wall_frac, config.cross_frac)
    if config.policy not in env.POLICIES:
        raise ValueError(f"policy must be among {tuple(env.POLICIES)}, got {config.policy!r}")


def generate(split: str, config: TwoRoomsConfig = DEFAULT_CONFIG) -> dict[str, np.ndarray]:
    """One split as arrays, exactly what the tfds builder stores (N trajectories, T = length).

    Returns:
      position: [N, T + 1, 2] float32, (x, y) pixels.
      action:   [N, T, 2] float32, clipped to the action bound.
      wall_x, door_y: [N, 3] float32; wall_on: [N, 3] bool; kind: [N] int32 (the `Layout`).
      aimed:    [N] bool, the trajectory was steered through a door or started to cross one.
    """
    _check(config)
    index = {"train": 0, "test": 1}[split]
    num = config.num_train if split == "train" else config.num_test
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), index)
    data = env.random_trajectories(
        key,
        env.EnvParams(),
        env.LAYOUTS[config.layout],
        num,
        config.length,
        config.door_frac,
        config.wall_frac,
        config.policy,
        config.cross_frac,
    )
    lay = data.layouts
    return {
        "position": np.asarray(data.positions, np.float32),
        "action": np.asarray(data.actions, np.float32),
        "wall_x": np.asarray(lay.wall_x, np.float32),
        "door_y": np.asarray(lay.door_y, np.float32),
        "wall_on": np.asarray(lay.wall_on, bool),
        "kind": np.asarray(lay.kind, np.int32),
        "aimed": np.asarray(data.aimed, bool),
    }


def trajectories(arrays: dict[str, np.ndarray]) -> env.Trajectories:
    """Arrays of `generate` (or `hj.data.load("hjepa_two_rooms", ...)`) as the environment's
    `Trajectories` (jax arrays, one `Layout` per row)."""
    layouts = env.Layout(
        wall_x=jnp.asarray(arrays["wall_x"], jnp.float32),
        door_y=jnp.asarray(arrays["door_y"], jnp.float32),
        wall_on=jnp.asarray(arrays["wall_on"], bool),
        kind=jnp.asarray(arrays["kind"], jnp.int32),
    )
    return env.Trajectories(
        positions=jnp.asarray(arrays["position"], jnp.float32),
        actions=jnp.asarray(arrays["action"], jnp.float32),
        layouts=layouts,
        aimed=jnp.asarray(arrays["aimed"], bool),
    )


class HjepaTwoRooms(tfds.core.GeneratorBasedBuilder):
    """tfds builder `hjepa_two_rooms`: generated locally, nothing is downloaded."""

    VERSION = tfds.core.Version("1.2.0")
    RELEASE_NOTES = {
        "1.0.0": "First release: random-policy trajectories (positions, actions, layouts).",
        "1.1.0": "Three wall slots (four rooms in a row); start draws redrawn in every layout.",
        "1.2.0": "One- and two-wall rows as in 1.0.0 again; four-room rows as in 1.1.0.",
    }
    BUILDER_CONFIGS = [DEFAULT_CONFIG]
    code_path = None  # as in HjepaMovingShapes: no source files, no checksums

    def _info(self) -> tfds.core.DatasetInfo:
        t = self.builder_config.length
        tensor = tfds.features.Tensor
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "position": tensor(shape=(t + 1, 2), dtype=np.float32),
                    "action": tensor(shape=(t, 2), dtype=np.float32),
                    "wall_x": tensor(shape=(env.MAX_WALLS,), dtype=np.float32),
                    "door_y": tensor(shape=(env.MAX_WALLS,), dtype=np.float32),
                    "wall_on": tensor(shape=(env.MAX_WALLS,), dtype=np.bool_),
                    "kind": tensor(shape=(), dtype=np.int32),
                    "aimed": tensor(shape=(), dtype=np.bool_),
                }
            ),
            disable_shuffling=True,  # row i of a split is trajectory i of `generate`
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {split: self._generate_examples(split) for split in ("train", "test")}

    def _generate_examples(self, split):
        arrays = generate(split, self.builder_config)
        for i in range(len(arrays["position"])):
            yield i, {k: v[i] for k, v in arrays.items()}
