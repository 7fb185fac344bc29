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

from hjepa_jax import _checks, latent

__all__ = [
    "squared_distance",
    "squared_norm",
    "predictor_energy",
    "latent_energy",
    "zero_temperature_free_energy",
    "marginal_free_energy",
]


def squared_distance(a: jax.Array, b: jax.Array) -> jax.Array:
    """D(a, b) = ||a - b||^2 summed over all axes of one example. a, b: [...] -> [].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> float(hj.energies.squared_distance(jnp.array([1.0, 2.0]), jnp.array([0.0, 4.0])))
      5.0
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    fix = "compare one example with one of the same shape (jax.vmap over a batch)"
    _checks.shape("squared_distance", "b", b, a.shape, "a's shape", fix)
    return jnp.sum((a - b) ** 2)


def squared_norm(z) -> jax.Array:
    """R(z) = ||z||^2 over every leaf of the pytree z. -> [].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> float(hj.energies.squared_norm({"a": jnp.ones(2), "b": jnp.array([3.0])}))
      11.0
    """
    return sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(z))


def _check_points(fn: str, name: str, points, what: str) -> None:
    """A pytree of latents stacked on axis 0: leaves [K, ...], K >= 1, the same K for all."""
    leaves = jax.tree_util.tree_leaves(points)
    fix = f"stack {what} on axis 0 of every leaf"
    if not leaves:
        _checks.fail(fn, name, points, "is an empty pytree", fix)
    k = jnp.shape(leaves[0])[:1]
    for leaf in leaves:
        if jnp.shape(leaf)[:1] != k or k in ((), (0,)):
            rule = "[K, ...], K >= 1 and the same for every leaf"
            _checks.broken(fn, f"{name}.shape", jnp.shape(leaf), rule, fix)


def predictor_energy(predict: Callable) -> Callable:
    """Deterministic-predictor energy of Fig. 3b / Fig. 5a: F(x, y) = ||y - Pred_w(x)||^2.

    Args:
      predict: `predict(params, x) -> [Y]`, e.g. a Flax module's `apply`.

    Returns:
      `free_energy(params, y, x) -> []` with y: [Y]. Its argmin over y is Pred_w(x).

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> f = hj.energies.predictor_energy(lambda w, x: w * x)
      >>> float(f(2.0, jnp.array([1.0, 1.0]), jnp.array([1.0, 0.0])))
      2.0
    """
    _checks.function("predictor_energy", "predict", predict, "(params, x) -> [Y]")

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

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> circle = lambda w, z: w * jnp.concatenate([jnp.cos(z), jnp.sin(z)])
      >>> e = hj.energies.latent_energy(circle, lam=0.1)
      >>> round(float(e(1.0, jnp.zeros(1), jnp.array([2.0, 0.0]))), 3)
      1.0
    """
    _checks.function("latent_energy", "decode", decode, "(params, z, *x) -> [Y]")
    _checks.function("latent_energy", "regularizer", regularizer, "(z) -> []")
    _checks.non_negative("latent_energy", "lam", lam, "pass a regularizer weight >= 0")

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

    Example:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import hjepa_jax as hj
      >>> circle = lambda w, z: jnp.concatenate([jnp.cos(z), jnp.sin(z)])
      >>> e = hj.energies.latent_energy(circle)
      >>> starts = jnp.linspace(-3.0, 3.0, 4)[:, None]
      >>> opt = optax.sgd(0.1)
      >>> f = hj.energies.zero_temperature_free_energy(e, starts, steps=100, optimizer=opt)
      >>> round(float(f(None, jnp.array([2.0, 0.0])).energy), 3)
      1.0
    """
    fn = "zero_temperature_free_energy"
    _checks.function(fn, "energy", energy, "(params, z, y, *x) -> []")
    steps = _checks.integer(fn, "steps", steps, fix="pass the number of steps, e.g. steps=100")
    _checks.one_of(fn, "grad", grad, latent.GRAD_MODES, fix='use "envelope" (the default)')
    _check_points(fn, "z0s", z0s, "the K starting latents")

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

    Example:
      >>> import math
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> circle = lambda w, z: jnp.concatenate([jnp.cos(z), jnp.sin(z)])
      >>> e = hj.energies.latent_energy(circle)
      >>> grid = jnp.linspace(-math.pi, math.pi, 65)[:, None]
      >>> f = hj.energies.marginal_free_energy(e, grid, math.inf)
      >>> round(float(f(None, jnp.array([2.0, 0.0]))), 3)
      1.0
    """
    fn = "marginal_free_energy"
    _checks.function(fn, "energy", energy, "(params, z, y, *x) -> []")
    fix = "pass an inverse temperature > 0 (inf: the min)"
    _checks.positive(fn, "beta", beta, fix, allow_inf=True)
    _check_points(fn, "z_points", z_points, "the N latent points")

    def free_energy(params, y, *x):
        energies = jax.vmap(lambda z: energy(params, z, y, *x))(z_points)
        return latent.soft_min(energies, beta)

    return free_energy
