"""Paper Fig. 11: a two-level H-JEPA learns a world model of bouncing shapes from video alone.

    hjepa-run hjepa_moving_shapes --quick --out out/hjepa_moving_shapes   # 300 steps, ~30 s
    hjepa-run hjepa_moving_shapes --out out/hjepa_moving_shapes           # 2000 steps, ~3.5 min

Shows that stacking two JEPAs (`hjepa_jax.models.moving_shapes`) trained jointly on video
alone gives a hierarchy that does not collapse: level 1 predicts the next frame's state,
level 2 the state of the next window of k = 4 frames, both far better than copy-last
("nothing changes"); the states hold the shape's position (and, at level 2, its velocity),
read off by linear probes; and a 2-D latent z lets level 1 represent several futures where
the past does not decide. A second model is trained the same way with latent_dim = 0.

Data: `hjepa_moving_shapes` videos (32x32, one square or disc, 17 frames, speed 2-3 px per
frame). Two random events make the future ambiguous: a single-wall bounce reflects or
reverses (50/50), and in free flight the shape turns by +-90 degrees with probability 0.1 per
frame. A transition t -> t + 1 is "ambiguous" when such a choice decided v_t, "ordinary" when
there is no event and no bounce.

Metrics (held-out videos): level{1,2}_energy, copy_last_level{1,2}_energy,
level{1,2}_energy_ratio = F / copy-last in the model's own space (and no_latent_*),
level1_energy_ratio_{ambiguous,ordinary}; probe_{position,velocity}_r2_level{1,2} (and
_no_latent, _random; probe_position_r2_random is level 1's); embedding_std, effective_rank
(level 1); latent_gain_* = 1 - F / E(z = 0); futures_spread_* (px, RMS spread of the futures
decoded over a z grid); future_error_{inferred_z,zero_z,probe_floor}_* and
no_latent_future_error_* (px, decoded prediction to the true next position).
embeddings.npz: frozen level-1 states [N * 16, 32] with labels [N * 16, 4] = position (row,
col) at the state's last frame t and velocity v_{t-1}. Measured numbers: docs/results.md.
"""

from __future__ import annotations

import dataclasses
import functools
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
    on_process_0,
    save_figure,
)
from hjepa_jax.models.moving_shapes import (
    MovingShapesHJEPA,
    MovingShapesHJEPAConfig,
    encode_videos,
    futures,
    level_energies,
    level_probes,
    multimodality_metrics,
    pick_examples,
    possible_next,
    state_labels,
    transitions,
    window_labels,
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

    def model_config(self) -> MovingShapesHJEPAConfig:
        """The model's fields, as `hjepa_jax.models.moving_shapes` takes them."""
        names = [f.name for f in dataclasses.fields(MovingShapesHJEPAConfig)]
        return MovingShapesHJEPAConfig(**{name: getattr(self, name) for name in names})


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
        models[name] = model = MovingShapesHJEPA(cfg.model_config(), latent, frame)
        runs[name] = hj.train.train(
            model.loss,
            functools.partial(model.init, k_init),  # made sharded, under jit
            optax.adam(optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps)),
            {"video": jnp.asarray(train["video"])},
            loop=options.loop(cfg, out, model=name),
            key=k_run,
            config=dataclasses.asdict(cfg),
            desc=f"{NAME}/{name}",
        )
        params = runs[name].state.params
        states[name] = tuple(encode_videos(model, params, d["video"]) for d in (train, test))
    random_model = MovingShapesHJEPA(cfg.model_config(), True, frame)
    random_params = jax.jit(random_model.init)(k_random)  # one compile, not one per op
    states["random"] = tuple(
        encode_videos(random_model, random_params, d["video"]) for d in (train, test)
    )

    # Linear probes, fitted on the train split's frozen states, scored on the test split.
    flat = lambda a: a.reshape(-1, a.shape[-1])
    y1 = [state_labels(d, cfg.context) for d in (train, test)]
    y2 = [window_labels(y, cfg.window) for y in y1]
    metrics = {}
    for name, suffix in (("latent", ""), ("no_latent", "_no_latent"), ("random", "_random")):
        r2 = level_probes(*states[name], (y1[0], y2[0]), (y1[1], y2[1]))
        metrics.update({f"probe_{k}{suffix}": v for k, v in r2.items()})
    metrics["probe_position_r2_random"] = metrics.pop("probe_position_r2_level1_random")

    # Prediction energies on held-out videos. Each model's energies live in its own
    # representation space (its own scale and geometry), so a raw F of one model says nothing
    # about another's. Each is divided by its own copy-last baseline ("nothing changes",
    # ||s_{t+1} - s_t||^2 in the same space): ratio < 1 means the predictor beats copy-last,
    # and the ratios of the two models compare. Within the latent model, F = min_z E against
    # E(z = 0) isolates what the latent adds, in one space.
    cases = transitions(test, cfg.context, states["latent"][1][0].shape[1])
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
        decoded[name] = futures(model, params, s1, e1["z"], decode, cfg.grid)

    # Multimodality at level 1 (latent model): what z buys, in energy and in decoded pixels.
    metrics.update(
        multimodality_metrics(energies["latent"], decoded["latent"], decoded["no_latent"], cases)
    )

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


@on_process_0
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
