"""Latent inference: the one gradient loop of hjepa_jax, and soft-min marginalization.

A latent-variable EBM scores (x, y) through a latent z that carries what x cannot tell about y.
Two ways turn E(x, y, z) into a free energy F(x, y) (paper Sec. 3, our E3/E4):

    F_inf(x, y)  = min_z E(x, y, z)                                   (zero temperature)
    F_beta(x, y) = -1/beta log sum_z exp(-beta E(x, y, z))  -> F_inf   (as beta -> inf)

`minimize` computes the first with an optax optimizer run inside one `lax.scan`; `soft_min`
computes the second over given z points. `infer` is the same loop with y as the variable:
y_hat = argmin_y F(x, y) (our E1). This module imports nothing else of hjepa_jax but its
private argument checks.

Conventions: an energy is a pure function `energy(params, z, *args) -> scalar` for one example;
batch it with `jax.vmap`. `z` may be any pytree of float arrays.

Arguments are checked before tracing: a bad one raises a ValueError naming the function, the
argument and the fix. A value traced by `jit` or `vmap` (e.g. a traced `beta`) has no value
then and is not checked. Outside `jit` every call traces and compiles its loop again: measured
on a 2-core CPU, about 0.05 s per `minimize` call (100 steps) and 0.9 s per `planning.cem` call
(its defaults), against about 0.01 ms and 1 ms per call inside a jitted function; jit the
function that calls them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from hjepa_jax import _checks

__all__ = ["Energy", "GRAD_MODES", "MinimizeResult", "minimize", "infer", "lowest", "soft_min"]

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


def _check_energy(fn: str, energy: Energy, params, z0, args) -> None:
    """Trace `energy` abstractly once: it must accept (params, z0, *args) and return a scalar."""
    _checks.function(fn, "energy", energy, "(params, z, *args) -> []")
    leaves = jax.tree_util.tree_leaves(z0)
    if not leaves:
        _checks.fail(fn, "z0", z0, "is an empty pytree", "pass at least one float array")
    for leaf in leaves:
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            _checks.broken(
                fn, "z0.dtype", str(dtype), "floating-point", "cast z0, e.g. z0.astype(float)"
            )
    try:
        out = jax.eval_shape(energy, params, z0, *args)
    except (TypeError, ValueError) as err:  # shape mismatches inside the energy land here
        shapes = jax.tree_util.tree_map(jnp.shape, (z0, args))
        raise ValueError(
            f"{fn}: energy(params, z0, *args) failed for z0/args shapes {shapes}: {err}; "
            "make the shapes of z0 and args those the energy expects."
        ) from err
    if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != ():
        got = jax.tree_util.tree_map(lambda s: s.shape, out)
        raise ValueError(
            f"{fn}: energy must return a scalar for one example, got shape {got}; "
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
      steps: number of optimizer steps, an integer >= 1 (Python, numpy or concrete JAX; not
        traced: it is the length of the scan).
      optimizer: an optax transformation (default `optax.sgd(0.1)`); any optax chain works,
        e.g. `optax.chain(optax.add_noise(...), optax.sgd(...))` for Langevin dynamics.
      grad: "envelope" or "unroll".

    Returns:
      MinimizeResult(z, energy [], trace [steps]).

    Example:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import hjepa_jax as hj
      >>> quad = lambda w, z: jnp.sum((z - w) ** 2)
      >>> opt = optax.sgd(0.25)
      >>> res = hj.latent.minimize(quad, jnp.ones(2), jnp.zeros(2), steps=50, optimizer=opt)
      >>> bool(jnp.allclose(res.z, 1.0)), res.trace.shape
      (True, (50,))
    """
    return _minimize("minimize", energy, params, z0, args, steps, optimizer, grad)


def _minimize(fn: str, energy: Energy, params, z0, args, steps, optimizer, grad) -> MinimizeResult:
    """`minimize`, its arguments checked under the public function's name `fn`."""
    steps = _checks.integer(fn, "steps", steps, fix="pass the number of steps, e.g. steps=100")
    _checks.one_of(fn, "grad", grad, GRAD_MODES, fix='use "envelope" unless z0 needs a gradient')
    optimizer = optax.sgd(0.1) if optimizer is None else optimizer
    _check_energy(fn, energy, params, z0, args)

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

    Example:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import hjepa_jax as hj
      >>> f = lambda w, y, x: jnp.sum((y - w * x) ** 2)
      >>> x = jnp.array([0.5, -1.0])
      >>> res = hj.latent.infer(f, 2.0, jnp.zeros(2), x, steps=100, optimizer=optax.sgd(0.25))
      >>> print(res.z.round(3))
      [ 1. -2.]
    """
    return _minimize("infer", free_energy, params, y0, (x,), steps, optimizer, grad)


def lowest(results: MinimizeResult) -> MinimizeResult:
    """The lowest-energy result among several starts stacked on axis 0 (from `jax.vmap`).

    Args:
      results: MinimizeResult with z leaves [K, ...], energy [K], trace [K, steps].

    Returns:
      The MinimizeResult of the start with the smallest final energy. Its energy keeps the
      gradient of that start (the min of several stationary points, still E5).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> import optax
      >>> well = lambda w, z: jnp.sum((z**2 - 1.0) ** 2 + w * z)
      >>> run = lambda z0: hj.latent.minimize(well, 0.3, z0, steps=200, optimizer=optax.sgd(0.02))
      >>> best = hj.latent.lowest(jax.vmap(run)(jnp.array([[-1.5], [1.5]])))
      >>> round(float(best.z[0]), 2), best.trace.shape
      (-1.04, (200,))
    """
    fix = "stack the results of several starts with jax.vmap (see the example)"
    _checks.rank("lowest", "results.energy", results.energy, 1, "[K], one per start", fix)
    k = jnp.shape(results.energy)[0]
    for name, part in (("results.z", results.z), ("results.trace", results.trace)):
        for leaf in jax.tree_util.tree_leaves(part):
            want = (k, *jnp.shape(leaf)[1:])
            _checks.shape("lowest", name, leaf, want, "[K, ...], K as in results.energy", fix)
    best = jnp.argmin(results.energy)
    return jax.tree_util.tree_map(lambda leaf: leaf[best], results)


def soft_min(energies: jax.Array, beta: float | jax.Array, axis: int = -1) -> jax.Array:
    """Marginalized free energy over given z points (E4):

        F_beta = -1/beta * log sum_i exp(-beta * E_i)    (a sum, no 1/N)

    computed as -1/beta * logsumexp(-beta * E), stable for any beta > 0. F_beta <= min_i E_i
    and F_beta -> min_i E_i as beta -> inf; an infinite beta (`math.inf`, `np.inf`, `jnp.inf`,
    also traced) returns the minimum exactly, with the minimum's gradient.

    Args:
      energies: [..., N, ...] energies at N latent points along `axis`.
      beta: inverse temperature > 0: a Python, numpy or JAX number, or a traced array. A
        concrete beta <= 0 or NaN raises a ValueError; a traced one is not checked (beta <= 0
        then gives -inf or a soft maximum).
      axis: the axis of latent points.

    Returns:
      `energies` reduced over `axis`.

    Example:
      >>> import math
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> e = jnp.array([1.0, 2.0, 3.0])
      >>> round(float(hj.latent.soft_min(e, 1.0)), 4)
      0.5924
      >>> float(hj.latent.soft_min(e, math.inf)), float(hj.latent.soft_min(e, jnp.inf))
      (1.0, 1.0)
    """
    energies = jnp.asarray(energies)
    if not jnp.issubdtype(energies.dtype, jnp.floating):
        energies = energies.astype(jnp.float32)
    n = energies.ndim
    fix = f"pass an axis of energies, which has {n}"
    axis = _checks.integer("soft_min", "axis", axis, minimum=-n, maximum=n - 1, fix=fix)
    if not _checks.traced(beta):
        fix = "pass an inverse temperature > 0 (math.inf for the minimum)"
        _checks.positive("soft_min", "beta", beta, fix, allow_inf=True)
        hard = np.isinf(np.asarray(beta, np.float64))
        if np.all(hard):
            return jnp.min(energies, axis=axis)
        if not np.any(hard):
            return _soft_min(energies, beta, axis)
    hard = jnp.isinf(beta)  # traced: select, with a finite beta in the unused branch (no NaN)
    soft = _soft_min(energies, jnp.where(hard, 1.0, beta), axis)
    return jnp.where(hard, jnp.min(energies, axis=axis), soft)


def _soft_min(energies: jax.Array, beta, axis: int) -> jax.Array:
    return -jax.nn.logsumexp(-beta * energies, axis=axis) / beta
