"""The Two Rooms figures: a planning run's figure (`draw_run`) and its panels, shared by the
experiments that plan there: the room's border, a layout's walls, a planner's episodes,
success rates, success against the path length, the walls between start and goal, and
planning compute."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker

from hjepa_jax.envs import two_rooms as tr
from hjepa_jax.experiments.common import on_process_0, save_figure
from hjepa_jax.models import two_rooms as agent


def draw_map(ax) -> None:
    lo, hi = tr.EnvParams().border_lo, tr.EnvParams().border_hi
    ax.plot([lo, hi, hi, lo, lo], [lo, lo, hi, hi, lo], color="k", lw=1.5)
    ax.set(xlim=(0, 64), ylim=(64, 0), aspect="equal")


def draw_walls(ax, wall_x, door_y, **style) -> None:
    """The interior walls of one layout (NaN entries: no such wall), their doors left open."""
    env = tr.EnvParams()
    lo, hi, d = env.border_lo, env.border_hi, env.door_half_height
    for wx, dy in zip(wall_x, door_y, strict=True):
        if not np.isnan(wx):
            ax.plot([wx, wx], [lo, dy - d], **style)
            ax.plot([wx, wx], [dy + d, hi], **style)


def draw_episodes(ax, ep, planner, setting, shown: int = 4) -> None:
    """The first `shown` episodes of (planner, setting), each in its own colour with its own
    walls (side by side, 0.8 px apart, so that every episode's door shows): the start (o),
    the path, the goal (* reached, X missed)."""
    draw_map(ax)
    idx = np.flatnonzero((ep["planner"] == planner) & (ep["layout"] == setting))[:shown]
    for k, i in enumerate(idx):
        color, shift = f"C{k}", 0.8 * (k - (len(idx) - 1) / 2)
        draw_walls(ax, ep["wall_x"][i] + shift, ep["door_y"][i], color=color, lw=1.5)
        ax.plot(*ep["positions"][i].T, color=color, lw=1.0)
        ax.plot(*ep["positions"][i, 0], "o", color=color, ms=3)
        ax.plot(*ep["goals"][i], "*" if ep["success"][i] else "X", color=color, ms=9, mec="k")


def draw_success_by_path(ax, ep, planners, bins: int = 4) -> None:
    """Success rate against the start-goal shortest path length (quantile bins over every
    setting's episodes), one line per planner: where flat planning gives out and hierarchy
    does not."""
    starts = ep["positions"][:, 0]
    lengths = agent.path_lengths(starts, ep["goals"], ep["wall_x"], ep["door_y"])
    edges = np.quantile(lengths, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, lengths, side="right") - 1, 0, bins - 1)
    average = lambda x, f=np.mean: f(x) if x.size else np.nan  # NaN: an empty bin
    centres = [average(lengths[which == b], np.median) for b in range(bins)]
    for planner in planners:
        mine = ep["planner"] == planner
        rates = [average(ep["success"][mine & (which == b)]) for b in range(bins)]
        ax.plot(centres, rates, "o-", label=planner, lw=1.2, ms=3)
    xlabel, title = "shortest path start-goal (px)", "success against path length (all settings)"
    ax.set(ylim=(-0.05, 1.05), xlabel=xlabel, ylabel="success", title=title)
    ax.legend(fontsize=7)


def draw_success_by_walls(ax, metrics: dict, planners, setting: str) -> None:
    """Success against the walls between the start's room and the goal's in `setting`, one
    line per planner: the distance sweep (distance_success_<planner>_<k>, its tasks' median
    shortest path distance_path_<k>) and the run's own tasks (success_<planner><suffix> and
    path_median<suffix>, at the setting's wall count). Does hierarchy's lead grow with the
    distance?"""
    paths = {
        int(k.removeprefix("distance_path_")): v
        for k, v in metrics.items()
        if k.startswith("distance_path_")
    }
    own, mine = agent.wall_count(setting), suffix(setting)
    paths.setdefault(own, metrics.get(f"path_median{mine}", np.nan))
    walls = sorted(paths)
    for planner in planners:
        run = metrics.get(f"success_{planner}{mine}", np.nan)  # the run's own tasks
        swept = (metrics.get(f"distance_success_{planner}_{k}") for k in walls)
        rates = [run if r is None and k == own else r for k, r in zip(walls, swept, strict=True)]
        ax.plot(walls, np.array(rates, float), "o-", label=planner, lw=1.2, ms=3)
    ax.set_xticks(walls, [f"{k}\n{paths[k]:.0f} px" for k in walls], fontsize=7)
    xlabel = "walls between start and goal\n(the tasks' median shortest path)"
    ax.set(ylim=(-0.05, 1.05), xlabel=xlabel, ylabel="success")
    ax.set_title(f"success against the distance\n{setting}", fontsize=9)
    ax.legend(fontsize=7)


def draw_success_rates(ax, rates: dict, planners, episodes: int) -> None:
    """Bars of success per planner (rates: setting -> [success of each planner]), one colour
    per setting."""
    width = 0.8 / len(rates)
    for j, (setting, values) in enumerate(rates.items()):
        x = np.arange(len(planners)) + (j - (len(rates) - 1) / 2) * width
        ax.bar(x, values, width, label=setting)
        for xi, v in zip(x, values, strict=True):
            ax.text(xi, v + 0.01, f"{v:.2f}", ha="center", fontsize=6, rotation=90)
    ax.set_xticks(range(len(planners)), planners, rotation=30, fontsize=8)
    ax.set(ylim=(0, 1.2), ylabel="success", title=f"success rate ({episodes} episodes)")
    ax.legend(fontsize=7, loc="upper right")


def draw_compute(
    ax, metrics: dict, setting: str, samples: int, measure: str = "evals", frontier: int = 16
) -> None:
    """Success against planning compute, a line per planner: against world-model evaluations
    per episode (measure "evals": the metrics compute_evals_<planner>_<samples> and
    plan_evals_per_episode_<planner>) or seconds of planning per episode ("s":
    compute_s_<planner>_<samples> and plan_s_per_episode_<planner>_<setting>). Each line is
    the planner's sample sweep (compute_success_<planner>_<samples>) with its main run at
    `samples` (success_<planner><suffix>; hjepa_search's sweep is over the states its search
    keeps per level, its main run at `frontier`); a planner outside the sweep (gradient MPC)
    is its main run's point alone."""
    main = {"evals": "plan_evals_per_episode_{}", "s": "plan_s_per_episode_{}_" + setting}[measure]
    runs: dict[str, list] = {}
    for key, success in metrics.items():
        if m := re.fullmatch(r"compute_success_(\w+?)_(\d+)", key):
            planner, n = m.group(1), m.group(2)
            runs.setdefault(planner, []).append(
                (metrics[f"compute_{measure}_{planner}_{n}"], success, n)
            )
    for key in metrics:
        planner = key.removeprefix("plan_evals_per_episode_")  # the planners that ran
        rate = f"success_{planner}{suffix(setting)}"
        if key != planner and metrics[key] > 0 and rate in metrics:
            n = frontier if planner == "hjepa_search" else samples
            label = str(n) if planner in runs else ""
            runs.setdefault(planner, []).append(
                (metrics[main.format(planner)], metrics[rate], label)
            )
    for planner, points in sorted(runs.items()):
        xs, ys, _ = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, "o-" if len(points) > 1 else "s", label=planner)
        for x, y, n in points:
            ax.annotate(n, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(ticker.LogLocator(subs=(2.0, 5.0)))  # 1, 2, 5 per decade
    form = "{x:,.0f}" if measure == "evals" else "{x:g}"  # 20,000, as in tables; 0.05 s
    ax.xaxis.set_major_formatter(ticker.StrMethodFormatter(form))
    ax.xaxis.set_minor_formatter(ticker.StrMethodFormatter(form))
    xlabel = {"evals": "world-model evaluations", "s": "s of planning"}[measure] + " per episode"
    ax.set(ylim=(0, 1.05), xlabel=xlabel, ylabel="success")
    numbers = "samples; hjepa_search: states per level" if "hjepa_search" in runs else "samples"
    ax.set_title(f"success against compute, {setting}\n(numbers: {numbers})", fontsize=9)
    ax.legend(fontsize=7)


@on_process_0
def draw_run(cfg, path, ep, probe, metrics, heading: str) -> None:
    """The figure of a planning run with config `cfg`: one row of episodes per setting (a
    column per planner), then the world model's rollouts (`probe`'s true and predicted
    positions), the success rates, success against the start-goal path length and (with
    compute_samples) against planning compute, in evaluations and in seconds, and (with
    goal_walls) against the walls between start and goal, under `heading`; saved to `path`."""
    true_pos, pred_pos = probe.true, probe.predicted
    planners = [p for p in cfg.planners if p != "random"]
    panels = 3 + 2 * bool(cfg.compute_samples) + bool(cfg.goal_walls)
    cols, rows = max(len(planners), panels), len(cfg.settings) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, setting in zip(axes, cfg.settings, strict=False):
        for ax, planner in zip(row, planners, strict=False):
            ax.axis("on")
            draw_episodes(ax, ep, planner, setting)
            rate = metrics[f"success_{planner}{suffix(setting)}"]
            title = f"{planner}, {setting}: success {rate:.2f}\n(* reached, X missed)"
            ax.set_title(title, fontsize=9)
    ax_roll, ax_bar, ax_path = axes[-1, :3]
    for ax in (ax_roll, ax_bar, ax_path):
        ax.axis("on")
    draw_map(ax_roll)
    for i in range(6):
        (line,) = ax_roll.plot(*true_pos[i].T, lw=1.2)
        ax_roll.plot(*pred_pos[i].T, "--", color=line.get_color(), lw=1.2)
    rmse = metrics["probe_position_rmse"]
    title = f"rollouts: true (solid) vs predicted, probed (dashed)\nprobe RMSE {rmse:.2f} px"
    ax_roll.set_title(title, fontsize=9)
    rates = {s: [metrics[f"success_{p}{suffix(s)}"] for p in cfg.planners] for s in cfg.settings}
    draw_success_rates(ax_bar, rates, cfg.planners, cfg.episodes)
    draw_success_by_path(ax_path, ep, cfg.planners)
    if cfg.compute_samples:  # against evaluations, then against seconds
        for ax, measure in zip(axes[-1, 3:5], ("evals", "s"), strict=True):
            ax.axis("on")
            draw_compute(ax, metrics, cfg.settings[0], cfg.samples, measure, cfg.search_frontier)
    if cfg.goal_walls:
        axes[-1, panels - 1].axis("on")
        draw_success_by_walls(axes[-1, panels - 1], metrics, cfg.planners, cfg.settings[0])
    fig.suptitle(f"{heading} (seed {cfg.seed}, {cfg.steps} training steps)")
    fig.tight_layout()
    save_figure(fig, path)


def suffix(setting: str) -> str:
    """The suffix of a setting's metrics (success_<planner><suffix>): none for random walls."""
    return "" if setting == "random" else "_" + setting
