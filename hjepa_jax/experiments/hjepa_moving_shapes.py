"""Paper Fig. 11: a two-level H-JEPA learns a world model of bouncing shapes from video alone.

    python -m hjepa_jax.experiments.run hjepa_moving_shapes --out out/hjepa_moving_shapes [--quick]

Data: `hjepa_moving_shapes` videos (32x32, one square or disc, 17 frames, speed 2-3 px per
frame). Two random events make the future ambiguous: a single-wall bounce reflects or reverses
(50/50), and in free flight the shape turns by +-90 degrees with probability 0.1 per frame.

Level 1: s1_t = Enc_1(x_{t-1}, x_t), a conv encoder of two stacked frames (one frame shows no
velocity), and Pred_1(s1_t, z1) -> s1_{t+1} with a 2-D latent z1 in the unit ball (inner loop of
`hj.jepa`, 10 SGD steps). Level 2: s2_j = Enc_2(s1 of a window of k = 4 states), an MLP, and
Pred_2(s2_j, z2) -> s2_{j+1}, 4 frames ahead. Both levels are trained jointly with
`hj.hjepa.loss` (prediction energy + VICReg variance/covariance per level). A second model is
trained the same way with latent_dim = 0 at both levels.

Evaluation on held-out videos: the prediction energy F per level (z minimized) against the
copy-last baseline ||s_{t+1} - s_t||^2 in the same space (each model's energies live in its own
representation space, so only the ratio F / copy-last compares across models); linear probes
(train -> test) of position and velocity from the frozen states of each level, and from a random
encoder; and level 1's futures: for each test transition, Pred_1 at z on a grid over the ball
(`hj.jepa.predict_modes`), at z = 0 and at z_hat (`infer_latent` with the true next state),
decoded to positions by the level-1 position probe. A transition t -> t + 1 is "ambiguous" when
a random choice decided v_t (label "event"), "ordinary" when there is no event and no bounce.
Metrics: level{1,2}_energy, copy_last_level{1,2}_energy, level{1,2}_energy_ratio (and
no_latent_*), level1_energy_ratio_{ambiguous,ordinary}; probe_{position,velocity}_r2_level{1,2}
(and _no_latent, _random; probe_position_r2_random is level 1's); embedding_std, effective_rank
(level 1, test); latent_gain_* = 1 - F / E(z = 0), the energy z removes, in the latent model's
own space; futures_spread_* (px, RMS spread of the decoded grid futures);
future_error_{inferred_z,zero_z,probe_floor}_* and no_latent_future_error_* (px, distance of
the decoded prediction to the true next position; the floor decodes the true next state).
embeddings.npz: frozen level-1 states per state [N * 16, 32] with labels [N * 16, 4] = position
(row, col) at the state's last frame t and velocity v_{t-1} (the step its two frames show).

Results (2-core CPU; test-set numbers; "ratio" = F / copy-last in the model's own space):
  default (2000 train videos, 2000 steps per model, about 3.5 min), seeds 0 / 1:
    level 2 ratio 0.050 / 0.048 (no latent 0.035 / 0.029): 4 frames ahead, 20x below copy-last.
    level 1 ratio 0.044 / 0.045, no latent 0.039 / 0.039: the latent model is NOT below the
      no-latent one once both have converged (its deterministic part is worse; z makes up for
      it). Ambiguous transitions 0.133 / 0.135 vs ordinary 0.024 / 0.025 (no latent 0.130 /
      0.137 vs 0.020 / 0.019): the events stay the hard part for both.
    probe R^2 position level 1 0.974 / 0.974, level 2 0.950 / 0.955, random encoder 0.665 /
      0.640; velocity level 1 0.28 / 0.26, level 2 0.87 / 0.86, random 0.04 / 0.05 (level 1 reads
      velocity poorly: one step is 2-3 px against a probe error near 1.5 px; a window does better).
    embedding_std 1.03 / 1.03, effective rank 25.6 / 25.0 of 32: no collapse.
    z: latent_gain 0.48 / 0.56 on ambiguous and 0.50 / 0.48 on ordinary transitions; futures
      spread 2.9 / 2.9 px on both; decoded error on ambiguous transitions: z inferred 2.07 /
      2.02 px, z = 0 2.48 / 2.59, no-latent model 2.41 / 2.47, probe floor 1.55 / 1.52. So z
      explains part of which future happened, but the predictor uses it as a generic 2-D
      correction on every transition, not only at the events: its spread is the same on
      ambiguous and ordinary frames. (An L2 cost or a ball on z does not bound what z can
      carry when the predictor can rescale its effect; the dimension does.)
  --quick (256 train videos, 8/16 conv channels, 300 steps per model, 20-35 s), seeds 0-3:
    level 2 ratio 0.10-0.14 (no latent 0.15-0.18); level 1 ratio 0.17-0.34 vs no latent
    0.21-0.84 (early in training the latent model is well ahead); probe position R^2 level 1
    0.953-0.977 vs random 0.42-0.65, level 2 0.92-0.95; velocity level 2 0.79-0.84 vs random
    <= 0.04; embedding_std 0.98-1.01, effective rank 11.5-14.6; latent_gain ambiguous
    0.38-0.62; decoded error on ambiguous transitions z inferred 1.93-2.37 px vs z = 0
    2.52-2.65 px.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import hjepa_jax as hj
from hjepa_jax.experiments.common import (
    Count,
    NonNegative,
    Positive,
    RunOptions,
    atomic_write,
    combined_summary,
    config,
    save_figure,
)

NAME = "hjepa_moving_shapes"
TITLE = "Fig. 11: a two-level H-JEPA on videos of bouncing shapes"
CLAIM = (
    "Stacking two JEPAs gives a hierarchy: level 1 predicts the next frame's representation, "
    "level 2 a more abstract representation of k frames at once, k frames ahead, both in "
    "representation space and trained from video alone, without collapse. The higher level "
    "predicts far better than 'nothing changes'; a latent variable lets a level represent "
    "several futures where the past does not decide (a bounce that reflects or reverses, a "
    "random turn); and the states hold the shape's position and motion, read off linearly."
)


@config
class Config:
    seed: int = 0
    data_seed: int = 0  # the videos (MovingShapesConfig.seed); `seed` is the models'
    num_train: Count = 2000  # videos
    num_test: Count = 500
    num_frames: Count = 17  # T: with context 2, 16 level-1 states = 4 windows of 4
    speed: tuple[float, ...] = (2.0, 3.0)  # (min, max) pixels per frame
    turn_prob: NonNegative = 0.1  # per frame, a random +-90 degree turn
    context: Count = 2  # frames stacked as channels per level-1 input (one frame has no velocity)
    channels: tuple[Count, ...] = (16, 32)  # conv encoder stages (stride 2 each)
    dim1: Count = 32  # D1, level-1 state
    dim2: Count = 32  # D2, level-2 state
    hidden: tuple[Count, ...] = (128, 128)  # predictors' and level-2 encoder's widths
    window: Count = 4  # k: level-1 states per level-2 state (and level 2's horizon)
    latent_dim1: int = 2
    latent_dim2: int = 2
    latent_steps: Count = 10
    latent_lr: Positive = 0.03
    latent_starts: Count = 1
    latent_l2: NonNegative = 1.0
    level2_weight: NonNegative = 1.0
    grid: Count = 7  # z grid points per axis (inside the ball) for the multimodal futures
    steps: Count = 2000
    batch_size: Count = 32  # videos per step
    learning_rate: Positive = 1e-3
    log_every: Count = 50

    def quick(self) -> Config:
        return dataclasses.replace(
            self, num_train=256, num_test=64, channels=(8, 16), steps=300, log_every=25
        )


class Model:
    """Level-1 conv encoder and latent predictor, level-2 MLP encoder and latent predictor."""

    def __init__(self, cfg: Config, latent: bool = True, frame: tuple[int, int] = (32, 32)):
        self.cfg, self.frame = cfg, tuple(frame)  # frame: (H, W) of the videos
        self.enc1 = hj.nn.ConvEncoder(channels=cfg.channels, features=cfg.dim1)
        self.pred1 = hj.nn.MLP((*cfg.hidden, cfg.dim1))
        self.enc2 = hj.nn.MLP((*cfg.hidden, cfg.dim2))
        self.pred2 = hj.nn.MLP((*cfg.hidden, cfg.dim2))
        level = lambda z: hj.jepa.JEPAConfig(
            latent_dim=z if latent else 0,
            latent_steps=cfg.latent_steps,
            latent_lr=cfg.latent_lr,
            latent_starts=cfg.latent_starts,
            latent_l2=cfg.latent_l2,
        )
        self.hjepa = hj.hjepa.HJEPAConfig(
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
        return self.enc1.apply(params, self.inputs(video))

    def encode2(self, params, window: jax.Array) -> jax.Array:
        return self.enc2.apply(params, window)

    def predict1(self, params, s: jax.Array, z: jax.Array) -> jax.Array:
        return self.pred1.apply(params, jnp.concatenate([s, z]))

    def predict2(self, params, s: jax.Array, z: jax.Array) -> jax.Array:
        return self.pred2.apply(params, jnp.concatenate([s, z]))

    def init(self, key: jax.Array) -> dict:
        cfg, h = self.cfg, self.hjepa
        k1, k2, k3, k4 = jax.random.split(key, 4)
        return {
            "enc1": self.enc1.init(k1, jnp.zeros((1, *self.frame, cfg.context))),
            "pred1": self.pred1.init(k2, jnp.zeros(cfg.dim1 + h.level1.latent_dim)),
            "enc2": self.enc2.init(k3, jnp.zeros(cfg.window * cfg.dim1)),
            "pred2": self.pred2.init(k4, jnp.zeros(cfg.dim2 + h.level2.latent_dim)),
        }

    def loss(self, params, batch, key):
        """The joint H-JEPA loss (VICReg terms at both levels) on a batch of videos."""
        s1 = self.encode1(params["enc1"], batch["video"])
        rest = {name: params[name] for name in ("pred1", "enc2", "pred2")}
        return hj.hjepa.loss(rest, s1, self.predict1, self.encode2, self.predict2, self.hjepa, key)


def latent_grid(dim: int, n: int, radius: float) -> np.ndarray:
    """Points of an n^dim grid over [-r, r]^dim that lie in the ball ||z|| <= r: [K, dim]."""
    if dim == 0:
        return np.zeros((1, 0), np.float32)
    axis = np.linspace(-radius, radius, n)
    points = np.stack(np.meshgrid(*[axis] * dim, indexing="ij"), -1).reshape(-1, dim)
    return points[np.linalg.norm(points, axis=-1) <= radius + 1e-6].astype(np.float32)


def state_labels(data: dict, cfg: Config) -> np.ndarray:
    """Per level-1 state (last frame t): position p_t and velocity v_{t-1}, the step the
    stacked frames show: [N, T - c + 1, 4]."""
    c = cfg.context
    return np.concatenate([data["position"][:, c - 1 :], data["velocity"][:, c - 2 : -1]], -1)


def window_labels(y1: np.ndarray, k: int) -> np.ndarray:
    """Per level-2 state: the window's last position and mean velocity: [N, T' // k, 4]."""
    n, t = y1.shape[:2]
    w = y1[:, : t // k * k].reshape(n, t // k, k, 4)
    return np.concatenate([w[:, :, -1, :2], w[:, :, :, 2:].mean(2)], -1)


def encode_videos(model: Model, params, video: np.ndarray, chunk: int = 128):
    """Frozen states of every video: s1 [N, T', D1] and s2 [N, T' // k, D2] (numpy)."""

    @jax.jit
    def encode(p, v):
        s1 = model.encode1(p["enc1"], v)
        return s1, hj.hjepa.level2_states(p["enc2"], model.encode2, s1, model.cfg.window)

    parts = [encode(params, jnp.asarray(video[a : a + chunk])) for a in range(0, len(video), chunk)]
    return tuple(np.concatenate([np.asarray(p[i]) for p in parts]) for i in range(2))


def level_energies(model: Model, params, s: np.ndarray, level: int, key: jax.Array) -> dict:
    """Per consecutive pair of one level's states [N, T, D]: "F" = min_z E (the inner loop of
    training), "E0" = E at z = 0, "z" = z_hat, "copy" = ||s_{t+1} - s_t||^2. [N, T - 1, ...]."""
    jcfg = model.hjepa.level1 if level == 1 else model.hjepa.level2
    predict = model.predict1 if level == 1 else model.predict2
    p = params["pred1" if level == 1 else "pred2"]
    f = hj.jepa.free_energy(predict, jcfg, key)
    e = hj.jepa.energy(predict, jcfg)
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


def transitions(data: dict, cfg: Config, n_states: int) -> dict:
    """Level-1 transition i goes from s1_i (last frame t = i + c - 1) to s1_{i+1} (frame t + 1).

    It is ambiguous when a random choice decided v_t ("event": a single-wall bounce that
    reflects or reverses, or a +-90 degree turn), so p_{t+1} is not a function of the past;
    ordinary when there is no event and no bounce at t or t + 1. [N, T' - 1] each.
    """
    t = np.arange(n_states - 1) + cfg.context - 1
    event, bounce = data["event"][:, t], data["bounce"][:, t]
    return {
        "frame": t,
        "ambiguous": event,
        "ordinary": ~event & ~bounce & ~data["bounce"][:, t + 1],
        "next": data["position"][:, t + 1],
    }


def futures(model: Model, params, s1: np.ndarray, z_hat: np.ndarray, decode, cfg: Config):
    """Level 1's predicted next states, decoded to positions by the level-1 position probe.

    Returns "grid" [N, T'-1, K, 2] (one future per z of a grid over the ball, via
    `hj.jepa.predict_modes`), "inferred" and "zero" [N, T'-1, 2] (z = z_hat, the latent of
    the true next state, and z = 0), "observed" [N, T'-1, 2] (the true next state decoded:
    the probe's own error floor), and the grid "zs" [K, Z].
    """
    zs = latent_grid(model.hjepa.level1.latent_dim, cfg.grid, model.hjepa.level1.latent_radius)
    pred = lambda s, z: model.predict1(params["pred1"], s, z)
    modes = jax.vmap(
        jax.vmap(lambda s: hj.jepa.predict_modes(params["pred1"], model.predict1, s, zs))
    )
    at = jax.jit(jax.vmap(jax.vmap(pred)))
    sx = s1[:, :-1]
    return {
        "zs": zs,
        "grid": decode(np.asarray(jax.jit(modes)(sx))),
        "inferred": decode(np.asarray(at(sx, z_hat))),
        "zero": decode(np.asarray(at(sx, np.zeros_like(z_hat)))),
        "observed": decode(s1[:, 1:]),
    }


def run(cfg: Config, out: Path, options: RunOptions = RunOptions()) -> dict:
    """Train the H-JEPA with and without latents, evaluate, probe, draw. Returns the metrics."""
    if cfg.context < 2:
        raise ValueError("context must be >= 2: one frame does not show the velocity")
    settings = dict(
        seed=cfg.data_seed,
        num_train=cfg.num_train,
        num_test=cfg.num_test,
        num_frames=cfg.num_frames,
        speed=tuple(cfg.speed),
        turn_prob=cfg.turn_prob,
    )
    train = hj.data.load("hjepa_moving_shapes", "train", **settings)
    test = hj.data.load("hjepa_moving_shapes", "test", **settings)
    frame = train["video"].shape[2:4]
    key = jax.random.PRNGKey(cfg.seed)
    k_init, k_run, k_random, k_eval = jax.random.split(key, 4)
    runs, models, states = {}, {}, {}  # states[name] = ((s1, s2) train, (s1, s2) test)
    for name, latent in (("latent", True), ("no_latent", False)):
        models[name] = model = Model(cfg, latent, frame)
        runs[name] = hj.train.train(
            model.loss,
            model.init(k_init),
            optax.adam(optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps)),
            {"video": jnp.asarray(train["video"])},
            loop=options.loop(cfg, out, model=name),
            key=k_run,
            config=dataclasses.asdict(cfg),
            desc=f"{NAME}/{name}",
        )
        params = runs[name].state.params
        states[name] = tuple(encode_videos(model, params, d["video"]) for d in (train, test))
    random_model = Model(cfg, True, frame)
    random_params = random_model.init(k_random)
    states["random"] = tuple(
        encode_videos(random_model, random_params, d["video"]) for d in (train, test)
    )

    # Linear probes, fitted on the train split's frozen states, scored on the test split.
    flat = lambda a: a.reshape(-1, a.shape[-1])
    y1 = [state_labels(d, cfg) for d in (train, test)]
    y2 = [window_labels(y, cfg.window) for y in y1]
    metrics = {}
    for name, suffix in (("latent", ""), ("no_latent", "_no_latent"), ("random", "_random")):
        (train_s1, train_s2), (test_s1, test_s2) = states[name]
        for level, (x_tr, x_te, y_tr, y_te) in (
            (1, (train_s1, test_s1, *y1)),
            (2, (train_s2, test_s2, *y2)),
        ):
            for label, cols in (("position", slice(0, 2)), ("velocity", slice(2, 4))):
                r2, _ = hj.probes.regression_r2(
                    flat(x_tr), flat(y_tr)[:, cols], flat(x_te), flat(y_te)[:, cols]
                )
                metrics[f"probe_{label}_r2_level{level}{suffix}"] = r2
    metrics["probe_position_r2_random"] = metrics.pop("probe_position_r2_level1_random")

    # Prediction energies on held-out videos. Each model's energies live in its own
    # representation space (its own scale and geometry), so a raw F of one model says nothing
    # about another's. Each is divided by its own copy-last baseline ("nothing changes",
    # ||s_{t+1} - s_t||^2 in the same space): ratio < 1 means the predictor beats copy-last,
    # and the ratios of the two models compare. Within the latent model, F = min_z E against
    # E(z = 0) isolates what the latent adds, in one space.
    cases = transitions(test, cfg, states["latent"][1][0].shape[1])
    amb, ordinary = cases["ambiguous"], cases["ordinary"]
    energies, decoded = {}, {}
    for name, prefix in (("latent", ""), ("no_latent", "no_latent_")):
        model, params = models[name], runs[name].state.params
        (train_s1, _), (s1, s2) = states[name]
        e1 = energies[name] = level_energies(model, params, s1, 1, k_eval)
        e2 = level_energies(model, params, s2, 2, k_eval)
        for level, e in ((1, e1), (2, e2)):
            metrics[f"{prefix}level{level}_energy"] = float(e["F"].mean())
            metrics[f"{prefix}copy_last_level{level}_energy"] = float(e["copy"].mean())
            metrics[f"{prefix}level{level}_energy_ratio"] = float(e["F"].mean() / e["copy"].mean())
        for case, mask in (("ambiguous", amb), ("ordinary", ordinary)):
            metrics[f"{prefix}level1_energy_ratio_{case}"] = float(
                e1["F"][mask].mean() / e1["copy"][mask].mean()
            )
        stats = hj.collapse.collapse_metrics(jnp.asarray(flat(s1)))
        metrics[f"{prefix}embedding_std"] = float(stats["embedding_std"])
        metrics[f"{prefix}effective_rank"] = float(stats["effective_rank"])
        metrics[f"{prefix}embedding_std_level2"] = float(np.mean(np.std(flat(s2), axis=0)))
        decode = hj.probes.ridge_regressor(flat(train_s1), flat(y1[0])[:, :2])
        decoded[name] = futures(model, params, s1, e1["z"], decode, cfg)

    # Multimodality at level 1 (latent model): what z buys, in energy and in decoded pixels.
    e1, fut = energies["latent"], decoded["latent"]
    err = lambda p, mask: float(np.mean(np.linalg.norm(p - cases["next"], axis=-1)[mask]))
    grid = fut["grid"]
    spread = np.sqrt(np.mean(np.sum((grid - grid.mean(-2, keepdims=True)) ** 2, -1), -1))
    for case, mask in (("ambiguous", amb), ("ordinary", ordinary)):
        metrics[f"latent_gain_{case}"] = float(1 - e1["F"][mask].mean() / e1["E0"][mask].mean())
        metrics[f"futures_spread_{case}"] = float(spread[mask].mean())
        metrics[f"future_error_inferred_z_{case}"] = err(fut["inferred"], mask)
        metrics[f"future_error_zero_z_{case}"] = err(fut["zero"], mask)
        metrics[f"future_error_probe_floor_{case}"] = err(fut["observed"], mask)
        metrics[f"no_latent_future_error_{case}"] = err(decoded["no_latent"]["zero"], mask)
    metrics["ambiguous_fraction"] = float(amb.mean())

    # Run keys over both trained models; final_loss is the latent model's.
    summaries = [r.summary for r in runs.values()]
    metrics.update(
        combined_summary(summaries, cfg.batch_size, runs["latent"].summary["final_loss"])
    )
    (train_s1, _), (test_s1, _) = states["latent"]
    arrays = {
        "train_x": flat(train_s1),
        "train_y": flat(y1[0]),
        "test_x": flat(test_s1),
        "test_y": flat(y1[1]),
    }
    atomic_write(out / "embeddings.npz", lambda f: np.savez(f, **arrays))
    draw(cfg, out / f"{NAME}.png", runs, metrics, decoded, cases, test)
    return metrics


EXAMPLE_KINDS = ("bounce, reverses", "bounce, reflects", "random turn")


def possible_next(test: dict, n: int, t: int) -> np.ndarray:
    """The positions frame t + 1 could have had at an ambiguous frame t: [M, 2].

    A single-wall bounce between t - 1 and t reflects or reverses v_{t-1}; a turn in free
    flight goes straight or turns by +-90 degrees. (Ignores a second bounce at t + 1.)
    """
    p, v = test["position"][n, t], test["velocity"][n, t - 1]
    if test["bounce"][n, t]:
        size = test["video"].shape[2]
        wall = np.minimum(p, size - p)  # distance to the nearer wall along each axis
        flip = np.where(np.arange(2) == np.argmin(wall), -1.0, 1.0)
        return p + np.stack([v * flip, -v])
    turn = np.array([[-v[1], v[0]], [v[1], -v[0]]])
    return p + np.concatenate([v[None], turn])


def pick_examples(test: dict, cases: dict, history: int = 3) -> list[tuple[str, int, int]]:
    """The first ambiguous test transition of each kind whose possible next positions lie
    at least 2 pixels apart: (kind, video, transition index)."""
    t = cases["frame"]
    amb = cases["ambiguous"] & (t >= history)
    bounce = amb & test["bounce"][:, t]
    retro = bounce & np.all(
        np.abs(test["velocity"][:, t] + test["velocity"][:, t - 1]) < 1e-4, axis=-1
    )
    picks = []
    for kind, mask in zip(EXAMPLE_KINDS, (retro, bounce & ~retro, amb & ~bounce), strict=True):
        for n, i in np.argwhere(mask):
            options = possible_next(test, n, t[i])
            if np.linalg.norm(options[0] - options[1]) >= 2.0:
                picks.append((kind, int(n), int(i)))
                break
    return picks


def draw(cfg, path, runs, metrics, decoded, cases, test) -> None:
    fig, axes = plt.subplots(2, 4, figsize=(22, 10))
    models = {"latent": ("-", "with latents"), "no_latent": ("--", "no latent")}
    colors = {"level1": "tab:blue", "level2": "tab:orange"}
    for name, (ls, label) in models.items():
        rows = runs[name].history
        steps = [r["step"] for r in rows]
        for level, color in colors.items():
            for ax, key in ((axes[0, 0], "energy"), (axes[0, 1], "embedding_std")):
                values = [r[f"{level}_{key}"] for r in rows]
                ax.plot(steps, values, ls=ls, color=color, label=f"{level}, {label}")
    axes[0, 0].set(
        yscale="log",
        xlabel="step",
        ylabel="mean F on the training batch (own space)",
        title="prediction energy while training",
    )
    axes[0, 1].axhline(1.0, color="gray", lw=0.8, ls=":")
    axes[0, 1].set(
        xlabel="step",
        ylabel="std of the states (batch, mean over dims)",
        title="no collapse (VICReg keeps the std near 1)",
    )
    for ax in axes[0, :2]:
        ax.legend(fontsize=8)

    ax = axes[0, 2]
    groups = [
        ("level 1\nall frames", "level1_energy_ratio"),
        ("level 1\nambiguous", "level1_energy_ratio_ambiguous"),
        ("level 1\nordinary", "level1_energy_ratio_ordinary"),
        (f"level 2\n({cfg.window} frames ahead)", "level2_energy_ratio"),
    ]
    width = 0.38
    for i, (prefix, color, label) in enumerate(
        (("", "tab:green", "with latents (z minimized)"), ("no_latent_", "tab:gray", "no latent"))
    ):
        values = [metrics[f"{prefix}{key}"] for _, key in groups]
        xs = np.arange(len(groups)) + (i - 0.5) * width
        ax.bar(xs, values, width, color=color, label=label)
        for x, v in zip(xs, values, strict=True):
            ax.text(x, v * 1.05, f"{v:.3f}", ha="center", fontsize=7)
    ax.axhline(1.0, color="k", lw=1, ls="--", label="copy-last (nothing changes)")
    ax.set_xticks(range(len(groups)), [g for g, _ in groups], fontsize=8)
    ax.set(
        yscale="log",
        ylim=(None, 1.6),
        ylabel="test F / copy-last energy, each in its own space",
        title="held-out prediction energy vs copy-last",
    )
    ax.legend(fontsize=8, loc="upper left")

    ax = axes[0, 3]
    probes = [
        ("position\nlevel 1", "probe_position_r2_level1"),
        ("velocity\nlevel 1", "probe_velocity_r2_level1"),
        ("position\nlevel 2", "probe_position_r2_level2"),
        ("velocity\nlevel 2", "probe_velocity_r2_level2"),
    ]
    width = 0.27
    for i, (suffix, color, label) in enumerate(
        (
            ("", "tab:green", "H-JEPA with latents"),
            ("_no_latent", "tab:gray", "no latent"),
            ("_random", "tab:red", "random encoder"),
        )
    ):
        keys = [k if (k + suffix) in metrics else "probe_position_r2" for _, k in probes]
        values = [max(metrics[k + suffix], 0.0) for k in keys]
        xs = np.arange(len(probes)) + (i - 1) * width
        ax.bar(xs, values, width, color=color, label=label)
        for x, v in zip(xs, values, strict=True):
            ax.text(x, v + 0.01, f"{v:.2f}", ha="center", fontsize=7)
    ax.set_xticks(range(len(probes)), [p for p, _ in probes], fontsize=8)
    ax.set(
        ylim=(0, 1.08),
        ylabel="linear probe test R^2 (clipped at 0)",
        title="what the frozen states hold (train -> test)",
    )
    ax.legend(fontsize=8, loc="upper right")

    fut, base = decoded["latent"], decoded["no_latent"]
    zs = fut["zs"]
    shade = np.arctan2(zs[:, 1], zs[:, 0]) if zs.shape[1] > 1 else zs[:, 0]
    size = test["video"].shape[2]
    picks = pick_examples(test, cases)
    for ax, (kind, n, i) in zip(axes[1, :3], picks, strict=False):
        t = cases["frame"][i]
        pos = test["position"][n]
        ax.imshow(  # the shape at frame t, faint
            test["video"][n, t, :, :, 0],
            cmap="gray_r",
            vmin=0,
            vmax=1000,
            extent=(0, size, size, 0),
        )
        ax.plot(
            pos[t - 3 : t + 1, 1],
            pos[t - 3 : t + 1, 0],
            "o-",
            color="k",
            ms=4,
            label=f"positions, frames {t - 3}..{t}",
        )
        grid = fut["grid"][n, i]
        ax.scatter(
            grid[:, 1],
            grid[:, 0],
            c=shade,
            cmap="viridis",
            s=16,
            alpha=0.8,
            label="predicted, z on a grid over the ball",
        )
        marks = (
            (fut["zero"][n, i], "s", "tab:blue", "predicted, z = 0"),
            (fut["inferred"][n, i], "X", "tab:red", "predicted, z inferred from the truth"),
            (base["zero"][n, i], "D", "tab:gray", "no-latent model's prediction"),
            (pos[t + 1], "*", "gold", f"true position, frame {t + 1}"),
        )
        options = possible_next(test, n, t)
        ax.plot(
            options[:, 1],
            options[:, 0],
            "*",
            color="none",
            mec="goldenrod",
            ms=15,
            mew=1.5,
            label="the possible next positions",
        )
        for p, marker, color, label in marks:
            ax.plot(
                p[1], p[0], marker, color=color, mec="k", ms=13 if marker == "*" else 9, label=label
            )
        lo = np.clip(pos[t] - 9, 0, size - 18)  # an 18-pixel view around the shape
        ax.set(
            xlim=(lo[1], lo[1] + 18),
            ylim=(lo[0] + 18, lo[0]),
            xlabel="column (px)",
            ylabel="row (px)",
            title=f"{kind}: test video {n}, frame {t} -> {t + 1}",
        )
        ax.legend(fontsize=7, loc="lower left", framealpha=0.8)
    for ax in axes[1, len(picks) : 3]:
        ax.axis("off")

    ax = axes[1, 3]
    bars = [
        ("spread of the\nfutures over z", "futures_spread"),
        ("error,\nz = 0", "future_error_zero_z"),
        ("error,\nz inferred", "future_error_inferred_z"),
        ("error,\nno latent", "no_latent_future_error"),
        ("error, true next\nstate (probe floor)", "future_error_probe_floor"),
    ]
    width = 0.38
    for i, (case, color) in enumerate((("ambiguous", "tab:purple"), ("ordinary", "tab:olive"))):
        values = [metrics[f"{key}_{case}"] for _, key in bars]
        xs = np.arange(len(bars)) + (i - 0.5) * width
        label = f"{case} transitions (energy lowered by z: {metrics[f'latent_gain_{case}']:.0%})"
        ax.bar(xs, values, width, color=color, label=label)
    ax.set_xticks(range(len(bars)), [b for b, _ in bars], fontsize=8)
    ax.set(
        ylabel="pixels (states decoded by the level-1 position probe)",
        title="level-1 predicted next positions, test set",
    )
    ax.legend(fontsize=8)
    fig.suptitle(f"{TITLE} (seed {cfg.seed}, {cfg.steps} steps per model)")
    fig.tight_layout()
    save_figure(fig, path)
