"""Moving shapes: short videos of a square or disc bouncing in a box, with random events.

A world-model toy whose future is multimodal. Each shape moves with constant velocity; on
leaving the box it bounces off the wall, and two kinds of random events make the next frames
ambiguous given the past:

  * at a (single) wall bounce the shape either reflects specularly (the velocity component
    normal to the wall flips) or, with probability `retro_prob`, retro-reflects (both
    components flip: it goes back the way it came);
  * in free flight, with probability `turn_prob` per frame, the velocity turns by +90 or -90
    degrees (each with probability 1/2).

Dynamics, per shape, frame t = 1 .. T-1 (positions p in pixels, (row, col), box [0, size]^2,
centres kept in [radius, size - radius]; speed |v| is conserved by every event):

    p_t = reflect(p_{t-1} + v_{t-1})        # mirror about the wall it crossed, if any
    v_t = v_{t-1} with the crossed components flipped, then the random event applied

so p_t - p_{t-1} == v_{t-1} on every frame without a bounce, and v_t == v_{t-1} on every
frame with neither a bounce nor an event.

`generate` is pure numpy and deterministic given the seed; `HjepaMovingShapes` stores its
output as a local tfds dataset (array_record), read back with `hjepa_jax.data.load`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from hjepa_jax.data import configs

__all__ = [
    "DEFAULT_CONFIG",
    "HjepaMovingShapes",
    "MovingShapesConfig",
    "generate",
    "make_config",
    "render",
    "simulate",
]

SQUARE, DISC = 0, 1
_RENDER_CHUNK = 128  # videos rendered at once (bounds the float32 temporaries)


@dataclasses.dataclass(eq=False)
class MovingShapesConfig(tfds.core.BuilderConfig):
    """Sizes, physics and seed of a moving-shapes dataset (one tfds config per setting).

    Attributes:
      seed: all randomness (train and test draw from independent streams of it).
      num_train, num_test: videos per split.
      num_frames: T.
      size: frames are [size, size] pixels.
      num_shapes: K shapes per video (they pass through each other; drawn with max).
      radius: half side of a square / radius of a disc, pixels.
      speed: (min, max) speed in pixels per frame, drawn uniformly per shape.
      turn_prob: probability per frame of a +-90 degree turn in free flight.
      retro_prob: probability that a wall bounce retro-reflects instead of reflecting.
    """

    seed: int = 0
    num_train: int = 2000
    num_test: int = 500
    num_frames: int = 16
    size: int = 32
    num_shapes: int = 1
    radius: float = 3.0
    speed: tuple[float, float] = (1.0, 2.0)
    turn_prob: float = 0.05
    retro_prob: float = 0.5


DEFAULT_CONFIG = MovingShapesConfig(name="default", description="defaults, seed 0")


def make_config(**settings) -> MovingShapesConfig:
    """The builder config for these settings: the registered default if they are the defaults,
    else one named by a hash of the settings (`configs.named_config`)."""
    return configs.named_config(DEFAULT_CONFIG, **settings)


def _check(config: MovingShapesConfig) -> None:
    lo, hi = config.speed
    span = config.size - 2 * config.radius
    if not 0 < lo <= hi < span:
        raise ValueError(f"speed {config.speed} must satisfy 0 < min <= max < {span} (box span)")
    if config.num_shapes < 1 or config.num_frames < 2:
        raise ValueError("need num_shapes >= 1 and num_frames >= 2")
    if not (0 <= config.turn_prob <= 1 and 0 <= config.retro_prob <= 1):
        raise ValueError("turn_prob and retro_prob are probabilities")


def simulate(
    rng: np.random.Generator, num: int, config: MovingShapesConfig = DEFAULT_CONFIG
) -> dict[str, np.ndarray]:
    """Trajectories of `num` videos (no pixels).

    Returns (K = config.num_shapes, T = config.num_frames):
      position: [num, T, K, 2] float32, (row, col) pixels in [radius, size - radius].
      velocity: [num, T, K, 2] float32, the velocity after frame t's update (see module doc).
      bounce:   [num, T, K] bool, the shape crossed a wall between t-1 and t.
      event:    [num, T, K] bool, a random choice decided v_t (an ambiguous bounce or a turn).
      shape:    [num, K] int32, SQUARE (0) or DISC (1).
    """
    _check(config)
    t_, k_ = config.num_frames, config.num_shapes
    lo, hi = config.radius, config.size - config.radius
    pos = np.empty((num, t_, k_, 2))
    vel = np.empty((num, t_, k_, 2))
    bounce = np.zeros((num, t_, k_), bool)
    event = np.zeros((num, t_, k_), bool)
    shape = rng.integers(0, 2, (num, k_)).astype(np.int32)
    pos[:, 0] = rng.uniform(lo, hi, (num, k_, 2))
    speed = rng.uniform(*config.speed, (num, k_))
    angle = rng.uniform(0, 2 * np.pi, (num, k_))
    vel[:, 0] = speed[..., None] * np.stack([np.sin(angle), np.cos(angle)], -1)
    ambiguous_bounce = 0 < config.retro_prob < 1
    for t in range(1, t_):
        # Draw every random number every frame so the stream does not depend on outcomes.
        u_retro = rng.random((num, k_))
        u_turn = rng.random((num, k_))
        sign = rng.choice(np.array([-1.0, 1.0]), (num, k_))
        p = pos[:, t - 1] + vel[:, t - 1]
        below, above = p < lo, p > hi
        p = np.where(below, 2 * lo - p, np.where(above, 2 * hi - p, p))
        crossed = below | above  # [num, K, 2]
        v = np.where(crossed, -vel[:, t - 1], vel[:, t - 1])
        hit = crossed.any(-1)
        single = crossed.sum(-1) == 1  # one wall (a corner reflects both components anyway)
        retro = single & (u_retro < config.retro_prob)
        v = np.where(retro[..., None] & ~crossed, -v, v)
        turn = ~hit & (u_turn < config.turn_prob)
        turned = np.stack([-sign * v[..., 1], sign * v[..., 0]], -1)  # rotate by sign * 90 deg
        v = np.where(turn[..., None], turned, v)
        pos[:, t], vel[:, t], bounce[:, t] = p, v, hit
        event[:, t] = (single & ambiguous_bounce) | turn
    return {
        "position": pos.astype(np.float32),
        "velocity": vel.astype(np.float32),
        "bounce": bounce,
        "event": event,
        "shape": shape,
    }


def render(position: np.ndarray, shape: np.ndarray, size: int, radius: float) -> np.ndarray:
    """Anti-aliased frames: pixel value = area of the pixel covered by a shape.

    Args:
      position: [N, T, K, 2] centres, (row, col) pixels; pixel (i, j) covers [i, i+1]x[j, j+1].
      shape: [N, K] SQUARE or DISC.
      size: frame side, pixels.
      radius: half side / radius, pixels.

    Returns:
      frames: [N, T, size, size, 1] uint8 in [0, 255].
    """
    centres = np.arange(size) + 0.5
    out = np.empty(position.shape[:2] + (size, size, 1), np.uint8)
    for a in range(0, position.shape[0], _RENDER_CHUNK):
        p = position[a : a + _RENDER_CHUNK].astype(np.float32)  # [n, T, K, 2]
        dy = centres - p[..., 0, None]  # [n, T, K, size]
        dx = centres - p[..., 1, None]
        square = (
            np.clip(radius + 0.5 - np.abs(dy), 0, 1)[..., :, None]
            * np.clip(radius + 0.5 - np.abs(dx), 0, 1)[..., None, :]
        )
        disc = np.clip(radius + 0.5 - np.sqrt(dy[..., :, None] ** 2 + dx[..., None, :] ** 2), 0, 1)
        is_disc = (shape[a : a + _RENDER_CHUNK] == DISC)[:, None, :, None, None]
        img = np.where(is_disc, disc, square).max(axis=2)  # [n, T, size, size]
        out[a : a + _RENDER_CHUNK, ..., 0] = np.round(img * 255).astype(np.uint8)
    return out


def generate(split: str, config: MovingShapesConfig = DEFAULT_CONFIG) -> dict[str, np.ndarray]:
    """One split as arrays, exactly what the tfds builder stores (a function of config.seed).

    Returns (K = 1 drops the K axis):
      video:    [N, T, size, size, 1] uint8 (divide by 255 for [0, 1]).
      position: [N, T, (K,) 2] float32; velocity: [N, T, (K,) 2] float32.
      bounce:   [N, T, (K,)] bool;      event:    [N, T, (K,)] bool.
      shape:    [N, (K,)] int32.
    """
    index = {"train": 0, "test": 1}[split]
    num = config.num_train if split == "train" else config.num_test
    rng = np.random.default_rng([config.seed, index])
    out = simulate(rng, num, config)
    out["video"] = render(out["position"], out["shape"], config.size, config.radius)
    if config.num_shapes == 1:
        out = {k: v if k == "video" else v.squeeze(2 if v.ndim > 2 else 1) for k, v in out.items()}
    return out


class HjepaMovingShapes(tfds.core.GeneratorBasedBuilder):
    """tfds builder `hjepa_moving_shapes`: generated locally, nothing is downloaded."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "First release: square/disc, wall bounces with retro-reflection, "
        "random +-90 degree turns; labels position, velocity, bounce, event."
    }
    BUILDER_CONFIGS = [DEFAULT_CONFIG]
    # No source files and no checksums. (tfds 4.9.10 computes `code_path` for a builder in a
    # package with `importlib_resources`, which it does not declare as a dependency.)
    code_path = None

    def _info(self) -> tfds.core.DatasetInfo:
        c = self.builder_config
        k = () if c.num_shapes == 1 else (c.num_shapes,)
        t = c.num_frames
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "video": tfds.features.Tensor(shape=(t, c.size, c.size, 1), dtype=np.uint8),
                    "position": tfds.features.Tensor(shape=(t, *k, 2), dtype=np.float32),
                    "velocity": tfds.features.Tensor(shape=(t, *k, 2), dtype=np.float32),
                    "bounce": tfds.features.Tensor(shape=(t, *k), dtype=np.bool_),
                    "event": tfds.features.Tensor(shape=(t, *k), dtype=np.bool_),
                    "shape": tfds.features.Tensor(shape=k, dtype=np.int32),
                }
            ),
            disable_shuffling=True,  # row i of a split is video i of `generate`
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {split: self._generate_examples(split) for split in ("train", "test")}

    def _generate_examples(self, split):
        arrays = generate(split, self.builder_config)
        for i in range(len(arrays["video"])):
            yield i, {k: v[i] for k, v in arrays.items()}
