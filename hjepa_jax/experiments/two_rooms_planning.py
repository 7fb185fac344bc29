"""The planning half of `planning_two_rooms.run`: every planner in every setting on EB-JEPA's
protocol, and success against planning compute. Each takes the experiment's Config and
returns metrics named as its docstring says."""

from __future__ import annotations

import dataclasses
import itertools
import logging

import jax
import numpy as np

from hjepa_jax.experiments import two_rooms_figures as figures
from hjepa_jax.models import two_rooms as agent

log = logging.getLogger("hjepa_jax.experiments")

SAMPLING = {"cem", "mppi", "hierarchical", "level1", "hjepa"}  # the planners with samples
EPISODE_KEYS = (
    "positions", "goals", "planner", "layout", "success", "first_hit", "steps", "wall_x", "door_y",
)  # fmt: skip


def every_setting(model, params, cfg, k_eval: jax.Array) -> tuple[dict, dict]:
    """Plan with each of cfg.planners in each of cfg.settings (cfg.episodes tasks from
    `two_rooms.tasks(k_eval, setting, ...)`, one compiled call per pair) -> (metrics
    success_, first_hit_, steps_to_goal_, plan_s_per_episode_, plan_evals_per_episode_ and
    path_median<suffix> (the tasks' median shortest path from start to goal, px), the
    episodes' arrays of EPISODE_KEYS for episodes.npz)."""
    metrics, parts, plan_s = {}, [], {p: [] for p in cfg.planners}
    pcfg = cfg.planner_config()
    for setting in cfg.settings:
        keys, layouts = agent.tasks(k_eval, setting, cfg.episodes)
        for planner in cfg.planners:
            ep = agent.run_episodes(model, params, pcfg, planner, keys, layouts)
            done, hit, name = ep.success, ep.first_hit, planner + figures.suffix(setting)
            metrics[f"success_{name}"] = float(done.mean())
            metrics[f"first_hit_{name}"] = float(hit.mean())
            metrics[f"steps_to_goal_{name}"] = float(ep.steps[hit].mean()) if hit.any() else np.nan
            metrics[f"plan_s_per_episode_{planner}_{setting}"] = ep.seconds
            evals = agent.evaluations_per_episode(planner, pcfg, cfg.cost)
            metrics[f"plan_evals_per_episode_{planner}"] = evals
            what = "%s %s: success %.3f (first hit %.3f), %d episodes, %.2f s of planning each"
            log.info(what, planner, setting, done.mean(), hit.mean(), cfg.episodes, ep.seconds)
            plan_s[planner].append(ep.seconds)
            tags = {"planner": planner, "layout": setting}
            parts.append({**ep._asdict(), **{k: np.full(cfg.episodes, v) for k, v in tags.items()}})
        metrics[f"path_median{figures.suffix(setting)}"] = median_path(ep)
    for planner in cfg.planners:
        metrics[f"plan_s_per_episode_{planner}"] = float(np.mean(plan_s[planner]))
    return metrics, {k: np.concatenate([part[k] for part in parts]) for k in EPISODE_KEYS}


def compute_sweep(model, params, cfg, k_eval: jax.Array) -> dict:
    """Success against planning compute in the first setting, on its episodes: each sampling
    planner again with each of cfg.compute_samples samples (elites a quarter), hjepa_search
    with that many states kept per search level -> compute_success_, compute_evals_ and
    compute_s_ <planner>_<N>."""
    metrics = {}
    swept = [p for p in cfg.planners if p in SAMPLING or p == "hjepa_search"]
    keys, layouts = agent.tasks(k_eval, cfg.settings[0], cfg.episodes)
    for n, planner in itertools.product(cfg.compute_samples, swept):
        knob = dict(samples=n, elites=max(1, n // 4))
        knob = dict(search_frontier=n) if planner == "hjepa_search" else knob
        pcfg = dataclasses.replace(cfg.planner_config(), **knob)
        ep = agent.run_episodes(model, params, pcfg, planner, keys, layouts)
        evals = agent.evaluations_per_episode(planner, pcfg, cfg.cost)
        got = {"success": float(ep.success.mean()), "evals": evals, "s": ep.seconds}
        metrics.update({f"compute_{k}_{planner}_{n}": v for k, v in got.items()})
        what = "states per level" if planner == "hjepa_search" else "samples"
        msg = "%s, %d %s: success %.3f, %d evaluations"
        log.info(msg, planner, n, what, ep.success.mean(), evals)
    return metrics


def distance_sweep(model, params, cfg, k_eval: jax.Array) -> dict:
    """Success against the distance in the first setting, on its task keys: every planner
    again with the goal k walls from the start's room, for k in cfg.goal_walls (0: the same
    room; the setting's wall count: its protocol tasks, planned again) -> distance_success_ and
    distance_first_hit_ <planner>_<k>, and distance_path_<k>: the median shortest path from
    start to goal of those tasks (px)."""
    metrics, pcfg = {}, cfg.planner_config()
    keys, layouts = agent.tasks(k_eval, cfg.settings[0], cfg.episodes)
    for k in cfg.goal_walls:
        walls = np.full(cfg.episodes, k, np.int32)
        for planner in cfg.planners:
            ep = agent.run_episodes(model, params, pcfg, planner, keys, layouts, walls)
            metrics[f"distance_success_{planner}_{k}"] = float(ep.success.mean())
            metrics[f"distance_first_hit_{planner}_{k}"] = float(ep.first_hit.mean())
            msg = "%s, the goal %d walls away: success %.3f (first hit %.3f)"
            log.info(msg, planner, k, ep.success.mean(), ep.first_hit.mean())
        metrics[f"distance_path_{k}"] = median_path(ep)
    return metrics


def median_path(ep: agent.Episodes) -> float:
    """The median shortest path from start to goal of `ep`'s tasks (px)."""
    return float(np.median(agent.path_lengths(ep.positions[:, 0], ep.goals, ep.wall_x, ep.door_y)))
