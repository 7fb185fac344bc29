"""Energy terms and the generic latent-variable EBM E(x, y, z), with its two free energies.

Conventions (shared with `hjepa_jax.latent`): every energy is a pure function of one example
that returns a scalar, with the variable being minimized first after `params`:

    latent energy   E(params, z, y, *x) -> []      (minimized over z: `latent.minimize`)
    free energy     F(params, y, *x)    -> []      (minimized over y: `latent.infer`)

`*x` is empty for an unconditional model such as the ellipse of Fig. 4. Batch with `jax.vmap`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from hjepa_jax import latent


def squared_distance(a: jax.Array, b: jax.Array) -> jax.Array:
    """D(a, b) = ||a - b||^2 summed over all axes of one example. a, b: [...] -> []."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"squared_distance: shapes differ, {a.shape} vs {b.shape}.")
    return jnp.sum((a - b) ** 2)


def squared_norm(z) -> jax.Array:
    """R(z) = ||z||^2 over every leaf of the pytree z. -> []."""
    return sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(z))


def predictor_energy(predict: Callable) -> Callable:
    """Deterministic-predictor energy of Fig. 3b / Fig. 5a: F(x, y) = ||y - Pred_w(x)||^2.

    Args:
      predict: `predict(params, x) -> [Y]`, e.g. a Flax module's `apply`.

    Returns:
      `free_energy(params, y, x) -> []` with y: [Y]. Its argmin over y is Pred_w(x).
    """

    def free_energy(params, y, x):
        return squared_distance(y, predict(params, x))

    return free_energy


def latent_energy(
    decode: Callable, lam: float = 0.0, regularizer: Callable = squared_norm
) -> Callable:
    """Decoder-based latent-variable energy (Fig. 4a, our E3 and E11):

        E(x, y, z) = D(y, Dec_w(z, x)) + lam * R(z),     D = squared distance.

    Args:
      decode: `decode(params, z, *x) -> [Y]`, the decoder Dec_w.
      lam: weight of the latent regularizer R; it limits the information z carries.
      regularizer: `R(z) -> []` (default ||z||^2).

    Returns:
      `energy(params, z, y, *x) -> []`.
    """

    def energy(params, z, y, *x):
        return squared_distance(y, decode(params, z, *x)) + lam * regularizer(z)

    return energy


def zero_temperature_free_energy(
    energy: Callable,
    z0s,
    *,
    steps: int,
    optimizer: optax.GradientTransformation | None = None,
    grad: str = "envelope",
) -> Callable:
    """F_inf(x, y) = min_z E(x, y, z) by gradient descent from K starts, keeping the lowest (E3).

    Several starts guard against the local minima of a non-convex energy in z (an angle on an
    ellipse has two stationary points for most y).

    Args:
      energy: `energy(params, z, y, *x) -> []`.
      z0s: pytree with leaves [K, ...], the K starting latents.
      steps, optimizer, grad: as in `latent.minimize`.

    Returns:
      `free_energy(params, y, *x) -> MinimizeResult` of the best start (`.energy` is F_inf,
      `.z` is z_hat). Its `.energy` is differentiable w.r.t. params and y.
    """

    def free_energy(params, y, *x):
        def from_start(z0):
            return latent.minimize(
                energy, params, z0, y, *x, steps=steps, optimizer=optimizer, grad=grad
            )

        return latent.lowest(jax.vmap(from_start)(z0s))

    return free_energy


def marginal_free_energy(energy: Callable, z_points, beta: float) -> Callable:
    """F_beta(x, y) = -1/beta log sum_i exp(-beta E(x, y, z_i)) over given z points (E4).

    Args:
      energy: `energy(params, z, y, *x) -> []`.
      z_points: pytree with leaves [N, ...], e.g. a grid of angles.
      beta: inverse temperature > 0; `math.inf` gives min_i E(x, y, z_i).

    Returns:
      `free_energy(params, y, *x) -> []`.
    """

    def free_energy(params, y, *x):
        energies = jax.vmap(lambda z: energy(params, z, y, *x))(z_points)
        return latent.soft_min(energies, beta)

    return free_energy
