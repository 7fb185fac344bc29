"""The trainable cost (the paper's critic, Fig. 1): a goal-conditioned distance in steps,
learned from reward-free trajectories.

The intrinsic cost "distance to the goal's representation" ||s - g|| has local minima
wherever the straight line to the goal is blocked (a wall between two rooms): every planner
that minimizes it stalls there. The critic replaces it by a distance that counts the steps
of a path, d(s, g) = ||psi(s) - psi(g)||, psi an embedding of the world model's state,
learned like a quasimetric (QRL, Wang et al. 2023) or maximum variance unfolding:

    minimize  - E_{s, g} min(d(s, g), cap)  +  penalty * E_t relu(d(s_t, s_{t+1}) - step)^2

Consecutive states of a trajectory may be at most `step` apart, and everything else is
pushed as far apart as those local links allow, so d(s, g) approaches the number of steps of
the shortest path the data knows between s and g (a triangle inequality over the observed
transitions): two points on either side of a wall end up as far apart as the way through
the door. The planners of `hj.planning` use it as their `cost`.

A second critic, for environments whose layout changes every episode (where psi would have to
learn every wall's position): a value-iteration network (Tamar et al. 2016). A map of
traversal costs c [H, W], decoded from the goal's state, is learned from where observed agents
went (`map_loss`: every visited cell costs at most one `unit`, all others are pushed up to
`cap`, so walls, never visited, become impassable); `value_iteration` turns it into the
steps-to-go V_g of every cell (exact shortest paths over the 8-neighbour grid), and
`map_value` reads V_g at the agent's location predicted from a state.
`waypoint` descends V_g a few cells from the agent's cell: the subgoal of a hierarchical
planner whose coarse level is this map.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.ndimage

from hjepa_jax import _checks

__all__ = ["distance", "loss", "value_iteration", "waypoint", "map_value", "map_loss"]


def _check_weights(fn: str, **weights) -> None:
    """`cap`, `step` and `unit` must be > 0, the other weights >= 0."""
    for name, value in weights.items():
        if name in ("cap", "step", "unit"):
            _checks.positive(fn, name, value, f"pass a {name} > 0")
        else:
            _checks.non_negative(fn, name, value, f"pass a {name} >= 0")


def distance(psi_s: jax.Array, psi_g: jax.Array, eps: float = 1e-6) -> jax.Array:
    """d = ||psi_s - psi_g|| over the last axis (smoothed at 0 so its gradient is finite).
    psi_s, psi_g: [..., K] broadcasting; eps >= 0. -> [...].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> round(float(hj.critic.distance(jnp.zeros(2), jnp.array([3.0, 4.0]))), 3)
      5.0
    """
    fix = "pass embeddings of the same size K on the last axis"
    k = jnp.shape(psi_s)[-1:]
    _checks.shape("distance", "psi_g", psi_g, jnp.shape(psi_g)[:-1] + k, "[..., K] as psi_s", fix)
    _checks.non_negative("distance", "eps", eps, "pass a smoothing eps >= 0, e.g. 1e-6")
    return jnp.sqrt(jnp.sum((psi_s - psi_g) ** 2, axis=-1) + eps)


def loss(
    psi_traj: jax.Array,
    psi_other: jax.Array,
    *,
    step: float = 1.0,
    penalty: float = 100.0,
    cap: float = 200.0,
) -> tuple[jax.Array, dict]:
    """The critic's objective on a batch of embedded trajectories.

    Args:
      psi_traj: [B, T + 1, K] embeddings of consecutive states (one trajectory per row).
      psi_other: [B, M, K] embeddings of other states of the same environment as each row
        (e.g. observations at random places in the same layout): the pairs pushed apart,
        together with the pairs within the trajectory.
      step: the largest distance allowed between consecutive states (the unit of d).
      penalty: weight of the squared violation of that bound.
      cap: pairs farther than this are not pushed further.

    Returns:
      (loss, metrics): "local" mean d of consecutive states, "violation" mean squared
      excess over `step`, "spread" mean capped d of the pushed pairs.

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> total, metrics = hj.critic.loss(jnp.zeros((2, 3, 4)), jnp.ones((2, 5, 4)))
      >>> total.shape, sorted(metrics)
      ((), ['local', 'spread', 'violation'])
    """
    fix = "pass embedded trajectories [B, T + 1, K] and other states [B, M, K] of each row"
    _checks.rank("critic.loss", "psi_traj", psi_traj, 3, "[B, T + 1, K]", fix)
    b, _, k = jnp.shape(psi_traj)
    _checks.shape("critic.loss", "psi_other", psi_other, (b, None, k), "[B, M, K] as psi_traj", fix)
    _check_weights("critic.loss", step=step, penalty=penalty, cap=cap)
    local = distance(psi_traj[:, 1:], psi_traj[:, :-1])  # [B, T]
    violation = jnp.mean(jax.nn.relu(local - step) ** 2)
    pool = jnp.concatenate([psi_traj, psi_other], axis=1)  # [B, T + 1 + M, K]
    pairs = distance(psi_traj[:, :, None], pool[:, None])  # [B, T + 1, T + 1 + M]
    spread = jnp.mean(jnp.minimum(pairs, cap))
    total = penalty * violation - spread
    return total, {"local": jnp.mean(local), "violation": violation, "spread": spread}


# ---------------------------------------------------------------------- value-iteration critic

_MOVES = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)


def value_iteration(
    cost_map: jax.Array, source: jax.Array, iterations: int | None = None, cap: float = 1e4
) -> jax.Array:
    """Steps-to-go V [H, W] of every cell to the `source` cells over an 8-neighbour grid: a
    move between neighbours a, b costs |ab| (c_a + c_b) / 2 (|ab| = 1 or sqrt 2), and
    V(a) = min_b V(b) + cost(a, b), V = 0 on the source (Bellman-Ford sweeps in a `lax.scan`,
    exact once `iterations` >= the number of cells on the longest shortest path; default
    2 (H + W)). Values above `cap` are cut to it (unreachable cells).

    cost_map: [H, W] >= 0; source: [H, W] bool. -> V [H, W].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> source = jnp.zeros((3, 3), bool).at[0, 0].set(True)
      >>> v = hj.critic.value_iteration(jnp.ones((3, 3)), source)
      >>> [round(float(x), 2) for x in v[2]]  # the last row: 2 steps down, then diagonal
      [2.0, 2.41, 2.83]
    """
    fix = "pass a cost map [H, W] and a source mask [H, W] of the same grid"
    _checks.rank("value_iteration", "cost_map", cost_map, 2, "[H, W]", fix)
    want = jnp.shape(cost_map)
    _checks.shape("value_iteration", "source", source, want, "cost_map's [H, W]", fix)
    if iterations is not None:
        fix = "pass the number of sweeps, or None for 2 (H + W)"
        iterations = _checks.integer("value_iteration", "iterations", iterations, fix=fix)
    _check_weights("value_iteration", cap=cap)
    h, w = cost_map.shape
    pad = lambda x: jnp.pad(x, 1, constant_values=cap)
    shifted = lambda x, dy, dx: pad(x)[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    edges = jnp.stack(
        [jnp.hypot(dy, dx) * (cost_map + shifted(cost_map, dy, dx)) / 2 for dy, dx in _MOVES]
    )

    def sweep(v, _):
        through = jnp.stack([shifted(v, dy, dx) for dy, dx in _MOVES]) + edges
        return jnp.minimum(jnp.minimum(v, jnp.min(through, axis=0)), cap), None

    v0 = jnp.where(source, 0.0, cap)
    v, _ = jax.lax.scan(sweep, v0, None, length=iterations or 2 * (h + w))
    return v


def waypoint(value: jax.Array, cell: jax.Array, moves: int) -> jax.Array:
    """The level-2 plan on the map (H-JEPA's coarse level): from `cell` [2] (row, col), take
    `moves` greedy steps to the 8-neighbour of least V (staying put where none is lower, as
    on the source), a `lax.scan`; the cell reached is the subgoal a level-1 planner reaches.
    Over V from `value_iteration` every step lowers V until the source (or a cell cut to
    its `cap`: unreachable), so the path goes round walls, through the doors, to the source.

    value: [H, W] steps-to-go; cell: [2] integer. -> [2] int32, the waypoint (row, col).

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> source = jnp.zeros((3, 3), bool).at[0, 0].set(True)
      >>> v = hj.critic.value_iteration(jnp.ones((3, 3)), source)
      >>> hj.critic.waypoint(v, jnp.array([2, 2]), 1).tolist()
      [1, 1]
    """
    fix = "pass a value map [H, W] and one cell [2] (row, col); jax.vmap over cells"
    _checks.rank("waypoint", "value", value, 2, "[H, W]", fix)
    _checks.shape("waypoint", "cell", cell, (2,), "[2], (row, col)", fix)
    fix = "pass the number of greedy moves >= 0"
    moves = _checks.integer("waypoint", "moves", moves, minimum=0, fix=fix)
    h, w = value.shape
    offsets = jnp.array(_MOVES, jnp.int32)  # [8, 2]
    limit = jnp.array([h - 1, w - 1], jnp.int32)

    def step(c, _):
        near = c + offsets
        inside = jnp.all((near >= 0) & (near <= limit), axis=-1)
        near = jnp.clip(near, 0, limit)
        v = jnp.where(inside, value[near[:, 0], near[:, 1]], jnp.inf)
        best = jnp.argmin(v)
        return jnp.where(v[best] < value[c[0], c[1]], near[best], c), None

    out, _ = jax.lax.scan(step, jnp.asarray(cell, jnp.int32), None, length=moves)
    return out


def map_value(value: jax.Array, point: jax.Array) -> jax.Array:
    """V at a point between cells: bilinear interpolation of V [H, W] (from `value_iteration`)
    at point [..., 2] (row, col), real-valued, clamped to the map's edge. -> [...].

    Continuous in the point, so a planner's gradient follows V's slope (down the shortest
    path, round the walls); the expectation of V under a sharp location distribution, by
    contrast, moves only through the distribution's tails, and its gradient is noise.

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> source = jnp.zeros((3, 3), bool).at[0, 0].set(True)
      >>> v = hj.critic.value_iteration(jnp.ones((3, 3)), source)
      >>> float(hj.critic.map_value(v, jnp.array([0.0, 0.5])))
      0.5
    """
    fix = "pass a value map [H, W] and points [..., 2] (row, col)"
    _checks.rank("map_value", "value", value, 2, "[H, W]", fix)
    want = (*jnp.shape(point)[:-1], 2)
    _checks.shape("map_value", "point", point, want, "[..., 2], (row, col)", fix)
    read = lambda q: jax.scipy.ndimage.map_coordinates(value, [q[0], q[1]], 1, mode="nearest")
    flat = point.reshape(-1, 2).astype(value.dtype)
    return jax.vmap(read)(flat).reshape(point.shape[:-1])


def map_loss(
    cost_map: jax.Array,
    visits: jax.Array,
    *,
    unit: float = 1.0,
    penalty: float = 1000.0,
    cap: float = 100.0,
) -> tuple[jax.Array, dict]:
    """The traversal-cost map's objective, the map version of `loss`:

        penalty * E_b sum_cells w_b relu(c_b - unit)^2  -  E_{b, cells} min(c_b, cap),

    w_b the visits of row b normalized to sum 1. A cell where agents were seen costs about one
    `unit` (a step of one cell); one never visited (a wall) is pushed to `cap`.

    Args:
      cost_map: [B, H, W] >= 0, one map per environment (decoded from one of its states).
      visits: [B, H, W] >= 0, where observed agents of that environment were (e.g. the agent
        channel of its frames, summed); each row needs some mass.

    Returns:
      (loss, metrics): "free" the visit-weighted mean cost, "violation", "spread".

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> total, metrics = hj.critic.map_loss(jnp.ones((1, 3, 3)), jnp.ones((1, 3, 3)))
      >>> total.shape, sorted(metrics)
      ((), ['free', 'spread', 'violation'])
    """
    fix = "pass one cost map and one visit map per environment, both [B, H, W]"
    _checks.rank("map_loss", "cost_map", cost_map, 3, "[B, H, W]", fix)
    want = jnp.shape(cost_map)
    _checks.shape("map_loss", "visits", visits, want, "cost_map's [B, H, W]", fix)
    _check_weights("map_loss", unit=unit, penalty=penalty, cap=cap)
    w = visits / jnp.sum(visits, axis=(1, 2), keepdims=True)
    violation = jnp.mean(jnp.sum(w * jax.nn.relu(cost_map - unit) ** 2, axis=(1, 2)))
    spread = jnp.mean(jnp.minimum(cost_map, cap))
    free = jnp.mean(jnp.sum(w * cost_map, axis=(1, 2)))
    return penalty * violation - spread, {"free": free, "violation": violation, "spread": spread}
