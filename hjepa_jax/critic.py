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
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


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
