"""hj.sampling: Langevin reaches the Gibbs distribution of known energies; chains, buffers,
corruption and the named error on divergence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hjepa_jax as hj

MU, SIGMA = jnp.array([1.0, -2.0]), 0.5


def gaussian(params, y):
    """F(y) = ||y - mu||^2 / (2 sigma^2): p(y) ~ exp(-F) is N(mu, sigma^2 I)."""
    return jnp.sum((y - params) ** 2) / (2 * SIGMA**2)


def two_wells(params, y):
    """F(y) = -log(exp(-(y-2)^2/(2 s^2)) + exp(-(y+2)^2/(2 s^2))), s = 0.5: two modes."""
    del params
    a = -((y[0] - 2.0) ** 2) / (2 * SIGMA**2)
    b = -((y[0] + 2.0) ** 2) / (2 * SIGMA**2)
    return -jnp.logaddexp(a, b)


def chains(energy, params, y0s, key, **kw):
    keys = jax.random.split(key, y0s.shape[0])
    run = lambda y0, k: hj.sampling.langevin_sample(energy, params, y0, key=k, **kw).z
    return jax.jit(jax.vmap(run))(y0s, keys)


def test_langevin_reaches_the_gaussian_mean_and_variance():
    samples = chains(
        gaussian, MU, jnp.zeros((4000, 2)), jax.random.PRNGKey(0), steps=500, step_size=0.005
    )
    np.testing.assert_allclose(samples.mean(0), MU, atol=0.03)
    np.testing.assert_allclose(samples.var(0), SIGMA**2, rtol=0.08)


def test_langevin_visits_both_modes_of_a_mixture():
    samples = chains(
        two_wells, None, jnp.zeros((2000, 1)), jax.random.PRNGKey(1), steps=400, step_size=0.005
    )[:, 0]
    right = samples > 0
    assert 0.4 < right.mean() < 0.6
    for mode, side in ((2.0, samples[right]), (-2.0, samples[~right])):
        assert abs(side.mean() - mode) < 0.05
        assert abs(side.var() - SIGMA**2) < 0.05


def test_temperature_zero_descends_to_the_minimum_and_clamp_holds():
    y = hj.sampling.hard_negatives(gaussian, MU, jnp.zeros(2), steps=300, step_size=0.05)
    np.testing.assert_allclose(y, MU, atol=1e-4)
    samples = chains(
        gaussian,
        MU,
        jnp.zeros((500, 2)),
        jax.random.PRNGKey(2),
        steps=200,
        step_size=0.01,
        bounds=(-1.0, 0.5),
    )
    assert samples.min() >= -1.0 and samples.max() <= 0.5
    # N(1, 0.25) truncated to [-1, 0.5] has mean 0.2375; clamping piles a little mass at 0.5.
    assert samples[:, 0].max() == 0.5 and abs(float(samples[:, 0].mean()) - 0.2375) < 0.1


def test_sampler_is_deterministic_given_its_key():
    a = chains(gaussian, MU, jnp.zeros((4, 2)), jax.random.PRNGKey(3), steps=10, step_size=0.01)
    b = chains(gaussian, MU, jnp.zeros((4, 2)), jax.random.PRNGKey(3), steps=10, step_size=0.01)
    c = chains(gaussian, MU, jnp.zeros((4, 2)), jax.random.PRNGKey(4), steps=10, step_size=0.01)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_divergence_stops_with_a_named_error():
    with pytest.raises(FloatingPointError, match="langevin_sample: the chains diverged"):
        hj.sampling.langevin_sample(
            lambda p, y: -jnp.sum(y**4),
            None,
            jnp.ones(2),
            key=jax.random.PRNGKey(0),
            steps=50,
            step_size=1.0,
        )


def test_replay_buffer_keeps_persistent_chains():
    buffer = hj.sampling.replay_init(jnp.arange(100.0)[:, None])
    fresh = jnp.full((10_000, 1), -1.0)
    starts, idx = hj.sampling.replay_draw(buffer, jax.random.PRNGKey(0), 10_000, fresh, 0.1)
    from_fresh = starts[:, 0] == -1.0
    assert 0.09 < from_fresh.mean() < 0.11
    np.testing.assert_array_equal(starts[~from_fresh, 0], idx[~from_fresh].astype(jnp.float32))
    updated = hj.sampling.replay_update(buffer, idx[:3], jnp.full((3, 1), 7.0))
    assert jnp.all(updated.samples[idx[:3]] == 7.0)


def test_corruptions():
    y = jnp.ones((100, 100))
    masked = hj.sampling.corrupt_mask(jax.random.PRNGKey(0), y, 0.3)
    assert abs(float((masked == 0).mean()) - 0.3) < 0.02
    noisy = hj.sampling.corrupt_noise(jax.random.PRNGKey(1), y, 0.5)
    assert abs(float((noisy - y).std()) - 0.5) < 0.02
    assert hj.sampling.energy_l2(jnp.array([1.0, 2.0]), jnp.array([0.0, 2.0])) == 2.5 + 2.0
