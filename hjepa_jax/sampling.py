"""Contrastive samples: data corruption, Langevin dynamics, hard negatives, persistent chains.

Langevin sampling is the gradient loop of `hj.latent.minimize` with a noise-injecting optax
transformation (DESIGN.md: one loop for inference, sampling and planning):

    y_{k+1} = y_k - eta * dF/dy(y_k) + sqrt(2 eta T) * N(0, I)       (unadjusted Langevin)

whose samples approach p(y) ~ exp(-F(y) / T) (the Gibbs distribution of E2 with beta = 1/T)
for a small step eta. `bounds` keeps samples in a box (`hj.constraints.box`); a replay
buffer of persistent chains lets a sampler continue from earlier samples; `energy_l2` is the
usual penalty that keeps energies of data and samples bounded while training with them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from hjepa_jax import constraints, latent

# ---- corruption ----


def corrupt_noise(key: jax.Array, y: jax.Array, std: float) -> jax.Array:
    """y + N(0, std^2): contrastive points near the data. y: [..] -> [..]."""
    return y + std * jax.random.normal(key, y.shape, y.dtype)


def corrupt_mask(key: jax.Array, y: jax.Array, rate: float, fill: float = 0.0) -> jax.Array:
    """Each entry replaced by `fill` with probability `rate` (masking). y: [..] -> [..]."""
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
    """

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
    """
    leaves = jax.tree_util.tree_leaves(samples)
    if any(isinstance(x, jax.core.Tracer) for x in leaves):
        return
    if not all(bool(jnp.all(jnp.isfinite(x))) for x in leaves):
        raise FloatingPointError(
            f"{where}: the chains diverged (NaN or inf); lower the step size, clamp the samples"
            " or add an energy L2 penalty to training."
        )


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
    """
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
    """
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
    """A buffer filled with initial samples [N, ...] (e.g. uniform noise)."""
    return ReplayBuffer(jnp.asarray(samples))


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
    """
    k_idx, k_new = jax.random.split(key)
    idx = jax.random.randint(k_idx, (batch,), 0, buffer.samples.shape[0])
    use_fresh = jax.random.bernoulli(k_new, reinit, (batch,))
    use_fresh = use_fresh.reshape((batch,) + (1,) * (fresh.ndim - 1))
    return jnp.where(use_fresh, fresh, buffer.samples[idx]), idx


def replay_update(buffer: ReplayBuffer, idx: jax.Array, samples: jax.Array) -> ReplayBuffer:
    """Write the chains' new samples back to the rows they started from."""
    return ReplayBuffer(buffer.samples.at[idx].set(samples))


# ---- training-side penalty ----


def energy_l2(f_pos: jax.Array, f_neg: jax.Array) -> jax.Array:
    """mean(F(y)^2 + F(y_bar)^2): keeps energies bounded when training on Langevin samples
    (Du & Mordatch 2019). f_pos, f_neg: [B] -> []."""
    return jnp.mean(f_pos**2) + jnp.mean(f_neg**2)
