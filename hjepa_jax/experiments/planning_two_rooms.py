"""Fig. 1 agent: a JEPA world model learned from pixels, and Mode-2 planning in Two Rooms.

    hjepa-run planning_two_rooms --quick --out out/planning_two_rooms   # fixed wall, minutes
    hjepa-run planning_two_rooms --preset hjepa_three_rooms --out out/hjepa_three_rooms  # H-JEPA
    hjepa-run planning_two_rooms --preset hjepa_four_rooms --out out/hjepa_four_rooms    # farther
    hjepa-run planning_two_rooms --preset hjepa_search_three_rooms --out out/search  # ||s - g||^2
    hjepa-run planning_two_rooms --out out/full --ckpt-dir ckpt/full    # full mode, 1 h on 2 CPUs

Shows that a world model trained only on reward-free random-walk pixel trajectories (the
local tfds dataset `hjepa_two_rooms`; no reconstruction) and a critic of temporal distances
learned from the same trajectories let planners steer an agent through the door(s) into the
goal's room: gradient MPC, CEM, MPPI, a hierarchical planner, and H-JEPA ("hjepa": a level 2
learned from the same trajectories, over codes of k-step action chunks, proposes subgoal
states that level 1 reaches; "hjepa_search": the same level 2 searched breadth-first in
imagination, `hj.search.breadth_first`), against random actions. `--plan-cost distance`
plans with EB-JEPA's cost instead, the representation distance ||s - g||^2 alone (the
hjepa_search presets: every planner at that cost, on the hjepa presets' models). The
four-room presets also plan with the goal 0, 1 and 2 walls away (`--goal-walls`): does the
hierarchy's lead grow with the distance? `--search-memory M` (hjepa_search) and `--stuck-memory
M` (the flat planners) let the agent remember, for the episode, where its own encoded state
stayed put: the search no longer expands the move that left it stuck there, the flat cost
gains a bump there; `--search-unstick U` sends an agent stopped short of a goal just behind
a wall back to its search's subgoal.
Quick mode: the fixed wall, an 8-dim vector state, the flat planners. Full mode: random walls,
a 32-dim vector state trained with the context term, the flat planners and H-JEPA on random
walls and on the fixed wall (`--state spatial`: a convolutional state; `--train-layout mixed
--settings random,fixed,three_rooms`: three rooms too). The model, critics and planners are
`hjepa_jax.models.two_rooms`; this module configures, runs and draws. With `--ckpt-dir` a
rerun that changes only planning fields (PLANNING_FIELDS) reuses the trained models.

Episodes follow EB-JEPA's protocol: 200 env steps, actions clipped to an L2 norm <= 2.45
(here 1.8, the longest step of the training data: planners exploit the world model's guesses
about longer moves), the agent not frozen at the goal; success is the position after the last
step within 4.5 px of the goal. `--preset ebjepa_planner` sets EB-JEPA's planner settings
(horizon 90, 200 samples, 20 iterations, replanning every step, actions clipped to 2.45).

Learned from observations and actions only: the world model, the "critic" cost (temporal
distances between states of the same reward-free trajectories, `two_rooms.train_critic`)
and the intrinsic-cost head (`two_rooms.wall_proximity`, computed from a frame). Positions
serve the probes, scoring and figures. The "map" and "straight" costs are an oracle: their
locator and traversal costs train on simulator positions and free-floor samples.

Metrics: success_<planner>[_<setting>] (no suffix: random walls; at the last step),
first_hit_<planner>[_suffix] (at any step), steps_to_goal_<planner>[_suffix] (to the first
hit), plan_s_per_episode_<planner>[_<setting>], plan_evals_per_episode_<planner> (world-model
evaluations, `two_rooms.evaluations_per_episode`), probe_position_rmse / _r2,
rollout_position_rmse, rollout_rmse_<k> (k = 8, 30, 90 steps), probe_wall_x_rmse and
probe_door_y_rmse (where the wall and door are, read from the states; NaN with one layout),
path_corr_<cost>, wall_leak, door_pass; with hjepa, level2_energy against level2_copy_last
(its k-step prediction error and that of "nothing changes", per dimension), level2_code_std,
and where its level-2 plan's subgoals lie (`two_rooms.subgoal_probe`, first setting):
subgoal_through_doors (the plans whose subgoals pass each wall at its door),
subgoal_detour_median, subgoal_progress (along the shortest path, at the plan's end), and
subgoal_through_doors_straight, subgoal_progress_straight of a wall-blind plan; with
hjepa_search, the same of its search's imagined way from the start (search_through_doors,
..., and search_found: the way ends within 4.5 px of the goal, as the probe decodes it). With
--compute-samples N1,N2,..: compute_success_<planner>_<N>, compute_evals_<planner>_<N> and
compute_s_<planner>_<N> (s per episode) of each sampling planner with N samples (hjepa_search:
N states kept per search level), first setting. With --goal-walls K1,K2,..:
distance_success_<planner>_<K> and distance_first_hit_<planner>_<K> with the goal K walls
from the start's room (0: the same room), first setting, and distance_path_<K>, those tasks'
median shortest path (px).
Writes episodes.npz (positions [N, T+1, 2], goals [N, 2], planner [N], layout [N],
success [N], first_hit [N], steps [N], wall_x [N, 3], door_y [N, 3] with NaN for a disabled
wall slot). `hj.world_model.load(ckpt_dir)` returns the trained world model.
Measured numbers, each with its command: docs/results.md.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import jax
import numpy as np

import hjepa_jax as hj
from hjepa_jax.envs import two_rooms as tr
from hjepa_jax.experiments import two_rooms_figures as figures
from hjepa_jax.experiments import two_rooms_planning as planning
from hjepa_jax.experiments import two_rooms_presets as presets
from hjepa_jax.experiments.common import (
    Count,
    MayBeEmpty,
    NonNegative,
    Positive,
    RunOptions,
    Whole,
    atomic_write,
    config,
)
from hjepa_jax.models import two_rooms as agent
from hjepa_jax.models.two_rooms import COSTS, PLANNERS, SETTINGS

log = logging.getLogger("hjepa_jax.experiments")

NAME = "planning_two_rooms"
TITLE = "Fig. 1 agent: a pixel world model and Mode-2 planning in Two Rooms"
CLAIM = (
    "A JEPA world model trained only on reward-free random-walk pixel trajectories, and a "
    "critic of temporal distances learned from the same trajectories, let planners steer an "
    "agent through the door into the other room."
)

PROBE_TRAJECTORIES, PROBE_FIT = 400, 300  # held-out trajectories; the probe fits the first


# Full mode's model and planner settings: the library's defaults, where the fields mean the same.
_MODEL, _PLANNER = agent.ModelConfig(), agent.PlannerConfig()


@config
class Config:
    """The experiment's settings; defaults: full mode. The fields named as those of
    `two_rooms.ModelConfig` and `PlannerConfig` take their defaults and meanings from there."""

    seed: int = 0
    train_layout: str = "random"  # "fixed", "random", "mixed" (random + three rooms), ...
    settings: tuple[str, ...] = ("random", "fixed")
    # the flat planners, H-JEPA and random; "hierarchical" and "level1" (the level-1 predictor
    # repeated as level 2, and its level 1 alone) on request: planning is most of a run
    planners: tuple[str, ...] = ("gradient_mpc", "cem", "mppi", "hjepa", "random")
    trajectories: Count = 16000
    length: Count = 16  # T, steps per trajectory
    window: Whole = _MODEL.window
    policy: str = "open_loop"  # the reward-free walk (two_rooms.POLICIES): EB-JEPA's
    door_frac: NonNegative = 0.0  # aimed through a door (steered by the door's coordinates)
    wall_frac: NonNegative = 0.0  # aimed into a wall beside it (idem)
    cross_frac: NonNegative = 0.0  # the walk started to cross a door (EB-JEPA's data: 0.35)
    blur: NonNegative = _MODEL.blur
    pool: Count = _MODEL.pool
    channels: tuple[Count, ...] = _MODEL.channels
    embed_dim: Count = _MODEL.embed_dim
    state: Literal["vector", "spatial"] = _MODEL.state
    hidden: Count = _MODEL.hidden
    horizon: Count = _MODEL.horizon
    inverse_dynamics: NonNegative = _MODEL.inverse_dynamics
    smoothness: NonNegative = _MODEL.smoothness
    variance: NonNegative = _MODEL.variance
    covariance: NonNegative = _MODEL.covariance
    context: NonNegative = _MODEL.context
    hard: NonNegative = _MODEL.hard
    critic_steps: Count = 8000  # the critic trains after the world model, on frozen states
    critic_batch: Count = 64
    critic_dim: Count = _MODEL.critic_dim
    critic_others: Count = _MODEL.critic_others
    critic_penalty: NonNegative = _MODEL.critic_penalty
    critic_step: Positive = _MODEL.critic_step
    cost: str = _MODEL.cost
    map_cap: NonNegative = _MODEL.map_cap
    map_penalty: NonNegative = _MODEL.map_penalty
    map_visits: Count = _MODEL.map_visits
    wall_cost: NonNegative = _PLANNER.wall_cost
    wall_fade: NonNegative = _PLANNER.wall_fade
    wall_margin: int = _MODEL.wall_margin
    # the learned level 2 of the "hjepa" planner, trained when it is among the planners
    level2_steps: Count = 3000
    level2_k: Count = _MODEL.level2_k
    level2_codes: Count = _MODEL.level2_codes
    level2_horizon: Count = _MODEL.level2_horizon
    steps: Count = 6000
    batch_size: Count = 32
    learning_rate: Positive = 1e-3
    log_every: Count = 100
    # planning
    episodes: Count = 200
    max_steps: Count = _PLANNER.max_steps
    replan_every: Count = _PLANNER.replan_every
    eval_chunk: Count = _PLANNER.eval_chunk
    horizon_plan: Count = _PLANNER.horizon_plan
    discount: NonNegative = _PLANNER.discount
    samples: Count = _PLANNER.samples
    elites: Count = _PLANNER.elites
    iterations: Count = _PLANNER.iterations
    init_std: Positive = _PLANNER.init_std
    gd_steps: Count = _PLANNER.gd_steps
    gd_lr: Positive = _PLANNER.gd_lr
    gd_starts: Count = _PLANNER.gd_starts
    gd_noise: NonNegative = _PLANNER.gd_noise
    gd_noise_samples: Count = _PLANNER.gd_noise_samples
    mppi_temperature: Positive = _PLANNER.mppi_temperature
    macro_steps: Count = _PLANNER.macro_steps
    macro_horizon: Count = _PLANNER.macro_horizon
    hier_horizon: Count = _PLANNER.hier_horizon
    level2_every: Count = _PLANNER.level2_every
    level1: str = _PLANNER.level1
    waypoint_moves: Count = _PLANNER.waypoint_moves
    search_depth: Count = _PLANNER.search_depth
    search_frontier: Count = _PLANNER.search_frontier
    search_directions: Count = _PLANNER.search_directions
    search_speed: Positive = _PLANNER.search_speed
    search_spacing: Positive = _PLANNER.search_spacing
    search_subgoal: Count = _PLANNER.search_subgoal
    search_stuck: NonNegative = _PLANNER.search_stuck
    search_memory: Whole = _PLANNER.search_memory
    search_avoid: Positive = _PLANNER.search_avoid
    search_unstick: NonNegative = _PLANNER.search_unstick
    stuck_memory: Whole = _PLANNER.stuck_memory
    stuck_still: NonNegative = _PLANNER.stuck_still
    stuck_cost: NonNegative = _PLANNER.stuck_cost
    stuck_radius: Positive = _PLANNER.stuck_radius
    search_arrive: NonNegative = _PLANNER.search_arrive
    plan_cost: str = _PLANNER.plan_cost  # "model" (`cost`) or "distance": EB-JEPA's cost
    action_norm: Positive = _PLANNER.action_norm
    # Success against planning compute: the sampling planners again in the first setting with
    # these sample counts (elites a quarter), hjepa_search with these search_frontier, on the
    # same episodes; () for none.
    compute_samples: Annotated[tuple[Count, ...], MayBeEmpty()] = ()
    # Success against the distance: every planner again in the first setting with the goal
    # this many walls from the start's room (0: the same room; at most the setting's walls),
    # on the same task keys; () for none.
    goal_walls: Annotated[tuple[Whole, ...], MayBeEmpty()] = ()

    PRESETS: ClassVar[dict[str, dict]] = presets.PRESETS  # ebjepa_planner, hjepa_*

    def quick(self) -> Config:
        return dataclasses.replace(self, **presets.QUICK)

    def check(self) -> None:
        """Raise ValueError on a planner, setting or cost this experiment does not know
        (called when the config is built)."""
        for name, given, known in (
            ("planners", self.planners, PLANNERS),
            ("settings", self.settings, tuple(SETTINGS)),
            ("train_layout", (self.train_layout,), tuple(tr.LAYOUTS)),
            ("cost", (self.cost,), COSTS),
            ("plan_cost", (self.plan_cost,), agent.PLAN_COSTS),
            ("policy", (self.policy,), tuple(tr.POLICIES)),
            ("level1", (self.level1,), agent.LEVEL1),
        ):
            if not given or set(given) - set(known):
                raise ValueError(f"{NAME}: {name} must be among {known}, got {given!r}")
        if min(self.horizon_plan, self.hier_horizon) < self.replan_every:
            raise ValueError(
                f"{NAME}: horizon_plan ({self.horizon_plan}) and hier_horizon "
                f"({self.hier_horizon}) must be >= replan_every ({self.replan_every})"
            )
        walls = agent.wall_count(self.settings[0]) if self.goal_walls else 0
        if any(k > walls for k in self.goal_walls):
            raise ValueError(
                f"{NAME}: goal_walls must be <= {walls}, the walls of {self.settings[0]} (the "
                f"first setting), got {self.goal_walls!r}"
            )
        tr.check_fractions(NAME, self.door_frac, self.wall_frac, self.cross_frac)
        if self.eval_chunk < 1:
            raise ValueError(f"{NAME}: eval_chunk must be >= 1, got {self.eval_chunk}")

    def model_config(self) -> agent.ModelConfig:
        """The world model's and the critic's settings (fields of the same names)."""
        return _fields_of(agent.ModelConfig, self)

    def planner_config(self) -> agent.PlannerConfig:
        """The planners' settings (fields of the same names)."""
        return _fields_of(agent.PlannerConfig, self)


def _fields_of(cls, cfg: Config):
    return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls)})


# Fields read only after a model is trained: changing them reuses its checkpoint.
PLANNING_FIELDS = ("settings", "planners", "episodes", "compute_samples", "goal_walls") + tuple(
    f.name for f in dataclasses.fields(agent.PlannerConfig)
)
CRITIC_FIELDS = (
    "critic_steps", "critic_batch", "critic_dim", "critic_others", "critic_penalty",
    "critic_step", "cost", "map_cap", "map_penalty", "map_visits", "wall_margin",
)  # fmt: skip
LEVEL2_FIELDS = ("level2_steps", "level2_k", "level2_codes", "level2_horizon")


def trained_config(cfg: Config, model: str) -> dict:
    """The config saved with (and checked against) the checkpoints of "world_model", "critic"
    or "level2": the fields its training reads. The critic's and level 2's name the world
    model's steps `model_steps` (their `steps` are their own, which a resumed run may
    extend). A field of agent.ADDED at its value there is left out, so that checkpoints saved
    before it existed still match."""
    fields = dataclasses.asdict(cfg)
    skip = {"world_model": CRITIC_FIELDS + LEVEL2_FIELDS, "critic": LEVEL2_FIELDS}.get(model, ())
    for name in PLANNING_FIELDS + skip + tuple(k for k, v in agent.ADDED.items() if fields[k] == v):
        del fields[name]
    if model != "world_model":
        own = cfg.critic_steps if model == "critic" else cfg.level2_steps
        fields["model_steps"], fields["steps"] = fields["steps"], own
    return fields


def offline_data(cfg: Config) -> tuple[dict, dict]:
    """The train split (`trajectories` rows) and the probe's held-out test split (400 rows:
    the probe fits 300, scores 100) of the local tfds dataset `hjepa_two_rooms`, built on
    first use from the config's seed and data settings."""
    fields = ("seed", "length", "door_frac", "wall_frac", "cross_frac", "policy")
    settings = {f: getattr(cfg, f) for f in fields}
    settings.update(num_train=cfg.trajectories, num_test=PROBE_TRAJECTORIES)
    settings["layout"] = cfg.train_layout
    return tuple(hj.data.load("hjepa_two_rooms", split, **settings) for split in ("train", "test"))


def run(cfg: Config, out: Path, options: RunOptions = RunOptions()) -> dict:
    """Train the world model, probe it, plan with every planner in every setting, draw."""
    key = jax.random.PRNGKey(cfg.seed)
    _, k_init, k_train, k_probe, k_eval, k_critic = jax.random.split(key, 6)
    k_level2 = jax.random.fold_in(key, 7)
    data, held = (hj.data.two_rooms.trajectories(arrays) for arrays in offline_data(cfg))
    model = agent.Model(cfg.model_config())
    result = hj.train.train(
        model.loss,
        lambda: model.init(k_init),  # made sharded, under jit
        agent.optimizer(cfg.learning_rate, cfg.steps),
        (data.positions, data.actions, data.layouts),
        loop=options.loop(cfg, out, "world_model"),
        key=k_train,
        config=trained_config(cfg, "world_model"),
        desc=NAME,
    )
    params = result.state.params
    metrics = dict(result.summary)
    metrics.update({f"final_{k}": v for k, v in result.history[-1].items() if k != "step"})
    if cfg.cost != "distance":
        loop = dataclasses.replace(
            options.loop(cfg, out, "critic"),
            steps=cfg.critic_steps,
            batch_size=cfg.critic_batch,
            log_every=max(cfg.critic_steps // 10, 1),
        )
        settings = dict(config=trained_config(cfg, "critic"), desc=f"{NAME} critic")
        critic = agent.train_critic(
            model, params, data, loop, k_critic, learning_rate=cfg.learning_rate, **settings
        )
        params["critic"] = critic.state.params
        metrics.update({f"critic_{k}": v for k, v in critic.history[-1].items() if k != "step"})
        metrics["critic_resumed_from_step"] = critic.summary["resumed_from_step"]

    if set(cfg.planners) & set(agent.LEVEL2):  # the learned level 2, on the same states
        loop = dataclasses.replace(
            options.loop(cfg, out, "level2"), steps=cfg.level2_steps, log_every=cfg.log_every
        )
        settings = dict(config=trained_config(cfg, "level2"), desc=f"{NAME} level 2")
        level2 = agent.train_level2(
            model, params, data, loop, k_level2, learning_rate=cfg.learning_rate, **settings
        )
        params["level2"] = level2.state.params
        last = {k.removeprefix("level2_"): v for k, v in level2.history[-1].items()}
        metrics.update({f"level2_{k}": v for k, v in last.items() if k != "step"})

    # Probe: frozen states of held-out trajectories (the test split) -> positions.
    probe = agent.probe(model, params, held, PROBE_FIT)
    metrics["probe_position_r2"], metrics["probe_position_rmse"] = probe.r2, probe.rmse
    metrics["probe_wall_x_rmse"] = probe.wall_x_rmse  # NaN: one layout
    metrics["probe_door_y_rmse"] = probe.door_y_rmse
    metrics["rollout_position_rmse"] = probe.rollout_rmse
    first = cfg.settings[0]
    metrics.update(agent.rollout_errors(model, params, probe.decode, k_probe, first))
    metrics.update(
        agent.cost_path_correlation(model, params, k_probe, first, cfg.wall_cost, cfg.wall_fade)
    )
    metrics.update(agent.wall_predictions(model, params, k_probe, first))
    pcfg, decode = cfg.planner_config(), probe.decode
    for planner in sorted(set(cfg.planners) & set(agent.LEVEL2)):  # level 2 through the doors?
        probed = agent.subgoal_probe(model, params, pcfg, decode, k_probe, first, planner=planner)
        metrics.update(probed)

    planned, arrays = planning.every_setting(model, params, cfg, k_eval)  # then plan
    metrics.update(planned)
    metrics.update(planning.compute_sweep(model, params, cfg, k_eval))
    metrics.update(planning.distance_sweep(model, params, cfg, k_eval))
    atomic_write(out / "episodes.npz", lambda f: np.savez(f, **arrays))
    draw(cfg, out / f"{NAME}.png", arrays, probe, metrics, TITLE)
    return metrics


draw = figures.draw_run  # the run's figure, drawn by process 0 only
