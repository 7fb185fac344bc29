"""Constraints on the variable of the gradient loop, as optax transformations.

Chained after a step's transformation, each projects the next iterate onto a set:

    z_{k+1} = P(z_k + u_k),   so the update becomes P(z_k + u_k) - z_k

`box` bounds each entry (clamped Langevin samples, bounded actions for planning); `ball`
bounds the norm of the whole variable (an information limit on a latent z). Both need the
current iterate, which `hj.latent.minimize` passes as optax's `params`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hjepa_jax import _checks

__all__ = ["box", "ball"]


def _projection(name: str, project: Callable) -> optax.GradientTransformation:
    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(f"{name} needs params (the current iterate) in update().")
        moved = jax.tree_util.tree_map(jnp.add, params, updates)
        return jax.tree_util.tree_map(jnp.subtract, project(moved), params), state

    return optax.GradientTransformation(init_fn, update_fn)


def box(low: float | jax.Array, high: float | jax.Array) -> optax.GradientTransformation:
    """Project every entry into [low, high] (low/high broadcast against each leaf).

    Concrete bounds are checked (low <= high, no NaN); traced ones are not: with low > high
    every entry ends at high (jnp.clip).

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> t = hj.constraints.box(-1.0, 1.0)
      >>> z = jnp.zeros(2)
      >>> updates, _ = t.update(jnp.array([2.0, -5.0]), t.init(z), z)
      >>> print(z + updates)
      [ 1. -1.]
    """
    fix = "pass low <= high (-inf or inf for no bound on that side)"
    _checks.real("box", "low", low, allow_inf=True, fix=fix)
    _checks.real("box", "high", high, allow_inf=True, fix=fix)
    if not _checks.traced((low, high)) and not np.all(np.less_equal(low, high)):
        _checks.fail("box", "low", low, f"is above high={_checks.show(high)}", fix)
    return _projection(
        "box", lambda tree: jax.tree_util.tree_map(lambda z: jnp.clip(z, low, high), tree)
    )


def ball(radius: float) -> optax.GradientTransformation:
    """Project the whole pytree onto the ball ||z|| <= radius (global L2 norm). A traced
    radius is not checked (radius <= 0 flips or zeroes the iterate).

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> t = hj.constraints.ball(1.0)
      >>> z = jnp.zeros(2)
      >>> updates, _ = t.update(jnp.array([3.0, 4.0]), t.init(z), z)
      >>> print((z + updates).round(3))
      [0.6 0.8]
    """
    _checks.positive("ball", "radius", radius, "pass a radius > 0")

    def project(tree):
        norm = optax.tree.norm(tree)
        scale = jnp.minimum(1.0, radius / jnp.maximum(norm, 1e-12))
        return jax.tree_util.tree_map(lambda z: z * scale, tree)

    return _projection("ball", project)
