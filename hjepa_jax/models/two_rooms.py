"""The Fig. 1 agent in Two Rooms: a JEPA world model learned from pixels, its critics (the
trainable cost), and the Mode-2 planners that steer it through the doors.

World model (`Model`, `ModelConfig`; trained by `Model.loss`, `hj.world_model.loss`):
s = Enc(o), o the rendered observation average-pooled by `pool` (`observe`),
s_{t+1} = s_t + Pred(s_t, a_t / 2.45), an inverse-dynamics head reading a_t from
(s_t, s_{t+1}), a multi-step rollout energy over `horizon` steps, VICReg on the states.
state="vector": a ConvEncoder to [embed_dim] and an MLP predictor; state="spatial": a feature
map [S/4, S/4, embed_dim] (flattened) and a local `hj.nn.ConvPredictor`, the same at every
place, so stopping at a wall need not be relearned for each wall position.

Cost, summed over the predicted trajectory (weights discount^(H - t)): the paper's cost module
c(s, g) = d(s, g) + wall_cost * IC_hat(s), IC_hat a head predicting the hard-wired intrinsic
cost `two_rooms.wall_proximity` of the observation from s (with the critic, faded to 0 within
`wall_fade` of the goal, `Model.cost`), and d (`ModelConfig.cost`):
  "map": a value-iteration critic (`hj.critic.value_iteration`). A local conv net maps the
    wall channel of the goal's observation to a traversal cost per pixel, learned
    (`hj.critic.map_loss`) from where agents were seen in each layout; value iteration gives
    the steps-to-go V_g of every pixel once per episode (`Model.goal`); d(s, g) is V_g read
    (`hj.critic.map_value`) at the agent's expected pixel under a locator head on s.
  "straight": critic_step times the straight-line pixel distance from that expected pixel to
    the goal's: myopic, blind to walls (the hierarchical planner's level-1 cost).
  "critic": d(s, g) = ||psi(s) - psi(g)||, psi trained by `hj.critic.loss`.
  "distance": ||s - g||^2, the representation distance (no critic).
The critics train after the world model on its frozen states (`train_critic`).

Planners (`make_planner`, `PLANNERS`): gradient_mpc, cem, mppi (`hj.planning`, horizon
`horizon_plan`); hierarchical: with a map cost, level 2 is the map (the subgoal a waypoint
`waypoint_moves` pixels down V_g, `Model.subgoal`), level 1 gradient MPC on "straight";
otherwise `hj.planning.hierarchical` (CEM over macro-actions, then CEM toward the subgoal);
level1: the hierarchy's level 1 alone, aimed at the goal; hjepa: H-JEPA with a learned level 2
(`hj.hjepa.macro_loss`: a code b in [-1, 1]^A2 of each k-step action chunk and a predictor
s_{t+k} = Pred2(s_t, b) in the level-1 state space, trained by latent prediction on the
frozen states of the same reward-free trajectories, `train_level2`): CEM over codes proposes
the subgoal state k steps ahead, CEM over actions reaches it (aimed at the goal itself once
the subgoal's cost to the goal is no lower than the current state's: every learned
macro-action moves, so none stays at the goal); hjepa_search: the same level 2 searched
breadth-first in imagination (`hj.search.breadth_first` over the codes of `macro_codes`,
`search_planner`): its subgoal is the first macro step toward the imagined state nearest the
goal, so a cost lowest in front of a wall still leads through the doors; random: uniform
random actions. `PlannerConfig.plan_cost` "distance" plans on the representation distance
alone (EB-JEPA's cost) whichever critic the model trained.
`make_evaluate` runs whole episodes (replanning every `replan_every` env steps, warm-started),
`run_episodes` times it over a batch of tasks from `tasks`.

Diagnostics: `probe` (a ridge probe from states to positions, and the predicted rollouts
decoded by it), `path_length` (the shortest path through the doors), `cost_path_correlation`,
`wall_predictions`.

Example:
  >>> import jax
  >>> import jax.numpy as jnp
  >>> from hjepa_jax.envs import two_rooms as tr
  >>> from hjepa_jax.models import two_rooms
  >>> model = two_rooms.Model(two_rooms.ModelConfig(state="vector", embed_dim=8))
  >>> params = jax.jit(model.init)(jax.random.PRNGKey(0))
  >>> s = jax.jit(model.encode)(params["enc"], jnp.array([20.0, 40.0]), tr.fixed_layout())
  >>> s.shape, jax.jit(model.predict)(params["pred"], s, jnp.array([1.0, 0.0])).shape
  ((8,), (8,))
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hjepa_jax import _checks, critic, hjepa, nn, planning, probes, search, train, world_model
from hjepa_jax.envs import two_rooms as tr
from hjepa_jax.models import _common

__all__ = [
    "PLANNERS",
    "SETTINGS",
    "COSTS",
    "MAP_COSTS",
    "PLAN_COSTS",
    "LEVEL1",
    "LEVEL2",
    "SIDE",
    "ModelConfig",
    "PlannerConfig",
    "MapGoal",
    "Model",
    "observe",
    "preprocess",
    "encode_batches",
    "optimizer",
    "same_environment",
    "train_critic",
    "train_level2",
    "planning_cost",
    "make_planner",
    "two_level_planner",
    "macro_codes",
    "imagination",
    "search_planner",
    "evaluations_per_episode",
    "make_evaluate",
    "Episodes",
    "wall_count",
    "tasks",
    "run_episodes",
    "Probe",
    "probe",
    "rollout_errors",
    "path_length",
    "path_lengths",
    "cost_path_correlation",
    "wall_predictions",
    "subgoal_probe",
]

PLANNERS = (
    "gradient_mpc", "cem", "mppi", "hierarchical", "level1", "hjepa", "hjepa_search", "random"
)  # fmt: skip
FLAT = ("gradient_mpc", "cem", "mppi")  # the flat planners (PlannerConfig.stuck_memory)
_STUCK_HEADINGS = 8  # the flat memory's typical step: 1-px actions at this many headings
LEVEL2 = ("hjepa", "hjepa_search")  # the planners that need the learned level 2
# The task settings' layouts; the order sets each setting's key (`tasks`: fold_in its index).
SETTINGS: dict[str, Callable[[jax.Array], tr.Layout]] = {
    "random": tr.random_layout,
    "fixed": tr.fixed_layout,
    "three_rooms": tr.three_rooms_layout,
    "three_rooms_fixed": tr.fixed_three_rooms_layout,  # doors at y = 18 and 46: a zigzag
    "four_rooms_fixed": tr.fixed_four_rooms_layout,  # doors at y = 18, 46 and 18: two zigzags
}
MAP_COSTS = ("map", "straight")  # the costs read through the map critic's locator
COSTS = ("critic", "distance") + MAP_COSTS
PLAN_COSTS = ("model", "distance")  # PlannerConfig.plan_cost: the model's own, or EB-JEPA's
LEVEL1 = ("cem", "gradient_mpc")  # the two-level planners' level 1
SIDE = 65  # the map critic's grid: the full observation's pixels


# ModelConfig fields newer than some checkpoints, at the value those were trained with: a
# checkpoint's config leaves such a field out at this value (so that older checkpoints still
# match), and `hj.world_model.load` reads a missing one as this value, not as the default.
ADDED = {"context": 0.0, "window": 0, "hard": 0.0}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What the world model and the critic are built and trained with (the names of the
    experiment's config fields, so that checkpoints' configs compare). Defaults: full mode.

    Raises:
      ValueError: a field out of its range (or state, cost unknown), naming it.
    """

    pool: int = 2  # average-pool the 65 x 65 frames by this factor (1: none)
    blur: float = 2.0  # Gaussian blur of the agent channel, std in pooled pixels (0: none)
    channels: tuple[int, ...] = (16, 32, 32)
    embed_dim: int = 32  # D of a vector state; channels of a spatial one
    state: str = "vector"  # "vector" or "spatial"
    hidden: int = 256  # predictor / inverse-dynamics width
    horizon: int = 4  # world-model training rollout
    window: int = 0  # world-model training: a random window of this many steps (0: all)
    inverse_dynamics: float = 1.0
    smoothness: float = 2.0  # weight of ||s_{t+1} - s_t||^2 / D
    variance: float = 25.0  # VICReg's variance and covariance weights on the states
    covariance: float = 1.0
    context: float = 5.0  # weight of `hj.world_model`'s context term (InfoNCE along a window)
    hard: float = 1.0  # `hj.world_model`'s weight of hard rollouts, e^hard (0: a plain mean)
    cost: str = "critic"  # which critic trains, and the planners' cost: one of COSTS
    critic_dim: int = 16  # K, the "critic" embedding
    critic_others: int = 8  # M, states of the same environment pushed apart from each row
    critic_penalty: float = 100.0
    critic_step: float = 0.1  # the critic's unit: one random-policy step
    map_cap: float = 20.0  # the "map" critic's cost of a never-visited pixel
    map_penalty: float = 1000.0
    map_visits: int = 256  # random places per layout (and row) that count as visited
    wall_margin: int = 2  # the dilation of the walls of wall_proximity, in pixels
    level2_k: int = 6  # the learned level 2: level-1 steps per macro-action
    level2_codes: int = 2  # A2, the size of its macro-action codes b in [-1, 1]^A2
    level2_horizon: int = 2  # macro steps per level-2 training rollout

    def __post_init__(self):
        fn, fix = "ModelConfig", "pass an integer >= 1"
        counts = ("pool", "embed_dim", "hidden", "horizon", "critic_dim", "critic_others")
        counts += ("level2_k", "level2_codes", "level2_horizon")
        _common.counts(fn, self, counts + ("map_visits",), fix)
        _common.counts(fn, self, ("wall_margin",), "pass a margin >= 0 in pixels", minimum=0)
        fix = "pass a count of steps, or 0 for whole trajectories"
        _common.counts(fn, self, ("window",), fix, minimum=0)
        channels = _common.widths(fn, "channels", self.channels, "pass widths, e.g. (16, 32)")
        object.__setattr__(self, "channels", channels)
        weights = ("blur", "inverse_dynamics", "smoothness", "variance", "covariance", "context")
        weights += ("hard",)
        _common.non_negatives(
            fn, self, weights + ("critic_penalty", "map_cap", "map_penalty"), "pass a number >= 0"
        )
        _common.positives(fn, self, ("critic_step",), "pass a step > 0, e.g. 0.1")
        _checks.one_of(fn, "state", self.state, ("vector", "spatial"), "pick one of them")
        _checks.one_of(fn, "cost", self.cost, COSTS, "pick one of them")
        if self.state == "spatial" and len(channels) < 2:
            _checks.broken(fn, "channels", channels, "2 widths or more", "add a layer")
        if self.state == "spatial" and self.hidden < 8:
            fix = "pass hidden >= 8 (the spatial predictor's width is hidden // 8)"
            _checks.broken(fn, "hidden", self.hidden, "an integer >= 8", fix)


@dataclasses.dataclass(frozen=True)
class PlannerConfig:
    """What the planners read (nothing here changes a trained model). Defaults: full mode.

    Raises:
      ValueError: a field out of its range, or a horizon shorter than replan_every, naming it.
    """

    wall_cost: float = 2.5  # weight of the predicted intrinsic cost two_rooms.wall_proximity
    # The critic cost's intrinsic term fades linearly to 0 as d(s, g) falls below this (0: no
    # fade): near the goal the critic alone decides, so a goal beside a wall is reachable.
    wall_fade: float = 1.0
    max_steps: int = 200  # env steps per episode
    replan_every: int = 2  # env steps executed per plan
    # episodes vmapped together: memory and speed (a batch of another size can round the
    # planners' float sums differently, and an episode can amplify that)
    eval_chunk: int = 10
    horizon_plan: int = 8
    discount: float = 1.0
    samples: int = 128  # CEM / MPPI
    elites: int = 32
    iterations: int = 5
    init_std: float = 1.5
    gd_steps: int = 20
    gd_lr: float = 0.3
    # gradient MPC's starting plans: the warm start and gd_starts - 1 draws of N(0, init_std^2)
    gd_starts: int = 1
    # gradient MPC's smoothing: it descends the plan's mean cost under gd_noise_samples draws
    # of N(0, gd_noise^2) per action (`hj.planning.gradient_mpc`'s noise; 0: the cost itself)
    gd_noise: float = 1.0
    gd_noise_samples: int = 4
    mppi_temperature: float = 2.0
    macro_steps: int = 6
    macro_horizon: int = 5
    hier_horizon: int = 4
    level2_every: int = 3  # two-level planners: level-1 plans per level-2 plan
    level1: str = "gradient_mpc"  # their level 1 (and planner level1): "cem" or "gradient_mpc"
    waypoint_moves: int = 5  # map costs: the hierarchical subgoal, pixels down V_g
    # hjepa_search: breadth-first search over the learned level 2 (`hj.search.breadth_first`),
    # search_depth macro steps deep, keeping search_frontier states per step, each expanded by
    # the codes of search_directions chunks of one action of norm search_speed (`macro_codes`)
    search_depth: int = 24
    search_frontier: int = 16
    search_directions: int = 8
    search_speed: float = 0.6
    search_spacing: float = 0.5  # kept states lie > this x a typical macro step apart
    search_subgoal: int = 1  # the subgoal: this many macro steps along the imagined way
    # a search from where the last one was (moved < search_stuck x a typical macro step) starts
    # with none of the macro-actions tried from there (0: never)
    search_stuck: float = 0.5
    # an episode's memory of such places: the last search_memory (place, first macro-action)
    # pairs that left the agent stuck; no search expands a state within search_avoid typical
    # macro steps of a remembered place by its macro-action (0: no memory)
    search_memory: int = 0
    search_avoid: float = 1.0
    # The flat planners' memory of where they stayed (gradient_mpc, cem, mppi): each plan that
    # starts less than stuck_still x a typical step (the median move predicted for a 1-px
    # action) from where the last one did remembers its state, the last stuck_memory of them,
    # and the cost gains a bump of height stuck_cost x the current cost and std stuck_radius
    # typical steps at each (0: no memory)
    stuck_memory: int = 0
    stuck_still: float = 0.5
    stuck_cost: float = 1.0
    stuck_radius: float = 2.0
    # level 1 aims at the goal itself once ||s - g|| < search_arrive x a typical macro step
    # (0: only once no imagined state costs less than the current one)
    search_arrive: float = 2.0
    # ... unless, aiming at it, the agent stopped (search_stuck) at least search_unstick typical
    # macro steps from it: a goal just behind a wall. It then follows the search's subgoal
    # until the next search, and what the memory keeps is the macro-action it followed (the
    # one that leads most directly to the goal, where it aimed there). 0: never.
    search_unstick: float = 0.0
    # The planners' cost: "model", the model's (ModelConfig.cost), or "distance": the
    # representation distance ||s - g||^2 alone (EB-JEPA's cost), whichever critic it trained.
    plan_cost: str = "model"
    # Every action, planned and executed, clipped to this L2 norm: within the protocol's 2.45,
    # and the open-loop walk's longest step, beyond which the world model never saw a move.
    action_norm: float = 1.8

    def __post_init__(self):
        fn, fix = "PlannerConfig", "pass an integer >= 1"
        counts = ("max_steps", "replan_every", "eval_chunk", "horizon_plan", "samples", "elites")
        counts += ("iterations", "gd_steps", "gd_starts", "macro_steps", "macro_horizon")
        counts += ("hier_horizon", "gd_noise_samples", "level2_every", "waypoint_moves")
        counts += ("search_depth", "search_frontier", "search_directions", "search_subgoal")
        _common.counts(fn, self, counts, fix)
        memories = ("search_memory", "stuck_memory")
        _common.counts(fn, self, memories, "pass a count >= 0 (0: none)", minimum=0)
        non_negatives = ("wall_cost", "wall_fade", "discount", "gd_noise", "search_stuck")
        non_negatives += ("search_arrive", "search_unstick", "stuck_cost", "stuck_still")
        _common.non_negatives(fn, self, non_negatives, "pass a number >= 0")
        positives = ("init_std", "gd_lr", "mppi_temperature", "action_norm", "search_speed")
        positives += ("search_spacing", "search_avoid", "stuck_radius")
        _common.positives(fn, self, positives, "pass a number > 0")
        _checks.one_of(fn, "level1", self.level1, LEVEL1, "pick one of them")
        _checks.one_of(fn, "plan_cost", self.plan_cost, PLAN_COSTS, "pick one of them")
        for name in ("horizon_plan", "hier_horizon"):
            if getattr(self, name) < self.replan_every:
                rule = f">= replan_every ({self.replan_every})"
                fix = "plan at least as many steps as are executed per plan"
                _checks.broken(fn, name, getattr(self, name), rule, fix)


class MapGoal(NamedTuple):
    """The goal of the map critic's costs: value [65, 65] its steps-to-go V_g, target [2] the
    pixel (row, col) the "straight" cost aims at (the goal's own, or a hierarchical planner's
    waypoint)."""

    value: jax.Array
    target: jax.Array


def observe(position: jax.Array, layout: tr.Layout, pool: int, blur: float = 0.0) -> jax.Array:
    """The observation [S, S, 2] of the agent at position [2] as the encoder sees it: rendered,
    average-pooled by `pool` (S = 65 // pool), and (blur > 0) the agent channel blurred by a
    Gaussian of std `blur` pooled pixels and rescaled to peak 1. Both are fixed functions of
    the image, so that a position far from the agent still changes the input.

    Example:
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> from hjepa_jax.models import two_rooms
      >>> two_rooms.observe(jnp.array([20.0, 40.0]), tr.fixed_layout(), pool=2, blur=1.0).shape
      (32, 32, 2)
    """
    return preprocess(tr.render_position(position, layout, tr.EnvParams()), pool, blur)


def preprocess(obs: jax.Array, pool: int, blur: float = 0.0) -> jax.Array:
    """`observe` of a rendered observation obs [65, 65, 2] (`two_rooms.render_position`):
    average-pooled by `pool`, the agent channel blurred by `blur` pooled pixels. -> [S, S, 2].
    """
    pool = _checks.integer("preprocess", "pool", pool, fix="pass a pooling factor >= 1")
    _checks.non_negative("preprocess", "blur", blur, "pass a blur std >= 0 (0: none)")
    fix = "pass one rendered observation, two_rooms.render_position(position, layout, params)"
    _checks.shape("preprocess", "obs", obs, (SIDE, SIDE, 2), "[65, 65, 2]", fix)
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


def _check_paths(fn: str, positions, layouts) -> None:
    fix = "pass positions [N, L, 2] and one layout per row"
    _checks.rank(fn, "positions", positions, 3, "[N, L, 2]", fix)
    _checks.shape(fn, "positions", positions, (None, None, 2), "[N, L, 2]", fix)
    want = (jnp.shape(positions)[0],)
    _checks.shape(fn, "layouts.kind", layouts.kind, want, "[N], a layout per row", fix)


class Model:
    """Encoder, residual predictor and inverse-dynamics head, the world-model loss, and the
    critics' heads (`critic`, `locator`, `cost_map`, `wall_head`) with their loss.

    state="vector": s = ConvEncoder(o) [embed_dim], s' = s + MLP([s, a]).
    state="spatial": s = the flattened feature map [S/4, S/4, embed_dim] of a ConvEncoder with
    strides (2, 2, 1, ...) and no pooling, s' = s + hj.nn.ConvPredictor(s, a): local and the
    same at every place, so stopping at a wall need not be relearned for each wall position.
    """

    def __init__(self, cfg: ModelConfig):
        _common.config_of("Model", "cfg", cfg, ModelConfig)
        self.cfg = cfg
        side = 65 // cfg.pool
        if cfg.state == "spatial":
            strides = (2, 2) + (1,) * (len(cfg.channels) - 2)
            self.enc = nn.ConvEncoder(cfg.channels, cfg.embed_dim, strides, pool="none")
            self.pred = nn.ConvPredictor((cfg.hidden // 8, cfg.hidden // 8))
            self.map_shape = (-(-side // 4), -(-side // 4), cfg.embed_dim)
        else:
            self.enc = nn.ConvEncoder(channels=cfg.channels, features=cfg.embed_dim)
            self.pred = nn.MLP((cfg.hidden, cfg.hidden, cfg.embed_dim))
            self.map_shape = (cfg.embed_dim,)
        self.state_dim = int(np.prod(self.map_shape))
        self.inv = nn.MLP((cfg.hidden, 2))
        self.ctx = nn.MLP((cfg.hidden, 32))  # the context term's head
        self.critic = nn.MLP((cfg.hidden, cfg.hidden, cfg.critic_dim))
        self.side = SIDE
        self.locator = nn.MLP((self.side**2,))  # logits of the agent's cell, from s
        # traversal costs, from the wall channel of the goal's observation (a local conv net)
        self.cost_map = nn.ConvEncoder((8, 8), 1, (1, 1), pool="none")
        self.wall_head = nn.MLP((cfg.hidden, 1))  # predicts wall_proximity from s
        self.wm = world_model.WorldModelConfig(
            horizon=cfg.horizon,
            inverse_dynamics=cfg.inverse_dynamics,
            smoothness=cfg.smoothness,
            context=cfg.context,
            hard=cfg.hard,
            variance=cfg.variance,
            covariance=cfg.covariance,
            unroll=cfg.state == "spatial",
        )
        self.scale = tr.EnvParams().max_action
        self.enc_a = nn.MLP((cfg.hidden, cfg.level2_codes))  # action chunk -> code (tanh)
        self.pred2 = nn.MLP((cfg.hidden, cfg.hidden, self.state_dim))  # residual, as pred
        self.macro = hjepa.MacroConfig(k=cfg.level2_k, horizon=cfg.level2_horizon)

    def init_critic(self, key: jax.Array) -> dict:
        """The critic's initial parameters, params["critic"] (`train_critic` trains them):
        {"psi", "wall"} for cost "critic" or "distance", {"loc", "map", "wall"} for a map
        cost."""
        k_psi, k_wall = jax.random.split(key)
        s0 = jnp.zeros(self.state_dim)
        init = {"wall": self.wall_head.init(k_wall, s0)}
        if self.cfg.cost in MAP_COSTS:
            k_loc, k_map = jax.random.split(k_psi)
            walls = jnp.zeros((self.side, self.side, 1))
            init.update(loc=self.locator.init(k_loc, s0), map=self.cost_map.init(k_map, walls))
        else:
            init["psi"] = self.critic.init(k_psi, s0)
        return init

    def init(self, key: jax.Array) -> dict:
        """The world model's parameters {"enc", "pred", "inv"}, and "ctx" with a context term
        (the critic's: `train_critic`)."""
        k_enc, k_pred, k_inv = jax.random.split(key, 3)
        size = 65 // self.cfg.pool
        d = self.state_dim
        if self.cfg.state == "spatial":
            pred = self.pred.init(k_pred, jnp.zeros(self.map_shape), jnp.zeros(2))
        else:
            pred = self.pred.init(k_pred, jnp.zeros(d + 2))
        params = {
            "enc": self.enc.init(k_enc, jnp.zeros((1, size, size, 2))),
            "pred": pred,
            "inv": self.inv.init(k_inv, jnp.zeros(2 * d)),
        }
        if self.cfg.context > 0:  # a key of its own: the others' draws stay as they were
            params["ctx"] = self.ctx.init(jax.random.fold_in(key, 3), jnp.zeros(d))
        return params

    def embed(self, enc, frames: jax.Array) -> jax.Array:
        """States [..., D] of encoder inputs frames [..., S, S, 2] (a spatial state flattened)."""
        out = _common.apply(self.enc, enc, frames)
        if self.cfg.state == "spatial":
            out = out.reshape(out.shape[:-3] + (self.state_dim,))
        return out

    def encode(self, enc, position: jax.Array, layout: tr.Layout) -> jax.Array:
        """State [D] of the agent at position [2] in layout (rendered, pooled, encoded)."""
        return self.embed(enc, observe(position, layout, self.cfg.pool, self.cfg.blur))

    def frames(self, positions: jax.Array, layouts: tr.Layout) -> jax.Array:
        """Encoder inputs [B, L, S, S, 2] of positions [B, L, 2], one layout per row."""
        _check_paths("Model.frames", positions, layouts)
        one = lambda q, lay: observe(q, lay, self.cfg.pool, self.cfg.blur)
        return jax.vmap(lambda p, lay: jax.vmap(lambda q: one(q, lay))(p))(positions, layouts)

    def predict(self, pred, s: jax.Array, a: jax.Array) -> jax.Array:
        """The next state [D] of state s [D] after action a [2]."""
        if self.cfg.state == "spatial":
            nxt = _common.apply(self.pred, pred, s.reshape(self.map_shape), a / self.scale)
            return nxt.reshape(s.shape)
        return s + _common.apply(self.pred, pred, jnp.concatenate([s, a / self.scale]))

    def inverse(self, inv, s: jax.Array, nxt: jax.Array) -> jax.Array:
        """The action [2] read from states s, nxt [D] (the inverse-dynamics head)."""
        return self.scale * _common.apply(self.inv, inv, jnp.concatenate([s, nxt]))

    def window(self, batch: tuple, key: jax.Array | None) -> tuple:
        """batch = (positions [B, L, 2], actions [B, L - 1, 2], layouts [B]) cut to one random
        window of `cfg.window` steps per row, drawn from `key`: (positions [B, W + 1, 2],
        actions [B, W, 2], layouts). Unchanged when cfg.window is 0 or not below L - 1."""
        positions, actions, layouts = batch
        w, steps = self.cfg.window, actions.shape[1]
        if not w or w >= steps:
            return batch
        if key is None:
            fix = "pass a PRNG key (hj.train passes one per step)"
            _checks.fail("Model.window", "key", key, f"is needed to cut {w}-step windows", fix)
        start = jax.random.randint(key, positions.shape[:1], 0, steps - w + 1)
        cut = lambda x, n: jax.vmap(lambda r, i: jax.lax.dynamic_slice_in_dim(r, i, n))(x, start)
        return cut(positions, w + 1), cut(actions, w), layouts

    def loss(self, params: dict, batch: tuple, key: jax.Array | None) -> tuple[jax.Array, dict]:
        """`hj.world_model.loss` of batch = (positions [B, L, 2], actions [B, L - 1, 2],
        layouts [B]), each row cut to a random window of `cfg.window` steps (`window`, from
        `key`): frames rendered and encoded inside. -> (loss [], metrics)."""
        positions, actions, layouts = self.window(batch, key)
        states = self.embed(params["enc"], self.frames(positions, layouts))
        heads = {k: v for k, v in params.items() if k != "enc"}
        context = lambda ctx, s: _common.apply(self.ctx, ctx, s)
        return world_model.loss(
            heads, self.predict, states, actions, self.wm, self.inverse, context
        )

    def init_level2(self, key: jax.Array) -> dict:
        """The learned level 2's initial parameters {"enc_a", "pred2"} (`train_level2`)."""
        k_a, k_pred = jax.random.split(key)
        k, codes = self.cfg.level2_k, self.cfg.level2_codes
        return {
            "enc_a": self.enc_a.init(k_a, jnp.zeros(2 * k)),
            "pred2": self.pred2.init(k_pred, jnp.zeros(self.state_dim + codes)),
        }

    def encode_actions(self, enc_a, chunk: jax.Array) -> jax.Array:
        """The macro-action code b [A2] in [-1, 1] of a k-step action chunk [2 k]."""
        return jnp.tanh(_common.apply(self.enc_a, enc_a, chunk / self.scale))

    def predict2(self, pred2, s: jax.Array, b: jax.Array) -> jax.Array:
        """Level 2: the state [D] k steps after state s [D] under the macro-action code b."""
        return s + _common.apply(self.pred2, pred2, jnp.concatenate([s, b]))

    def level2_loss(self, params: dict, batch: tuple, key) -> tuple[jax.Array, dict]:
        """`hj.hjepa.macro_loss` of batch = (frozen states [B, T+1, D], actions [B, T, 2])."""
        del key
        states, actions = batch
        return hjepa.macro_loss(
            params, self.encode_actions, self.predict2, states, actions, self.macro
        )

    def location(self, loc, s: jax.Array) -> jax.Array:
        """The map critic's distribution [..., 65, 65] of the agent's pixel, from states
        [..., D]."""
        logits = self.locator.apply(loc, s)
        return jax.nn.softmax(logits).reshape(s.shape[:-1] + (self.side, self.side))

    def traversal_cost(self, cmap, walls: jax.Array) -> jax.Array:
        """The map critic's cost [..., 65, 65] of crossing each pixel, from a wall channel
        [..., 65, 65]."""
        return jax.nn.softplus(self.cost_map.apply(cmap, walls[..., None])[..., 0])

    def locate(self, loc, s: jax.Array) -> jax.Array:
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
        _checks.one_of("Model.goal", "kind", kind, COSTS, "pick one of them")
        if kind not in MAP_COSTS:
            return g
        fix = "pass the goal's full-size observation (two_rooms.render_position)"
        _checks.shape("Model.goal", "frame", frame, (SIDE, SIDE, 2), "[65, 65, 2]", fix)
        costs = self.traversal_cost(params["critic"]["map"], frame[..., 1])
        cell = self.cell(params["critic"]["loc"], g)
        source = jnp.zeros(costs.shape, bool).at[cell[0], cell[1]].set(True)
        return MapGoal(critic.value_iteration(costs, source), cell.astype(costs.dtype))

    def subgoal(self, params: dict, goal: MapGoal, s: jax.Array, moves: int) -> MapGoal:
        """The hierarchical planner's level 2: the goal with its target moved to the waypoint
        `moves` cells down V_g from the pixel where s [D] locates the agent."""
        here = self.cell(params["critic"]["loc"], s)
        target = critic.waypoint(goal.value, here, moves)
        return goal._replace(target=target.astype(goal.target.dtype))

    def cost(
        self, params: dict, kind: str, wall_cost: float = 0.0, wall_fade: float = 0.0
    ) -> Callable:
        """The planners' `cost(s [D], goal) -> []`, goal from `goal`: "critic", d(s, g)
        in random-policy steps (`hj.critic.distance`) plus wall_cost times the intrinsic cost
        predicted from s, IC_hat(s), times min(1, d(s, g) / wall_fade) when wall_fade > 0
        (needs params["critic"] = {"psi", "wall"}). The fade lets the critic alone decide
        near the goal: the intrinsic cost is high all along the arena's border, and without
        it the cost's minimum for a goal a few pixels from a wall lies 4-5 px away from the
        goal, where the agent then stays. "map", the
        steps-to-go V_g at the agent's expected location (`hj.critic.map_value`), or
        "straight", critic_step times the straight-line pixel distance from the agent's
        expected location to the goal's target (myopic: blind to walls), each plus wall_cost
        times IC_hat(s), not faded (params["critic"] = {"loc", "map", "wall"}); or
        "distance", ||s - g||^2."""
        _checks.one_of("Model.cost", "kind", kind, COSTS, "pick one of them")
        _checks.non_negative("Model.cost", "wall_cost", wall_cost, "pass a weight >= 0")
        _checks.non_negative("Model.cost", "wall_fade", wall_fade, "pass a distance >= 0")
        if kind == "distance":
            return planning.squared_distance
        heads, w = params["critic"], wall_cost
        wall = lambda x: self.wall_head.apply(heads["wall"], x)[0]
        at = lambda x: self.locate(heads["loc"], x)
        if kind == "map":
            return lambda s, g: critic.map_value(g.value, at(s)) + w * wall(s)
        if kind == "straight":
            unit = self.cfg.critic_step
            return lambda s, g: unit * critic.distance(at(s), g.target) + w * wall(s)
        psi = lambda x: self.critic.apply(heads["psi"], x)

        def critic_cost(s, g):
            d = critic.distance(psi(s), psi(g))
            fade = jnp.minimum(d / wall_fade, 1.0) if wall_fade > 0 else 1.0
            return d + w * wall(s) * fade

        return critic_cost

    def critic_loss(self, heads: dict, batch: tuple, key: jax.Array) -> tuple[jax.Array, dict]:
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
        wall_err = jnp.mean((self.wall_head.apply(heads["wall"], states)[..., 0] - near) ** 2)
        if cfg.cost in MAP_COSTS:
            pool = jnp.concatenate([states, others], axis=1)  # [B, L, D]
            env = tr.EnvParams()
            pixel = lambda q: jnp.clip(jnp.floor(q + 0.5).astype(jnp.int32), 0, self.side - 1)
            at = pixel(positions)  # [B, L, 2] (x, y) of each state's agent
            where = self.location(heads["loc"], pool).reshape(pool.shape[:2] + (-1,))
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
            loss, metrics = critic.map_loss(
                self.traversal_cost(heads["map"], walls),
                visits,
                unit=cfg.critic_step,
                penalty=cfg.map_penalty,
                cap=cfg.map_cap,
            )
            total = loss + locate + wall_err
            return total, {**metrics, "locate": locate, "wall_mse": wall_err}
        psi = lambda x: self.critic.apply(heads["psi"], x)
        loss, metrics = critic.loss(
            psi(states),
            psi(others),
            step=cfg.critic_step,
            penalty=cfg.critic_penalty,
            cap=200 * cfg.critic_step,
        )
        return loss + wall_err, {**metrics, "wall_mse": wall_err}


def optimizer(learning_rate: float, steps: int) -> optax.GradientTransformation:
    """What the world model and the critics train with: Adam, its learning rate decayed by a
    cosine over `steps` (`hj.world_model.load` rebuilds its state's structure from it)."""
    return optax.adam(optax.cosine_decay_schedule(learning_rate, steps))


def _map_rows(fn, positions, layouts, chunk: int = 256) -> jax.Array:
    """jit(fn)(positions, layouts) `chunk` rows at a time, so that rendered frames never all
    sit in memory; the results concatenated."""
    fn = jax.jit(fn)
    rows = lambda tree, i: jax.tree_util.tree_map(lambda x: x[i : i + chunk], tree)
    starts = range(0, positions.shape[0], chunk)
    return jnp.concatenate([fn(rows(positions, i), rows(layouts, i)) for i in starts])


def encode_batches(
    model: Model, enc, positions: jax.Array, layouts: tr.Layout, chunk: int = 256
) -> jax.Array:
    """States [N, L, D] of positions [N, L, 2] (layout leaves [N, ...]), `chunk` rows at a
    time (the rendered frames never all sit in memory)."""
    _check_paths("encode_batches", positions, layouts)
    chunk = _checks.integer("encode_batches", "chunk", chunk, fix="pass rows per call >= 1")
    embed = lambda p, lay: model.embed(enc, model.frames(p, lay))
    return _map_rows(embed, positions, layouts, chunk)


def _wall_proximity(positions, layouts, margin: int) -> jax.Array:
    """two_rooms.wall_proximity of the full-size observation at each position: [N, L]."""
    env = tr.EnvParams()
    one = lambda q, lay: tr.wall_proximity(tr.render_position(q, lay, env), margin)
    return _map_rows(
        lambda p, lay: jax.vmap(lambda r, l1: jax.vmap(lambda q: one(q, l1))(r))(p, lay),
        positions,
        layouts,
    )


def same_environment(key: jax.Array, data: tr.Trajectories, m: int) -> tuple[jax.Array, jax.Array]:
    """For each trajectory of `data`, m states recorded in the same environment: (rows [N, m],
    times [N, m]) drawn uniformly over the trajectories whose observations show the same
    walls (equal wall channels, the trajectory itself included) and over their T + 1 steps.
    What an observer of the offline data knows; no simulator state is read.

    Example:
      >>> import jax
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> from hjepa_jax.models import two_rooms
      >>> key, env = jax.random.PRNGKey(0), tr.EnvParams()
      >>> data = tr.random_trajectories(key, env, tr.fixed_layout, 3, 4)
      >>> rows, times = two_rooms.same_environment(jax.random.PRNGKey(1), data, 5)
      >>> rows.shape, times.shape, int(times.max()) <= 4
      ((3, 5), (3, 5), True)
    """
    _check_paths("same_environment", data.positions, data.layouts)
    m = _checks.integer("same_environment", "m", m, fix="pass a count >= 1")
    n, steps = data.positions.shape[:2]
    walls = jax.vmap(lambda lay: tr.wall_image(lay, tr.EnvParams()))(data.layouts)
    seen = np.asarray(walls > 0.5).reshape(n, -1)
    _, group = np.unique(seen, axis=0, return_inverse=True)
    group = group.reshape(n)
    order = np.argsort(group, kind="stable")  # rows sorted by environment
    first = np.searchsorted(group[order], group)  # where each row's environment starts
    size = np.bincount(group)[group]  # how many rows it has
    k_rows, k_times = jax.random.split(key)
    pick = jax.random.uniform(k_rows, (n, m)) * size[:, None]
    rows = jnp.asarray(order)[
        first[:, None] + jnp.minimum(pick.astype(jnp.int32), size[:, None] - 1)
    ]
    return rows, jax.random.randint(k_times, (n, m), 0, steps)


def train_critic(
    model: Model,
    params: dict,
    data: tr.Trajectories,
    loop: train.LoopConfig,
    key: jax.Array,
    *,
    learning_rate: float = 1e-3,
    config: dict | None = None,
    desc: str = "critic",
) -> train.TrainResult:
    """The critic (`model.cfg.cost` "critic", or a map cost) on the trained world model's
    frozen states: every trajectory of `data` (positions [N, T+1, 2], layouts [N]), and
    `critic_others` states observed elsewhere in the same environment (`same_environment`:
    other times and other trajectories of the offline data, never a simulator sample), pushed
    apart from it; and the wall head, which learns to predict the intrinsic cost
    `two_rooms.wall_proximity` of each observation from its state (`Model.critic_loss`).
    Adam with a cosine decay from `learning_rate` over `loop.steps`; `config` and `desc` as
    in `hj.train.train`.
    -> hj.train's result; its params {"psi", "wall"} or {"loc", "map", "wall"}."""
    fn = "train_critic"
    _checks.one_of(fn, "model.cfg.cost", model.cfg.cost, ("critic",) + MAP_COSTS, "no critic")
    states = _frozen_states(fn, model, params, data, learning_rate)
    k_places, k_init, k_train = jax.random.split(key, 3)
    rows, times = same_environment(k_places, data, model.cfg.critic_others)
    others = states[rows, times]
    near = _wall_proximity(data.positions, data.layouts, model.cfg.wall_margin)
    positions = jnp.concatenate([data.positions, data.positions[rows, times]], axis=1)
    batch = (states, others, near, positions, data.layouts)
    init = model.init_critic(k_init)
    return _fit(model.critic_loss, init, batch, loop, k_train, learning_rate, config, desc)


def train_level2(
    model: Model,
    params: dict,
    data: tr.Trajectories,
    loop: train.LoopConfig,
    key: jax.Array,
    *,
    learning_rate: float = 1e-3,
    config: dict | None = None,
    desc: str = "level2",
) -> train.TrainResult:
    """The learned level 2 (`Model.level2_loss`) on the trained world model's frozen states of
    every trajectory of `data` and their actions: no position, wall or other simulator state
    reaches it. Adam with a cosine decay from `learning_rate` over `loop.steps`; `config` and
    `desc` as in `hj.train.train`. -> hj.train's result; its params {"enc_a", "pred2"}."""
    states = _frozen_states("train_level2", model, params, data, learning_rate)
    k_init, k_train = jax.random.split(key)
    batch, init = (states, data.actions), model.init_level2(k_init)
    return _fit(model.level2_loss, init, batch, loop, k_train, learning_rate, config, desc)


def _frozen_states(fn: str, model: Model, params: dict, data, learning_rate) -> jax.Array:
    """The checks `train_critic` and `train_level2` share, then the trained world model's
    states [N, T+1, D] of data's trajectories (`encode_batches`)."""
    _check_paths(fn, data.positions, data.layouts)
    _checks.positive(fn, "learning_rate", learning_rate, "pass a learning rate > 0, e.g. 1e-3")
    return encode_batches(model, params["enc"], data.positions, data.layouts)


def _fit(loss, init, batch, loop, key, learning_rate, config, desc) -> train.TrainResult:
    """`hj.train.train` of a head on frozen states, with `optimizer(learning_rate, steps)`."""
    opt = optimizer(learning_rate, loop.steps)
    return train.train(loss, init, opt, batch, loop=loop, key=key, config=config, desc=desc)


# -------------------------------------------------------------------------------- planning


def clip_norm(action: jax.Array, max_norm: float) -> jax.Array:
    """action [..., 2] scaled down to L2 norm <= max_norm (EB-JEPA's action clipping)."""
    sq = jnp.sum(action**2, axis=-1, keepdims=True)  # no norm: its gradient at 0 is NaN
    return action * jnp.minimum(1.0, max_norm * jax.lax.rsqrt(jnp.maximum(sq, max_norm**2)))


def planning_cost(cost: str, cfg: PlannerConfig) -> str:
    """The kind of cost (one of COSTS) the planners of `cfg` plan with on a model trained with
    `cost` (`ModelConfig.cost`): `cost` where cfg.plan_cost is "model", else cfg.plan_cost."""
    return cost if cfg.plan_cost == "model" else cfg.plan_cost


def make_planner(name: str, model: Model, params: dict, cfg: PlannerConfig):
    """`plan(s [D], goal, key, warm) -> (actions [replan_every, 2], warm)` of planner `name`
    (one of PLANNERS) on the cost `planning_cost(model.cfg.cost, cfg)`, and the initial warm
    start; goal from `Model.goal` (g [D], or a MapGoal for the map costs)."""
    _checks.one_of("make_planner", "name", name, PLANNERS, "pick one of them")
    _common.config_of("make_planner", "cfg", cfg, PlannerConfig)
    bound, h, r = tr.EnvParams().max_action, cfg.horizon_plan, cfg.replan_every
    pred, kind = params["pred"], planning_cost(model.cfg.cost, cfg)
    shift = lambda a: _shift(a, r)
    parts = _sampling_parts(model, params, cfg)
    predict, cost, sample_kw, _ = parts
    descend = _descent(model, params, cfg, predict)

    if name in FLAT:

        def flat(s, g, key, warm, cost):
            if name == "gradient_mpc":
                return descend(s, g, key, warm, cost)
            kw = dict(sample_kw, cost=cost, mean0=warm)
            if name == "cem":
                return planning.cem(predict, pred, s, g, key, elites=cfg.elites, **kw)
            return planning.mppi(predict, pred, s, g, key, temperature=cfg.mppi_temperature, **kw)

        if cfg.stuck_memory:
            return _stuck_memory(flat, model, params, cfg, cost)

        def plan(s, g, key, warm):
            out = flat(s, g, key, warm, cost)
            return out.actions[:r], shift(out.actions)

        return plan, jnp.zeros((h, 2))
    if name in ("hierarchical", "level1") and kind in MAP_COSTS:
        local = model.cost(params, "straight", cfg.wall_cost)
        moves = cfg.waypoint_moves
        aim = (lambda g, s: model.subgoal(params, g, s, moves)) if name == "hierarchical" else None

        def plan(s, g, key, warm):  # level 2: the map's waypoint; level 1: gradient MPC
            out = descend(s, aim(g, s) if aim else g, None, warm, local)
            return out.actions[:r], shift(out.actions)

        return plan, jnp.zeros((cfg.hier_horizon, 2))

    if name == "level1":  # the hierarchy's level 1 alone, aimed at the goal
        reach = _level1(model, params, cfg, parts)

        def plan(s, g, key, warm):
            out = reach(s, g, key, warm)
            return out.actions[:r], shift(out.actions)

        return plan, jnp.zeros((cfg.hier_horizon, 2))
    if name == "hjepa_search":
        return search_planner(model, params, cfg)
    if name in ("hierarchical", "hjepa"):
        two_level, warm0 = two_level_planner(name, model, params, cfg)

        def plan(s, g, key, warm):
            out, warm = two_level(s, g, key, warm)
            return out.actions[:r], warm

        return plan, warm0

    def plan(s, g, key, warm):  # random
        return jax.random.uniform(key, (r, 2), minval=-bound, maxval=bound), warm

    return plan, jnp.zeros(())


def _stuck_memory(flat, model: Model, params: dict, cfg: PlannerConfig, cost):
    """A flat planner `flat(s, goal, key, warm, cost) -> hj.planning.Plan` with a memory of
    where the agent stayed: `plan(s [D], g [D], key, warm) -> (actions [replan_every, 2],
    warm)` and warm0, warm = (plan [H, 2], places [stuck_memory, D] (+inf: empty), count [],
    the state at the last plan [D]). A plan that starts less than stuck_still x a typical
    step from the last one's state remembers s (a ring of the last stuck_memory), unless
    ||s - g|| is within 2 sigma, so that an agent at its goal is not pushed off it; the cost
    becomes c(s', g) + stuck_cost x c(s, g) x sum_i exp(-||s' - place_i||^2 / (2 sigma^2)),
    sigma = stuck_radius typical steps: where the world model lets the agent push on into
    a wall, the plan is pushed along it instead. The typical step is the median of
    ||Pred(s, a) - s|| over 8 actions of 1 px at even headings. Only the agent's own encoded
    frames are remembered."""
    r, m = cfg.replan_every, cfg.stuck_memory
    unit = _headings(_STUCK_HEADINGS, 1.0)

    def bumped(s, goal):
        g, height, places, var = goal
        kept = jnp.all(jnp.isfinite(places), -1)  # empty slots (+inf) add 0, and no NaN gradient
        sq = jnp.sum((s - jnp.where(kept[:, None], places, 0.0)) ** 2, -1)
        return cost(s, g) + height * jnp.sum(jnp.where(kept, jnp.exp(-sq / (2 * var)), 0.0))

    def plan(s, g, key, warm):
        actions, places, count, last = warm
        _, typical = _median_move(lambda a: model.predict(params["pred"], s, a), s, unit)
        reach = cfg.stuck_radius * typical
        stuck = jnp.linalg.norm(s - last) < cfg.stuck_still * typical
        stuck &= jnp.linalg.norm(s - g) > 2 * reach  # no bump over the goal: it stays there
        (places,), count = _remember((places,), count, (s,), stuck)
        goal = (g, cfg.stuck_cost * cost(s, g), places, reach**2)
        out = flat(s, goal, key, actions, bumped)
        return out.actions[:r], (_shift(out.actions, r), places, count, s)

    warm0 = (
        jnp.zeros((cfg.horizon_plan, 2)),
        jnp.full((m, model.state_dim), jnp.inf),
        jnp.zeros((), jnp.int32),
        jnp.full(model.state_dim, jnp.inf),
    )
    return plan, warm0


def _shift(actions: jax.Array, r: int) -> jax.Array:
    """The next plan's warm start: actions [H, A] less the r executed, then r zero actions."""
    return jnp.concatenate([actions[r:], jnp.zeros_like(actions[:r])])


def _descent(model: Model, params: dict, cfg: PlannerConfig, predict):
    """Gradient MPC on the world model (`predict` of `_sampling_parts`): `descend(s [D], g,
    key, warm [H, 2], cost) -> hj.planning.Plan` from the warm start and gd_starts - 1 draws
    of N(0, init_std^2), each descending the mean cost of gd_noise_samples perturbed plans
    when gd_noise > 0; key None: the warm start alone, unsmoothed (the map costs' level 1)."""
    bound = tr.EnvParams().max_action

    def descend(s, g, key, warm, cost):
        starts, noise = warm, None
        if key is not None and cfg.gd_starts > 1:
            draws = cfg.init_std * jax.random.normal(key, (cfg.gd_starts - 1, *warm.shape))
            starts = jnp.concatenate([warm[None], jnp.clip(draws, -bound, bound)])
        if key is not None and cfg.gd_noise > 0:
            shape = (cfg.gd_noise_samples, *warm.shape)
            noise = cfg.gd_noise * jax.random.normal(jax.random.fold_in(key, 1), shape)
        return planning.gradient_mpc(
            predict,
            params["pred"],
            s,
            g,
            starts,
            bound=bound,
            steps=cfg.gd_steps,
            optimizer=optax.adam(cfg.gd_lr),
            cost=cost,
            discount=cfg.discount,
            unroll=model.cfg.state == "spatial",
            noise=noise,
        )

    return descend


def _level1(model: Model, params: dict, cfg: PlannerConfig, parts):
    """The two-level planners' level 1 on the model's cost (`parts`: `_sampling_parts`):
    `reach(s [D], g [D], key, warm [hier_horizon, 2]) -> hj.planning.Plan`, CEM (samples,
    elites, iterations) or gradient MPC (`_descent`) as cfg.level1 says."""
    predict, cost, _, low_kw = parts
    if cfg.level1 == "gradient_mpc":
        descend = _descent(model, params, cfg, predict)
        return lambda s, g, key, warm: descend(s, g, key, warm, cost)
    return lambda s, g, key, warm: planning.cem(
        predict, params["pred"], s, g, key, mean0=warm, **low_kw
    )


def _sampling_parts(model: Model, params: dict, cfg: PlannerConfig):
    """What every planner shares: predict(p, s, a) with a clipped to action_norm, the cost,
    the sampling planners' keyword arguments (horizon_plan), and those of the hierarchy's
    level 1 (CEM of horizon hier_horizon)."""
    predict = lambda p, s, a: model.predict(p, s, clip_norm(a, cfg.action_norm))
    cost = model.cost(params, planning_cost(model.cfg.cost, cfg), cfg.wall_cost, cfg.wall_fade)
    sample_kw = dict(
        cost=cost,
        horizon=cfg.horizon_plan,
        action_dim=2,
        bound=tr.EnvParams().max_action,
        samples=cfg.samples,
        iterations=cfg.iterations,
        init_std=cfg.init_std,
        discount=cfg.discount,
    )
    low_kw = dict(sample_kw, horizon=cfg.hier_horizon, elites=cfg.elites)
    return predict, cost, sample_kw, low_kw


def two_level_planner(name: str, model: Model, params: dict, cfg: PlannerConfig):
    """The two-level planners ("hierarchical": level 1 held for macro_steps as the level 2;
    "hjepa": the learned level 2 over codes): `two_level(s [D], g [D], key, warm) ->
    (hj.planning.HierarchicalPlan, warm)` (its subgoal the state after the first macro step)
    and the initial warm start. Level 2 plans at the first call and every `level2_every`
    calls after it; in between, level 1 alone plans toward the last subgoal (a `lax.cond` on
    the call count, which stays unbatched under vmap, so the skipped level 2 costs no time).
    warm = (macro plan [macro_horizon, codes], level-1 plan [hier_horizon, 2], subgoal [D],
    macro cost [], calls []). `make_planner` executes the plan's actions."""
    _checks.one_of("two_level_planner", "name", name, ("hierarchical", "hjepa"), "pick one")
    _common.config_of("two_level_planner", "cfg", cfg, PlannerConfig)
    parts = _sampling_parts(model, params, cfg)
    predict, cost, _, low_kw = parts
    reach = _level1(model, params, cfg, parts)
    codes = model.cfg.level2_codes if name == "hjepa" else 2
    level2 = {}  # hierarchical: level 1 held for macro_steps; hjepa: the learned level 2
    if name == "hjepa":
        level2 = dict(
            coarse_predict=lambda p, s, b: model.predict2(p, s, b),
            coarse_params=params["level2"]["pred2"],
            macro_action_dim=codes,
            macro_bound=1.0,
        )

    def fine(s0, subgoal, k, m0, g):  # hjepa: aim at the goal once no subgoal is nearer
        if name == "hjepa":  # (a macro-action always moves: none stays at the goal)
            nearer = cost(subgoal, g) < cost(s0, g)
            subgoal = jax.tree.map(lambda a, b: jnp.where(nearer, a, b), subgoal, g)
        return reach(s0, subgoal, k, m0)

    def two_level(s, g, key, warm):
        macro0, fine0, subgoal, macro_cost, calls = warm

        def both(_):
            return planning.hierarchical(
                predict,
                params["pred"],
                s,
                g,
                key,
                macro_steps=cfg.macro_steps,
                macro_horizon=cfg.macro_horizon,
                macro_discount=cfg.discount,
                macro_mean0=macro0,
                mean0=fine0,
                low_level=lambda s0, sub, k, m0: fine(s0, sub, k, m0, g),
                **level2,
                **low_kw,
            )

        def level1(_):
            out = fine(s, subgoal, jax.random.fold_in(key, 1), fine0, g)
            return planning.HierarchicalPlan(out.actions, out.cost, subgoal, macro0, macro_cost)

        if cfg.level2_every == 1:
            out = both(None)
        else:
            out = jax.lax.cond(calls % cfg.level2_every == 0, both, level1, None)
        fine1 = _shift(out.actions, cfg.replan_every)
        return out, (out.macro_actions, fine1, out.subgoal, out.macro_cost, calls + 1)

    warm0 = (
        jnp.zeros((cfg.macro_horizon, codes)),
        jnp.zeros((cfg.hier_horizon, 2)),
        jnp.zeros(model.state_dim),
        jnp.zeros(()),
        jnp.zeros((), jnp.int32),
    )
    return two_level, warm0


def macro_codes(model: Model, params: dict, cfg: PlannerConfig) -> jax.Array:
    """The codes [search_directions, A2] that hjepa_search expands every state by: the learned
    level 2's codes (`Model.encode_actions`) of chunks of one action held for level2_k steps,
    of norm search_speed, at search_directions evenly spaced headings."""
    action = _headings(cfg.search_directions, cfg.search_speed)
    chunks = jnp.repeat(action[:, None], model.cfg.level2_k, axis=1)  # [K, k, 2]
    enc_a = params["level2"]["enc_a"]
    return jax.vmap(lambda c: model.encode_actions(enc_a, c.reshape(-1)))(chunks)


def _median_move(step: Callable, s: jax.Array, inputs: jax.Array):
    """A typical step from s [D]: (ends [K, D] = step(x) for each x of inputs [K, ...], the
    median of ||end - s||)."""
    ends = jax.vmap(step)(inputs)
    return ends, jnp.median(jnp.linalg.norm(ends - s, axis=-1))


def _headings(k: int, norm: float) -> jax.Array:
    """Actions [k, 2] of L2 norm `norm` at k evenly spaced headings, the first along +x."""
    angle = jnp.arange(k) * (2 * jnp.pi / k)
    return norm * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)


def imagination(model: Model, params: dict, cfg: PlannerConfig) -> Callable:
    """hjepa_search's level 2: `imagine(s [D], g [D], allowed [K] | None, avoid | None) ->
    hj.search.SearchPlan`, the breadth-first search over the learned level 2
    (`Model.predict2`, the codes of `macro_codes`) with the planners' cost and the search_*
    fields of cfg; `allowed`: the macro-actions the way may start with (None: all); `avoid`:
    (places [M, D], moves [M]) remembered as stuck, within search_avoid macro steps."""
    cost = _sampling_parts(model, params, cfg)[1]
    pred2, codes = params["level2"]["pred2"], macro_codes(model, params, cfg)
    kw = dict(frontier=cfg.search_frontier, depth=cfg.search_depth, spacing=cfg.search_spacing)
    kw.update(subgoal_step=cfg.search_subgoal, cost=cost, avoid_radius=cfg.search_avoid)
    return lambda s, g, allowed=None, avoid=None: search.breadth_first(
        model.predict2, pred2, s, g, codes, allowed=allowed, avoid=avoid, **kw
    )


def search_planner(model: Model, params: dict, cfg: PlannerConfig):
    """H-JEPA whose level 2 searches in imagination: at the first plan and every
    `level2_every` plans after it, `hj.search.breadth_first` over the learned level 2
    (`Model.predict2`, the codes of `macro_codes`) imagines where the agent can go and proposes
    the subgoal (the state search_subgoal macro steps along the way to the imagined state of
    lowest cost to the goal); level 1 (`cfg.level1`, on the planners' cost) plans toward it,
    or toward the goal itself once no imagined state costs less than the current one, or
    once the goal lies within search_arrive typical macro steps (||s - g||, the step as of
    the last search): near the goal a critic's cost can rank an imagined state beside it
    below the goal's own place, and lead the agent off it. A typical macro step is the median
    move ||Pred2(s, b) - s|| that the level 2 predicts from the state over the codes.

    Where the models are wrong, at a door's corner, a move they predict can leave the agent
    where it was, and the same search would propose it again. So the agent compares what it
    sees: when its state has moved less than search_stuck x a typical macro step since the
    last search, the next search may not start with the macro-actions tried from there (all
    are allowed again once every one was tried, or the agent moves). With search_memory > 0
    it also remembers each such (place, macro-action) for the rest of the episode, the last
    search_memory of them, and no search expands a state within search_avoid typical macro
    steps of a remembered place by its macro-action: where the agent has run into a wall
    that the level 2 imagines away, the search looks for another way (along the wall, to a
    door). What is remembered is the agent's own encoded frames, nothing of the simulator's.
    Within search_arrive of the goal the agent aims at the goal itself; with search_unstick
    > 0, where it stopped there at least search_unstick typical macro steps short of the goal
    (the goal just behind a wall, which the models let it walk through), it follows the
    search's subgoal again until the next search, and the memory keeps (that place, the
    macro-action the level 2 predicts to lead nearest the goal), the move it had made.

    `plan(s [D], g [D], key, warm) -> (actions [replan_every, 2], warm)` and the initial warm
    start; warm = (level-1 plan [hier_horizon, 2], subgoal [D], its search's lowest cost [],
    calls [], the state at the last search [D], the first macro-actions tried from it [K],
    a typical macro step there [], the remembered places [M, D] and macro-actions [M] (-1:
    an empty slot; M = max(search_memory, 1)), the memory's count [], the last search's first
    macro-action [], the macro-action that leads nearest the goal [], the one followed at the
    last plan [] and whether the agent is blocked short of the goal [])."""
    _common.config_of("search_planner", "cfg", cfg, PlannerConfig)
    parts = _sampling_parts(model, params, cfg)
    cost, reach = parts[1], _level1(model, params, cfg, parts)
    imagine = imagination(model, params, cfg)
    pred2, codes = params["level2"]["pred2"], macro_codes(model, params, cfg)

    def plan(s, g, key, warm):
        fine0, subgoal, lowest, calls, anchor, tried, typical = warm[:7]
        places, moved, count, first, toward, followed, blocked = warm[7:]

        def searched(_):
            ends, typical = _median_move(lambda b: model.predict2(pred2, s, b), s, codes)
            stuck = jnp.linalg.norm(s - anchor) < cfg.search_stuck * typical
            tried0 = jnp.where(stuck & ~jnp.all(tried), tried, False)
            memory, n = (places, moved), count
            if cfg.search_memory:  # remember the place and the move that left the agent there
                memory, n = _remember(memory, n, (anchor, followed), stuck & (followed >= 0))
            out = imagine(s, g, ~tried0, memory if cfg.search_memory else None)
            first = search.moves(out, cfg.search_depth)[0]
            tried1 = tried0 | (jnp.arange(cfg.search_directions) == first)
            toward = jnp.argmin(jax.vmap(cost, (0, None))(ends, g)).astype(first.dtype)
            far = jnp.linalg.norm(s - g) >= cfg.search_unstick * typical
            blocked = stuck & far & (cfg.search_unstick > 0)
            kept = (out.subgoal, out.cost, s, tried1, typical)
            return kept + memory + (n, first, toward, blocked)

        kept = (subgoal, lowest, anchor, tried, typical, places, moved, count, first, toward)
        kept = jax.lax.cond(
            calls % cfg.level2_every == 0, searched, lambda _: kept + (blocked,), None
        )
        subgoal, lowest, anchor, tried, typical, places, moved, count, first, toward, blocked = kept
        away = jnp.linalg.norm(s - g) >= cfg.search_arrive * typical
        aim = (lowest < cost(s, g)) & (away | blocked)  # at the subgoal, else at the goal
        target = jnp.where(aim, subgoal, g)
        out = reach(s, target, key, fine0)
        fine1 = _shift(out.actions, cfg.replan_every)
        followed = jnp.where(aim | (cfg.search_unstick == 0), first, toward)
        warm = (fine1, subgoal, lowest, calls + 1, anchor, tried, typical)
        warm += (places, moved, count, first, toward, followed, blocked)
        return out.actions[: cfg.replan_every], warm

    warm0 = (
        jnp.zeros((cfg.hier_horizon, 2)),
        jnp.zeros(model.state_dim),
        jnp.zeros(()),
        jnp.zeros((), jnp.int32),
        jnp.full(model.state_dim, jnp.inf),
        jnp.zeros(cfg.search_directions, bool),
        jnp.zeros(()),
        jnp.full((max(cfg.search_memory, 1), model.state_dim), jnp.inf),
        jnp.full(max(cfg.search_memory, 1), -1, jnp.int32),
        jnp.zeros((), jnp.int32),
        jnp.full((), -1, jnp.int32),
        jnp.full((), -1, jnp.int32),
        jnp.full((), -1, jnp.int32),
        jnp.zeros((), bool),
    )
    return plan, warm0


def _remember(rows: tuple, count, row: tuple, write) -> tuple[tuple, jax.Array]:
    """A ring of the last M entries: rows (arrays [M, ...]), count [] the entries written so
    far; `row` (one array per rows, without the M axis) written over the oldest slot where
    `write`. -> (rows, count)."""
    slot = count % rows[0].shape[0]
    rows = tuple(
        r.at[slot].set(jnp.where(write, x, r[slot])) for r, x in zip(rows, row, strict=True)
    )
    return rows, count + write.astype(count.dtype)


def evaluations_per_episode(planner: str, cfg: PlannerConfig, cost: str = "critic") -> int:
    """World-model evaluations (one predictor step each) that `planner` spends on an episode
    of `cfg.max_steps` env steps on a model trained with `cost` (the planners' cost is
    `planning_cost(cost, cfg)`): a machine-free measure of planning compute.
    CEM and MPPI: samples x iterations x horizon_plan per plan; gradient MPC: gd_starts x
    gd_steps x horizon_plan (each a forward step and its backward pass), times
    gd_noise_samples when smoothed (gd_noise > 0); hierarchical: its level 2
    (samples x iterations x macro_horizon x macro_steps) plus its level 1 (CEM: samples x
    iterations x hier_horizon; level1="gradient_mpc": as gradient MPC's over hier_horizon),
    or with a map cost gradient MPC over hier_horizon, unsmoothed; hjepa: the
    same level 1 plus samples x iterations x macro_horizon steps of the learned level 2 (each
    counted as one evaluation, though one covers level2_k env steps); hjepa_search: the
    same level 1 plus `hj.search.evaluations` of its search, search_directions x (1 +
    search_frontier x search_depth) level-2 steps, and search_directions more (a typical
    macro step, for search_stuck and search_arrive); level1 its level-1 planner alone;
    random 0. A flat planner with stuck_memory: 8 more per plan (its typical step).
    Times the plans, ceil(max_steps / replan_every); a two-level planner's level 2 times its
    own plans, ceil(plans / level2_every).

    Example:
      >>> from hjepa_jax.models import two_rooms
      >>> cfg = two_rooms.PlannerConfig(horizon_plan=90, samples=200, iterations=20,
      ...                               replan_every=1, max_steps=200)
      >>> two_rooms.evaluations_per_episode("mppi", cfg)  # EB-JEPA's MPPI: 72 M
      72000000
    """
    fn = "evaluations_per_episode"
    _checks.one_of(fn, "planner", planner, PLANNERS, "pick one of them")
    _checks.one_of(fn, "cost", cost, COSTS, "pick one of them")
    _common.config_of(fn, "cfg", cfg, PlannerConfig)
    cost = planning_cost(cost, cfg)
    sampled = cfg.samples * cfg.iterations
    smoothed = cfg.gd_noise_samples if cfg.gd_noise > 0 else 1
    descents = cfg.gd_starts * smoothed * cfg.gd_steps  # gradient MPC: steps x starts x noise
    low = {"cem": sampled, "gradient_mpc": descents}[cfg.level1] * cfg.hier_horizon
    low = cfg.gd_steps * cfg.hier_horizon if cost in MAP_COSTS else low
    plans = -(-cfg.max_steps // cfg.replan_every)
    level2 = {
        "hierarchical": sampled * cfg.macro_horizon * cfg.macro_steps,
        "hjepa": sampled * cfg.macro_horizon,
        "hjepa_search": search.evaluations(
            codes=cfg.search_directions, frontier=cfg.search_frontier, depth=cfg.search_depth
        )
        + cfg.search_directions,
    }
    if planner in level2 and cost not in MAP_COSTS:  # level 2 plans every level2_every plans
        return low * plans + level2[planner] * -(-plans // cfg.level2_every)
    per_plan = {
        "gradient_mpc": descents * cfg.horizon_plan,
        "cem": sampled * cfg.horizon_plan,
        "mppi": sampled * cfg.horizon_plan,
        "level1": low,
        "hierarchical": low,
        "random": 0,
    }[planner]
    if planner in FLAT and cfg.stuck_memory:  # the typical step of the memory's bumps
        per_plan += _STUCK_HEADINGS
    return per_plan * plans


def make_evaluate(model: Model, params: dict, cfg: PlannerConfig, planner: str):
    """Jitted `evaluate(keys [N, 2], layouts [N], walls_apart [N] = None) -> (positions
    [N, max_steps+1, 2], goals [N, 2], success [N], first_hit [N], steps [N])` of `planner`,
    one episode per key and layout, on EB-JEPA's protocol (walls_apart: the goal that many
    walls from the start's room, `two_rooms.reset`'s; None: in the last room, the protocol's).

    Every `replan_every` env steps the planner sees Enc(o_t) and the goal (`Model.goal` of
    Enc(goal_obs)) only, plans, and the first `replan_every` actions, clipped to L2 norm
    `action_norm`, are executed; the plan is warm-started from the previous one shifted. Every
    episode runs all max_steps (the agent is not frozen when it reaches the goal): success is
    the position after the last step within 4.5 px of the goal, first_hit whether any position
    was, and steps the env steps to the first hit (max_steps if none). Episodes run
    `eval_chunk` at a time (vmap within a chunk, a loop over chunks)."""
    env = tr.EnvParams(max_steps=cfg.max_steps)
    plan, warm0 = make_planner(planner, model, params, cfg)
    kind = planning_cost(model.cfg.cost, cfg)
    n_plans, r = cfg.max_steps // cfg.replan_every, cfg.replan_every
    enc = params["enc"]

    def episode(key, layout, walls_apart):
        k_reset, k_plan = jax.random.split(key)
        state, _ = tr.reset(k_reset, env, layout, walls_apart)
        frame = tr.render_position(state.goal, layout, env)
        goal = model.goal(params, model.encode(enc, state.goal, layout), frame, kind)

        def act(c, a):
            state, hit, steps = c
            state, _, info = tr.step(state, clip_norm(a, cfg.action_norm), env)
            steps = steps + (~hit).astype(jnp.int32)
            return (state, hit | info["success"], steps), state.position

        def replan(carry, plan_key):
            state, hit, steps, warm = carry
            s = model.encode(enc, state.position, layout)
            actions, warm = plan(s, goal, plan_key, warm)
            (state, hit, steps), pos = jax.lax.scan(act, (state, hit, steps), actions)
            return (state, hit, steps, warm), pos

        init = (state, jnp.zeros((), bool), jnp.zeros((), jnp.int32), warm0)
        (last, hit, steps, _), path = jax.lax.scan(replan, init, jax.random.split(k_plan, n_plans))
        path = jnp.concatenate([state.position[None], path.reshape(n_plans * r, 2)])
        return path, state.goal, tr.success(last, env), hit, steps

    def evaluate(keys, layouts, walls_apart=None):
        fix = "pass keys [N, 2] and one layout per key"
        _checks.rank("evaluate", "keys", keys, 2, "[N, 2]", fix)
        _checks.shape("evaluate", "layouts.kind", layouts.kind, keys.shape[:1], "[N]", fix)
        if walls_apart is None:
            walls_apart = jnp.full(keys.shape[:1], tr.MAX_WALLS, jnp.int32)
        fix = "pass one count of walls per key"
        _checks.shape("evaluate", "walls_apart", walls_apart, keys.shape[:1], "[N]", fix)
        tasks = (keys, layouts, walls_apart)
        return jax.lax.map(lambda a: episode(*a), tasks, batch_size=cfg.eval_chunk)

    return jax.jit(evaluate)


class Episodes(NamedTuple):
    """What `run_episodes` returns, numpy arrays of N episodes: positions [N, max_steps+1, 2],
    goals [N, 2], success [N] bool (at the last step), first_hit [N] bool (at any step), steps
    [N] (env steps to the first hit, max_steps if none), wall_x and door_y [N, 3] (NaN for a
    disabled wall slot), and seconds: the compiled batch's wall time / N."""

    positions: np.ndarray
    goals: np.ndarray
    success: np.ndarray
    first_hit: np.ndarray
    steps: np.ndarray
    wall_x: np.ndarray
    door_y: np.ndarray
    seconds: float


def wall_count(setting: str) -> int:
    """The interior walls of `setting`'s layouts (a key of SETTINGS; the same in each).

    Example:
      >>> from hjepa_jax.models import two_rooms
      >>> two_rooms.wall_count("random"), two_rooms.wall_count("four_rooms_fixed")
      (1, 3)
    """
    _checks.one_of("wall_count", "setting", setting, tuple(SETTINGS), "pick one of them")
    return int(np.sum(SETTINGS[setting](jax.random.PRNGKey(0)).wall_on))


def tasks(key: jax.Array, setting: str, episodes: int) -> tuple[jax.Array, tr.Layout]:
    """The task keys [N, 2] and layouts [N] of `episodes` episodes in `setting` (a key of
    SETTINGS): split from fold_in(key, the setting's index), so each setting's tasks are the
    same whichever others run."""
    _checks.one_of("tasks", "setting", setting, tuple(SETTINGS), "pick one of them")
    episodes = _checks.integer("tasks", "episodes", episodes, fix="pass at least one episode")
    keys = jax.random.split(jax.random.fold_in(key, list(SETTINGS).index(setting)), episodes)
    return keys, jax.jit(jax.vmap(SETTINGS[setting]))(keys)


def run_episodes(
    model: Model, params: dict, cfg: PlannerConfig, planner: str, keys, layouts, walls_apart=None
) -> Episodes:
    """`make_evaluate`'s episodes of keys [N, 2], layouts [N] and walls_apart ([N] or None),
    compiled, then timed (None: the protocol's goal in the last room, passed as an array like
    a sweep's, so that both lower to the same program and a persistent compilation cache
    serves one from the other; `make_evaluate`'s own None builds it inside the program)."""
    last = np.full(np.shape(keys)[:1], tr.MAX_WALLS, np.int32)
    tasks = (keys, layouts, last if walls_apart is None else jnp.asarray(walls_apart, jnp.int32))
    compiled = make_evaluate(model, params, cfg, planner).lower(*tasks).compile()
    start = time.perf_counter()
    pos, goals, done, hit, steps = jax.block_until_ready(compiled(*tasks))
    seconds = (time.perf_counter() - start) / keys.shape[0]
    on = np.asarray(layouts.wall_on)
    wall_x = np.where(on, np.asarray(layouts.wall_x), np.nan)
    door_y = np.where(on, np.asarray(layouts.door_y), np.nan)
    arrays = (np.asarray(x) for x in (pos, goals, done, hit, steps))
    return Episodes(*arrays, wall_x, door_y, seconds)


# ----------------------------------------------------------------------------- diagnostics


class Probe(NamedTuple):
    """What `probe` returns: r2 and rmse (pixels) of the positions decoded from the held-out
    rows' states, rollout_rmse that of the world model's predicted rollouts decoded, true
    [N - fit, T+1, 2] those rows' positions, predicted [N - fit, T, 2] the decoded
    rollouts from their first state under their actions, and decode the probe itself
    (states [M, D] -> positions [M, 2], numpy). wall_x_rmse and door_y_rmse (pixels): a
    ridge probe of the first wall's x and its door's y from the same states, scored the same
    way (NaN when every row has the same layout): does the state hold where the door is?"""

    r2: float
    rmse: float
    wall_x_rmse: float
    door_y_rmse: float
    rollout_rmse: float
    true: np.ndarray
    predicted: np.ndarray
    decode: Callable[[np.ndarray], np.ndarray]


def _fit_probe(x: np.ndarray, y: np.ndarray, alpha: float = 1.0):
    """Ridge weights from states [N, D] (with a bias) to positions [N, 2]: -> decode(x)."""
    x = np.asarray(x, np.float64)
    mean, std = x.mean(0), x.std(0) + 1e-8
    x1 = np.concatenate([(x - mean) / std, np.ones((len(x), 1))], 1)
    reg = alpha * np.eye(x1.shape[1])
    reg[-1, -1] = 0.0
    w = np.linalg.solve(x1.T @ x1 + reg, x1.T @ np.asarray(y, np.float64))
    return lambda z: np.concatenate([(np.asarray(z) - mean) / std, np.ones((len(z), 1))], 1) @ w


def probe(model: Model, params: dict, data: tr.Trajectories, fit: int) -> Probe:
    """A ridge probe from frozen states to positions, fitted on every frame of the first `fit`
    trajectories of `data` (positions [N, T+1, 2], actions [N, T, 2], layouts [N]), scored
    on the others (`hj.probes.regression_r2`), and their predicted rollouts decoded by it."""
    n = np.shape(data.positions)[0]
    fix = f"keep rows to score: 1 <= fit < N = {n}"
    fit = _checks.integer("probe", "fit", fit, maximum=n - 1, fix=fix)
    states = np.asarray(encode_batches(model, params["enc"], data.positions, data.layouts))
    positions = np.asarray(data.positions)
    flat_s, flat_p = states.reshape(-1, states.shape[-1]), positions.reshape(-1, 2)
    cut = fit * positions.shape[1]
    r2, rmse = probes.regression_r2(flat_s[:cut], flat_p[:cut], flat_s[cut:], flat_p[cut:])
    walls = []
    for where in (data.layouts.wall_x[:, 0], data.layouts.door_y[:, 0]):
        label = np.repeat(np.asarray(where, np.float64), positions.shape[1])[:, None]
        if np.ptp(label) == 0:  # one layout: nothing to read
            walls.append(float("nan"))
            continue
        walls.append(probes.regression_r2(flat_s[:cut], label[:cut], flat_s[cut:], label[cut:])[1])
    decode = _fit_probe(flat_s[:cut], flat_p[:cut])
    rollouts = jax.jit(
        jax.vmap(lambda s0, a: planning.rollout(model.predict, params["pred"], s0, a))
    )(jnp.asarray(states[fit:, 0]), data.actions[fit:])
    pred_pos = decode(np.asarray(rollouts).reshape(-1, states.shape[-1])).reshape(
        len(states) - fit, -1, 2
    )
    rollout_rmse = float(np.sqrt(np.mean((pred_pos - positions[fit:, 1:]) ** 2)))
    return Probe(r2, rmse, *walls, rollout_rmse, positions[fit:], pred_pos, decode)


def rollout_errors(
    model: Model,
    params: dict,
    decode: Callable[[np.ndarray], np.ndarray],
    key: jax.Array,
    setting: str = "random",
    at: tuple[int, ...] = (8, 30, 90),
    n: int = 100,
) -> dict:
    """How far the world model predicts: n fresh reward-free trajectories ("open_loop"
    walk) of max(at) steps in `setting`'s layouts, rolled out from their first state under
    their actions, the rollouts decoded by a position probe (`Probe.decode`).
    -> {"rollout_rmse_<k>": RMSE in pixels of the decoded position after k steps}."""
    fn = "rollout_errors"
    _checks.one_of(fn, "setting", setting, tuple(SETTINGS), "pick one of them")
    _checks.function(fn, "decode", decode, "(states [M, D]) -> positions [M, 2]")
    at = tuple(_checks.integer(fn, "at", k, fix="pass step counts >= 1") for k in at)
    data = tr.random_trajectories(
        key, tr.EnvParams(), SETTINGS[setting], n, max(at), 0.0, 0.0, "open_loop"
    )
    first = encode_batches(model, params["enc"], data.positions[:, :1], data.layouts)[:, 0]
    roll = jax.jit(jax.vmap(lambda s0, a: planning.rollout(model.predict, params["pred"], s0, a)))
    states = np.asarray(roll(first, data.actions))  # [n, max(at), D]
    out = {}
    for k in at:
        err = decode(states[:, k - 1]) - np.asarray(data.positions[:, k])
        out[f"rollout_rmse_{k}"] = float(np.sqrt(np.mean(np.sum(err**2, -1))))
    return out


def path_length(start, goal, wall_x, door_y, points: int = 17) -> float:
    """Shortest path length (pixels) from start [2] to goal [2] through the door of every wall
    between them in wall_x [K] (NaN: no wall; door_y [K] their doors), each door a segment of
    `points` crossing points (the walls' thickness ignored). The yardstick of the planners'
    costs.

    Example:
      >>> from hjepa_jax.models import two_rooms
      >>> nan = float("nan")
      >>> two_rooms.path_length([10, 18], [50, 18], [32, nan], [18, nan])
      40.0
      >>> two_rooms.path_length([10, 18], [20, 18], [32, nan], [18, nan])  # the same room
      10.0
    """
    fix = "pass one start and goal (x, y) and the walls' wall_x, door_y [K]"
    _checks.shape("path_length", "start", start, (2,), "[2], (x, y)", fix)
    _checks.shape("path_length", "goal", goal, (2,), "[2], (x, y)", fix)
    _checks.shape("path_length", "door_y", door_y, np.shape(wall_x), "wall_x's [K]", fix)
    points = _checks.integer("path_length", "points", points, fix="pass points >= 1")
    half = tr.EnvParams().door_half_height
    legs = [np.asarray(start, np.float64)[None]]
    lo, hi = sorted((float(start[0]), float(goal[0])))
    between = [(wx, dy) for wx, dy in zip(wall_x, door_y, strict=True) if lo < wx < hi]  # no NaN
    for wx, dy in sorted(between, reverse=float(start[0]) > float(goal[0])):  # start's side first
        ys = np.linspace(dy - half, dy + half, points)
        legs.append(np.stack([np.full(points, wx), ys], -1))
    legs.append(np.asarray(goal, np.float64)[None])
    best = np.zeros(1)
    for a, b in zip(legs[:-1], legs[1:], strict=True):  # dynamic programming over the doors
        best = np.min(best[:, None] + np.linalg.norm(a[:, None] - b[None], axis=-1), axis=0)
    return float(best[0])


def path_lengths(starts, goals, wall_x, door_y) -> np.ndarray:
    """`path_length` of each row: starts, goals [N, 2], wall_x, door_y [N, K]. -> [N]."""
    rows = zip(np.asarray(starts), np.asarray(goals), wall_x, door_y, strict=True)
    return np.array([path_length(*row) for row in rows])


def cost_path_correlation(
    model: Model,
    params: dict,
    key: jax.Array,
    setting: str = "random",
    wall_cost: float = 0.0,
    wall_fade: float = 0.0,
) -> dict:
    """Pearson correlation of each cost, between the states of 300 task starts of `setting`
    and their goals, with the shortest path length: how well a cost tells the planners where
    the door is. -> {"path_corr_straight_line", "path_corr_distance" (the representation
    distance), and "path_corr_<model.cfg.cost>" (with `wall_cost`, `wall_fade`) unless that
    is distance}."""
    _checks.one_of("cost_path_correlation", "setting", setting, tuple(SETTINGS), "pick one")
    env, kind = tr.EnvParams(), model.cfg.cost

    @jax.jit  # one program, not a compile per operation
    def measure(params, keys):
        layouts = jax.vmap(SETTINGS[setting])(keys)
        states = jax.vmap(lambda k, lay: tr.reset(k, env, lay)[0])(keys, layouts)
        enc = jax.vmap(lambda p, lay: model.encode(params["enc"], p, lay))
        s, g = enc(states.position, layouts), enc(states.goal, layouts)
        costs = {"distance": jnp.linalg.norm(s - g, axis=-1)}
        if kind != "distance":
            frames = jax.vmap(lambda p, lay: tr.render_position(p, lay, env))(states.goal, layouts)
            goals = jax.vmap(lambda g1, f: model.goal(params, g1, f, kind))(g, frames)
            costs[kind] = jax.vmap(model.cost(params, kind, wall_cost, wall_fade))(s, goals)
        return layouts, states, costs

    layouts, states, learned = measure(params, jax.random.split(key, 300))
    wall_x = np.where(np.asarray(layouts.wall_on), np.asarray(layouts.wall_x), np.nan)
    door_y = np.asarray(layouts.door_y)
    start, goal = np.asarray(states.position), np.asarray(states.goal)
    path = list(path_lengths(start, goal, wall_x, door_y))
    costs = {"straight_line": np.linalg.norm(start - goal, axis=-1)}
    costs.update({k: np.asarray(v) for k, v in learned.items()})
    return {f"path_corr_{k}": float(np.corrcoef(v, path)[0, 1]) for k, v in costs.items()}


def wall_predictions(model: Model, params: dict, key: jax.Array, setting: str = "random") -> dict:
    """Does the world model stop at the wall and pass the door? From 3 px left of the first
    wall's face, 3 steps of a = (+2.45, 0) (to 4.35 px past it if nothing stopped them), at
    heights outside the door (blocked) and inside it (open), 200 of each in `setting`'s
    layouts. A prediction counts as "through" when it is nearer Enc(unblocked end) than
    Enc(blocked end). -> {"wall_leak" (through where blocked), "door_pass" (through the
    door)}, fractions in [0, 1]."""
    _checks.one_of("wall_predictions", "setting", setting, tuple(SETTINGS), "pick one")
    env = tr.EnvParams()

    @jax.jit  # one program, not a compile per operation
    def measure(params, key):
        k_lay, k_y = jax.random.split(key)
        layouts = jax.vmap(SETTINGS[setting])(jax.random.split(k_lay, 200))
        wx, dy = layouts.wall_x[:, 0], layouts.door_y[:, 0]
        face = wx - env.wall_half_width
        u = jax.random.uniform(k_y, (200,))
        y_blocked = tr.height_beside_door(u, dy, env.border_lo + 3.0, env.border_hi - 3.0, env)
        y_open = dy + (2.0 * u - 1.0) * (env.door_half_height - 2.0)
        actions = jnp.broadcast_to(jnp.array([env.max_action, 0.0]), (3, 2))
        enc = jax.vmap(lambda p, lay: model.encode(params["enc"], p, lay))
        rollout = jax.vmap(lambda s: planning.rollout(model.predict, params["pred"], s, actions))

        def through(y):
            start = jnp.stack([face - 3.0, y], -1)
            blocked = jnp.stack([face - 1e-3, y], -1)
            passed = start + jnp.array([3 * env.max_action, 0.0])
            pred = rollout(enc(start, layouts))[:, -1]
            near = lambda target: jnp.linalg.norm(pred - enc(target, layouts), axis=-1)
            return jnp.mean(near(passed) < near(blocked))

        return through(y_blocked), through(y_open)

    leak, door = measure(params, key)
    return {"wall_leak": float(leak), "door_pass": float(door)}


def subgoal_probe(
    model: Model,
    params: dict,
    cfg: PlannerConfig,
    decode: Callable[[np.ndarray], np.ndarray],
    key: jax.Array,
    setting: str = "three_rooms",
    n: int = 100,
    slack: float = 2.0,
    planner: str = "hjepa",
) -> dict:
    """Do the "hjepa" planner's subgoals lie on a path through the doors? For n tasks of
    `setting`, its level-2 plan from the start (`two_level_planner`) is rolled out by the
    learned level 2: the predicted states after each of its macro_horizon macro steps (the
    subgoals it would propose in turn), decoded to positions by a position probe
    (`Probe.decode`). The plan goes through the doors when the polyline start -> subgoal 1
    -> ... -> last subgoal crosses each wall within its door (widened by `slack` px for the
    probe's error). Beside it, a wall-blind plan: the points as far from the start on the
    straight line to the goal. planner "hjepa_search": the imagined way of its search from
    the start to the imagined state nearest the goal (`imagination`, `hj.search.way`) is the
    plan, its metrics named "search_*" instead of "subgoal_*", with "search_found" (the
    fraction of ways whose last state decodes within the success radius, 4.5 px, of the goal).
    -> {"subgoal_through_doors" (the fraction of plans through the doors),
    "subgoal_detour_median" ((path(start, p) + path(p, goal)) / path(start, goal) over the
    subgoals p, paths through the doors, `path_length`: 1 on a shortest path),
    "subgoal_progress" (the mean of 1 - path(p, goal) / path(start, goal) at each plan's last
    subgoal), "subgoal_through_doors_straight", "subgoal_progress_straight" (the wall-blind
    plan's)}."""
    fn = "subgoal_probe"
    _checks.one_of(fn, "setting", setting, tuple(SETTINGS), "pick one of them")
    _checks.function(fn, "decode", decode, "(states [M, D]) -> positions [M, 2]")
    n = _checks.integer(fn, "n", n, fix="pass at least one task")
    _checks.non_negative(fn, "slack", slack, "pass a width >= 0 in pixels")
    _checks.one_of(fn, "planner", planner, LEVEL2, "pick one of them")
    env, kind = tr.EnvParams(), planning_cost(model.cfg.cost, cfg)
    if planner == "hjepa":
        two_level, warm0 = two_level_planner("hjepa", model, params, cfg)
        pred2 = params["level2"]["pred2"]
        ahead = lambda s0, g, k: planning.rollout(
            model.predict2, pred2, s0, two_level(s0, g, k, warm0)[0].macro_actions
        )
    else:
        imagine = imagination(model, params, cfg)
        ahead = lambda s0, g, k: search.way(imagine(s0, g), cfg.search_depth)

    def plan_from_start(k):
        k_task, k_plan = jax.random.split(k)
        layout = SETTINGS[setting](k_task)
        state, _ = tr.reset(k_task, env, layout)
        enc = lambda q: model.encode(params["enc"], q, layout)
        frame = tr.render_position(state.goal, layout, env)
        subgoals = ahead(
            enc(state.position), model.goal(params, enc(state.goal), frame, kind), k_plan
        )
        return layout, state.position, state.goal, subgoals

    layouts, starts, goals, sub = jax.jit(jax.vmap(plan_from_start))(jax.random.split(key, n))
    starts, goals, sub = (np.asarray(x, np.float64) for x in (starts, goals, sub))
    m = sub.shape[1]
    at = decode(sub.reshape(n * m, -1)).reshape(n, m, 2)
    at = np.clip(at, env.border_lo, env.border_hi)
    wall_x = np.where(np.asarray(layouts.wall_on), np.asarray(layouts.wall_x), np.nan)
    door_y = np.asarray(layouts.door_y)
    far = np.linalg.norm(at - starts[:, None], axis=-1, keepdims=True)
    line = (goals - starts)[:, None]
    length = np.linalg.norm(line, axis=-1, keepdims=True)
    straight = starts[:, None] + np.minimum(far, length) * line / np.maximum(length, 1e-9)
    whole = [path_length(starts[i], goals[i], wall_x[i], door_y[i]) for i in range(n)]
    prefix = "subgoal" if planner == "hjepa" else "search"
    out = {}
    if planner == "hjepa_search":
        found = np.linalg.norm(at[:, -1] - goals, axis=-1) <= env.success_radius
        out["search_found"] = float(np.mean(found))
    for name, points in (("", at), ("_straight", straight)):
        detour, progress = np.zeros((n, m)), np.zeros((n, m))
        for i, j in np.ndindex(n, m):
            path = lambda p, q, i=i: path_length(p, q, wall_x[i], door_y[i])
            to_goal = path(points[i, j], goals[i])
            detour[i, j] = (path(starts[i], points[i, j]) + to_goal) / whole[i]
            progress[i, j] = 1.0 - to_goal / whole[i]
        polyline = np.concatenate([starts[:, None], points], axis=1)  # [n, m + 1, 2]
        doors = [_through_doors(polyline[i], wall_x[i], door_y[i], slack) for i in range(n)]
        out[f"{prefix}_through_doors{name}"] = float(np.mean(doors))
        out[f"{prefix}_progress{name}"] = float(np.mean(progress[:, -1]))
        if not name:
            out[f"{prefix}_detour_median"] = float(np.median(detour))
    return out


def _through_doors(line: np.ndarray, wall_x: np.ndarray, door_y: np.ndarray, slack: float) -> bool:
    """Whether the polyline line [L, 2] crosses each wall (wall_x, door_y [K], NaN: none)
    only where |y - door_y| <= door_half_height + slack."""
    half = tr.EnvParams().door_half_height + slack
    for (x0, y0), (x1, y1) in zip(line[:-1], line[1:], strict=True):
        for wx, dy in zip(wall_x, door_y, strict=True):
            if not np.isnan(wx) and min(x0, x1) < wx < max(x0, x1):
                y = y0 + (y1 - y0) * (wx - x0) / (x1 - x0)
                if abs(y - dy) > half:
                    return False
    return True
