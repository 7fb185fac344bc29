"""Mode-2 planning: choose actions by minimizing the cost of a predicted trajectory.

In the paper's agent (Fig. 1) the world model predicts the states an action sequence leads
to, and the actor minimizes the cost of those states: the actions play the role of latent
variables in an energy (Sec. 6), so planning is inference

    a_hat = argmin_{a_1..H}  C(s_0, a) = sum_t w_t c(s_t, goal),   s_{t+1} = Pred(s_t, a_t)

Three planners over the same pure functions, each for one problem (vmap for a batch; every
shape is fixed, so a batch of episodes is one compiled call):
  gradient_mpc: the inner loop of `hj.latent.minimize` over the action sequence, with an
                optax optimizer chained with a box projection (actions stay in bounds);
  cem:          the cross-entropy method, a Gaussian refit to the best samples;
  mppi:         model-predictive path integral, a softmax-weighted mean of the samples.
Planners see only the world model, the current state and the goal representation: never the
true state or whether the goal is reached. A receding-horizon controller executes the first
action(s) and plans again.

`predict(params, s [D], a [A]) -> [D]` is the world model; `cost(s [D], goal [D]) -> []` the
per-step cost (default: squared distance to the goal's representation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from hjepa_jax import constraints, latent


class Plan(NamedTuple):
    """actions: [H, A] the plan; cost: [] its predicted cost; trace: [iterations] cost per
    iteration (for the samplers, of the mean sequence)."""

    actions: jax.Array
    cost: jax.Array
    trace: jax.Array


def squared_distance(s: jax.Array, goal: jax.Array) -> jax.Array:
    """c(s, goal) = ||s - goal||^2."""
    return jnp.sum((s - goal) ** 2)


def rollout(predict: Callable, params, s0: jax.Array, actions: jax.Array) -> jax.Array:
    """States s_1..s_H predicted from s0 [D] under actions [H, A] (a lax.scan). -> [H, D]."""

    def step(s, a):
        nxt = predict(params, s, a)
        return nxt, nxt

    _, states = jax.lax.scan(step, s0, actions)
    return states


def trajectory_cost(
    predict: Callable,
    params,
    actions: jax.Array,
    s0: jax.Array,
    goal: jax.Array,
    cost: Callable = squared_distance,
    discount: float = 1.0,
) -> jax.Array:
    """C = sum_t discount^(H - t) c(s_t, goal) over the predicted states (the last counts most
    for discount < 1; every state counts, so the plan heads for the goal early). -> []."""
    states = rollout(predict, params, s0, actions)
    h = actions.shape[0]
    weights = discount ** jnp.arange(h - 1, -1, -1, dtype=states.dtype)
    return jnp.sum(weights * jax.vmap(cost, (0, None))(states, goal))


def gradient_mpc(
    predict: Callable,
    params,
    s0: jax.Array,
    goal: jax.Array,
    actions0: jax.Array,
    *,
    bound: float,
    steps: int = 50,
    optimizer: optax.GradientTransformation | None = None,
    cost: Callable = squared_distance,
    discount: float = 1.0,
) -> Plan:
    """Gradient planning: minimize C over the actions with `hj.latent.minimize`, each entry
    projected into [-bound, bound] after every step.

    Args:
      actions0: [H, A] the starting plan (e.g. zeros, or the previous plan shifted by one).
      bound: the action bound.
      steps: optimizer steps.
      optimizer: default optax.adam(0.1).
    """
    opt = optax.chain(optimizer or optax.adam(0.1), constraints.box(-bound, bound))

    def energy(p, actions, s0, goal):
        return trajectory_cost(predict, p, actions, s0, goal, cost, discount)

    res = latent.minimize(energy, params, actions0, s0, goal, steps=steps, optimizer=opt)
    return Plan(res.z, res.energy, res.trace)


class _SamplerState(NamedTuple):
    mean: jax.Array  # [H, A]
    std: jax.Array  # [H, A]
    key: jax.Array


def _sampling_planner(update: Callable):
    """The loop shared by CEM and MPPI: sample N sequences around (mean, std), score them with
    the world model, let `update(samples, costs, state) -> (mean, std)` refit."""

    def plan(
        predict,
        params,
        s0,
        goal,
        key,
        *,
        horizon,
        action_dim,
        bound,
        samples,
        iterations,
        init_std,
        cost=squared_distance,
        discount=1.0,
        mean0=None,
    ) -> Plan:
        score = jax.vmap(lambda a: trajectory_cost(predict, params, a, s0, goal, cost, discount))
        mean = jnp.zeros((horizon, action_dim)) if mean0 is None else mean0

        def step(state, _):
            key, sub = jax.random.split(state.key)
            noise = jax.random.normal(sub, (samples, horizon, action_dim))
            draws = jnp.clip(state.mean + state.std * noise, -bound, bound)
            costs = score(draws)
            mean, std = update(draws, costs, state)
            mean = jnp.clip(mean, -bound, bound)
            return _SamplerState(mean, std, key), jnp.min(costs)

        init = _SamplerState(mean, jnp.full((horizon, action_dim), init_std), key)
        final, trace = jax.lax.scan(step, init, None, length=iterations)
        return Plan(final.mean, score(final.mean[None])[0], trace)

    return plan


def cem(
    predict,
    params,
    s0,
    goal,
    key,
    *,
    horizon: int,
    action_dim: int,
    bound: float,
    samples: int = 256,
    elites: int = 32,
    iterations: int = 10,
    init_std: float = 1.0,
    min_std: float = 0.05,
    cost: Callable = squared_distance,
    discount: float = 1.0,
    mean0=None,
) -> Plan:
    """The cross-entropy method: sample `samples` action sequences from N(mean, std^2), keep
    the `elites` of lowest predicted cost, refit mean and std to them; `iterations` times.

    Returns the final mean as the plan. Deterministic given `key`.
    """

    def update(draws, costs, state):
        best = draws[jnp.argsort(costs)[:elites]]
        return jnp.mean(best, axis=0), jnp.maximum(jnp.std(best, axis=0), min_std)

    return _sampling_planner(update)(
        predict,
        params,
        s0,
        goal,
        key,
        horizon=horizon,
        action_dim=action_dim,
        bound=bound,
        samples=samples,
        iterations=iterations,
        init_std=init_std,
        cost=cost,
        discount=discount,
        mean0=mean0,
    )


def mppi(
    predict,
    params,
    s0,
    goal,
    key,
    *,
    horizon: int,
    action_dim: int,
    bound: float,
    samples: int = 256,
    iterations: int = 10,
    init_std: float = 1.0,
    temperature: float = 1.0,
    cost: Callable = squared_distance,
    discount: float = 1.0,
    mean0=None,
) -> Plan:
    """Model-predictive path integral: the new mean is the average of the samples weighted by
    softmax(-cost / temperature); the sampling std stays `init_std`."""

    def update(draws, costs, state):
        w = jax.nn.softmax(-(costs - jnp.min(costs)) / temperature)
        return jnp.tensordot(w, draws, axes=1), state.std

    return _sampling_planner(update)(
        predict,
        params,
        s0,
        goal,
        key,
        horizon=horizon,
        action_dim=action_dim,
        bound=bound,
        samples=samples,
        iterations=iterations,
        init_std=init_std,
        cost=cost,
        discount=discount,
        mean0=mean0,
    )


def memory_bytes(fn: Callable, *args) -> int | None:
    """Scratch + argument + output bytes XLA reserves for `jax.jit(fn)(*args)` (compile only):
    what a batch of planning problems costs. None where the backend does not say."""
    analysis = jax.jit(fn).lower(*args).compile().memory_analysis()
    if analysis is None:
        return None
    return int(
        analysis.temp_size_in_bytes
        + analysis.argument_size_in_bytes
        + analysis.output_size_in_bytes
    )
