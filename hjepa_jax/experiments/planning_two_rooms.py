"""Fig. 1 agent: a JEPA world model learned from pixels, and Mode-2 planning in Two Rooms.

    python -m hjepa_jax.experiments.run planning_two_rooms --out out/planning_two_rooms [--quick]

With `--ckpt-dir`, the world model and the critic are checkpointed (sub-folders world_model/
and critic/); a rerun that changes only planning fields (PLANNING_FIELDS: planners,
settings, episodes, ...) reuses both and only plans.

Data: the local tfds dataset `hjepa_two_rooms` (`hj.data.two_rooms`, built on first use in
seconds from the seed): random-policy trajectories of `two_rooms.random_trajectories`
(length T = 16, 30% aimed through a door, 20% pushing into a wall outside the door: without
these the world model never learns to stop at the wall) as positions, actions and layouts;
its test split (400) holds the probe's trajectories. The observations are rendered inside
the jitted loss (`render_position`) and average-pooled by `pool` (2: 65 x 65 -> 32 x 32, the
last row and column dropped) so that the conv net is cheap on a CPU.

World model (`hj.world_model.loss`): s = ConvEncoder(o) (channels `channels`, D = `embed_dim`),
s_{t+1} = s_t + MLP([s_t, a_t / 2.45]), an inverse-dynamics MLP reading a_t from (s_t, s_{t+1}),
multi-step rollout energy over `horizon` steps, VICReg variance/covariance on the states. A
ridge probe from frozen states to positions gives `probe_position_rmse` (pixels, held-out
frames) and decodes the predicted rollouts of the figure.

Planning, one compiled call per (planner, setting) over all its episodes (vmap over chunks
of `eval_chunk`, a loop over chunks; the receding horizon is a lax.while_loop that ends when
the chunk's episodes all reached the goal): every `replan_every` env steps the planner sees
Enc(o_t) and Enc(goal_obs) only, plans, and the first `replan_every` actions are executed;
the plan is warm-started from the previous one shifted. An episode stops counting at success
(the position is frozen; the planner never sees it). Cost, summed over the predicted trajectory
(weights discount^(H - t)): the paper's cost module,
    c(s, g) = d(s, g) + wall_cost * IC_hat(s),
d a trainable critic (steps to go; "straight" and "distance" are myopic stand-ins) and
IC_hat a head that predicts the hard-wired intrinsic cost `two_rooms.wall_proximity` of the
observation (the agent blob's mass near walls) from the state; both are trained after the
world model on its frozen states (`train_critic`: every offline trajectory, plus
`critic_others` observations at random places of its layout). The critic d:
  cost="map" (default): a value-iteration critic (`hj.critic.value_iteration`). A local conv
    net maps the wall channel of the goal's observation to a traversal cost per pixel,
    learned (`hj.critic.map_loss`) from where agents were seen in each layout (random
    places: every seen pixel costs one step, the never-seen ones, walls, are pushed to
    `map_cap`); value iteration over it gives the steps-to-go V_g of every pixel once per
    episode; d(s, g) = V_g(sum_pixels p(pixel | s) pixel), V_g bilinearly interpolated
    (`hj.critic.map_value`) at the expected pixel of p, a locator head on the state
    (trained to name the agent's pixel). No local minima by construction. (V_g's expectation
    under p, sum_pixels p(pixel | s) V_g(pixel), did worse: p is sharp, so that cost moves
    only through p's tails; gradient MPC zigzagged, 40 steps to the goal in three rooms
    against 24 here, and CEM of 64 samples reached 0.03 on random walls against 0.90 here (1.00 with
    16 elites), 30 episodes each.)
  cost="straight": critic_step times the straight-line pixel distance from the agent's
    expected location (the same locator) to the goal's pixel: myopic, blind to walls; the
    level-1 cost of the hierarchical planner, and as a flat planner's cost its baseline. The
    hierarchical subgoal starts from the locator's most likely pixel, the cost from its
    expected one (the same pixel when the locator is sure).
  cost="critic": d(s, g) = ||psi(s) - psi(g)||, psi trained by `hj.critic.loss` (a
    quasimetric over the trajectories' steps): good for one layout (the fixed wall), but on
    random walls it must learn every wall's place from the state and keeps local minima.
  cost="distance": the squared distance to the goal's representation, which has a local
    minimum at the wall (with the true dynamics as the model, MPPI/CEM on the straight-line
    distance reach only 50-86% on random walls over 100 episodes).
With the "critic" cost agents stall on the door's corners without the wall term (the world
model predicts a pass where the no-slide collision stops a move that clips the wall); the
map's steps-to-go already keep plans off the walls, and wall_cost = 0 does best with it.
  gradient_mpc, cem, mppi: `hj.planning` flat planners, horizon `horizon_plan`.
  hierarchical, with a map cost ("map" or "straight"): level 2 is the map critic's abstract
    world, the agent's pixel on the learned traversal-cost map: its plan is V_g (value
    iteration), its subgoal the waypoint `waypoint_moves` pixels down V_g from the pixel
    where the state locates the agent (`hj.critic.waypoint`); level 1 is gradient MPC of
    horizon `hier_horizon` through the world model on the myopic "straight" cost to that
    waypoint.
  hierarchical, otherwise: `hj.planning.hierarchical`: CEM over `macro_horizon`
    macro-actions (one action held `macro_steps` steps through the same world model) to the
    goal; the state predicted after the first macro step is the subgoal; a CEM of horizon
    `hier_horizon` plans the actions toward it.
  level1: the hierarchical planner's level 1 alone, aimed at the goal: the flat baseline
    with the hierarchy's own level-1 cost (map costs: gradient MPC on "straight"; otherwise a
    CEM of horizon `hier_horizon`, which quick mode leaves out as it repeats `cem`).
  random: uniform random actions (chance level in the same number of steps).
`planners` (default all; quick mode: all but level1) picks which run: on 2 CPU cores, full-mode
planning with every planner in every setting takes 80 min, half of it level1 (4.3 s per
episode, as its agents rarely arrive and so never end a chunk early; 0.6-1.2 s for the
others).

Settings: `fixed` (wall at x = 32, door at y = 18), `random` (wall_x, door_y random per
episode), `three_rooms` (two walls). Quick mode trains and plans on the fixed wall only;
full mode trains on random walls mixed with three-rooms layouts and plans in all three.

Metrics: success_<planner>[_fixed|_three_rooms] (no suffix: random walls),
steps_to_goal_<planner>[_suffix] (mean over successes),
plan_s_per_episode_<planner>_<setting> (wall time of the compiled batch / episodes; the
setting always named, as the plain plan_s_per_episode_<planner> is the mean over the
settings run), probe_position_rmse, probe_position_r2; path_corr_<cost> (the run's cost,
distance, straight_line): the correlation of each cost between 300 task starts and their
goals with the shortest path length through the doors (`path_length`).
Writes episodes.npz (positions [N, T+1, 2], goals [N, 2], planner [N], layout [N],
wall_x [N, 2], door_y [N, 2] with NaN for a missing second wall, success [N], steps [N]).

Quick mode's encoder input: frames average-pooled by 2 (32 x 32) and the agent channel
blurred (std 10 pooled px); a vector state, D = 8, with a temporal-smoothness term (chosen
when the cost was the representation distance, which the blur makes decrease toward the
goal over a whole room); its cost is cost="critic" with wall_cost 2.5.

Results, quick mode (seed 0, fixed wall, 20 episodes of 100 env steps, 800 world-model steps,
4000 critic steps; 2 CPU cores, 230 s in all, 76 s of it training the world model; the
fresh-clone `make reproduce` of commit eb77950):
  success_<planner>_fixed: cem 1.00, mppi 0.80, gradient_mpc 0.75, hierarchical 0.60,
  random 0.00; mean steps to the goal 19-21 for the flat planners, 32 hierarchical; planning
  s/episode: gradient_mpc 0.08, cem 0.21, mppi 0.73, hierarchical 3.1.
  path_corr_critic 0.92 (path_corr_distance 0.41, straight line 0.47); wall_leak 0.00,
  door_pass 1.00; probe_position_rmse 2.1 px (R^2 0.97, on the test split),
  rollout_position_rmse 2.7 px.
  How it got there (same quick settings): with cost="distance" every planner scored <= 0.15
  (the representation distance's minimum at the wall); with the critic alone <= 0.05 while
  the data had 1.3% wall contacts (wall_leak 1.00: the model walked through walls); with
  wall_frac 0.2, 0.15-0.35 (agents stalled on the door's corners); with the wall term, the
  numbers above (on 30 episodes of 160 steps: gradient_mpc 0.97, mppi 0.97, cem 1.00).
Full mode (seed 0, the defaults: state="spatial", an 8 x 8 x 4 feature map and a
ConvPredictor, blur 1; 10000 mixed trajectories, 1500 steps of batch 32, 8 min; the map
critic, 3000 steps, 8 min; 200 episodes of at most 200 env steps per planner and setting;
2 CPU cores; 1 h 35 min in all, 43 min of it level1, which never stops early), run at commit
2d6b9fb on the tfds data as
    python -m hjepa_jax.experiments.run planning_two_rooms --out out/full --ckpt-dir ckpt/full
success (mean steps to the goal over successes) and planning s / episode:
                 random walls    fixed wall      three rooms     s / episode (r / f / 3)
  gradient_mpc   0.990 (18.5)    1.000 (19.3)    1.000 (26.1)    1.11 / 0.64 / 0.92
  cem            0.995 (20.5)    1.000 (20.6)    1.000 (29.1)    0.93 / 0.68 / 0.94
  mppi           0.990 (19.2)    1.000 (19.6)    1.000 (26.9)    1.06 / 0.65 / 0.88
  hierarchical   1.000 (17.3)    0.990 (17.6)    0.995 (23.5)    0.66 / 1.00 / 0.92
  level1         0.180 (19.8)    0.230 (21.5)    0.040 (17.5)    4.29 / 4.31 / 4.14
  random         0.025           0.020           0.000
(EB-JEPA, the same benchmark: MPPI 0.97 +- 0.02, CEM 0.96 +- 0.02 on random walls, 0.98 on
the fixed wall, 20 episodes, about 37 s of planning per episode on a GPU.) The train split
draws from the same key as the in-memory data of commit fbd90ed's run (fold_in(key, 0) is
split(key, 6)[0]), so it holds the same trajectories, and the table matches that run's to
every digit; only the probe's held-out trajectories changed (3.37 px there).
docs/planning_two_rooms_full.png is this run's figure.
probe_position_rmse 2.38 px (R^2 0.97), rollout_position_rmse 7.7 px (16 steps);
path_corr_map 0.84 (straight line 0.58, representation distance 0.34); wall_leak 0.00,
door_pass 0.65.
Flat against hierarchical: the hierarchy turns its own level 1 (gradient MPC on the
myopic straight-line cost, horizon 8) from 0.04 into 0.995 in three rooms and from 0.18 into
1.00 on random walls: the subgoals, not a better low-level cost, carry it through the doors.
Flat planners on the map cost match it in success: their cost is V_g, the level-2 plan
folded into one number, so they are flat in actions only; the hierarchy still reaches the
goal in the fewest steps in every setting (23.5 in three rooms against 26.1-29.1). The 8
failures in the 2400 episodes of these four planners: 4 agents pinned against the border
from a start in a corner (gradient_mpc, cem, mppi twice), 1 on the bottom border beside a
door that reaches it (gradient_mpc), 3 on a door's corner (hierarchical).
How it got there, on earlier world models of the same configuration: cost="critic" gave
0.53 (gradient MPC) / 0.23 (CEM) on 30 random-wall episodes (greedy descent on that critic
over a 2-px grid reaches the goal from 15% of the starts: its local minima were the limit);
the map critic with a locator trained on the blurred agent channel gave 0.945 (CEM 0.37,
30 episodes); naming the agent's pixel, 0.995 to 1.00. Waypoints 10 pixels ahead cut the
doors' corners (three rooms 0.60 on 30 episodes, against 0.97 at 5). A vector state
(D = 16) never learned random walls (door_pass 0.19; 0.03 / 0.00). Before `make_evaluate`
stopped a chunk of episodes once all had arrived, every planner cost about 4 s per episode.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import hjepa_jax as hj
from hjepa_jax.envs import two_rooms as tr
from hjepa_jax.experiments.common import (
    Count,
    NonNegative,
    Positive,
    RunOptions,
    atomic_write,
    config,
    save_figure,
)

log = logging.getLogger("hjepa_jax.experiments")

NAME = "planning_two_rooms"
TITLE = "Fig. 1 agent: a pixel world model and Mode-2 planning in Two Rooms"
CLAIM = (
    "A JEPA world model trained only on random-policy pixel trajectories, without "
    "reconstruction, and a trainable critic of the steps to the goal let planners steer an "
    "agent through the door into the other room."
)

PLANNERS = ("gradient_mpc", "cem", "mppi", "hierarchical", "level1", "random")
SUFFIX = {"random": "", "fixed": "_fixed", "three_rooms": "_three_rooms"}
LAYOUT_FNS = {
    "random": tr.random_layout,
    "fixed": tr.fixed_layout,
    "three_rooms": tr.three_rooms_layout,
}


PROBE_TRAJECTORIES, PROBE_FIT = 400, 300  # held-out trajectories; the probe fits the first
MAP_COSTS = ("map", "straight")  # the costs read through the map critic's locator
COSTS = ("critic", "distance") + MAP_COSTS


class MapGoal(NamedTuple):
    """The goal of the map critic's costs: value [65, 65] its steps-to-go V_g, target [2] the
    pixel (row, col) the "straight" cost aims at (the goal's own, or a hierarchical planner's
    waypoint)."""

    value: jax.Array
    target: jax.Array


@config
class Config:
    seed: int = 0
    train_layout: str = "mixed"  # "fixed", "random" or "mixed" (random + three rooms)
    settings: tuple[str, ...] = ("random", "fixed", "three_rooms")
    planners: tuple[str, ...] = PLANNERS  # a subset shortens a run (planning is most of it)
    trajectories: Count = 10000
    length: Count = 16  # T
    door_frac: NonNegative = 0.3
    wall_frac: NonNegative = (
        0.2  # trajectories that push into a wall (see two_rooms.random_trajectories)
    )
    blur: NonNegative = 1.0  # Gaussian blur of the agent channel, std in pooled pixels (0: none)
    pool: Count = 2  # average-pool the 65 x 65 frames by this factor (1: none)
    channels: tuple[Count, ...] = (16, 32, 32)
    embed_dim: Count = 4  # D of a vector state; channels of a spatial one
    state: Literal["vector", "spatial"] = (
        "spatial"  # "vector" (ConvEncoder + MLP predictor) or "spatial" (see Model)
    )
    hidden: Count = 256  # predictor / inverse-dynamics width
    horizon: Count = 4  # world-model training rollout
    inverse_dynamics: NonNegative = 1.0
    smoothness: NonNegative = 2.0  # weight of ||s_{t+1} - s_t||^2 / D
    critic_steps: Count = 3000  # the critic trains after the world model, on frozen states
    critic_batch: Count = 64
    critic_dim: Count = 16  # K, the critic's embedding
    critic_others: Count = 8  # M, random places per trajectory pushed apart from it
    critic_penalty: NonNegative = 100.0
    critic_step: Positive = 0.1  # the critic's unit: one random-policy step
    cost: str = "map"  # the flat planners' cost: "map", "straight", "critic" or "distance"
    map_cap: NonNegative = (
        20.0  # the "map" critic's cost of a never-visited pixel (crossing a visited
    )
    #   one costs critic_step)
    map_penalty: NonNegative = 1000.0
    map_visits: Count = 256  # random places per layout (and row) that count as visited
    wall_cost: NonNegative = 0.0  # weight of the predicted intrinsic cost two_rooms.wall_proximity
    wall_margin: int = 2  # its dilation of the walls, in pixels
    steps: Count = 1500
    batch_size: Count = 32
    learning_rate: Positive = 1e-3
    log_every: Count = 100
    # planning
    episodes: Count = 200
    max_steps: Count = 200  # env steps per episode (the benchmark's limit)
    replan_every: Count = 2  # env steps executed per plan
    eval_chunk: Count = 10  # episodes vmapped together; a chunk stops when all reached the goal
    horizon_plan: Count = 8
    discount: NonNegative = 1.0
    samples: Count = 64  # CEM / MPPI: about gradient MPC's planning time with the spatial model
    elites: Count = 16
    iterations: Count = 3
    init_std: Positive = 1.5
    gd_steps: Count = 20
    gd_lr: Positive = 0.3
    mppi_temperature: Positive = 0.5
    macro_steps: Count = 6
    macro_horizon: Count = 10
    hier_horizon: Count = 8
    waypoint_moves: Count = 5  # map costs: the hierarchical subgoal, pixels down V_g

    def quick(self) -> Config:
        return dataclasses.replace(
            self,
            train_layout="fixed",
            settings=("fixed",),
            state="vector",
            embed_dim=8,
            blur=10.0,
            trajectories=4000,
            steps=800,
            episodes=20,
            max_steps=100,
            cost="critic",
            wall_cost=2.5,
            critic_steps=4000,
            samples=128,  # a vector state: samples are cheap
            elites=32,
            iterations=5,
            planners=tuple(p for p in PLANNERS if p != "level1"),  # level1 here: CEM again
        )

    def check(self) -> None:
        """Raise ValueError on a planner, setting or cost this experiment does not know
        (called when the config is built)."""
        for name, given, known in (
            ("planners", self.planners, PLANNERS),
            ("settings", self.settings, tuple(LAYOUT_FNS)),
            ("train_layout", (self.train_layout,), tuple(tr.LAYOUTS)),
            ("cost", (self.cost,), COSTS),
        ):
            if not given or set(given) - set(known):
                raise ValueError(f"{NAME}: {name} must be among {known}, got {given!r}")
        if min(self.horizon_plan, self.hier_horizon) < self.replan_every:
            raise ValueError(
                f"{NAME}: horizon_plan ({self.horizon_plan}) and hier_horizon "
                f"({self.hier_horizon}) must be >= replan_every ({self.replan_every})"
            )
        if self.eval_chunk < 1:
            raise ValueError(f"{NAME}: eval_chunk must be >= 1, got {self.eval_chunk}")


# Fields read only after a model is trained: changing them reuses its checkpoint.
PLANNING_FIELDS = (
    "settings", "planners", "wall_cost", "episodes", "max_steps", "replan_every", "eval_chunk",
    "horizon_plan", "discount", "samples", "elites", "iterations", "init_std", "gd_steps",
    "gd_lr", "mppi_temperature", "macro_steps", "macro_horizon", "hier_horizon",
    "waypoint_moves",
)  # fmt: skip
CRITIC_FIELDS = (
    "critic_steps", "critic_batch", "critic_dim", "critic_others", "critic_penalty",
    "critic_step", "cost", "map_cap", "map_penalty", "map_visits", "wall_margin",
)  # fmt: skip


def trained_config(cfg: Config, model: str) -> dict:
    """The config saved with (and checked against) the checkpoints of "world_model" or
    "critic": the fields its training reads. The critic's names the world model's steps
    `model_steps` (its `steps` are critic_steps, which a resumed run may extend)."""
    fields = dataclasses.asdict(cfg)
    for name in PLANNING_FIELDS + (CRITIC_FIELDS if model == "world_model" else ()):
        del fields[name]
    if model == "critic":
        fields["model_steps"], fields["steps"] = fields["steps"], cfg.critic_steps
    return fields


# ------------------------------------------------------------------------------- the model


def observe(position: jax.Array, layout: tr.Layout, pool: int, blur: float = 0.0) -> jax.Array:
    """The observation [S, S, 2] of the agent at position [2] as the encoder sees it: rendered,
    average-pooled by `pool` (S = 65 // pool), and (blur > 0) the agent channel blurred by a
    Gaussian of std `blur` pooled pixels and rescaled to peak 1. Both are fixed functions of
    the image, so that a position far from the agent still changes the input."""
    obs = tr.render_position(position, layout, tr.EnvParams())
    if pool > 1:
        s = obs.shape[0] // pool
        obs = obs[: s * pool, : s * pool]
        obs = obs.reshape(s, pool, s, pool, obs.shape[-1]).mean(axis=(1, 3))
    if blur > 0:
        grid = jnp.arange(obs.shape[0], dtype=jnp.float32)
        kernel = jnp.exp(-((grid[:, None] - grid[None, :]) ** 2) / (2.0 * blur**2))
        agent = kernel @ obs[..., 0] @ kernel.T
        obs = jnp.stack([agent / jnp.max(agent), obs[..., 1]], axis=-1)
    return obs


class Model:
    """Encoder, residual predictor and inverse-dynamics head, and the world-model loss.

    state="vector": s = ConvEncoder(o) [embed_dim], s' = s + MLP([s, a]).
    state="spatial": s = the flattened feature map [S/4, S/4, embed_dim] of a ConvEncoder with
    strides (2, 2, 1, ...) and no pooling, s' = s + hj.nn.ConvPredictor(s, a): local and the
    same at every place, so stopping at a wall need not be relearned for each wall position.
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        if cfg.state not in ("vector", "spatial"):
            raise ValueError(f"{NAME}: state must be 'vector' or 'spatial', got {cfg.state!r}")
        side = 65 // cfg.pool
        if cfg.state == "spatial":
            strides = (2, 2) + (1,) * (len(cfg.channels) - 2)
            self.enc = hj.nn.ConvEncoder(cfg.channels, cfg.embed_dim, strides, pool="none")
            self.pred = hj.nn.ConvPredictor((cfg.hidden // 8, cfg.hidden // 8))
            self.map_shape = (-(-side // 4), -(-side // 4), cfg.embed_dim)
        else:
            self.enc = hj.nn.ConvEncoder(channels=cfg.channels, features=cfg.embed_dim)
            self.pred = hj.nn.MLP((cfg.hidden, cfg.hidden, cfg.embed_dim))
            self.map_shape = (cfg.embed_dim,)
        self.state_dim = int(np.prod(self.map_shape))
        self.inv = hj.nn.MLP((cfg.hidden, 2))
        self.critic = hj.nn.MLP((cfg.hidden, cfg.hidden, cfg.critic_dim))
        self.side = 65  # the "map" critic's grid: the observation's pixels
        self.locator = hj.nn.MLP((self.side**2,))  # logits of the agent's cell, from s
        # traversal costs, from the wall channel of the goal's observation (a local conv net)
        self.cost_map = hj.nn.ConvEncoder((8, 8), 1, (1, 1), pool="none")
        self.wall_head = hj.nn.MLP((cfg.hidden, 1))  # predicts wall_proximity from s
        self.wm = hj.world_model.WorldModelConfig(
            horizon=cfg.horizon,
            inverse_dynamics=cfg.inverse_dynamics,
            smoothness=cfg.smoothness,
            unroll=cfg.state == "spatial",
        )
        self.scale = tr.EnvParams().max_action

    def init(self, key: jax.Array) -> dict:
        k_enc, k_pred, k_inv = jax.random.split(key, 3)
        size = 65 // self.cfg.pool
        d = self.state_dim
        if self.cfg.state == "spatial":
            pred = self.pred.init(k_pred, jnp.zeros(self.map_shape), jnp.zeros(2))
        else:
            pred = self.pred.init(k_pred, jnp.zeros(d + 2))
        return {
            "enc": self.enc.init(k_enc, jnp.zeros((1, size, size, 2))),
            "pred": pred,
            "inv": self.inv.init(k_inv, jnp.zeros(2 * d)),
        }

    def embed(self, enc, frames) -> jax.Array:
        """States [..., D] of encoder inputs [..., S, S, 2] (a spatial state flattened)."""
        out = self.enc.apply(enc, frames)
        if self.cfg.state == "spatial":
            out = out.reshape(out.shape[:-3] + (self.state_dim,))
        return out

    def encode(self, enc, position, layout) -> jax.Array:
        """State of the agent at position [2] in layout (rendered, pooled, encoded). -> [D]."""
        return self.embed(enc, observe(position, layout, self.cfg.pool, self.cfg.blur))

    def predict(self, pred, s, a):
        if self.cfg.state == "spatial":
            nxt = self.pred.apply(pred, s.reshape(self.map_shape), a / self.scale)
            return nxt.reshape(s.shape)
        return s + self.pred.apply(pred, jnp.concatenate([s, a / self.scale]))

    def inverse(self, inv, s, nxt):
        return self.scale * self.inv.apply(inv, jnp.concatenate([s, nxt]))

    def location(self, loc, s) -> jax.Array:
        """The "map" critic's distribution [..., 65, 65] of the agent's pixel, from states."""
        logits = self.locator.apply(loc, s)
        return jax.nn.softmax(logits).reshape(s.shape[:-1] + (self.side, self.side))

    def traversal_cost(self, cmap, walls) -> jax.Array:
        """The "map" critic's cost [..., 65, 65] of crossing each pixel, from a wall channel
        [..., 65, 65]."""
        return jax.nn.softplus(self.cost_map.apply(cmap, walls[..., None])[..., 0])

    def locate(self, loc, s) -> jax.Array:
        """The expected pixel [..., 2] (row, col) of the agent under `location`."""
        p = self.location(loc, s)
        grid = jnp.arange(self.side, dtype=p.dtype)
        return jnp.stack([jnp.sum(p, -1) @ grid, jnp.sum(p, -2) @ grid], axis=-1)

    def cell(self, loc, s: jax.Array) -> jax.Array:
        """The most likely pixel [2] (row, col) of the agent under `location`, from s [D]."""
        return jnp.stack(
            jnp.unravel_index(jnp.argmax(self.locator.apply(loc, s)), (self.side,) * 2)
        )

    def goal(self, params: dict, g: jax.Array, frame: jax.Array, kind: str):
        """What the planners' cost compares states with: g [D] itself, or for the map costs
        a MapGoal: V_g the steps-to-go of every pixel (`hj.critic.value_iteration`) over the
        traversal costs of the goal's observation `frame` [65, 65, 2], from the pixel where g
        locates the agent, which is also the straight-line cost's target."""
        if kind not in MAP_COSTS:
            return g
        costs = self.traversal_cost(params["critic"]["map"], frame[..., 1])
        cell = self.cell(params["critic"]["loc"], g)
        source = jnp.zeros(costs.shape, bool).at[cell[0], cell[1]].set(True)
        return MapGoal(hj.critic.value_iteration(costs, source), cell.astype(costs.dtype))

    def subgoal(self, params: dict, goal: MapGoal, s: jax.Array) -> MapGoal:
        """The hierarchical planner's level 2: the goal with its target moved to the waypoint
        `waypoint_moves` cells down V_g from the pixel where s [D] locates the agent."""
        here = self.cell(params["critic"]["loc"], s)
        target = hj.critic.waypoint(goal.value, here, self.cfg.waypoint_moves)
        return goal._replace(target=target.astype(goal.target.dtype))

    def cost(self, params: dict, kind: str):
        """The planners' `cost(s [D], goal) -> []`, goal from `self.goal`: "critic", d(s, g)
        in random-policy steps (`hj.critic.distance`) plus wall_cost times the intrinsic cost
        predicted from s (needs params["critic"] = {"psi", "wall"}); "map", the
        steps-to-go V_g at the agent's expected location (`hj.critic.map_value`), or
        "straight", critic_step times the straight-line pixel distance from the agent's
        expected location to the goal's target (myopic: blind to walls), each plus the same
        wall term (params["critic"] = {"loc", "map", "wall"}); or "distance", ||s - g||^2."""
        if kind == "distance":
            return hj.planning.squared_distance
        if kind not in COSTS:
            raise ValueError(f"{NAME}: cost must be among {COSTS}, got {kind!r}")
        critic, w = params["critic"], self.cfg.wall_cost
        wall = lambda x: self.wall_head.apply(critic["wall"], x)[0]
        at = lambda x: self.locate(critic["loc"], x)
        if kind == "map":
            return lambda s, g: hj.critic.map_value(g.value, at(s)) + w * wall(s)
        if kind == "straight":
            unit = self.cfg.critic_step
            return lambda s, g: unit * hj.critic.distance(at(s), g.target) + w * wall(s)
        psi = lambda x: self.critic.apply(critic["psi"], x)
        return lambda s, g: hj.critic.distance(psi(s), psi(g)) + w * wall(s)

    def loss(self, params, batch, key):
        positions, actions, layouts = batch
        del key
        states = self.embed(params["enc"], self.frames(positions, layouts))
        return hj.world_model.loss(
            {"pred": params["pred"], "inv": params["inv"]},
            self.predict,
            states,
            actions,
            self.wm,
            self.inverse,
        )

    def frames(self, positions, layouts):
        """Encoder inputs [B, L, S, S, 2] of positions [B, L, 2], one layout per row."""
        one = lambda q, lay: observe(q, lay, self.cfg.pool, self.cfg.blur)
        return jax.vmap(lambda p, lay: jax.vmap(lambda q: one(q, lay))(p))(positions, layouts)

    def critic_loss(self, critic, batch, key):
        """The critic's loss on frozen states, plus the squared error of the wall head; batch =
        (states [B, T+1, D], others [B, M, D], wall_proximity of the states [B, T+1],
        positions [B, T+1+M, 2] of both, layouts [B]).
        "critic": `hj.critic.loss`. The map costs ("map", "straight"): the locator's
        cross-entropy with the agent's pixel (of the observation's 65 x 65), and
        `hj.critic.map_loss` of the traversal costs of each row's wall channel against the
        pixels (y, x) where agents were seen in that layout: `map_visits` random places
        (`two_rooms.random_position`, as the starts of the offline trajectories: never
        within 2.6 px of a wall, nor in a door; the local conv net sees a door as free
        space)."""
        states, others, near, positions, layouts = batch
        cfg = self.cfg
        wall_err = jnp.mean((self.wall_head.apply(critic["wall"], states)[..., 0] - near) ** 2)
        if cfg.cost in MAP_COSTS:
            pool = jnp.concatenate([states, others], axis=1)  # [B, L, D]
            env = tr.EnvParams()
            pixel = lambda q: jnp.clip(jnp.floor(q + 0.5).astype(jnp.int32), 0, self.side - 1)
            at = pixel(positions)  # [B, L, 2] (x, y) of each state's agent
            where = self.location(critic["loc"], pool).reshape(pool.shape[:2] + (-1,))
            flat = (at[..., 1] * self.side + at[..., 0])[..., None]
            locate = -jnp.mean(jnp.log(jnp.take_along_axis(where, flat, axis=-1) + 1e-12))
            keys = jax.random.split(key, layouts.kind.shape + (cfg.map_visits,))
            places = jax.vmap(
                lambda k, lay: jax.vmap(lambda q: tr.random_position(q, lay, env))(k)
            )(keys, layouts)
            cell = pixel(places)
            rows = jnp.broadcast_to(jnp.arange(places.shape[0])[:, None], places.shape[:2])
            visits = jnp.zeros((places.shape[0], self.side, self.side))
            visits = visits.at[rows, cell[..., 1], cell[..., 0]].add(1.0)
            walls = jax.vmap(lambda lay: tr.wall_image(lay, env))(layouts)
            loss, metrics = hj.critic.map_loss(
                self.traversal_cost(critic["map"], walls),
                visits,
                unit=cfg.critic_step,
                penalty=cfg.map_penalty,
                cap=cfg.map_cap,
            )
            total = loss + locate + wall_err
            return total, {**metrics, "locate": locate, "wall_mse": wall_err}
        psi = lambda x: self.critic.apply(critic["psi"], x)
        loss, metrics = hj.critic.loss(
            psi(states),
            psi(others),
            step=cfg.critic_step,
            penalty=cfg.critic_penalty,
            cap=200 * cfg.critic_step,
        )
        return loss + wall_err, {**metrics, "wall_mse": wall_err}


def offline_data(cfg: Config) -> tuple[dict, dict]:
    """The train split (`trajectories` rows) and the probe's held-out test split (400 rows:
    the probe fits 300, scores 100) of the local tfds dataset `hjepa_two_rooms`, built on
    first use from the config's seed and data settings."""
    settings = dict(
        seed=cfg.seed,
        num_train=cfg.trajectories,
        num_test=PROBE_TRAJECTORIES,
        length=cfg.length,
        layout=cfg.train_layout,
        door_frac=cfg.door_frac,
        wall_frac=cfg.wall_frac,
    )
    return tuple(hj.data.load("hjepa_two_rooms", split, **settings) for split in ("train", "test"))


# -------------------------------------------------------------------------------- planning


def make_planner(name: str, model: Model, params: dict, cfg: Config):
    """`plan(s [D], goal, key, warm) -> (actions [r, A], warm)` and the initial warm start;
    goal from `Model.goal` (g [D], or a MapGoal for the map costs)."""
    bound, h, r = tr.EnvParams().max_action, cfg.horizon_plan, cfg.replan_every
    pred = params["pred"]
    shift = lambda a: jnp.concatenate([a[r:], jnp.zeros_like(a[:r])])
    cost = model.cost(params, cfg.cost)
    sample_kw = dict(
        cost=cost,
        horizon=h,
        action_dim=2,
        bound=bound,
        samples=cfg.samples,
        iterations=cfg.iterations,
        init_std=cfg.init_std,
        discount=cfg.discount,
    )

    def descend(s, g, warm, cost):  # gradient MPC from the warm start
        out = hj.planning.gradient_mpc(
            model.predict,
            pred,
            s,
            g,
            warm,
            bound=bound,
            steps=cfg.gd_steps,
            optimizer=optax.adam(cfg.gd_lr),
            cost=cost,
            discount=cfg.discount,
            unroll=cfg.state == "spatial",
        )
        return out.actions[:r], shift(out.actions)

    if name == "gradient_mpc":

        def plan(s, g, key, warm):
            del key
            return descend(s, g, warm, cost)

        return plan, jnp.zeros((h, 2))
    if name == "cem":

        def plan(s, g, key, warm):
            out = hj.planning.cem(
                model.predict, pred, s, g, key, elites=cfg.elites, mean0=warm, **sample_kw
            )
            return out.actions[:r], shift(out.actions)

        return plan, jnp.zeros((h, 2))
    if name == "mppi":

        def plan(s, g, key, warm):
            out = hj.planning.mppi(
                model.predict,
                pred,
                s,
                g,
                key,
                temperature=cfg.mppi_temperature,
                mean0=warm,
                **sample_kw,
            )
            return out.actions[:r], shift(out.actions)

        return plan, jnp.zeros((h, 2))
    if name in ("hierarchical", "level1") and cfg.cost in MAP_COSTS:
        local = model.cost(params, "straight")
        aim = (lambda g, s: model.subgoal(params, g, s)) if name == "hierarchical" else None

        def plan(s, g, key, warm):  # level 2: the map's waypoint; level 1: gradient MPC
            del key
            return descend(s, aim(g, s) if aim else g, warm, local)

        return plan, jnp.zeros((cfg.hier_horizon, 2))

    low_kw = dict(sample_kw, horizon=cfg.hier_horizon, elites=cfg.elites)

    def low_level(s, goal, key, mean0):  # CEM of horizon hier_horizon toward goal
        return hj.planning.cem(model.predict, pred, s, goal, key, mean0=mean0, **low_kw)

    if name == "level1":

        def plan(s, g, key, warm):
            out = low_level(s, g, key, warm)
            return out.actions[:r], shift(out.actions)

        return plan, jnp.zeros((cfg.hier_horizon, 2))
    if name == "hierarchical":

        def plan(s, g, key, warm):
            macro0, fine0 = warm
            out = hj.planning.hierarchical(
                model.predict,
                pred,
                s,
                g,
                key,
                macro_steps=cfg.macro_steps,
                macro_horizon=cfg.macro_horizon,
                macro_discount=cfg.discount,
                macro_mean0=macro0,
                mean0=fine0,
                low_level=low_level,
                **low_kw,
            )
            return out.actions[:r], (out.macro_actions, shift(out.actions))

        return plan, (jnp.zeros((cfg.macro_horizon, 2)), jnp.zeros((cfg.hier_horizon, 2)))
    if name == "random":

        def plan(s, g, key, warm):
            del s, g
            return jax.random.uniform(key, (r, 2), minval=-bound, maxval=bound), warm

        return plan, jnp.zeros(())
    raise ValueError(f"{NAME}: unknown planner {name!r}")


def make_evaluate(model: Model, params: dict, cfg: Config, planner: str):
    """`evaluate(keys [N, 2], layouts) -> (positions [N, T+1, 2], goals, success, steps)`.

    Episodes run `eval_chunk` at a time (vmap within a chunk, a loop over chunks); a chunk
    stops replanning once all its episodes reached the goal. A finished episode repeats its
    last position, so the result equals running every episode for max_steps."""
    env = tr.EnvParams(max_steps=cfg.max_steps)
    plan, warm0 = make_planner(planner, model, params, cfg)
    n_plans, r = cfg.max_steps // cfg.replan_every, cfg.replan_every
    enc = params["enc"]

    def episode(key, layout):
        k_reset, k_plan = jax.random.split(key)
        state, _ = tr.reset(k_reset, env, layout)
        frame = tr.render_position(state.goal, layout, env)
        goal = model.goal(params, model.encode(enc, state.goal, layout), frame, cfg.cost)
        plan_keys = jax.random.split(k_plan, n_plans)

        def act(c, a):
            state, done, steps = c
            new, _, info = tr.step(state, a, env)
            state = jax.tree_util.tree_map(lambda o, n: jnp.where(done, o, n), state, new)
            steps = steps + (~done).astype(jnp.int32)
            return (state, done | info["success"], steps), state.position

        def replan(carry):
            i, state, done, steps, warm, path = carry
            s = model.encode(enc, state.position, layout)
            actions, warm = plan(s, goal, plan_keys[i], warm)
            (state, done, steps), pos = jax.lax.scan(act, (state, done, steps), actions)
            path = jax.lax.dynamic_update_slice(path, pos, (i * r, 0))
            return i + 1, state, done, steps, warm, path

        path = jnp.zeros((n_plans * r, 2))
        init = (0, state, jnp.zeros((), bool), jnp.zeros((), jnp.int32), warm0, path)
        i, last, done, steps, _, path = jax.lax.while_loop(
            lambda c: (c[0] < n_plans) & ~c[2], replan, init
        )
        path = jnp.where((jnp.arange(n_plans * r) < i * r)[:, None], path, last.position)
        return jnp.concatenate([state.position[None], path]), state.goal, done, steps

    def evaluate(keys, layouts):
        return jax.lax.map(lambda a: episode(*a), (keys, layouts), batch_size=cfg.eval_chunk)

    return jax.jit(evaluate)


# ------------------------------------------------------------------------------ evaluation


def path_length(start: np.ndarray, goal: np.ndarray, wall_x, door_y, points: int = 17) -> float:
    """Shortest path length (pixels) from start in room 0 to goal in room 2 through the door
    of every wall in wall_x (NaN: no wall), each door a segment of `points` crossing points
    (the walls' thickness ignored). The yardstick of the planners' costs."""
    half = tr.EnvParams().door_half_height
    legs = [np.asarray(start, np.float64)[None]]
    for wx, dy in zip(wall_x, door_y, strict=True):
        if not np.isnan(wx):
            ys = np.linspace(dy - half, dy + half, points)
            legs.append(np.stack([np.full(points, wx), ys], -1))
    legs.append(np.asarray(goal, np.float64)[None])
    best = np.zeros(1)
    for a, b in zip(legs[:-1], legs[1:], strict=True):  # dynamic programming over the doors
        best = np.min(best[:, None] + np.linalg.norm(a[:, None] - b[None], axis=-1), axis=0)
    return float(best[0])


def cost_path_correlation(model: Model, params: dict, cfg: Config, key: jax.Array) -> dict:
    """Pearson correlation of each cost, between the states of 300 task starts and their goals,
    with the shortest path length: how well a cost tells the planners where the door is."""
    env = tr.EnvParams()
    keys = jax.random.split(key, 300)
    layouts = jax.vmap(LAYOUT_FNS[cfg.settings[0]])(keys)
    states = jax.vmap(lambda k, lay: tr.reset(k, env, lay)[0])(keys, layouts)
    enc = lambda p, lay: model.encode(params["enc"], p, lay)
    s = jax.vmap(enc)(states.position, layouts)
    g = jax.vmap(enc)(states.goal, layouts)
    wall_x = np.where(np.asarray(layouts.wall_on), np.asarray(layouts.wall_x), np.nan)
    door_y = np.asarray(layouts.door_y)
    start, goal = np.asarray(states.position), np.asarray(states.goal)
    path = [path_length(*args) for args in zip(start, goal, wall_x, door_y, strict=True)]
    costs = {
        "straight_line": np.linalg.norm(start - goal, axis=-1),
        "distance": np.asarray(jnp.linalg.norm(s - g, axis=-1)),
    }
    if cfg.cost != "distance":
        frames = jax.vmap(lambda p, lay: tr.render_position(p, lay, env))(states.goal, layouts)
        goals = jax.vmap(lambda g1, f: model.goal(params, g1, f, cfg.cost))(g, frames)
        costs[cfg.cost] = np.asarray(jax.vmap(model.cost(params, cfg.cost))(s, goals))
    return {f"path_corr_{k}": float(np.corrcoef(v, path)[0, 1]) for k, v in costs.items()}


def wall_predictions(model: Model, params: dict, cfg: Config, key: jax.Array) -> dict:
    """Does the world model stop at the wall and pass the door? From 3 px left of the first
    wall's face, 3 steps of a = (+2.45, 0) (to 4.35 px past it if nothing stopped them), at
    heights outside the door (blocked) and inside it (open), 200 of each in the first setting's
    layouts. A prediction counts as "through" when it is nearer Enc(unblocked end) than
    Enc(blocked end). -> wall_leak (through where blocked), door_pass (through the door)."""
    env = tr.EnvParams()
    k_lay, k_y = jax.random.split(key)
    layouts = jax.vmap(LAYOUT_FNS[cfg.settings[0]])(jax.random.split(k_lay, 200))
    wx, dy = layouts.wall_x[:, 0], layouts.door_y[:, 0]
    face = wx - env.wall_half_width
    u = jax.random.uniform(k_y, (200,))
    y_blocked = tr.height_beside_door(u, dy, env.border_lo + 3.0, env.border_hi - 3.0, env)
    y_open = dy + (2.0 * u - 1.0) * (env.door_half_height - 2.0)
    actions = jnp.broadcast_to(jnp.array([env.max_action, 0.0]), (3, 2))
    enc = jax.vmap(lambda p, lay: model.encode(params["enc"], p, lay))
    rollout = jax.vmap(lambda s: hj.planning.rollout(model.predict, params["pred"], s, actions))

    def through(y):
        start = jnp.stack([face - 3.0, y], -1)
        blocked = jnp.stack([face - 1e-3, y], -1)
        passed = start + jnp.array([3 * env.max_action, 0.0])
        pred = rollout(enc(start, layouts))[:, -1]
        near = lambda target: jnp.linalg.norm(pred - enc(target, layouts), axis=-1)
        return float(jnp.mean(near(passed) < near(blocked)))

    return {"wall_leak": through(y_blocked), "door_pass": through(y_open)}


def fit_probe(x: np.ndarray, y: np.ndarray, alpha: float = 1.0):
    """Ridge weights from states [N, D] (with a bias) to positions [N, 2]: -> decode(x)."""
    x = np.asarray(x, np.float64)
    mean, std = x.mean(0), x.std(0) + 1e-8
    x1 = np.concatenate([(x - mean) / std, np.ones((len(x), 1))], 1)
    reg = alpha * np.eye(x1.shape[1])
    reg[-1, -1] = 0.0
    w = np.linalg.solve(x1.T @ x1 + reg, x1.T @ np.asarray(y, np.float64))
    return lambda z: np.concatenate([(np.asarray(z) - mean) / std, np.ones((len(z), 1))], 1) @ w


def encode_batches(model: Model, enc, positions, layouts, chunk: int = 256) -> jax.Array:
    """States [N, L, D] of positions [N, L, 2] (layout leaves [N, ...])."""
    return map_rows(lambda p, lay: model.embed(enc, model.frames(p, lay)), positions, layouts)


def wall_proximity(positions, layouts, margin: int) -> jax.Array:
    """two_rooms.wall_proximity of the full-size observation at each position: [N, L]."""
    env = tr.EnvParams()
    one = lambda q, lay: tr.wall_proximity(tr.render_position(q, lay, env), margin)
    return map_rows(
        lambda p, lay: jax.vmap(lambda r, l1: jax.vmap(lambda q: one(q, l1))(r))(p, lay),
        positions,
        layouts,
    )


def map_rows(fn, positions, layouts, chunk: int = 256) -> jax.Array:
    """jit(fn)(positions, layouts) `chunk` rows at a time, so that rendered frames never all
    sit in memory; the results concatenated."""
    fn = jax.jit(fn)
    rows = lambda tree, i: jax.tree_util.tree_map(lambda x: x[i : i + chunk], tree)
    starts = range(0, positions.shape[0], chunk)
    return jnp.concatenate([fn(rows(positions, i), rows(layouts, i)) for i in starts])


def train_critic(
    model: Model, params: dict, data, cfg: Config, loop: hj.train.LoopConfig, key: jax.Array
):
    """The critic (`hj.critic`, `cfg.cost` "critic", or a map cost) on the trained world model's
    frozen states: every trajectory of the offline data, and `critic_others` random places of
    its layout (observations of the same environment: pushed apart from it, or where its
    agents were); and the wall head, which learns to predict the intrinsic cost
    `two_rooms.wall_proximity` of each observation from its state (`Model.critic_loss`).
    -> hj.train's result; its params {"psi", "wall"} or {"loc", "map", "wall"}."""
    k_places, k_init, k_train = jax.random.split(key, 3)
    env = tr.EnvParams()
    n, m = data.positions.shape[0], cfg.critic_others
    keys = jax.random.split(k_places, n * m).reshape(n, m, -1)
    places = jax.vmap(lambda k, lay: jax.vmap(lambda q: tr.random_position(q, lay, env))(k))(
        keys, data.layouts
    )
    states = encode_batches(model, params["enc"], data.positions, data.layouts)
    others = encode_batches(model, params["enc"], places, data.layouts)
    near = wall_proximity(data.positions, data.layouts, cfg.wall_margin)
    k_psi, k_wall = jax.random.split(k_init)
    s0 = jnp.zeros(model.state_dim)
    init = {"wall": model.wall_head.init(k_wall, s0)}
    if cfg.cost in MAP_COSTS:
        k_loc, k_map = jax.random.split(k_psi)
        walls = jnp.zeros((model.side, model.side, 1))
        init.update(loc=model.locator.init(k_loc, s0), map=model.cost_map.init(k_map, walls))
    else:
        init["psi"] = model.critic.init(k_psi, s0)
    positions = jnp.concatenate([data.positions, places], axis=1)
    result = hj.train.train(
        model.critic_loss,
        init,
        optax.adam(optax.cosine_decay_schedule(cfg.learning_rate, cfg.critic_steps)),
        (states, others, near, positions, data.layouts),
        loop=loop,
        key=k_train,
        config=trained_config(cfg, "critic"),
        desc=f"{NAME} critic",
    )
    return result


def run(cfg: Config, out: Path, options: RunOptions = RunOptions()) -> dict:
    """Train the world model, probe it, plan with every planner in every setting, draw."""
    key = jax.random.PRNGKey(cfg.seed)
    _, k_init, k_train, k_probe, k_eval, k_critic = jax.random.split(key, 6)
    data, held = (hj.data.two_rooms.trajectories(arrays) for arrays in offline_data(cfg))
    model = Model(cfg)
    result = hj.train.train(
        model.loss,
        model.init(k_init),
        optax.adam(optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps)),
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
        critic = train_critic(model, params, data, cfg, loop, k_critic)
        params["critic"] = critic.state.params
        metrics.update({f"critic_{k}": v for k, v in critic.history[-1].items() if k != "step"})
        metrics["critic_resumed_from_step"] = critic.summary["resumed_from_step"]

    # Probe: frozen states of held-out trajectories (the test split) -> positions.
    states = np.asarray(encode_batches(model, params["enc"], held.positions, held.layouts))
    positions = np.asarray(held.positions)
    flat_s, flat_p = states.reshape(-1, states.shape[-1]), positions.reshape(-1, 2)
    cut = PROBE_FIT * (cfg.length + 1)
    r2, rmse = hj.probes.regression_r2(flat_s[:cut], flat_p[:cut], flat_s[cut:], flat_p[cut:])
    metrics["probe_position_r2"], metrics["probe_position_rmse"] = r2, rmse
    decode = fit_probe(flat_s[:cut], flat_p[:cut])
    rollouts = jax.jit(
        jax.vmap(lambda s0, a: hj.planning.rollout(model.predict, params["pred"], s0, a))
    )(jnp.asarray(states[PROBE_FIT:, 0]), held.actions[PROBE_FIT:])
    pred_pos = decode(np.asarray(rollouts).reshape(-1, states.shape[-1])).reshape(
        len(states) - PROBE_FIT, -1, 2
    )
    metrics["rollout_position_rmse"] = float(
        np.sqrt(np.mean((pred_pos - positions[PROBE_FIT:, 1:]) ** 2))
    )

    metrics.update(cost_path_correlation(model, params, cfg, k_probe))
    metrics.update(wall_predictions(model, params, cfg, k_probe))

    # Planning.
    episodes = {k: [] for k in ("positions", "goals", "planner", "layout", "success", "steps")}
    episodes["wall_x"], episodes["door_y"] = [], []
    plan_s = {p: [] for p in cfg.planners}
    for setting in cfg.settings:
        k_set = jax.random.fold_in(k_eval, list(LAYOUT_FNS).index(setting))
        keys = jax.random.split(k_set, cfg.episodes)
        layouts = jax.vmap(LAYOUT_FNS[setting])(keys)
        for planner in cfg.planners:
            evaluate = make_evaluate(model, params, cfg, planner)
            compiled = evaluate.lower(keys, layouts).compile()
            start = time.perf_counter()
            pos, goals, done, steps = jax.block_until_ready(compiled(keys, layouts))
            seconds = (time.perf_counter() - start) / cfg.episodes
            done, steps = np.asarray(done), np.asarray(steps)
            sfx = SUFFIX[setting]
            metrics[f"success_{planner}{sfx}"] = float(done.mean())
            metrics[f"steps_to_goal_{planner}{sfx}"] = (
                float(steps[done].mean()) if done.any() else float("nan")
            )
            metrics[f"plan_s_per_episode_{planner}_{setting}"] = seconds
            log.info(
                "%s %s: success %.3f over %d episodes, %.2f s of planning per episode",
                planner,
                setting,
                done.mean(),
                cfg.episodes,
                seconds,
            )
            plan_s[planner].append(seconds)
            n = cfg.episodes
            episodes["positions"].append(np.asarray(pos))
            episodes["goals"].append(np.asarray(goals))
            episodes["planner"].append(np.full(n, planner))
            episodes["layout"].append(np.full(n, setting))
            episodes["success"].append(done)
            episodes["steps"].append(steps)
            on = np.asarray(layouts.wall_on)
            episodes["wall_x"].append(np.where(on, np.asarray(layouts.wall_x), np.nan))
            episodes["door_y"].append(np.where(on, np.asarray(layouts.door_y), np.nan))
    for planner in cfg.planners:
        metrics[f"plan_s_per_episode_{planner}"] = float(np.mean(plan_s[planner]))
    arrays = {k: np.concatenate(v) for k, v in episodes.items()}
    atomic_write(out / "episodes.npz", lambda f: np.savez(f, **arrays))
    draw(cfg, out / f"{NAME}.png", arrays, positions[PROBE_FIT:], pred_pos, metrics)
    return metrics


# ---------------------------------------------------------------------------------- figure


def _draw_walls(ax, wall_x, door_y, **style) -> None:
    """The interior walls of one layout (NaN entries: no such wall), their doors left open."""
    env = tr.EnvParams()
    lo, hi, d = env.border_lo, env.border_hi, env.door_half_height
    for wx, dy in zip(wall_x, door_y, strict=True):
        if not np.isnan(wx):
            ax.plot([wx, wx], [lo, dy - d], **style)
            ax.plot([wx, wx], [dy + d, hi], **style)


def _draw_map(ax) -> None:
    env = tr.EnvParams()
    lo, hi = env.border_lo, env.border_hi
    ax.plot([lo, hi, hi, lo, lo], [lo, lo, hi, hi, lo], color="k", lw=1.5)
    ax.set(xlim=(0, 64), ylim=(64, 0), aspect="equal")


def _draw_episodes(ax, ep, planner, setting, shown: int = 4) -> None:
    """The first `shown` episodes of (planner, setting), each in its own colour with its own
    walls (side by side, 0.8 px apart, so that every episode's door shows): the start (o),
    the path, the goal (* reached, X missed)."""
    _draw_map(ax)
    idx = np.flatnonzero((ep["planner"] == planner) & (ep["layout"] == setting))[:shown]
    for k, i in enumerate(idx):
        color, shift = f"C{k}", 0.8 * (k - (len(idx) - 1) / 2)
        _draw_walls(ax, ep["wall_x"][i] + shift, ep["door_y"][i], color=color, lw=1.5)
        ax.plot(*ep["positions"][i].T, color=color, lw=1.0)
        ax.plot(*ep["positions"][i, 0], "o", color=color, ms=3)
        ax.plot(*ep["goals"][i], "*" if ep["success"][i] else "X", color=color, ms=9, mec="k")


def draw(cfg, path, ep, true_pos, pred_pos, metrics) -> None:
    """One row of episodes per setting (a column per planner), then the world model's
    rollouts, the success rates and success against the start-goal path length."""
    planners = [p for p in cfg.planners if p != "random"]
    cols = max(len(planners), 3)
    rows = len(cfg.settings) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, setting in zip(axes, cfg.settings, strict=False):
        for ax, planner in zip(row, planners, strict=False):
            ax.axis("on")
            _draw_episodes(ax, ep, planner, setting)
            rate = metrics[f"success_{planner}{SUFFIX[setting]}"]
            ax.set_title(
                f"{planner}, {setting}: success {rate:.2f}\n(* reached, X missed)", fontsize=9
            )
    ax_roll, ax_bar, ax_path = axes[-1, :3]
    for ax in (ax_roll, ax_bar, ax_path):
        ax.axis("on")
    _draw_map(ax_roll)
    for i in range(6):
        (line,) = ax_roll.plot(*true_pos[i].T, lw=1.2)
        ax_roll.plot(*pred_pos[i].T, "--", color=line.get_color(), lw=1.2)
    ax_roll.set_title(
        f"rollouts: true (solid) vs predicted, probed (dashed)\n"
        f"probe RMSE {metrics['probe_position_rmse']:.2f} px",
        fontsize=9,
    )
    width = 0.8 / len(cfg.settings)
    for j, setting in enumerate(cfg.settings):
        x = np.arange(len(cfg.planners)) + (j - (len(cfg.settings) - 1) / 2) * width
        rates = [metrics[f"success_{p}{SUFFIX[setting]}"] for p in cfg.planners]
        ax_bar.bar(x, rates, width, label=setting)
        for xi, v in zip(x, rates, strict=True):
            ax_bar.text(xi, v + 0.01, f"{v:.2f}", ha="center", fontsize=6, rotation=90)
    ax_bar.set_xticks(range(len(cfg.planners)), cfg.planners, rotation=30, fontsize=8)
    ax_bar.set(ylim=(0, 1.2), ylabel="success", title=f"success rate ({cfg.episodes} episodes)")
    ax_bar.legend(fontsize=7, loc="upper right")
    _draw_success_by_path(ax_path, ep, cfg.planners)
    fig.suptitle(f"{TITLE} (seed {cfg.seed}, {cfg.steps} training steps)")
    fig.tight_layout()
    save_figure(fig, path)


def _draw_success_by_path(ax, ep, planners, bins: int = 4) -> None:
    """Success rate against the start-goal shortest path length (quantile bins over every
    setting's episodes), one line per planner: where flat planning gives out and hierarchy
    does not."""
    lengths = np.array(
        [
            path_length(pos[0], goal, wx, dy)
            for pos, goal, wx, dy in zip(
                ep["positions"], ep["goals"], ep["wall_x"], ep["door_y"], strict=True
            )
        ]
    )
    edges = np.quantile(lengths, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, lengths, side="right") - 1, 0, bins - 1)
    average = lambda x, f=np.mean: f(x) if x.size else np.nan  # NaN: an empty bin
    centres = [average(lengths[which == b], np.median) for b in range(bins)]
    for planner in planners:
        mine = ep["planner"] == planner
        rates = [average(ep["success"][mine & (which == b)]) for b in range(bins)]
        ax.plot(centres, rates, "o-", label=planner, lw=1.2, ms=3)
    ax.set(
        ylim=(-0.05, 1.05),
        xlabel="shortest path start-goal (px)",
        ylabel="success",
        title="success against path length (all settings)",
    )
    ax.legend(fontsize=7)
