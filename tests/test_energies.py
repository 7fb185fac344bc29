"""hj.energies against closed forms: a circle decoder, a ridge-regularized linear decoder."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hjepa_jax as hj


def circle(r, z):
    """Dec_r(z) = r [cos z, sin z]; z: [1] -> [2]."""
    return r * jnp.concatenate([jnp.cos(z), jnp.sin(z)])


ENERGY = hj.energies.latent_energy(circle)
STARTS = jnp.linspace(0, 2 * jnp.pi, 8, endpoint=False)[:, None]
F_INF = hj.energies.zero_temperature_free_energy(
    ENERGY, STARTS, steps=200, optimizer=optax.sgd(0.05)
)
POINTS = jnp.array([[3.0, 0.5], [-0.4, 0.2], [0.1, -2.5], [-1.0, -1.0], [1.2, 1.9]])


def test_squared_distance_and_shape_error():
    assert hj.energies.squared_distance(jnp.array([1.0, 2.0]), jnp.array([0.0, 4.0])) == 5.0
    match = r"squared_distance: b.shape=\(3,\), but b must have shape \(2,\)"
    with pytest.raises(ValueError, match=match):
        hj.energies.squared_distance(jnp.ones(2), jnp.ones(3))


def test_zero_temperature_free_energy_is_squared_distance_to_circle():
    r = 1.5
    res = jax.vmap(lambda y: F_INF(r, y))(POINTS)
    norm = jnp.linalg.norm(POINTS, axis=-1)
    np.testing.assert_allclose(res.energy, (norm - r) ** 2, rtol=1e-4, atol=1e-5)
    angles = jnp.arctan2(POINTS[:, 1], POINTS[:, 0])
    np.testing.assert_allclose(jnp.cos(res.z[:, 0] - angles), 1.0, atol=1e-5)  # z = angle of y


def test_free_energy_gradient_is_envelope_derivative():
    """dF/dr = dE/dr at z_hat = -2 (|y| - r); dF/dy = 2 (y - Dec(z_hat))."""
    r, y = 1.5, POINTS[0]
    g_r, g_y = jax.grad(lambda r, y: F_INF(r, y).energy, argnums=(0, 1))(r, y)
    norm = jnp.linalg.norm(y)
    np.testing.assert_allclose(g_r, -2 * (norm - r), rtol=1e-4)
    np.testing.assert_allclose(g_y, 2 * (y - r * y / norm), rtol=1e-4)


def test_free_energy_under_jit_matches_plain():
    plain = F_INF(1.5, POINTS[2]).energy
    np.testing.assert_allclose(jax.jit(lambda y: F_INF(1.5, y).energy)(POINTS[2]), plain)


def test_marginal_free_energy_against_numpy_and_limits():
    angles = jnp.linspace(0, 2 * jnp.pi, 48, endpoint=False)[:, None]
    y = POINTS[3]
    e = np.array([float(ENERGY(1.5, z, y)) for z in angles], np.float64)
    for beta in (0.1, 1.0, 10.0):
        f = hj.energies.marginal_free_energy(ENERGY, angles, beta)(1.5, y)
        np.testing.assert_allclose(f, -np.log(np.sum(np.exp(-beta * e))) / beta, rtol=1e-4)
    f_inf = hj.energies.marginal_free_energy(ENERGY, angles, math.inf)(1.5, y)
    np.testing.assert_allclose(f_inf, e.min(), rtol=1e-6)
    betas = (0.1, 0.3, 1.0, 3.2, 10.0, 100.0)
    fs = [float(hj.energies.marginal_free_energy(ENERGY, angles, b)(1.5, y)) for b in betas]
    assert fs == sorted(fs) and fs[-1] <= f_inf + 1e-6


def test_latent_regularizer_gives_ridge_solution():
    """E = ||y - W z||^2 + lam ||z||^2 is minimized by z = (W^T W + lam I)^-1 W^T y."""
    w = jnp.array([[1.0, 0.5], [0.0, 1.0], [0.3, -0.2]])
    y = jnp.array([1.0, 2.0, -0.5])
    lam = 0.7
    energy = hj.energies.latent_energy(lambda w, z: w @ z, lam=lam)
    res = hj.latent.minimize(energy, w, jnp.zeros(2), y, steps=500, optimizer=optax.sgd(0.1))
    ridge = jnp.linalg.solve(w.T @ w + lam * jnp.eye(2), w.T @ y)
    np.testing.assert_allclose(res.z, ridge, atol=1e-5)


def test_predictor_energy_inference_returns_prediction():
    predict = lambda w, x: jnp.tanh(w * x)
    f = hj.energies.predictor_energy(predict)
    x = jnp.array([0.3, -1.2])
    res = hj.latent.infer(f, 2.0, jnp.zeros(2), x, steps=60, optimizer=optax.sgd(0.25))
    np.testing.assert_allclose(res.z, jnp.tanh(2.0 * x), atol=1e-6)


def test_conditional_latent_energy_passes_x_to_decoder():
    """The horn of PAPER.md: radii depend on x; F(x, y) with x passed through *x."""
    decode = lambda r, z, x: circle(r * (1.0 + x[0]), z)
    energy = hj.energies.latent_energy(decode)
    f = hj.energies.zero_temperature_free_energy(
        energy, STARTS, steps=200, optimizer=optax.sgd(0.05)
    )
    y, x = jnp.array([0.0, 4.0]), jnp.array([1.0])
    np.testing.assert_allclose(f(1.5, y, x).energy, (4.0 - 3.0) ** 2, rtol=1e-4)
