"""Contrastive samples: data corruption, Langevin dynamics, hard negatives, persistent chains.

Langevin sampling is the gradient loop of `hj.latent.minimize` with a noise-injecting optax
transformation (the same loop serves inference, sampling and planning):

    y_{k+1} = y_k - eta * dF/dy(y_k) + sqrt(2 eta T) * N(0, I)       (unadjusted Langevin)

whose samples approach p(y) ~ exp(-F(y) / T) (the Gibbs distribution of E2 with beta = 1/T)
for a small step eta. `bounds` keeps samples in a box (`hj.constraints.box`); a replay
buffer of persistent chains lets a sampler continue from earlier samples; `energy_l2` is the
usual penalty that keeps energies of data and samples bounded while training with them.

Arguments are checked before tracing (a ValueError names the argument and the fix). Values
traced by `jit` or `vmap` (a traced step size, temperature or start) cannot be checked there:
a negative temperature gives NaN samples and a negative step size climbs the energy; the
samples' NaN or inf is reported by `check_finite` outside jit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hjepa_jax import _checks, constraints, latent

__all__ = [
    "corrupt_noise",
    "corrupt_mask",
    "LangevinState",
    "langevin",
    "check_finite",
    "langevin_sample",
    "hard_negatives",
    "ReplayBuffer",
    "replay_init",
    "replay_draw",
    "replay_update",
    "energy_l2",
]

_STEP_FIX = "pass a step size eta > 0 (lower it if the chains diverge), e.g. step_size=0.01"
_TEMPERATURE_FIX = "pass a temperature T >= 0 (0: noiseless descent)"

# ---- corruption ----


def corrupt_noise(key: jax.Array, y: jax.Array, std: float) -> jax.Array:
    """y + N(0, std^2): contrastive points near the data. y: [..] -> [..].

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> hj.sampling.corrupt_noise(jax.random.PRNGKey(0), jnp.zeros((4, 3)), 0.1).shape
      (4, 3)
    """
    _checks.non_negative("corrupt_noise", "std", std, "pass a noise std >= 0")
    return y + std * jax.random.normal(key, y.shape, y.dtype)


def corrupt_mask(key: jax.Array, y: jax.Array, rate: float, fill: float = 0.0) -> jax.Array:
    """Each entry replaced by `fill` with probability `rate` (masking). y: [..] -> [..].

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> print(hj.sampling.corrupt_mask(jax.random.PRNGKey(0), jnp.ones(3), 1.0))
      [0. 0. 0.]
    """
    _checks.real("corrupt_mask", "rate", rate, at_least=0, at_most=1, fix="pass a probability")
    keep = jax.random.bernoulli(key, 1.0 - rate, y.shape)
    return jnp.where(keep, y, fill)


# ---- optax transformations for the sampling loop ----


class LangevinState(NamedTuple):
    """key: the PRNG key of the next step's noise."""

    key: jax.Array


def langevin(step_size: float, key: jax.Array, temperature: float = 1.0):
    """The Langevin update as an optax transformation: -eta g + sqrt(2 eta T) eps.

    Args:
      step_size: eta > 0.
      key: PRNG key of the noise (explicit: a sampler is deterministic given its key).
      temperature: T >= 0; T = 0 is plain gradient descent (hard negatives).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> t = hj.sampling.langevin(0.1, jax.random.PRNGKey(0), temperature=0.0)
      >>> updates, _ = t.update(jnp.array([1.0, -2.0]), t.init(jnp.zeros(2)))
      >>> print(updates)
      [-0.1  0.2]
    """
    _checks.positive("langevin", "step_size", step_size, _STEP_FIX)
    _checks.non_negative("langevin", "temperature", temperature, _TEMPERATURE_FIX)

    def init_fn(params):
        del params
        return LangevinState(key)

    def update_fn(updates, state, params=None):
        del params
        if isinstance(temperature, int | float) and temperature == 0:  # no noise to draw
            return jax.tree_util.tree_map(lambda g: -step_size * g, updates), state
        key, sub = jax.random.split(state.key)
        leaves, treedef = jax.tree_util.tree_flatten(updates)
        keys = jax.random.split(sub, len(leaves))
        noise_scale = jnp.sqrt(2.0 * step_size * temperature)
        new = [
            -step_size * g + noise_scale * jax.random.normal(k, g.shape, g.dtype)
            for g, k in zip(leaves, keys, strict=True)
        ]
        return jax.tree_util.tree_unflatten(treedef, new), LangevinState(key)

    return optax.GradientTransformation(init_fn, update_fn)


# ---- samplers ----


def check_finite(samples, where: str) -> None:
    """Raise FloatingPointError naming `where` if concrete samples hold NaN or inf.

    A no-op under jit (traced values); call it on the sampler's outputs outside jit.

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> hj.sampling.check_finite(jnp.ones(3), "my_sampler")  # finite: returns None
    """
    leaves = jax.tree_util.tree_leaves(samples)
    if any(isinstance(x, jax.core.Tracer) for x in leaves):
        return
    if not all(bool(jnp.all(jnp.isfinite(x))) for x in leaves):
        raise FloatingPointError(
            f"{where}: the chains diverged (NaN or inf); lower the step size, clamp the samples"
            " or add an energy L2 penalty to training."
        )


def _check_chain(fn: str, y0, args, steps, step_size, temperature, bounds) -> int:
    """The checks of a chain's arguments before it runs; -> steps as an int."""
    steps = _checks.integer(fn, "steps", steps, fix="pass the number of steps, e.g. steps=100")
    _checks.positive(fn, "step_size", step_size, _STEP_FIX)
    _checks.non_negative(fn, "temperature", temperature, _TEMPERATURE_FIX)
    _checks.finite(fn, "y0", y0, "start the chains from finite points (data, noise)")
    _checks.finite(fn, "args", args, "pass finite observed variables")
    if bounds is not None:
        fix = "pass bounds=(low, high) with low <= high, or None"
        if not isinstance(bounds, tuple | list) or len(bounds) != 2:
            _checks.broken(fn, "bounds", bounds, "a pair (low, high)", fix)
        for i, bound in enumerate(bounds):
            _checks.real(fn, f"bounds[{i}]", bound, allow_inf=True, fix=fix)
        if not _checks.traced(bounds) and not np.all(np.less_equal(*bounds)):
            _checks.fail(fn, "bounds", bounds, "has low > high", fix)
    return steps


def langevin_sample(
    free_energy: Callable,
    params,
    y0,
    *args,
    key: jax.Array,
    steps: int,
    step_size: float,
    temperature: float = 1.0,
    bounds: tuple[float, float] | None = None,
) -> latent.MinimizeResult:
    """Run a Langevin chain on F from y0 (one example; `jax.vmap` for many chains).

    The samples carry no gradient (contrastive points are constants of the training loss);
    the returned `energy` F(params, sample) does, so it can serve directly as f_neg.

    Args:
      free_energy: `free_energy(params, y, *args) -> []`.
      y0: [Y] start (data, corrupted data, noise, or a replay-buffer sample).
      key: PRNG key of the chain.
      steps: Langevin steps.
      step_size: eta.
      temperature: T (0: deterministic descent, i.e. hard negatives).
      bounds: (low, high) to clamp every iterate, or None.

    Returns:
      MinimizeResult(z=the sample, energy=F at it, trace=F per step).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> gaussian = lambda mu, y: 0.5 * jnp.sum((y - mu) ** 2)
      >>> kw = dict(key=jax.random.PRNGKey(0), steps=10, step_size=0.1)
      >>> res = hj.sampling.langevin_sample(gaussian, 1.0, jnp.zeros(2), **kw)
      >>> res.z.shape, res.trace.shape
      ((2,), (10,))
    """
    steps = _check_chain("langevin_sample", y0, args, steps, step_size, temperature, bounds)
    opt = langevin(step_size, key, temperature)
    if bounds is not None:
        opt = optax.chain(opt, constraints.box(*bounds))
    res = latent.minimize(free_energy, params, y0, *args, steps=steps, optimizer=opt)
    res = latent.MinimizeResult(jax.lax.stop_gradient(res.z), res.energy, res.trace)
    check_finite(res.z, "langevin_sample")
    return res


def hard_negatives(
    free_energy: Callable, params, y0, *args, steps: int, step_size: float
) -> jax.Array:
    """Contrastive points of low energy: descend F from (corrupted) y0 without noise.

    These are the points a contrastive loss most needs to push up (they maximize the loss).

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> f = lambda mu, y: jnp.sum((y - mu) ** 2)
      >>> print(hj.sampling.hard_negatives(f, 1.0, jnp.zeros(2), steps=50, step_size=0.25).round(3))
      [1. 1.]
    """
    steps = _check_chain("hard_negatives", y0, args, steps, step_size, 0.0, None)
    res = langevin_sample(
        free_energy,
        params,
        y0,
        *args,
        key=jax.random.PRNGKey(0),
        steps=steps,
        step_size=step_size,
        temperature=0.0,
    )
    return res.z


# ---- persistent chains ----


class ReplayBuffer(NamedTuple):
    """Persistent chains: samples [N, ...] that later sampling continues from."""

    samples: jax.Array


def replay_init(samples: jax.Array) -> ReplayBuffer:
    """A buffer filled with initial samples [N, ...] (e.g. uniform noise).

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> hj.sampling.replay_init(jnp.zeros((100, 2))).samples.shape
      (100, 2)
    """
    samples = jnp.asarray(samples)
    if samples.ndim == 0 or samples.shape[0] == 0:
        fix = "pass at least one initial sample, stacked on axis 0"
        _checks.broken("replay_init", "samples.shape", samples.shape, "[N >= 1, ...]", fix)
    return ReplayBuffer(samples)


def replay_draw(
    buffer: ReplayBuffer, key: jax.Array, batch: int, fresh: jax.Array, reinit: float = 0.05
) -> tuple[jax.Array, jax.Array]:
    """Starting points for `batch` chains: buffer samples, each replaced by a fresh start with
    probability `reinit` (so the buffer keeps exploring).

    Args:
      buffer: the ReplayBuffer.
      key: PRNG key.
      batch: number of chains.
      fresh: [batch, ...] fresh starting points (noise).
      reinit: probability of a fresh start.

    Returns:
      (starts [batch, ...], idx [batch] the buffer rows they came from).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> buffer = hj.sampling.replay_init(jnp.zeros((100, 2)))
      >>> starts, idx = hj.sampling.replay_draw(buffer, jax.random.PRNGKey(0), 8, jnp.ones((8, 2)))
      >>> starts.shape, idx.shape
      ((8, 2), (8,))
    """
    batch = _checks.integer("replay_draw", "batch", batch, fix="draw >= 1 chains, e.g. batch=64")
    fix = "pass one fresh start per chain, shaped like the buffer's samples"
    want = (batch, *buffer.samples.shape[1:])
    _checks.shape("replay_draw", "fresh", fresh, want, "[batch, ...] as the buffer's rows", fix)
    _checks.real("replay_draw", "reinit", reinit, at_least=0, at_most=1, fix="pass a probability")
    k_idx, k_new = jax.random.split(key)
    idx = jax.random.randint(k_idx, (batch,), 0, buffer.samples.shape[0])
    use_fresh = jax.random.bernoulli(k_new, reinit, (batch,))
    use_fresh = use_fresh.reshape((batch,) + (1,) * (fresh.ndim - 1))
    return jnp.where(use_fresh, fresh, buffer.samples[idx]), idx


def replay_update(buffer: ReplayBuffer, idx: jax.Array, samples: jax.Array) -> ReplayBuffer:
    """Write the chains' new samples back to the rows they started from (idx [batch] from
    `replay_draw`, samples [batch, ...]).

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> buffer = hj.sampling.replay_init(jnp.zeros((100, 2)))
      >>> buffer = hj.sampling.replay_update(buffer, jnp.array([0, 5]), jnp.ones((2, 2)))
      >>> float(buffer.samples.sum()), float(buffer.samples[5, 0])
      (4.0, 1.0)
    """
    fix = "pass the rows `replay_draw` returned"
    _checks.rank("replay_update", "idx", idx, 1, "[batch]", fix)
    want = (jnp.shape(idx)[0], *buffer.samples.shape[1:])
    fix = "pass one sample per index, shaped like the buffer's rows"
    layout = "[batch, ...] as the buffer's rows"
    _checks.shape("replay_update", "samples", samples, want, layout, fix)
    return ReplayBuffer(buffer.samples.at[idx].set(samples))


# ---- training-side penalty ----


def energy_l2(f_pos: jax.Array, f_neg: jax.Array) -> jax.Array:
    """mean(F(y)^2 + F(y_bar)^2): keeps energies bounded when training on Langevin samples
    (Du & Mordatch 2019). f_pos: [B], f_neg: [B'] -> [].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> float(hj.sampling.energy_l2(jnp.array([1.0, 1.0]), jnp.array([2.0])))
      5.0
    """
    _checks.rank("energy_l2", "f_pos", f_pos, 1, "[B]", "pass one energy per example")
    _checks.rank("energy_l2", "f_neg", f_neg, 1, "[B']", "flatten the contrastive energies")
    return jnp.mean(f_pos**2) + jnp.mean(f_neg**2)
