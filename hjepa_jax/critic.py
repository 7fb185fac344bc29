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

import chex
import jax
import jax.numpy as jnp
import jax.scipy.ndimage


def distance(psi_s: jax.Array, psi_g: jax.Array, eps: float = 1e-6) -> jax.Array:
    """d = ||psi_s - psi_g|| over the last axis (smoothed at 0 so its gradient is finite).
    psi_s, psi_g: [..., K] broadcasting. -> [...]."""
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
    """
    chex.assert_rank((psi_traj, psi_other), (3, 3))
    chex.assert_equal_shape_prefix((psi_traj, psi_other), 1)
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

    cost_map: [H, W] >= 0; source: [H, W] bool. -> V [H, W]."""
    chex.assert_rank((cost_map, source), 2)
    chex.assert_equal_shape((cost_map, source))
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

    value: [H, W] steps-to-go; cell: [2] integer. -> [2] int32, the waypoint (row, col)."""
    chex.assert_rank(value, 2)
    chex.assert_shape(cell, (2,))
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
    contrast, moves only through the distribution's tails, and its gradient is noise."""
    chex.assert_rank(value, 2)
    chex.assert_axis_dimension(point, -1, 2)
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
    """
    chex.assert_rank((cost_map, visits), 3)
    chex.assert_equal_shape((cost_map, visits))
    w = visits / jnp.sum(visits, axis=(1, 2), keepdims=True)
    violation = jnp.mean(jnp.sum(w * jax.nn.relu(cost_map - unit) ** 2, axis=(1, 2)))
    spread = jnp.mean(jnp.minimum(cost_map, cap))
    free = jnp.mean(jnp.sum(w * cost_map, axis=(1, 2)))
    return penalty * violation - spread, {"free": free, "violation": violation, "spread": spread}
