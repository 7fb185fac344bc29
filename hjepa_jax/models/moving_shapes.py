"""The two-level H-JEPA of paper Fig. 11 on videos of a bouncing shape, and its evaluation.

Level 1: s1_t = Enc_1(x_{t-c+1..t}), a conv encoder of c stacked frames (one frame shows no
velocity), and Pred_1([s1_t, z1]) -> s1_{t+1} with a latent z1 in a ball (the inner loop of
`hj.jepa`). Level 2: s2_j = Enc_2(s1 of a window of k states), an MLP, and
Pred_2([s2_j, z2]) -> s2_{j+1}, k frames ahead. Both levels train jointly with
`hj.hjepa.loss` (prediction energy + VICReg variance / covariance per level).

The evaluation helpers read the `hjepa_moving_shapes` videos (`hj.data.load`): a dict of
"video" uint8 [N, T, H, W, 1], "position" and "velocity" [N, T, 2] (pixels; velocity v_t takes
p_t to p_{t+1}), "bounce" and "event" bool [N, T] (a wall at t; a random choice decided v_t).

    >>> import jax
    >>> from hjepa_jax.models.moving_shapes import MovingShapesHJEPA, MovingShapesHJEPAConfig
    >>> cfg = MovingShapesHJEPAConfig(channels=(4,), dim1=8, dim2=8, hidden=(16,))
    >>> model = MovingShapesHJEPA(cfg, frame=(16, 16))
    >>> params = model.init(jax.random.PRNGKey(0))
    >>> model.encode1(params["enc1"], jax.numpy.zeros((2, 9, 16, 16, 1), "uint8")).shape
    (2, 8, 8)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from hjepa_jax import _checks, hjepa, jepa, probes
from hjepa_jax import nn as hj_nn
from hjepa_jax.models import _common

__all__ = [
    "EXAMPLE_KINDS",
    "MovingShapesHJEPA",
    "MovingShapesHJEPAConfig",
    "encode_videos",
    "futures",
    "latent_grid",
    "level_energies",
    "level_probes",
    "multimodality_metrics",
    "pick_examples",
    "possible_next",
    "state_labels",
    "transitions",
    "window_labels",
]


@dataclasses.dataclass(frozen=True)
class MovingShapesHJEPAConfig:
    """The two levels' sizes and latent inner loop.

    Attributes:
      context: c, frames stacked as channels per level-1 input (>= 2: one frame has no
        velocity).
      channels: conv encoder stages (stride 2 each).
      dim1, dim2: D1 and D2, the level-1 and level-2 states.
      hidden: widths of the predictors and of the level-2 encoder before their output.
      window: k, level-1 states per level-2 state (and level 2's horizon, in frames).
      latent_dim1, latent_dim2: the latent of each level (0: none).
      latent_steps, latent_lr, latent_starts, latent_l2: the inner loop over z (`hj.jepa`).
      level2_weight: weight of level 2's loss.

    Raises:
      ValueError: a field out of its range, naming it.
    """

    context: int = 2
    channels: tuple[int, ...] = (16, 32)
    dim1: int = 32
    dim2: int = 32
    hidden: tuple[int, ...] = (128, 128)
    window: int = 4
    latent_dim1: int = 2
    latent_dim2: int = 2
    latent_steps: int = 10
    latent_lr: float = 0.03
    latent_starts: int = 1
    latent_l2: float = 1.0
    level2_weight: float = 1.0

    def __post_init__(self):
        fn, fix = "MovingShapesHJEPAConfig", "see MovingShapesHJEPAConfig's attributes"
        _checks.integer(fn, "context", self.context, minimum=2, fix="one frame has no velocity")
        for name in ("channels", "hidden"):
            object.__setattr__(self, name, _common.widths(fn, name, getattr(self, name), fix))
        _common.counts(fn, self, ("dim1", "dim2", "window", "latent_steps", "latent_starts"), fix)
        _common.counts(fn, self, ("latent_dim1", "latent_dim2"), fix, minimum=0)
        _common.positives(fn, self, ("latent_lr",), fix)
        _common.non_negatives(fn, self, ("latent_l2", "level2_weight"), fix)


class MovingShapesHJEPA:
    """Level-1 conv encoder and latent predictor, level-2 MLP encoder and latent predictor.

    Args:
      cfg: the model's config.
      latent: False sets both levels' latent_dim to 0 (a deterministic predictor per level).
      frame: (H, W) of the videos.

    Attributes:
      hjepa: the `hj.hjepa.HJEPAConfig` of the two levels.

    Raises:
      ValueError: `cfg` is not a MovingShapesHJEPAConfig or `frame` not two sizes >= 1.
    """

    def __init__(
        self, cfg: MovingShapesHJEPAConfig, latent: bool = True, frame: Sequence[int] = (32, 32)
    ):
        fn = "MovingShapesHJEPA"
        _common.config_of(fn, "cfg", cfg, MovingShapesHJEPAConfig)
        if len(tuple(frame)) != 2:
            _checks.broken(fn, "frame", frame, "(H, W)", "pass the videos' frame size")
        frame = tuple(
            _checks.integer(fn, f"frame[{i}]", v, fix="pass the videos' frame size")
            for i, v in enumerate(frame)
        )
        self.cfg, self.frame = cfg, frame
        self.enc1 = hj_nn.ConvEncoder(channels=cfg.channels, features=cfg.dim1)
        self.pred1 = hj_nn.MLP((*cfg.hidden, cfg.dim1))
        self.enc2 = hj_nn.MLP((*cfg.hidden, cfg.dim2))
        self.pred2 = hj_nn.MLP((*cfg.hidden, cfg.dim2))
        level = lambda z: jepa.JEPAConfig(
            latent_dim=z if latent else 0,
            latent_steps=cfg.latent_steps,
            latent_lr=cfg.latent_lr,
            latent_starts=cfg.latent_starts,
            latent_l2=cfg.latent_l2,
        )
        self.hjepa = hjepa.HJEPAConfig(
            level1=level(cfg.latent_dim1),
            level2=level(cfg.latent_dim2),
            window=cfg.window,
            level2_weight=cfg.level2_weight,
        )

    def inputs(self, video: jax.Array) -> jax.Array:
        """uint8 [..., T, H, W, 1] -> float [..., T - c + 1, H, W, c]: frames t-c+1..t stacked."""
        x = video.astype(jnp.float32) / 255.0
        c, t = self.cfg.context, video.shape[-4]
        return jnp.concatenate([x[..., i : t - c + 1 + i, :, :, :] for i in range(c)], axis=-1)

    def encode1(self, params, video: jax.Array) -> jax.Array:
        """s1_t = Enc_1(x_{t-c+1..t}): uint8 [..., T, H, W, 1] -> [..., T - c + 1, D1]."""
        return _common.apply(self.enc1, params, self.inputs(video))

    def encode2(self, params, window: jax.Array) -> jax.Array:
        """s2 = Enc_2(window): [k * D1] -> [D2]."""
        return _common.apply(self.enc2, params, window)

    def predict1(self, params, s: jax.Array, z: jax.Array) -> jax.Array:
        """Pred_1([s1, z1]): [D1], [Z1] -> [D1]."""
        return _common.apply(self.pred1, params, jnp.concatenate([s, z]))

    def predict2(self, params, s: jax.Array, z: jax.Array) -> jax.Array:
        """Pred_2([s2, z2]): [D2], [Z2] -> [D2]."""
        return _common.apply(self.pred2, params, jnp.concatenate([s, z]))

    def init(self, key: jax.Array) -> dict:
        """{"enc1", "pred1", "enc2", "pred2"}: each network's parameters."""
        cfg, h = self.cfg, self.hjepa
        k1, k2, k3, k4 = jax.random.split(key, 4)
        return {
            "enc1": self.enc1.init(k1, jnp.zeros((1, *self.frame, cfg.context))),
            "pred1": self.pred1.init(k2, jnp.zeros(cfg.dim1 + h.level1.latent_dim)),
            "enc2": self.enc2.init(k3, jnp.zeros(cfg.window * cfg.dim1)),
            "pred2": self.pred2.init(k4, jnp.zeros(cfg.dim2 + h.level2.latent_dim)),
        }

    def loss(self, params, batch, key):
        """The joint H-JEPA loss (VICReg terms at both levels) on batch = {"video": uint8
        [B, T, H, W, 1]} -> (loss, metrics)."""
        s1 = self.encode1(params["enc1"], batch["video"])
        rest = {name: params[name] for name in ("pred1", "enc2", "pred2")}
        return hjepa.loss(rest, s1, self.predict1, self.encode2, self.predict2, self.hjepa, key)


def latent_grid(dim: int, n: int, radius: float) -> np.ndarray:
    """Points of an n^dim grid over [-r, r]^dim that lie in the ball ||z|| <= r: [K, dim].

    >>> latent_grid(2, 3, 1.0).tolist()
    [[-1.0, 0.0], [0.0, -1.0], [0.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
    """
    fn = "latent_grid"
    dim = _checks.integer(fn, "dim", dim, minimum=0, fix="pass the latent's size")
    n = _checks.integer(fn, "n", n, fix="use a few points per axis")
    _checks.positive(fn, "radius", radius, fix="pass the latent ball's radius")
    if dim == 0:
        return np.zeros((1, 0), np.float32)
    axis = np.linspace(-radius, radius, n)
    points = np.stack(np.meshgrid(*[axis] * dim, indexing="ij"), -1).reshape(-1, dim)
    return points[np.linalg.norm(points, axis=-1) <= radius + 1e-6].astype(np.float32)


def state_labels(data: dict, context: int) -> np.ndarray:
    """Per level-1 state (last frame t): position p_t and velocity v_{t-1}, the step the
    stacked frames show: [N, T - c + 1, 4]."""
    c = _checks.integer("state_labels", "context", context, minimum=2, fix="use c >= 2")
    return np.concatenate([data["position"][:, c - 1 :], data["velocity"][:, c - 2 : -1]], -1)


def window_labels(y1: np.ndarray, k: int) -> np.ndarray:
    """Per level-2 state: the window's last position and mean velocity: [N, T' // k, 4].

    Args:
      y1: [N, T', 4] the labels of the level-1 states (`state_labels`).
      k: the window.
    """
    _checks.shape("window_labels", "y1", y1, (None, None, 4), "[N, T', 4]", "use state_labels")
    k = _checks.integer("window_labels", "k", k, fix="pass the level-2 window")
    n, t = y1.shape[:2]
    w = y1[:, : t // k * k].reshape(n, t // k, k, 4)
    return np.concatenate([w[:, :, -1, :2], w[:, :, :, 2:].mean(2)], -1)


def encode_videos(model: MovingShapesHJEPA, params, video: np.ndarray, chunk: int = 128):
    """Frozen states of every video [N, T, H, W, 1]: s1 [N, T', D1] and s2 [N, T' // k, D2]
    (numpy), `chunk` videos at a time."""
    chunk = _checks.integer("encode_videos", "chunk", chunk, fix="encode a few videos at once")

    @jax.jit
    def encode(p, v):
        s1 = model.encode1(p["enc1"], v)
        return s1, hjepa.level2_states(p["enc2"], model.encode2, s1, model.cfg.window)

    parts = [encode(params, jnp.asarray(video[a : a + chunk])) for a in range(0, len(video), chunk)]
    return tuple(np.concatenate([np.asarray(p[i]) for p in parts]) for i in range(2))


def level_energies(
    model: MovingShapesHJEPA, params, s: np.ndarray, level: int, key: jax.Array
) -> dict:
    """Per consecutive pair of one level's states s [N, T, D]: "F" = min_z E (the inner loop
    of training), "E0" = E at z = 0, "z" = z_hat, "copy" = ||s_{t+1} - s_t||^2; each
    [N, T - 1] ("z": [N, T - 1, Z])."""
    _checks.one_of("level_energies", "level", level, (1, 2), fix="pick level 1 or 2")
    _checks.rank("level_energies", "s", s, 3, "[N, T, D]", fix="pass one level's states")
    jcfg = model.hjepa.level1 if level == 1 else model.hjepa.level2
    predict = model.predict1 if level == 1 else model.predict2
    p = params["pred1" if level == 1 else "pred2"]
    f = jepa.free_energy(predict, jcfg, key)
    e = jepa.energy(predict, jcfg)
    zero = jnp.zeros(jcfg.latent_dim)

    @jax.jit
    @jax.vmap
    @jax.vmap
    def pair(sx, sy):
        res = f(p, sy, sx)
        return res.energy, e(p, zero, sy, sx), res.z

    big_f, e0, z = pair(s[:, :-1], s[:, 1:])
    copy = np.sum((s[:, 1:] - s[:, :-1]) ** 2, -1)
    return {"F": np.asarray(big_f), "E0": np.asarray(e0), "z": np.asarray(z), "copy": copy}


def transitions(data: dict, context: int, n_states: int) -> dict:
    """Level-1 transition i goes from s1_i (last frame t = i + c - 1) to s1_{i+1} (frame t + 1).

    It is ambiguous when a random choice decided v_t ("event": a single-wall bounce that
    reflects or reverses, or a +-90 degree turn), so p_{t+1} is not a function of the past;
    ordinary when there is no event and no bounce at t or t + 1. Returns "frame" [T' - 1] (t),
    "ambiguous" and "ordinary" bool [N, T' - 1], "next" [N, T' - 1, 2] (p_{t+1}).
    """
    c = _checks.integer("transitions", "context", context, fix="pass the config's context")
    n_states = _checks.integer("transitions", "n_states", n_states, minimum=2, fix="use T' >= 2")
    t = np.arange(n_states - 1) + c - 1
    event, bounce = data["event"][:, t], data["bounce"][:, t]
    return {
        "frame": t,
        "ambiguous": event,
        "ordinary": ~event & ~bounce & ~data["bounce"][:, t + 1],
        "next": data["position"][:, t + 1],
    }


def futures(
    model: MovingShapesHJEPA,
    params,
    s1: np.ndarray,
    z_hat: np.ndarray,
    decode: Callable[[np.ndarray], np.ndarray],
    grid: int,
) -> dict:
    """Level 1's predicted next states, decoded to positions by `decode` ([..., D1] ->
    [..., 2], e.g. a linear probe of the position).

    Args:
      s1: [N, T', D1] level-1 states; z_hat: [N, T' - 1, Z1] the latents of the true next
        states (`level_energies(...)["z"]`); grid: z grid points per axis.

    Returns "grid" [N, T'-1, K, 2] (one future per z of a grid over the ball, via
    `hj.jepa.predict_modes`), "inferred" and "zero" [N, T'-1, 2] (z = z_hat, and z = 0),
    "observed" [N, T'-1, 2] (the true next state decoded: the probe's own error floor), and
    the grid "zs" [K, Z1].
    """
    _checks.function("futures", "decode", decode, "[..., D1] -> [..., 2]")
    level1 = model.hjepa.level1
    zs = latent_grid(level1.latent_dim, grid, level1.latent_radius)
    pred = lambda s, z: model.predict1(params["pred1"], s, z)
    modes = jax.vmap(jax.vmap(lambda s: jepa.predict_modes(params["pred1"], model.predict1, s, zs)))
    at = jax.jit(jax.vmap(jax.vmap(pred)))
    sx = s1[:, :-1]
    return {
        "zs": zs,
        "grid": decode(np.asarray(jax.jit(modes)(sx))),
        "inferred": decode(np.asarray(at(sx, z_hat))),
        "zero": decode(np.asarray(at(sx, np.zeros_like(z_hat)))),
        "observed": decode(s1[:, 1:]),
    }


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, a.shape[-1])


def level_probes(train: tuple, test: tuple, train_labels: tuple, test_labels: tuple) -> dict:
    """Linear probes (`hj.probes.regression_r2`) of the position and the velocity from each
    level's frozen states, fitted on the train split, scored (R^2) on the test split.

    Args:
      train, test: (s1 [N, T', D1], s2 [N, T' // k, D2]) of each split (`encode_videos`).
      train_labels, test_labels: (y1 [N, T', 4], y2 [N, T' // k, 4]) of each split
        (`state_labels`, `window_labels`): position in columns 0-1, velocity in 2-3.

    Returns {"position_r2_level1", "velocity_r2_level1", "position_r2_level2",
    "velocity_r2_level2"}.
    """
    out = {}
    for level in (1, 2):
        x_tr, x_te = _flat(train[level - 1]), _flat(test[level - 1])
        y_tr, y_te = _flat(train_labels[level - 1]), _flat(test_labels[level - 1])
        for label, cols in (("position", slice(0, 2)), ("velocity", slice(2, 4))):
            r2, _ = probes.regression_r2(x_tr, y_tr[:, cols], x_te, y_te[:, cols])
            out[f"{label}_r2_level{level}"] = r2
    return out


def multimodality_metrics(energies1: dict, decoded: dict, baseline: dict, cases: dict) -> dict:
    """What level 1's latent buys on ambiguous and ordinary transitions, in energy and in
    decoded pixels.

    Args:
      energies1: `level_energies` of the latent model's level 1.
      decoded: `futures` of the latent model; baseline: `futures` of a model without latent.
      cases: `transitions` of the same videos.

    Returns, per case in ("ambiguous", "ordinary"): latent_gain_<case> = 1 - F / E(z = 0),
    futures_spread_<case> (px, RMS spread of the grid's futures), future_error_inferred_z_,
    future_error_zero_z_, future_error_probe_floor_<case> and no_latent_future_error_<case>
    (px, decoded prediction to the true next position); and ambiguous_fraction.
    """
    e1, amb = energies1, cases["ambiguous"]
    err = lambda p, mask: float(np.mean(np.linalg.norm(p - cases["next"], axis=-1)[mask]))
    grid = decoded["grid"]
    spread = np.sqrt(np.mean(np.sum((grid - grid.mean(-2, keepdims=True)) ** 2, -1), -1))
    out = {}
    for case in ("ambiguous", "ordinary"):
        mask = cases[case]
        out[f"latent_gain_{case}"] = float(1 - e1["F"][mask].mean() / e1["E0"][mask].mean())
        out[f"futures_spread_{case}"] = float(spread[mask].mean())
        out[f"future_error_inferred_z_{case}"] = err(decoded["inferred"], mask)
        out[f"future_error_zero_z_{case}"] = err(decoded["zero"], mask)
        out[f"future_error_probe_floor_{case}"] = err(decoded["observed"], mask)
        out[f"no_latent_future_error_{case}"] = err(baseline["zero"], mask)
    out["ambiguous_fraction"] = float(amb.mean())
    return out


EXAMPLE_KINDS = ("bounce, reverses", "bounce, reflects", "random turn")


def possible_next(data: dict, n: int, t: int) -> np.ndarray:
    """The positions frame t + 1 of video n could have had at an ambiguous frame t: [M, 2].

    A single-wall bounce between t - 1 and t reflects or reverses v_{t-1}; a turn in free
    flight goes straight or turns by +-90 degrees. (Ignores a second bounce at t + 1.)
    """
    p, v = data["position"][n, t], data["velocity"][n, t - 1]
    if data["bounce"][n, t]:
        size = data["video"].shape[2]
        wall = np.minimum(p, size - p)  # distance to the nearer wall along each axis
        flip = np.where(np.arange(2) == np.argmin(wall), -1.0, 1.0)
        return p + np.stack([v * flip, -v])
    turn = np.array([[-v[1], v[0]], [v[1], -v[0]]])
    return p + np.concatenate([v[None], turn])


def pick_examples(data: dict, cases: dict, history: int = 3) -> list[tuple[str, int, int]]:
    """The first ambiguous transition (`transitions`) of each of EXAMPLE_KINDS whose possible
    next positions lie at least 2 pixels apart, with `history` frames before it:
    (kind, video, transition index)."""
    t = cases["frame"]
    amb = cases["ambiguous"] & (t >= history)
    bounce = amb & data["bounce"][:, t]
    retro = bounce & np.all(
        np.abs(data["velocity"][:, t] + data["velocity"][:, t - 1]) < 1e-4, axis=-1
    )
    picks = []
    for kind, mask in zip(EXAMPLE_KINDS, (retro, bounce & ~retro, amb & ~bounce), strict=True):
        for n, i in np.argwhere(mask):
            options = possible_next(data, n, t[i])
            if np.linalg.norm(options[0] - options[1]) >= 2.0:
                picks.append((kind, int(n), int(i)))
                break
    return picks
