"""Argument checks: a bad argument raises a ValueError naming the function, the argument, its
value and the fix, before any JAX trace; numpy integers are ints; traced values pass."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hjepa_jax as hj
from hjepa_jax import _checks

KEY = jax.random.PRNGKey(0)
S0, GOAL = jnp.zeros(2), jnp.array([2.0, -1.0])
SAMPLER = dict(horizon=3, action_dim=2, bound=1.0, samples=16, iterations=2)
CEM = dict(SAMPLER, elites=4)
HIER = dict(action_dim=2, bound=1.0, samples=16, elites=4, iterations=2, macro_horizon=3)


def integrator(params, s, a):
    return s + params * a


def quad(w, z):
    return jnp.sum((z - w) ** 2)


def cem(**kw):
    return hj.planning.cem(integrator, 1.0, S0, GOAL, KEY, **{**CEM, **kw})


def mppi(**kw):
    return hj.planning.mppi(integrator, 1.0, S0, GOAL, KEY, **{**SAMPLER, **kw})


def hierarchical(**kw):
    return hj.planning.hierarchical(integrator, 1.0, S0, GOAL, KEY, **{**HIER, **kw})


def langevin(y0=None, **kw):
    y0 = jnp.ones(2) if y0 is None else y0
    kw = {"key": KEY, "steps": 5, "step_size": 0.1, **kw}
    return hj.sampling.langevin_sample(lambda p, y: jnp.sum(y**2), None, y0, **kw)


# ---- the shared helpers


@pytest.mark.parametrize("value", [3, np.int64(3), np.int32(3), jnp.int32(3), np.array(3)])
def test_integer_accepts_python_numpy_and_jax_integers(value):
    got = _checks.integer("f", "n", value, fix="fix")
    assert got == 3 and type(got) is int


@pytest.mark.parametrize("value", [True, np.True_, 3.0, np.float32(3), "3", None, jnp.ones(2)])
def test_integer_refuses_bools_floats_and_others(value):
    with pytest.raises(ValueError, match=r"^f: n=.*, but n must be an integer >= 1; fix$"):
        _checks.integer("f", "n", value, fix="fix")


@pytest.mark.parametrize("value", [math.nan, np.float32("nan"), jnp.inf, -1.0, jnp.array(-1.0)])
def test_positive_refuses_nan_inf_and_negatives(value):
    with pytest.raises(ValueError, match=r"^f: x=.*, but x must be finite and > 0; fix$"):
        _checks.positive("f", "x", value, "fix")


def test_traced_values_pass_the_value_checks_but_not_static_integers():
    assert jax.jit(lambda x: _checks.positive("f", "x", x, "fix"))(-1.0) == -1.0
    with pytest.raises(ValueError, match=r"f: n=<traced int32\[\]> cannot be traced"):
        jax.jit(lambda n: _checks.integer("f", "n", n, fix="fix"))(3)


# ---- planners


@pytest.mark.parametrize("planner", [cem, mppi])
@pytest.mark.parametrize("name", ["horizon", "iterations", "samples", "action_dim"])
@pytest.mark.parametrize("value", [0, -1])
def test_planner_integers_below_one_are_refused(planner, name, value):
    fn = planner.__name__
    with pytest.raises(ValueError, match=rf"{fn}: {name}={value}, but {name} must be an integer"):
        planner(**{name: value})


@pytest.mark.parametrize("elites", [0, 17])
def test_cem_elites_must_be_between_one_and_samples(elites):
    match = rf"cem: elites={elites}, but elites must be an integer in \[1, 16\]; keep between"
    with pytest.raises(ValueError, match=match):
        cem(elites=elites)


@pytest.mark.parametrize("temperature", [0.0, -1.0, np.float32(0.0), jnp.array(-0.5)])
def test_mppi_temperature_must_be_positive(temperature):
    with pytest.raises(ValueError, match=r"mppi: temperature=-?\d\.\d+, but temperature must be"):
        mppi(temperature=temperature)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"bound": 0.0}, r"cem: bound=0.0, but bound must be finite and > 0"),
        ({"init_std": -1.0}, r"cem: init_std=-1.0, but init_std must be finite and > 0"),
        ({"discount": -0.5}, r"cem: discount=-0.5, but discount must be finite and >= 0"),
        ({"min_std": -0.1}, r"cem: min_std=-0.1, but min_std must be finite and >= 0"),
        ({"horizon": True}, r"cem: horizon=True, but horizon must be an integer >= 1"),
        ({"samples": 16.0}, r"cem: samples=16.0, but samples must be an integer >= 1"),
    ],
)
def test_cem_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        cem(**kw)


def test_hierarchical_macro_horizon_and_subgoal_step_are_checked():
    match = r"hierarchical: macro_horizon=0, but macro_horizon must be an integer >= 1"
    with pytest.raises(ValueError, match=match):
        hierarchical(macro_horizon=0)
    for step in (0, 4):
        match = rf"hierarchical: subgoal_step={step}, but subgoal_step must be .* \[1, 3\]"
        with pytest.raises(ValueError, match=match):
            hierarchical(subgoal_step=step)
    with pytest.raises(ValueError, match=r"hierarchical: macro_steps=0, but macro_steps"):
        hierarchical(macro_steps=0)
    match = r"hierarchical: macro_mean0.shape=\(2, 2\), but macro_mean0 must have shape \(3, 2\)"
    with pytest.raises(ValueError, match=match):
        hierarchical(macro_mean0=jnp.zeros((2, 2)))


def test_planners_name_action_and_goal_shapes_that_do_not_fit_the_model():
    wrong_action = r"cem: predict\(params, s0, a \[A\]\) failed for argument shapes .*\(3,\)"
    with pytest.raises(ValueError, match=wrong_action):
        cem(action_dim=3)
    with pytest.raises(ValueError, match=r"gradient_mpc: predict\(params, s0, a \[A\]\) failed"):
        hj.planning.gradient_mpc(integrator, 1.0, S0, GOAL, jnp.zeros((4, 3)), bound=1.0)
    wrong_goal = r"mppi: goal.shape=\(3,\), but goal must have shape \(2,\) \(the state's"
    with pytest.raises(ValueError, match=wrong_goal):
        hj.planning.mppi(integrator, 1.0, S0, jnp.ones(3), KEY, **SAMPLER)
    with pytest.raises(ValueError, match=r"hierarchical: goal.shape=\(3,\), but goal must"):
        hj.planning.hierarchical(integrator, 1.0, S0, jnp.ones(3), KEY, **HIER)
    grows = lambda p, s, a: jnp.concatenate([s, a[:1]])
    match = r"cem: predict\(params, s0, a \[A\]\).shape=\(3,\) differs from the expected \(2,\)"
    with pytest.raises(ValueError, match=match):
        hj.planning.cem(grows, None, S0, GOAL, KEY, **CEM)
    with pytest.raises(ValueError, match=r"cem: mean0.shape=\(3, 3\), but mean0 must have shape"):
        cem(mean0=jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"gradient_mpc: actions0.shape=\(4,\), but actions0"):
        hj.planning.gradient_mpc(integrator, 1.0, S0, GOAL, jnp.zeros(4), bound=1.0)
    with pytest.raises(ValueError, match=r"rollout: actions.shape=\(4,\), but actions must"):
        hj.planning.rollout(integrator, 1.0, S0, jnp.zeros(4))


def test_planners_accept_numpy_integers_and_traced_floats():
    ints = dict(horizon=np.int64(3), action_dim=np.int32(2), samples=np.int64(16))
    plan = cem(elites=np.int64(4), iterations=np.int64(2), **ints)
    np.testing.assert_allclose(plan.actions, cem().actions)
    # A traced temperature (here vmapped) cannot be checked; it runs.
    temps = jnp.array([0.5, 1.0])
    plans = jax.vmap(lambda t: mppi(temperature=t).actions)(temps)
    assert plans.shape == (2, 3, 2)
    # A traced subgoal_step indexes the coarse plan (unchecked).
    sub = jax.jit(lambda k: hierarchical(subgoal_step=k).subgoal)(jnp.int32(2))
    np.testing.assert_allclose(sub, hierarchical(subgoal_step=2).subgoal, atol=1e-6)


def test_static_planner_integers_cannot_be_traced():
    with pytest.raises(ValueError, match=r"cem: horizon=<traced int32\[\]> cannot be traced"):
        jax.jit(lambda h: cem(horizon=h))(3)


# ---- latent


@pytest.mark.parametrize(
    "beta", [np.float32(0.0), np.float32(-1.0), jnp.array(0.0), jnp.array(-2.0), np.nan]
)
def test_soft_min_refuses_numpy_and_jax_betas_not_above_zero(beta):
    with pytest.raises(ValueError, match=r"soft_min: beta=.*, but beta must be > 0"):
        hj.latent.soft_min(jnp.array([1.0, 2.0]), beta)


@pytest.mark.parametrize("beta", [math.inf, jnp.inf, np.inf, np.float32("inf"), jnp.array(np.inf)])
def test_soft_min_infinite_beta_is_the_minimum(beta):
    e = jnp.array([[3.0, 1.0, 2.0], [0.5, 4.0, -1.0]])
    np.testing.assert_array_equal(hj.latent.soft_min(e, beta), [1.0, -1.0])


def test_soft_min_traced_infinite_beta_is_the_minimum_with_a_finite_gradient():
    e = jnp.array([3.0, 1.0, 2.0])
    f = jax.jit(hj.latent.soft_min)
    assert f(e, jnp.inf) == 1.0
    np.testing.assert_array_equal(jax.grad(f)(e, jnp.inf), [0.0, 1.0, 0.0])
    np.testing.assert_allclose(f(e, 2.0), hj.latent.soft_min(e, 2.0), rtol=1e-6)
    with pytest.raises(ValueError, match=r"soft_min: axis=2, but axis must be an integer in"):
        hj.latent.soft_min(e, 1.0, axis=2)


@pytest.mark.parametrize("steps", [np.int64(10), np.int32(10), jnp.int32(10)])
def test_minimize_accepts_numpy_and_jax_integer_steps(steps):
    res = hj.latent.minimize(quad, jnp.ones(2), jnp.zeros(2), steps=steps)
    assert res.trace.shape == (10,)


@pytest.mark.parametrize("steps", [True, 10.0, np.float64(10.0), "10"])
def test_minimize_refuses_bool_and_float_steps(steps):
    with pytest.raises(ValueError, match=r"minimize: steps=.*, but steps must be an integer >= 1"):
        hj.latent.minimize(quad, jnp.ones(2), jnp.zeros(2), steps=steps)


def test_infer_names_itself():
    with pytest.raises(ValueError, match=r"infer: steps=0, but steps must be an integer >= 1"):
        hj.latent.infer(lambda w, y, x: jnp.sum((y - x) ** 2), None, jnp.zeros(2), S0, steps=0)


def test_lowest_names_the_mismatched_shape():
    r = hj.latent.MinimizeResult
    match = r"lowest: results.energy.shape=\(\), but results.energy must have shape \(\*,\)"
    with pytest.raises(ValueError, match=match):
        hj.latent.lowest(r(jnp.zeros((3, 2)), jnp.zeros(()), jnp.zeros((3, 5))))
    match = r"lowest: results.z.shape=\(4, 2\), but results.z must have shape \(3, 2\)"
    with pytest.raises(ValueError, match=match):
        hj.latent.lowest(r(jnp.zeros((4, 2)), jnp.zeros(3), jnp.zeros((3, 5))))
    match = r"lowest: results.trace.shape=\(2, 5\), but results.trace must have shape \(3, 5\)"
    with pytest.raises(ValueError, match=match):
        hj.latent.lowest(r(jnp.zeros((3, 2)), jnp.zeros(3), jnp.zeros((2, 5))))


# ---- losses


@pytest.mark.parametrize("temperature", [0.0, -0.1, np.float32(0.0)])
def test_infonce_temperature_must_be_positive(temperature):
    match = r"infonce: temperature=-?0\.\d+, but temperature must be finite and > 0"
    with pytest.raises(ValueError, match=match):
        hj.losses.infonce(jnp.ones((4, 3)), jnp.ones((4, 3)), temperature)


def test_infonce_needs_negatives():
    with pytest.raises(ValueError, match=r"infonce: B=1 leaves no negatives in the batch"):
        hj.losses.infonce(jnp.ones((1, 3)), jnp.ones((1, 3)), 0.1)


def test_barlow_twins_refuses_a_batch_of_one():
    with pytest.raises(ValueError, match=r"barlow_twins: B=1 is too small: .* need B >= 2"):
        hj.losses.barlow_twins(jnp.ones((1, 3)), jnp.ones((1, 3)))


def test_sparse_code_refuses_a_negative_l1():
    with pytest.raises(ValueError, match=r"sparse_code: l1=-0.1, but l1 must be finite and >= 0"):
        hj.losses.sparse_code(jnp.eye(3), jnp.ones(3), -0.1)
    res = hj.losses.sparse_code(jnp.eye(3), jnp.ones(3), 0.1, steps=np.int64(5))
    assert res.trace.shape == (5,)


def test_hinge_refuses_a_negative_margin():
    with pytest.raises(ValueError, match=r"hinge: margin=-1.0, but margin must be finite and >= 0"):
        hj.losses.hinge(jnp.ones(3), jnp.ones(3), -1.0)


def test_kmeans_free_energy_names_the_expected_shape():
    match = r"kmeans_free_energy: y.shape=\(3,\), but y must have shape \(2,\) \(\[Y\] as in"
    with pytest.raises(ValueError, match=match):
        hj.losses.kmeans_free_energy(jnp.ones((4, 2)), jnp.ones(3))
    match = r"kmeans_free_energy: centroids.shape=\(2,\), but centroids must have shape \(\*, \*\)"
    with pytest.raises(ValueError, match=match):
        hj.losses.kmeans_free_energy(jnp.ones(2), jnp.ones(2))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: hj.losses.nll(jnp.ones(2), jnp.ones((2, 3)), 0.0), r"nll: beta=0.0, but beta"),
        (lambda: hj.losses.square_exponential(jnp.ones(2), jnp.ones(2), 0.0), "gamma=0.0, but"),
        (lambda: hj.losses.vicreg(jnp.ones((4, 2)), jnp.ones((4, 3))), r"vicreg: s_b.shape"),
        (lambda: hj.losses.fista(0.0, 0.1), r"fista: step_size=0.0, but step_size must be"),
        (lambda: hj.losses.soft_threshold(jnp.ones(2), -1.0), r"soft_threshold: t=-1.0, but"),
        (lambda: hj.losses.gaussian_kl(jnp.ones(2), jnp.ones(3)), r"gaussian_kl: log_var.shape"),
    ],
)
def test_other_loss_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---- sampling


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"step_size": -0.1}, r"langevin_sample: step_size=-0.1, but step_size must be .* > 0"),
        ({"step_size": 0.0}, r"langevin_sample: step_size=0.0, but step_size must be .* > 0"),
        ({"temperature": -1.0}, r"langevin_sample: temperature=-1.0, but temperature must be"),
        ({"y0": jnp.array([np.nan, 1.0])}, r"langevin_sample: y0=float32\[2\] holds NaN or inf"),
        ({"bounds": (1.0, -1.0)}, r"langevin_sample: bounds=\(1.0, -1.0\) has low > high"),
        ({"bounds": (0.0, np.nan)}, r"langevin_sample: bounds\[1\]=nan, but bounds\[1\] must be"),
        ({"steps": 0}, r"langevin_sample: steps=0, but steps must be an integer >= 1"),
    ],
)
def test_langevin_sample_names_the_real_problem(kw, match):
    with pytest.raises(ValueError, match=match) as err:
        langevin(**kw)
    assert "diverged" not in str(err.value)


def test_langevin_sample_accepts_numpy_integers_and_still_reports_divergence():
    assert langevin(steps=np.int64(4)).trace.shape == (4,)
    with pytest.raises(FloatingPointError, match="langevin_sample: the chains diverged"):
        hj.sampling.langevin_sample(
            lambda p, y: -jnp.sum(y**4), None, jnp.ones(2), key=KEY, steps=50, step_size=1.0
        )


def test_other_sampling_arguments():
    with pytest.raises(ValueError, match=r"hard_negatives: step_size=-1.0, but step_size"):
        hj.sampling.hard_negatives(lambda p, y: jnp.sum(y**2), None, S0, steps=3, step_size=-1.0)
    with pytest.raises(ValueError, match=r"langevin: temperature=-1.0, but temperature"):
        hj.sampling.langevin(0.1, KEY, -1.0)
    with pytest.raises(ValueError, match=r"corrupt_mask: rate=1.5, but rate must be"):
        hj.sampling.corrupt_mask(KEY, jnp.ones(3), 1.5)
    buffer = hj.sampling.replay_init(jnp.zeros((10, 2)))
    match = r"replay_draw: fresh.shape=\(4, 3\), but fresh must have shape \(4, 2\)"
    with pytest.raises(ValueError, match=match):
        hj.sampling.replay_draw(buffer, KEY, 4, jnp.zeros((4, 3)))
    starts, idx = hj.sampling.replay_draw(buffer, KEY, np.int64(4), jnp.ones((4, 2)))
    assert starts.shape == (4, 2)
    with pytest.raises(ValueError, match=r"replay_update: samples.shape=\(3, 2\)"):
        hj.sampling.replay_update(buffer, idx, jnp.zeros((3, 2)))


# ---- other modules


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: hj.constraints.box(1.0, -1.0), r"box: low=1.0 is above high=-1.0"),
        (lambda: hj.constraints.ball(0.0), r"ball: radius=0.0, but radius must be finite and > 0"),
        (lambda: hj.collapse.collapse_metrics(jnp.ones((1, 3))), r"collapse_metrics: B=1 is too"),
        (lambda: hj.collapse.effective_rank(jnp.ones(3)), r"effective_rank: s.shape=\(3,\)"),
        (lambda: hj.energies.marginal_free_energy(quad, jnp.ones((3, 1)), -1.0), "beta=-1.0, but"),
        (
            lambda: hj.energies.zero_temperature_free_energy(quad, jnp.zeros((2, 1)), steps=0),
            r"zero_temperature_free_energy: steps=0, but steps must be an integer >= 1",
        ),
        (lambda: hj.jepa.JEPAConfig(latent_steps=0), r"JEPAConfig: latent_steps=0, but"),
        (lambda: hj.world_model.WorldModelConfig(horizon=0), r"WorldModelConfig: horizon=0"),
        (lambda: hj.hjepa.HJEPAConfig(window=0), r"HJEPAConfig: window=0, but window must be"),
        (
            lambda: hj.world_model.multistep_energy(None, integrator, jnp.zeros((4, 2)), S0, 2),
            r"multistep_energy: actions.shape=\(2,\), but actions must have shape \(\*, \*\)",
        ),
        (
            lambda: hj.critic.value_iteration(jnp.ones((3, 3)), jnp.ones((3, 3)) > 0, cap=0.0),
            r"value_iteration: cap=0.0, but cap must be finite and > 0",
        ),
        (
            lambda: hj.probes.regression_r2(np.ones((4, 2)), np.ones(3), np.ones((2, 2)), [1, 2]),
            r"regression_r2: train_y.shape=\(3,\), but train_y must have shape \(4,\)",
        ),
        (lambda: hj.nn.conv.fold_batch(jnp.ones(3), 2), r"fold_batch: x.shape=\(3,\) has fewer"),
        (lambda: hj.envs.make_layout(KEY, 4), r"make_layout: kind=4, but kind must be .* \[0, 3\]"),
        (
            lambda: hj.envs.random_trajectories(
                KEY, hj.envs.EnvParams(), hj.envs.fixed_layout, 2, 3, 0.7, 0.5
            ),
            r"random_trajectories: door_frac \+ wall_frac \+ cross_frac=1.2 is above 1",
        ),
        (
            lambda: hj.envs.step(
                hj.envs.reset(KEY, hj.envs.EnvParams(), hj.envs.fixed_layout())[0],
                jnp.ones(3),
                hj.envs.EnvParams(),
            ),
            r"step: action.shape=\(3,\), but action must have shape \(2,\)",
        ),
    ],
)
def test_other_modules_name_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
