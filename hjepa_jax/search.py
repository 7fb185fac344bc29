"""Level-2 planning by search in imagination: breadth-first over a learned coarse model.

The sampling and gradient planners of `hj.planning` minimize a cost summed along one
predicted trajectory, so a cost that is lowest in front of a wall (the representation
distance to a goal behind it) holds them there. An H-JEPA agent (the paper's Sec. 5 and
Fig. 11) can instead explore with its level-2 model alone, level 2 a search rather than an
optimizer: starting from s0, expand every kept state by each of K macro-actions b_1..b_K,

    s'' = Pred2(s, b_k),

keep up to `frontier` new states per level that are at least `spacing` from every state
kept so far (the farthest first), and stop after `depth` levels. The imagined state of
lowest cost c(s'', goal) is where the plan leads; the subgoal handed to level 1 is the
state `subgoal_step` macro steps along the way to it. Walls the coarse model has learned
stop the expansion, so the kept states flood the room and pass the doors, and the distance
to the goal only has to be right near the goal. `moves` reads the macro-actions of the
imagined way; `allowed` restricts the first one (an agent whose models predicted a move that
left it where it was can search again without that move), and `avoid` is an episode's memory of
such moves: a kept state near a place where a macro-action left the agent where it was is not
expanded by that macro-action, so the search stops imagining the wall away where the agent
has already run into it.

Everything is fixed-shape (jit, vmap): states that are not kept are +inf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from hjepa_jax import _checks, planning

__all__ = ["SearchPlan", "breadth_first", "way", "moves", "evaluations"]


class SearchPlan(NamedTuple):
    """subgoal: [D] the state `subgoal_step` macro steps along the way to `best` (`best`
    itself if it is nearer); best: [D] the kept state of lowest cost; cost: [] its cost
    c(best, goal); steps: [] its depth in macro steps (0: s0 itself); index: [] its index in
    `states`; states: [1 + depth * frontier, D] every kept state, s0 first, +inf where none
    was kept; parent: [1 + depth * frontier] the index in `states` of the state each one was
    expanded from (0 for s0); move: [1 + depth * frontier] the index in `codes` of the
    macro-action that reached each state from its parent (-1 for s0)."""

    subgoal: jax.Array
    best: jax.Array
    cost: jax.Array
    steps: jax.Array
    index: jax.Array
    states: jax.Array
    parent: jax.Array
    move: jax.Array


def evaluations(codes: int, frontier: int, depth: int) -> int:
    """Coarse-model evaluations of one `breadth_first` call: codes x (1 + frontier x depth)
    (the first codes set the spacing's scale).

    Example:
      >>> import hjepa_jax as hj
      >>> hj.search.evaluations(codes=12, frontier=32, depth=24)
      9228
    """
    return codes * (1 + frontier * depth)


def breadth_first(
    coarse_predict: Callable,
    coarse_params,
    s0: jax.Array,
    goal,
    codes: jax.Array,
    *,
    frontier: int = 32,
    depth: int = 16,
    spacing: float = 0.5,
    cost: Callable = planning.squared_distance,
    subgoal_step: int = 1,
    allowed: jax.Array | None = None,
    avoid: tuple[jax.Array, jax.Array] | None = None,
    avoid_radius: float = 1.0,
) -> SearchPlan:
    """Breadth-first search over the macro-actions `codes` with the coarse model; see the
    module docstring.

    Args:
      coarse_predict, coarse_params: the level-2 model `(params, s [D], b [A2]) -> [D]`.
      s0: [D] the current state; goal: what `cost` compares with (default: a state [D]).
      codes: [K, A2] the macro-actions tried from every kept state (K >= 2).
      frontier: the most states kept per level.
      depth: levels (macro steps) searched.
      spacing: a new state is kept only if it lies farther than spacing x m from every
        kept state, m the median distance ||Pred2(s0, b_k) - s0|| of one macro step from s0
        (scale-free: 0.5 keeps states half a typical macro step apart).
      cost: `cost(s [D], goal) -> []`, lowest at the goal.
      subgoal_step: the macro steps from s0 to the subgoal, along the way to the best state.
      allowed: [K] bool, the macro-actions the way may start with (default: all); e.g. all
        but one that was just tried from s0 and left the agent where it was.
      avoid: (places [M, D], moves [M] int) or None: no kept state within avoid_radius x m of
        places[i] is expanded by codes[moves[i]] (a slot with moves[i] < 0, or a non-finite
        place, is empty). Where every macro-action from s0 is avoided, s0 is expanded by all
        (the memory never leaves the search nowhere to start).
      avoid_radius: the reach of each avoided place, in typical macro steps m (> 0).

    Returns:
      SearchPlan; its subgoal is s0 when no kept state costs less than s0.

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> walk = lambda p, s, b: s + b  # a 2-D walker, no walls
      >>> codes = jnp.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
      >>> plan = hj.search.breadth_first(walk, None, jnp.zeros(2), jnp.array([3.0, 0.0]),
      ...                                codes, frontier=8, depth=4)
      >>> plan.subgoal.tolist(), float(plan.cost), int(plan.steps)
      ([1.0, 0.0], 0.0, 3)
    """
    fn = "search.breadth_first"
    frontier = _checks.integer(fn, "frontier", frontier, fix="keep >= 1 states, e.g. 32")
    depth = _checks.integer(fn, "depth", depth, fix="search >= 1 macro steps, e.g. 16")
    _checks.positive(fn, "spacing", spacing, "pass a fraction of a macro step > 0, e.g. 0.5")
    fix = f"take the subgoal 1..depth={depth} macro steps along the way, e.g. 1"
    subgoal_step = _checks.integer(fn, "subgoal_step", subgoal_step, maximum=depth, fix=fix)
    fix = "pass the macro-actions to try, [K, A2] with K >= 2"
    _checks.rank(fn, "codes", codes, 2, "[K, A2]", fix)
    if codes.shape[0] < 2:
        _checks.fail(fn, "codes", codes.shape, "holds fewer than 2 macro-actions", fix)
    _checks.rank(fn, "s0", s0, 1, "[D]", "pass one state [D]; vmap for a batch")
    planning._check_model(fn, coarse_predict, coarse_params, s0, goal, codes.shape[1], cost,
                          "coarse_predict")  # fmt: skip
    k, dim = codes.shape[0], s0.shape[0]
    one = lambda s, b: coarse_predict(coarse_params, s, b)
    expand = jax.vmap(jax.vmap(one, (None, 0)), (0, None))  # [F, D] x [K, A2] -> [F, K, D]
    moves = jnp.linalg.norm(expand(s0[None], codes)[0] - s0, axis=-1)
    min_sq = (spacing * jnp.median(moves)) ** 2
    size = 1 + depth * frontier
    states = jnp.full((size, dim), jnp.inf, s0.dtype).at[0].set(s0)
    parent = jnp.zeros(size, jnp.int32)
    move = jnp.full(size, -1, jnp.int32)
    if allowed is None:
        allowed = jnp.ones(k, bool)
    _checks.shape(fn, "allowed", allowed, (k,), "[K]", "pass one flag per macro-action in codes")
    allowed = jnp.tile(jnp.asarray(allowed, bool), frontier)  # [F * K], as kids are laid out
    banned = _avoided(fn, avoid, avoid_radius, jnp.median(moves), k, dim)
    level0 = (jnp.broadcast_to(s0, (frontier, dim)), jnp.arange(frontier) == 0)

    def level(carry, d):
        states, parent, move, (front, alive) = carry
        kids = expand(front, codes).reshape(frontier * k, dim)
        slot = 1 + d * frontier + jnp.arange(frontier)
        kid_parent = jnp.repeat(jnp.maximum(slot - frontier, 0), k)  # depth 0: s0, slot 0
        gap = jnp.min(jnp.sum((kids[:, None] - states[None]) ** 2, -1), axis=1)
        gap = jnp.where(jnp.repeat(alive, k) & jnp.all(jnp.isfinite(kids), -1), gap, -1.0)
        gap = jnp.where(allowed | (d > 0), gap, -1.0)
        if banned is not None:
            ban = banned(front)  # [F, K]
            ban = jnp.where((d == 0) & jnp.all(ban, -1, keepdims=True), False, ban)
            gap = jnp.where(ban.reshape(-1), -1.0, gap)

        def keep(gap, _):  # the farthest child, then the gaps to it shrink
            j = jnp.argmax(gap)
            new = gap[j] > min_sq
            gap = jnp.minimum(gap, jnp.sum((kids - kids[j]) ** 2, -1)).at[j].set(-1.0)
            return gap, (j, new)

        _, (pick, new) = jax.lax.scan(keep, gap, None, length=frontier)
        front = kids[pick]
        states = states.at[slot].set(jnp.where(new[:, None], front, jnp.inf))
        parent = parent.at[slot].set(kid_parent[pick])
        move = move.at[slot].set(pick % k)
        return (states, parent, move, (front, new)), None

    init = (states, parent, move, level0)
    (states, parent, move, _), _ = jax.lax.scan(level, init, jnp.arange(depth))
    costs = jnp.where(
        jnp.all(jnp.isfinite(states), -1), jax.vmap(lambda s: cost(s, goal))(states), jnp.inf
    )
    best = jnp.argmin(costs)
    steps = jnp.where(best == 0, 0, 1 + (best - 1) // frontier)
    return SearchPlan(
        subgoal=states[_along(parent, best, steps, subgoal_step, depth)],
        best=states[best],
        cost=costs[best],
        steps=steps,
        index=best,
        states=states,
        parent=parent,
        move=move,
    )


def _avoided(fn: str, avoid, radius, step, k: int, dim: int) -> Callable | None:
    """`banned(front [F, D]) -> [F, K]` bool: the macro-actions that `avoid` forbids from each
    state of front (within radius x step of a place where that one is remembered); None
    without a memory."""
    if avoid is None:
        return None
    _checks.positive(fn, "avoid_radius", radius, "pass a reach > 0, e.g. 1.0")
    fix = "pass avoid = (places [M, D], moves [M] int), moves < 0 for empty slots"
    if not isinstance(avoid, tuple) or len(avoid) != 2:
        _checks.fail(fn, "avoid", type(avoid).__name__, "is not a pair (places, moves)", fix)
    places, moves = avoid
    _checks.shape(fn, "avoid[0]", places, (None, dim), "[M, D]", fix)
    _checks.shape(fn, "avoid[1]", moves, (places.shape[0],), "[M]", fix)
    reach_sq = (radius * step) ** 2
    remembered = (moves[:, None] == jnp.arange(k)) & jnp.all(jnp.isfinite(places), -1)[:, None]

    def banned(front):
        near = jnp.sum((front[:, None] - places[None]) ** 2, -1) < reach_sq  # [F, M]
        return jnp.any(near[:, :, None] & remembered[None], axis=1)

    return banned


def _along(parent, best, steps, m, depth: int):
    """The index of the state m macro steps along the way to `best` (at depth `steps`): its
    ancestor steps - m generations up, or `best` itself where m >= steps."""
    up = lambda i, j: jnp.where(i < steps - m, parent[j], j)
    return jax.lax.fori_loop(0, depth, up, best)


def way(plan: SearchPlan, depth: int) -> jax.Array:
    """The imagined way to `plan.best`: [depth, D], the states 1, 2, .., depth macro steps along
    it (plan.best itself from its depth `plan.steps` on). `depth` is the search's.

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> walk = lambda p, s, b: s + b
      >>> codes = jnp.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
      >>> plan = hj.search.breadth_first(walk, None, jnp.zeros(2), jnp.array([3.0, 0.0]),
      ...                                codes, frontier=8, depth=4)
      >>> hj.search.way(plan, depth=4)[:, 0].tolist()  # x along the way: 3 steps, then there
      [1.0, 2.0, 3.0, 3.0]
    """
    return plan.states[_way(plan, depth, "search.way")]


def moves(plan: SearchPlan, depth: int) -> jax.Array:
    """The macro-actions of the imagined way to `plan.best`: [depth] int, the index in the
    search's `codes` of the macro-action taken at each of its 1, 2, .., depth macro steps (-1
    beyond its depth `plan.steps`, where the way has ended). `depth` is the search's.

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> walk = lambda p, s, b: s + b
      >>> codes = jnp.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
      >>> plan = hj.search.breadth_first(walk, None, jnp.zeros(2), jnp.array([3.0, 0.0]),
      ...                                codes, frontier=8, depth=4)
      >>> hj.search.moves(plan, depth=4).tolist()  # +x three times, then the way has ended
      [0, 0, 0, -1]
    """
    at = _way(plan, depth, "search.moves")
    return jnp.where(jnp.arange(1, depth + 1) <= plan.steps, plan.move[at], -1)


def _way(plan: SearchPlan, depth: int, fn: str) -> jax.Array:
    """The indices [depth] in plan.states of the way's states 1..depth macro steps along it."""
    size = plan.states.shape[0]
    if (size - 1) % depth:
        fix = "pass the depth that breadth_first searched"
        _checks.fail(fn, "depth", depth, f"does not divide the {size - 1} states", fix)
    at = lambda m: _along(plan.parent, plan.index, plan.steps, m, depth)
    return jax.vmap(at)(jnp.arange(1, depth + 1))
