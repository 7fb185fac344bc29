"""Latent inference: the one gradient loop of hjepa_jax, and soft-min marginalization.

A latent-variable EBM scores (x, y) through a latent z that carries what x cannot tell about y.
Two ways turn E(x, y, z) into a free energy F(x, y) (paper Sec. 3, our E3/E4):

    F_inf(x, y)  = min_z E(x, y, z)                                   (zero temperature)
    F_beta(x, y) = -1/beta log sum_z exp(-beta E(x, y, z))  -> F_inf   (as beta -> inf)

`minimize` computes the first with an optax optimizer run inside one `lax.scan`; `soft_min`
computes the second over given z points. `infer` is the same loop with y as the variable:
y_hat = argmin_y F(x, y) (our E1). This module imports nothing else of hjepa_jax.

Conventions: an energy is a pure function `energy(params, z, *args) -> scalar` for one example;
batch it with `jax.vmap`. `z` may be any pytree of float arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
from jax import lax

Energy = Callable[..., jax.Array]
GRAD_MODES = ("envelope", "unroll")


class MinimizeResult(NamedTuple):
    """Result of `minimize` / `infer`.

    Attributes:
      z: the argmin, same pytree structure and shapes as the start point.
      energy: [] E(params, z, *args) at the returned z. With `grad="envelope"` its gradient
        w.r.t. params and args is dE/dw at z (envelope theorem, our E5); with `grad="unroll"`
        it also flows through every step of the loop.
      trace: [steps] the energy before each optimizer step (trace[0] is E at the start).
    """

    z: Any
    energy: jax.Array
    trace: jax.Array


def _check_energy(energy: Energy, params, z0, args) -> None:
    """Trace `energy` abstractly once: it must accept (params, z0, *args) and return a scalar."""
    leaves = jax.tree_util.tree_leaves(z0)
    if not leaves:
        raise ValueError("minimize: z0 is an empty pytree; there is nothing to minimize over.")
    for leaf in leaves:
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            raise ValueError(
                f"minimize: z0 must hold floating-point arrays, got dtype {jnp.result_type(leaf)}."
            )
    try:
        out = jax.eval_shape(energy, params, z0, *args)
    except (TypeError, ValueError) as err:  # shape mismatches inside the energy land here
        shapes = jax.tree_util.tree_map(jnp.shape, (z0, args))
        raise ValueError(
            f"minimize: energy(params, z0, *args) failed for z0/args shapes {shapes}: {err}"
        ) from err
    if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != ():
        got = jax.tree_util.tree_map(lambda s: s.shape, out)
        raise ValueError(
            f"minimize: energy must return a scalar for one example, got shape {got}; "
            "reduce over the example (sum) and batch with jax.vmap."
        )


def _descend(energy: Energy, optimizer, steps: int, params, z0, args):
    """`steps` optimizer steps on z, in one lax.scan. Returns (z_steps, trace [steps])."""
    value_and_grad = jax.value_and_grad(energy, argnums=1)

    def step(carry, _):
        z, opt_state = carry
        e, g = value_and_grad(params, z, *args)
        updates, opt_state = optimizer.update(g, opt_state, z)
        return (optax.apply_updates(z, updates), opt_state), e

    (z, _), trace = lax.scan(step, (z0, optimizer.init(z0)), None, length=steps)
    return z, trace


def minimize(
    energy: Energy,
    params,
    z0,
    *args,
    steps: int = 100,
    optimizer: optax.GradientTransformation | None = None,
    grad: str = "envelope",
) -> MinimizeResult:
    """F_inf = min_z E(params, z, *args) by `steps` optimizer steps in one `lax.scan` (E3).

    The loop is pure and has fixed shapes, so it runs inside `jit`, `vmap` and `grad`:

        z_{k+1} = z_k + optimizer.update(dE/dz(z_k))          k = 0 .. steps-1
        F       = E(params, z_steps, *args)

    Gradient modes (w.r.t. params and args):
      "envelope": the loop runs on stopped gradients and F is re-evaluated at z* = z_steps, so
        dF/dw = dE/dw |_{z*} (envelope theorem, E5). Exact at a stationary point; memory does
        not grow with `steps`. Nothing flows back to z0.
      "unroll": back-propagates through every step (memory grows with `steps`).

    Args:
      energy: `energy(params, z, *args) -> []`, one example's energy.
      params: pytree of parameters w.
      z0: pytree of float arrays, the starting latent (e.g. `[Z]`).
      *args: the observed variables (e.g. y, x), passed to `energy` unchanged.
      steps: number of optimizer steps, >= 1.
      optimizer: an optax transformation (default `optax.sgd(0.1)`); any optax chain works,
        e.g. `optax.chain(optax.add_noise(...), optax.sgd(...))` for Langevin dynamics.
      grad: "envelope" or "unroll".

    Returns:
      MinimizeResult(z, energy [], trace [steps]).

    Example:
      >>> quad = lambda w, z: jnp.sum((z - w) ** 2)
      >>> res = minimize(quad, jnp.ones(2), jnp.zeros(2), steps=50, optimizer=optax.sgd(0.25))
      >>> bool(jnp.allclose(res.z, 1.0))
      True
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"minimize: steps must be an integer >= 1, got {steps!r}.")
    if grad not in GRAD_MODES:
        raise ValueError(f"minimize: grad must be one of {GRAD_MODES}, got {grad!r}.")
    optimizer = optax.sgd(0.1) if optimizer is None else optimizer
    _check_energy(energy, params, z0, args)

    if grad == "envelope":
        frozen = lax.stop_gradient((params, z0, args))
        z, trace = _descend(energy, optimizer, steps, *frozen)
        z = lax.stop_gradient(z)
    else:
        z, trace = _descend(energy, optimizer, steps, params, z0, args)
    return MinimizeResult(z=z, energy=energy(params, z, *args), trace=trace)


def infer(
    free_energy: Energy,
    params,
    y0,
    x,
    *,
    steps: int = 100,
    optimizer: optax.GradientTransformation | None = None,
    grad: str = "envelope",
) -> MinimizeResult:
    """Inference y_hat = argmin_y F(x, y) (E1): `minimize` with y as the variable.

    Args:
      free_energy: `free_energy(params, y, x) -> []`.
      y0: [Y] (or any pytree) starting prediction. Several starts, `jax.vmap` over y0, find
        several modes: multimodal prediction. `lowest` picks the best of them.
      x: the observation, passed to `free_energy` unchanged.

    Returns:
      MinimizeResult whose `z` is y_hat and `energy` is F(x, y_hat).
    """
    return minimize(free_energy, params, y0, x, steps=steps, optimizer=optimizer, grad=grad)


def lowest(results: MinimizeResult) -> MinimizeResult:
    """The lowest-energy result among several starts stacked on axis 0 (from `jax.vmap`).

    Args:
      results: MinimizeResult with z leaves [K, ...], energy [K], trace [K, steps].

    Returns:
      The MinimizeResult of the start with the smallest final energy. Its energy keeps the
      gradient of that start (the min of several stationary points, still E5).
    """
    chex.assert_rank(results.energy, 1)
    best = jnp.argmin(results.energy)
    return jax.tree_util.tree_map(lambda leaf: leaf[best], results)


def soft_min(energies: jax.Array, beta: float | jax.Array, axis: int = -1) -> jax.Array:
    """Marginalized free energy over given z points (E4):

        F_beta = -1/beta * log sum_i exp(-beta * E_i)    (a sum, no 1/N)

    computed as -1/beta * logsumexp(-beta * E), stable for any beta > 0. F_beta <= min_i E_i
    and F_beta -> min_i E_i as beta -> inf; `beta=math.inf` returns the minimum exactly.

    Args:
      energies: [..., N, ...] energies at N latent points along `axis`.
      beta: inverse temperature, > 0 (a Python number, or a traced array).
      axis: the axis of latent points.

    Returns:
      `energies` reduced over `axis`.
    """
    energies = jnp.asarray(energies)
    if not jnp.issubdtype(energies.dtype, jnp.floating):
        energies = energies.astype(jnp.float32)
    if isinstance(beta, int | float):
        if not beta > 0:  # also catches NaN
            raise ValueError(f"soft_min: beta must be > 0, got {beta!r}.")
        if math.isinf(beta):
            return jnp.min(energies, axis=axis)
    return -jax.nn.logsumexp(-beta * energies, axis=axis) / beta
