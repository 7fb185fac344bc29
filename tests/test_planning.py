"""hj.planning on a world model with a known optimum: a 2-D integrator s' = s + a."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hjepa_jax as hj

BOUND = 1.0


def integrator(params, s, a):
    """s_{t+1} = s_t + scale * a_t (params = scale)."""
    return s + params * a


def test_rollout_and_cost_by_hand():
    actions = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    states = hj.planning.rollout(integrator, 2.0, jnp.zeros(2), actions)
    np.testing.assert_allclose(states, [[2, 0], [2, 2], [4, 4]])
    goal = jnp.array([4.0, 4.0])
    c = hj.planning.trajectory_cost(integrator, 2.0, actions, jnp.zeros(2), goal)
    np.testing.assert_allclose(c, (4 + 16) + (4 + 4) + 0)
    # Unrolled, the same numbers and gradient.
    unrolled = hj.planning.trajectory_cost(
        integrator, 2.0, actions, jnp.zeros(2), goal, unroll=True
    )
    np.testing.assert_allclose(unrolled, c)
    grad = lambda u: jax.grad(hj.planning.trajectory_cost, 2)(
        integrator, 2.0, actions, jnp.zeros(2), goal, unroll=u
    )
    np.testing.assert_allclose(grad(True), grad(1), rtol=1e-6)


@pytest.mark.parametrize("planner", ["gradient_mpc", "cem", "mppi"])
def test_planners_reach_a_reachable_goal_within_bounds(planner):
    s0, goal, horizon = jnp.zeros(2), jnp.array([3.0, -2.0]), 5  # reachable in 3 steps
    key = jax.random.PRNGKey(0)
    if planner == "gradient_mpc":
        plan = hj.planning.gradient_mpc(
            integrator,
            1.0,
            s0,
            goal,
            jnp.zeros((horizon, 2)),
            bound=BOUND,
            steps=200,
            optimizer=optax.adam(0.1),
        )
    else:
        fn = getattr(hj.planning, planner)
        kwargs = dict(horizon=horizon, action_dim=2, bound=BOUND, samples=512, iterations=15)
        plan = fn(integrator, 1.0, s0, goal, key, **kwargs)
    assert plan.actions.shape == (horizon, 2)
    assert jnp.all(jnp.abs(plan.actions) <= BOUND + 1e-6)
    final = hj.planning.rollout(integrator, 1.0, s0, plan.actions)[-1]
    assert jnp.linalg.norm(final - goal) < 0.3, (planner, final)
    # The best first move heads for the goal at full speed along x.
    assert plan.actions[0, 0] > 0.7 and plan.actions[0, 1] < -0.4


def test_gradient_mpc_matches_the_bounded_optimum_when_the_goal_is_too_far():
    """Goal 10 away, 3 steps of at most 1: every optimal action is at the bound."""
    plan = hj.planning.gradient_mpc(
        integrator,
        1.0,
        jnp.zeros(2),
        jnp.array([10.0, 0.0]),
        jnp.zeros((3, 2)),
        bound=BOUND,
        steps=300,
    )
    np.testing.assert_allclose(plan.actions, [[1.0, 0.0]] * 3, atol=1e-3)


def test_gradient_mpc_from_several_starts_keeps_the_lowest_cost_plan():
    """Two wells, the deeper at the goal g, a shallower one at -g: a descent that starts
    toward -g ends in the shallow well. From [K, H, A] starts, the returned plan is the
    single-start descent of lowest cost (computed here one by one), under jit too."""
    goal = jnp.array([2.0, 0.0])

    def wells(s, g):
        return -jnp.exp(-jnp.sum((s - g) ** 2)) - 0.6 * jnp.exp(-jnp.sum((s + g) ** 2))

    starts = jnp.stack([jnp.full((3, 2), jnp.array([-0.7, 0.0])), jnp.full((3, 2), 0.7)])
    run = lambda actions0: hj.planning.gradient_mpc(
        integrator, 1.0, jnp.zeros(2), goal, actions0, bound=BOUND, steps=100, cost=wells
    )
    shallow, deep = (run(a) for a in starts)
    assert shallow.cost > deep.cost + 0.5  # the first start stays in the shallow well
    for best in (run(starts), jax.jit(run)(starts)):
        np.testing.assert_allclose(best.actions, deep.actions, atol=1e-5)
        np.testing.assert_allclose(best.cost, deep.cost, rtol=1e-5)
        np.testing.assert_allclose(best.trace, deep.trace, rtol=1e-5)
    with pytest.raises(ValueError, match=r"actions0 must have shape .*\[H, A\] or \[K, H, A\]"):
        run(jnp.zeros((1, 2, 3, 2)))


def test_smoothed_gradient_mpc_descends_the_mean_cost_of_the_perturbed_plans():
    """With noise [M, H, A], the returned cost is the mean of the trajectory costs of the
    plan's M clipped perturbations (computed here one by one); all-zero noise is the plain
    descent; noise of another plan's shape is refused by name."""
    goal, actions0 = jnp.array([2.0, -1.0]), jnp.zeros((3, 2))
    noise = 0.5 * jax.random.normal(jax.random.PRNGKey(3), (4, 3, 2))
    run = lambda n: hj.planning.gradient_mpc(
        integrator, 1.0, jnp.zeros(2), goal, actions0, bound=BOUND, steps=30, noise=n
    )
    plan = run(noise)
    by_hand = np.mean([
        hj.planning.trajectory_cost(
            integrator, 1.0, jnp.clip(plan.actions + e, -BOUND, BOUND), jnp.zeros(2), goal
        )
        for e in noise
    ])  # fmt: skip
    np.testing.assert_allclose(plan.cost, by_hand, rtol=1e-5)
    plain = run(None)
    np.testing.assert_allclose(run(jnp.zeros((2, 3, 2))).actions, plain.actions, atol=1e-6)
    np.testing.assert_allclose(jax.jit(run)(noise).actions, plan.actions, atol=1e-5)
    with pytest.raises(ValueError, match=r"noise.shape=\(4, 5, 2\), but noise must have"):
        run(jnp.zeros((4, 5, 2)))


def test_samplers_are_deterministic_and_batch_with_vmap():
    goals = jnp.array([[2.0, 1.0], [-1.0, 3.0], [0.5, -0.5]])
    kwargs = dict(horizon=4, action_dim=2, bound=BOUND, samples=128, iterations=5)

    def plan(goal, key):
        return hj.planning.cem(integrator, 1.0, jnp.zeros(2), goal, key, **kwargs).actions

    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    batched = jax.jit(jax.vmap(plan))(goals, keys)
    for i in range(3):
        np.testing.assert_allclose(batched[i], plan(goals[i], keys[i]), atol=1e-5)
    again = jax.jit(jax.vmap(plan))(goals, keys)
    np.testing.assert_array_equal(batched, again)


def test_memory_of_a_batch_is_reported():
    def plans(goals):
        return jax.vmap(
            lambda g: (
                hj.planning.gradient_mpc(
                    integrator, 1.0, jnp.zeros(2), g, jnp.zeros((8, 2)), bound=1.0, steps=10
                ).actions
            )
        )(goals)

    small = hj.planning.memory_bytes(plans, jnp.zeros((4, 2)))
    big = hj.planning.memory_bytes(plans, jnp.zeros((4096, 2)))
    if small is not None:
        assert big > small


def walled(params, s, a):
    """The integrator with a wall on x = 0 (|x| < 0.5 blocked) open only at the door |y| <= 1:
    a move that would cross or land on the wall outside the door keeps its old x."""
    del params
    new = s + a
    crosses = (jnp.sign(new[0]) != jnp.sign(s[0])) | (jnp.abs(new[0]) < 0.5)
    blocked = crosses & (jnp.abs(new[1]) > 1.0)
    return jnp.where(blocked, new.at[0].set(s[0]), new)


def _closed_loop(plan_fn, s0, goal, steps):
    """Execute the first action of each plan for `steps` steps; -> [steps + 1, 2] states."""

    def body(s, key):
        a = plan_fn(s, key)
        nxt = walled(None, s, jnp.clip(a, -BOUND, BOUND))
        return nxt, nxt

    keys = jax.random.split(jax.random.PRNGKey(3), steps)
    _, states = jax.lax.scan(body, s0, keys)
    return jnp.concatenate([s0[None], states])


def test_hierarchical_passes_the_door_where_a_short_flat_planner_sticks_at_the_wall():
    s0, goal, steps = jnp.array([-3.0, 6.0]), jnp.array([3.0, 6.0]), 30
    common = dict(action_dim=2, bound=BOUND, samples=256, iterations=8)

    def flat(s, key):
        return hj.planning.cem(walled, None, s, goal, key, horizon=4, **common).actions[0]

    def hier(s, key):
        plan = hj.planning.hierarchical(
            walled,
            None,
            s,
            goal,
            key,
            macro_steps=4,
            macro_horizon=6,
            horizon=4,
            macro_discount=0.5,
            **common,
        )
        return plan.actions[0]

    flat_states = jax.jit(lambda: _closed_loop(flat, s0, goal, steps))()
    hier_states = jax.jit(lambda: _closed_loop(hier, s0, goal, steps))()
    flat_final = jnp.linalg.norm(flat_states[-1] - goal)
    hier_final = jnp.linalg.norm(hier_states[-1] - goal)
    assert flat_final > 2.5, flat_states[-1]  # stuck in front of the wall, left of the door
    assert hier_final < 1.0, hier_states[-1]
    on_wall = (jnp.abs(hier_states[:, 0]) < 0.5) & (jnp.abs(hier_states[:, 1]) > 1.0)
    assert not jnp.any(on_wall)
    assert jnp.any(jnp.abs(hier_states[:, 1]) <= 1.0)  # it went through the door


def test_hierarchical_plan_shapes_subgoal_and_learned_coarse_model():
    s0, goal = jnp.zeros(2), jnp.array([12.0, -6.0])
    kwargs = dict(action_dim=2, bound=BOUND, samples=128, iterations=6)
    plan = hj.planning.hierarchical(
        integrator,
        1.0,
        s0,
        goal,
        jax.random.PRNGKey(0),
        macro_steps=3,
        macro_horizon=5,
        horizon=4,
        **kwargs,
    )
    assert plan.actions.shape == (4, 2) and plan.macro_actions.shape == (5, 2)
    assert plan.subgoal.shape == (2,) and jnp.all(jnp.abs(plan.actions) <= BOUND + 1e-6)
    # The subgoal is one macro step (3 unit moves) toward the far goal.
    assert plan.subgoal[0] > 2.0 and plan.subgoal[1] < -1.0
    np.testing.assert_allclose(
        plan.subgoal, hj.planning.macro_model(integrator, 3)(1.0, s0, plan.macro_actions[0])
    )
    # A learned level-2 model plugs in the same way (here the exact 3-step model).
    learned = hj.planning.hierarchical(
        integrator,
        1.0,
        s0,
        goal,
        jax.random.PRNGKey(0),
        macro_horizon=5,
        horizon=4,
        coarse_predict=lambda p, s, b: s + 3.0 * p * b,
        coarse_params=1.0,
        **kwargs,
    )
    np.testing.assert_allclose(learned.subgoal, plan.subgoal, atol=1e-5)
