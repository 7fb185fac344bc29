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
`hierarchical` stacks two of them (H-JEPA): CEM over coarse macro-actions picks a latent
subgoal, and a level-1 planner reaches it.
Planners see only the world model, the current state and the goal representation: never the
true state or whether the goal is reached. A receding-horizon controller executes the first
action(s) and plans again.

`predict(params, s [D], a [A]) -> [D]` is the world model; `cost(s [D], goal [D]) -> []` the
per-step cost (default: squared distance to the goal's representation).

Arguments are checked before tracing: a ValueError names the argument and the fix (e.g.
`elites` above `samples`, or an action size or goal that does not fit the model, found by
tracing `predict` and `cost` abstractly once). Integers that set shapes (horizon, samples, ...)
must be static. A value traced by `jit` or `vmap` is not checked: a traced bound or
temperature <= 0 gives a meaningless plan, a traced `subgoal_step` out of range is clamped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from hjepa_jax import _checks, constraints, latent

__all__ = [
    "Plan",
    "squared_distance",
    "rollout",
    "trajectory_cost",
    "gradient_mpc",
    "cem",
    "mppi",
    "memory_bytes",
    "HierarchicalPlan",
    "macro_model",
    "hierarchical",
]

_DISCOUNT_FIX = "pass a weight >= 0 (1: every predicted state counts the same)"
_BOUND_FIX = "pass the largest |action| per entry, e.g. bound=1.0"


class Plan(NamedTuple):
    """actions: [H, A] the plan; cost: [] its predicted cost; trace: [iterations] cost per
    iteration (for the samplers, of the mean sequence)."""

    actions: jax.Array
    cost: jax.Array
    trace: jax.Array


def squared_distance(s: jax.Array, goal: jax.Array) -> jax.Array:
    """c(s, goal) = ||s - goal||^2. s, goal: [D] (any shape, the same for both) -> [].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> float(hj.planning.squared_distance(jnp.array([1.0, 2.0]), jnp.array([0.0, 4.0])))
      5.0
    """
    fix = "pass a goal representation of the state's shape (encode the goal as the state)"
    _checks.shape("squared_distance", "goal", goal, jnp.shape(s), "the state's shape", fix)
    return jnp.sum((s - goal) ** 2)


def _check_model(
    fn: str, predict: Callable, params, s0, goal, action_dim: int, cost, model: str = "predict"
) -> None:
    """`model`(params, s0, a [A]) must return s0's shape and cost(s, goal) a scalar (the
    default cost: goal shaped as s0)."""
    _checks.function(fn, model, predict, "(params, s [D], a [A]) -> [D]")
    _checks.function(fn, "cost", cost, "(s [D], goal) -> []")
    action = jax.ShapeDtypeStruct((action_dim,), jnp.result_type(float))
    fix = f"make s0 the model's state and the action size A={action_dim} the model's"
    call = f"{model}(params, s0, a [A])"
    state = _checks.model_output(fn, call, predict, (params, s0, action), jnp.shape(s0), fix)
    if cost is squared_distance:
        fix = "pass the goal's representation, shaped as the state"
        _checks.shape(
            fn, "goal", goal, state.shape, "the state's: the default cost compares them", fix
        )
    fix = "pass a goal the cost accepts"
    _checks.model_output(fn, "cost(s, goal)", cost, (state, goal), (), fix)


def rollout(
    predict: Callable, params, s0: jax.Array, actions: jax.Array, unroll: int | bool = 1
) -> jax.Array:
    """States s_1..s_H predicted from s0 [D] under actions [H, A] (a lax.scan). -> [H, D].

    unroll: lax.scan's unroll. True unrolls the loop, which a convolutional predictor needs
    when differentiated on a CPU: XLA runs convolutions in a loop's backward pass there about
    50x slower than unrolled.

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> integrator = lambda p, s, a: s + a
      >>> print(hj.planning.rollout(integrator, None, jnp.zeros(2), jnp.ones((3, 2))))
      [[1. 1.]
       [2. 2.]
       [3. 3.]]
    """
    fix = "pass one action sequence [H, A] (jax.vmap over a batch of them)"
    _checks.rank("rollout", "actions", actions, 2, "[H, A]", fix)

    def step(s, a):
        nxt = predict(params, s, a)
        return nxt, nxt

    _, states = jax.lax.scan(step, s0, actions, unroll=unroll)
    return states


def trajectory_cost(
    predict: Callable,
    params,
    actions: jax.Array,
    s0: jax.Array,
    goal: jax.Array,
    cost: Callable = squared_distance,
    discount: float = 1.0,
    unroll: int | bool = 1,
) -> jax.Array:
    """C = sum_t discount^(H - t) c(s_t, goal) over the predicted states (the last counts most
    for discount < 1; every state counts, so the plan heads for the goal early); `unroll` as
    in `rollout`. -> [].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> integrator = lambda p, s, a: s + a
      >>> goal = jnp.array([2.0, 2.0])
      >>> float(hj.planning.trajectory_cost(integrator, None, jnp.ones((2, 2)), jnp.zeros(2), goal))
      2.0
    """
    _checks.non_negative("trajectory_cost", "discount", discount, _DISCOUNT_FIX)
    states = rollout(predict, params, s0, actions, unroll)
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
    unroll: int | bool = 1,
    noise: jax.Array | None = None,
) -> Plan:
    """Gradient planning: minimize C over the actions with `hj.latent.minimize`, each entry
    projected into [-bound, bound] after every step (`unroll`: see `rollout`). From several
    starting plans, each descends on its own and the plan of lowest final cost is returned: a
    descent stuck in a local minimum of C (an agent pressed against a wall) is outvoted by one
    that started elsewhere.

    Args:
      actions0: [H, A] the starting plan (e.g. zeros, or the previous plan shifted by one), or
        [K, H, A]: K starting plans, descended in parallel (a vmap).
      bound: the action bound.
      steps: optimizer steps.
      optimizer: default optax.adam(0.1).
      noise: None, or [M, H, A] fixed perturbations of the plan: the descent then minimizes
        the smoothed cost (1/M) sum_m C(clip(actions + noise_m, -bound, bound)). With Gaussian
        draws this is randomized smoothing, a sample of the expected cost under action noise:
        its gradient does not vanish in narrow minima of C (an agent against a wall, where
        the model predicts no motion, so no action moves it). Plan.cost is then that cost.

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> integrator = lambda p, s, a: s + a
      >>> goal, actions0 = jnp.array([10.0, 0.0]), jnp.zeros((3, 2))
      >>> plan = hj.planning.gradient_mpc(integrator, None, jnp.zeros(2), goal, actions0, bound=1.0)
      >>> bool(jnp.allclose(plan.actions, jnp.array([1.0, 0.0]), atol=1e-2))
      True
    """
    fn = "gradient_mpc"
    if jnp.ndim(actions0) != 3:
        fix = "pass a starting plan, e.g. zeros((H, A)), or K of them [K, H, A]"
        _checks.rank(fn, "actions0", actions0, 2, "[H, A] or [K, H, A]", fix)
    steps = _checks.integer(fn, "steps", steps, fix="pass the number of steps, e.g. steps=50")
    _checks.positive(fn, "bound", bound, _BOUND_FIX)
    _checks.non_negative(fn, "discount", discount, _DISCOUNT_FIX)
    _check_model(fn, predict, params, s0, goal, jnp.shape(actions0)[-1], cost)
    if noise is not None:
        plan_shape = tuple(jnp.shape(actions0)[-2:])
        fix = "pass M perturbations of one plan, e.g. std * normal(key, (M, H, A))"
        _checks.shape(fn, "noise", noise, (None, *plan_shape), "[M, H, A]", fix)
    opt = optax.chain(optimizer or optax.adam(0.1), constraints.box(-bound, bound))

    def plan_cost(p, actions, s0, goal):
        return trajectory_cost(predict, p, actions, s0, goal, cost, discount, unroll)

    def energy(p, actions, s0, goal):
        if noise is None:
            return plan_cost(p, actions, s0, goal)
        moved = actions + noise  # into the box, with the identity's gradient on its faces:
        moved = jnp.where(moved > bound, bound, jnp.where(moved < -bound, -bound, moved))
        return jnp.mean(jax.vmap(plan_cost, (None, 0, None, None))(p, moved, s0, goal))

    def descend(start):
        res = latent.minimize(energy, params, start, s0, goal, steps=steps, optimizer=opt)
        return Plan(res.z, res.energy, res.trace)

    if jnp.ndim(actions0) == 2:
        return descend(actions0)
    plans = jax.vmap(descend)(actions0)
    return jax.tree.map(lambda x: x[jnp.argmin(plans.cost)], plans)


class _SamplerState(NamedTuple):
    mean: jax.Array  # [H, A]
    std: jax.Array  # [H, A]
    key: jax.Array


def _sampler_args(
    fn: str,
    predict,
    params,
    s0,
    goal,
    level: str = "",
    model: str = "predict",
    own: tuple = (),
    **kw,
) -> dict:
    """Check the arguments the sampling planners share; -> the integers among them as ints.
    `level` prefixes the names of horizon, discount and mean0, and those in `own` ("macro_" in
    `hierarchical`, own: ("action_dim", "bound") where the macro level has its own)."""
    name = lambda k: level + k if k in ("horizon", "discount", "mean0", *own) else k
    fixes = {
        "horizon": f"plan at least one step, e.g. {name('horizon')}=8",
        "action_dim": "pass the model's action size A",
        "samples": "draw at least one sequence per iteration, e.g. samples=256",
        "iterations": "refit at least once, e.g. iterations=10",
    }
    ints = {k: _checks.integer(fn, name(k), kw[k], fix=fix) for k, fix in fixes.items()}
    bound_fix = _BOUND_FIX.replace("bound=", name("bound") + "=")
    _checks.positive(fn, name("bound"), kw["bound"], bound_fix)
    _checks.positive(fn, "init_std", kw["init_std"], "pass a sampling std > 0, e.g. init_std=1.0")
    _checks.non_negative(fn, name("discount"), kw["discount"], _DISCOUNT_FIX)
    if kw["mean0"] is not None:
        want = (ints["horizon"], ints["action_dim"])
        layout = f"[{name('horizon')}, {name('action_dim')}]"
        fix = f"pass a warm start {layout}, or None for zeros"
        _checks.shape(fn, name("mean0"), kw["mean0"], want, layout, fix)
    _check_model(fn, predict, params, s0, goal, ints["action_dim"], kw["cost"], model)
    return ints


def _elites(fn: str, elites, samples: int) -> int:
    fix = f"keep between 1 and samples={samples} sequences, e.g. elites={max(samples // 8, 1)}"
    return _checks.integer(fn, "elites", elites, maximum=samples, fix=fix)


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

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> integrator = lambda p, s, a: s + a
      >>> kw = dict(horizon=3, action_dim=2, bound=1.0, samples=64, elites=8, iterations=5)
      >>> goal, key = jnp.array([2.0, 0.0]), jax.random.PRNGKey(0)
      >>> plan = hj.planning.cem(integrator, None, jnp.zeros(2), goal, key, **kw)
      >>> plan.actions.shape, plan.trace.shape, bool(jnp.all(jnp.abs(plan.actions) <= 1.0))
      ((3, 2), (5,), True)
    """
    ints = _sampler_args(
        "cem",
        predict,
        params,
        s0,
        goal,
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
    elites = _elites("cem", elites, ints["samples"])
    _checks.non_negative("cem", "min_std", min_std, "pass a floor >= 0 of the refitted std")

    def update(draws, costs, state):
        best = draws[jnp.argsort(costs)[:elites]]
        return jnp.mean(best, axis=0), jnp.maximum(jnp.std(best, axis=0), min_std)

    return _sampling_planner(update)(
        predict,
        params,
        s0,
        goal,
        key,
        bound=bound,
        init_std=init_std,
        cost=cost,
        discount=discount,
        mean0=mean0,
        **ints,
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
    softmax(-cost / temperature); the sampling std stays `init_std`.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> integrator = lambda p, s, a: s + a
      >>> kw = dict(horizon=3, action_dim=2, bound=1.0, samples=64, iterations=5, temperature=0.5)
      >>> goal, key = jnp.array([2.0, 0.0]), jax.random.PRNGKey(0)
      >>> plan = hj.planning.mppi(integrator, None, jnp.zeros(2), goal, key, **kw)
      >>> plan.actions.shape, bool(jnp.all(jnp.abs(plan.actions) <= 1.0))
      ((3, 2), True)
    """
    ints = _sampler_args(
        "mppi",
        predict,
        params,
        s0,
        goal,
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
    fix = "pass a temperature > 0 (smaller weights the best samples more)"
    _checks.positive("mppi", "temperature", temperature, fix)

    def update(draws, costs, state):
        w = jax.nn.softmax(-(costs - jnp.min(costs)) / temperature)
        return jnp.tensordot(w, draws, axes=1), state.std

    return _sampling_planner(update)(
        predict,
        params,
        s0,
        goal,
        key,
        bound=bound,
        init_std=init_std,
        cost=cost,
        discount=discount,
        mean0=mean0,
        **ints,
    )


def memory_bytes(fn: Callable, *args) -> int | None:
    """Scratch + argument + output bytes XLA reserves for `jax.jit(fn)(*args)` (compile only):
    what a batch of planning problems costs. None where the backend does not say.

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> n = hj.planning.memory_bytes(lambda x: 2 * x, jnp.ones(1000))
      >>> n is None or n >= 4000
      True
    """
    _checks.function("memory_bytes", "fn", fn, "(*args) -> outputs")
    analysis = jax.jit(fn).lower(*args).compile().memory_analysis()
    if analysis is None:
        return None
    return int(
        analysis.temp_size_in_bytes
        + analysis.argument_size_in_bytes
        + analysis.output_size_in_bytes
    )


# ------------------------------------------------------------------- hierarchical planning


class HierarchicalPlan(NamedTuple):
    """actions: [H, A] the level-1 plan toward the subgoal; cost: [] its predicted cost (to the
    subgoal); subgoal: [D] the level-2 subgoal representation; macro_actions: [M, A2] the
    level-2 plan (A2 = macro_action_dim); macro_cost: [] its predicted cost (to the goal)."""

    actions: jax.Array
    cost: jax.Array
    subgoal: jax.Array
    macro_actions: jax.Array
    macro_cost: jax.Array


def macro_model(predict: Callable, k: int) -> Callable:
    """The level-2 model of `hierarchical` when no learned one is given: one macro-action a
    [A] is the level-1 action a held for k steps, s' = Pred^k(s, a, ..., a).

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> integrator = lambda p, s, a: s + a
      >>> coarse = hj.planning.macro_model(integrator, 4)
      >>> print(coarse(None, jnp.zeros(2), jnp.array([1.0, 0.5])))
      [4. 2.]
    """
    _checks.function("macro_model", "predict", predict, "(params, s [D], a [A]) -> [D]")
    k = _checks.integer("macro_model", "k", k, fix="hold each macro-action >= 1 steps, e.g. k=4")

    def coarse(params, s, a):
        return rollout(predict, params, s, jnp.broadcast_to(a, (k, a.shape[-1])))[-1]

    return coarse


def hierarchical(
    predict: Callable,
    params,
    s0: jax.Array,
    goal: jax.Array,
    key: jax.Array,
    *,
    action_dim: int,
    bound: float,
    macro_steps: int = 4,
    macro_horizon: int = 8,
    horizon: int = 8,
    subgoal_step: int = 1,
    samples: int = 256,
    elites: int = 32,
    iterations: int = 10,
    init_std: float = 1.0,
    cost: Callable = squared_distance,
    discount: float = 1.0,
    macro_discount: float = 1.0,
    macro_mean0=None,
    mean0=None,
    coarse_predict: Callable | None = None,
    coarse_params=None,
    low_level: Callable | None = None,
    macro_action_dim: int | None = None,
    macro_bound: float | None = None,
) -> HierarchicalPlan:
    """Two-level (H-JEPA) planning: a coarse plan to the goal picks a latent subgoal, a fine
    plan reaches it.

    Level 2: CEM over M = macro_horizon macro-actions b_1..b_M of the coarse model
    s'' = Pred2(s, b) (default `macro_model(predict, macro_steps)`: b held for k = macro_steps
    level-1 steps, so the plan looks k * M steps ahead at the cost of M coarse steps):

        b_hat = argmin_b sum_m macro_discount^(M - m) c(s''_m, goal)

    The subgoal is the predicted state after `subgoal_step` macro steps, g1 = s''_{subgoal_step}.
    Level 1: `low_level(s0, g1, key, mean0) -> Plan` plans `horizon` actions toward g1 (default:
    CEM with the same samples/elites/iterations over `predict`, cost c, `discount`).

    Args:
      predict, params: the level-1 world model `predict(params, s [D], a [A]) -> [D]`.
      s0, goal: [D] current state and goal representation.
      key: PRNG key (split between the two levels).
      action_dim, bound: A and the level-1 action bound.
      macro_mean0, mean0: warm starts [M, A2] and [horizon, A] (default zeros).
      coarse_predict, coarse_params: a learned level-2 model `(params2, s [D], b [A2]) -> s''`
        replacing `macro_model` (e.g. `hj.hjepa.macro_loss`'s predict2: b a code of k
        actions); its macro-actions b have macro_action_dim entries in
        [-macro_bound, macro_bound].
      low_level: the level-1 planner; see above.
      macro_action_dim, macro_bound: A2 and the box of the macro-actions (default action_dim
        and bound, as `macro_model` needs).

    Returns:
      HierarchicalPlan; execute `actions[0]` (or a few) and plan again.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> integrator = lambda p, s, a: s + a
      >>> kw = dict(action_dim=2, bound=1.0, samples=32, elites=4, iterations=3)
      >>> goal, key = jnp.array([8.0, 0.0]), jax.random.PRNGKey(0)
      >>> plan = hj.planning.hierarchical(
      ...     integrator, None, jnp.zeros(2), goal, key, macro_horizon=3, horizon=4, **kw
      ... )
      >>> plan.actions.shape, plan.subgoal.shape, plan.macro_actions.shape
      ((4, 2), (2,), (3, 2))
    """
    fn = "hierarchical"
    macro_steps = _checks.integer(fn, "macro_steps", macro_steps, fix="e.g. macro_steps=4")
    learned = coarse_predict
    if coarse_predict is None:
        coarse_predict, coarse_params = macro_model(predict, macro_steps), params
    own = tuple(
        k for k, v in (("action_dim", macro_action_dim), ("bound", macro_bound)) if v is not None
    )
    macro_action_dim = action_dim if macro_action_dim is None else macro_action_dim
    macro_bound = bound if macro_bound is None else macro_bound
    common = dict(samples=samples, iterations=iterations, init_std=init_std, cost=cost)
    macro_ints = _sampler_args(
        fn,
        coarse_predict,
        coarse_params,
        s0,
        goal,
        "macro_",
        "predict" if learned is None else "coarse_predict",
        own,
        horizon=macro_horizon,
        discount=macro_discount,
        mean0=macro_mean0,
        action_dim=macro_action_dim,
        bound=macro_bound,
        **common,
    )
    macro_horizon, macro_action_dim = macro_ints["horizon"], macro_ints["action_dim"]
    elites = _elites(fn, elites, macro_ints["samples"])
    fix = f"take the subgoal after 1..macro_horizon={macro_horizon} macro steps"
    subgoal_step = _checks.integer(
        fn, "subgoal_step", subgoal_step, maximum=macro_horizon, fix=fix, static=False
    )
    if low_level is None:  # the level-1 goal is the subgoal, a state
        fine = dict(horizon=horizon, discount=discount, mean0=mean0, action_dim=action_dim)
        fine_ints = _sampler_args(fn, predict, params, s0, s0, bound=bound, **fine, **common)
        horizon = fine_ints["horizon"]
    else:
        _checks.function(fn, "low_level", low_level, "(s0, goal, key, mean0) -> Plan")
        fix = "plan at least one step, e.g. horizon=8"
        horizon = _checks.integer(fn, "horizon", horizon, fix=fix)
    k_macro, k_fine = jax.random.split(key)
    macro = cem(
        coarse_predict,
        coarse_params,
        s0,
        goal,
        k_macro,
        horizon=macro_horizon,
        action_dim=macro_action_dim,
        bound=macro_bound,
        samples=samples,
        elites=elites,
        iterations=iterations,
        init_std=init_std,
        cost=cost,
        discount=macro_discount,
        mean0=macro_mean0,
    )
    coarse_states = rollout(coarse_predict, coarse_params, s0, macro.actions)
    subgoal = coarse_states[subgoal_step - 1]
    if low_level is None:

        def low_level(s, g, k, m0):
            return cem(
                predict,
                params,
                s,
                g,
                k,
                horizon=horizon,
                action_dim=action_dim,
                bound=bound,
                samples=samples,
                elites=elites,
                iterations=iterations,
                init_std=init_std,
                cost=cost,
                discount=discount,
                mean0=m0,
            )

    if mean0 is None:
        mean0 = jnp.zeros((horizon, action_dim))
    fine = low_level(s0, subgoal, k_fine, mean0)
    return HierarchicalPlan(fine.actions, fine.cost, subgoal, macro.actions, macro.cost)
