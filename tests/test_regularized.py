"""hj.losses regularized methods against numpy and reference solvers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hjepa_jax as hj

RNG = np.random.default_rng(0)


def vicreg_numpy(a, b, sim=25.0, var=25.0, cov=1.0):
    """The VICReg reference code's formulas, in float64 numpy."""
    n, d = a.shape
    inv = np.mean((a - b) ** 2)

    def terms(s):
        s = s - s.mean(0)
        std = np.sqrt(s.var(0, ddof=1) + 1e-4)
        c = s.T @ s / (n - 1)
        off = (c**2).sum() - (np.diag(c) ** 2).sum()
        return np.mean(np.maximum(0, 1 - std)), off / d

    (va, ca), (vb, cb) = terms(a), terms(b)
    return sim * inv + var * (va + vb) / 2 + cov * (ca + cb), inv, (va + vb) / 2, ca + cb


def test_vicreg_matches_reference_formulas():
    a = RNG.normal(size=(32, 8)) * np.linspace(0.1, 2.0, 8)
    b = a + 0.3 * RNG.normal(size=(32, 8))
    loss, m = hj.losses.vicreg(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
    ref = vicreg_numpy(a, b)
    np.testing.assert_allclose(loss, ref[0], rtol=1e-4)
    np.testing.assert_allclose(
        [m["invariance"], m["variance"], m["covariance"]], ref[1:], rtol=1e-4
    )
    # Collapsed embeddings pay the full variance hinge: 1 - sqrt(1e-4) per dimension.
    _, m = hj.losses.vicreg(jnp.ones((16, 4)), jnp.ones((16, 4)))
    np.testing.assert_allclose(m["variance"], 0.99, rtol=1e-5)
    with pytest.raises(ValueError, match="B >= 2"):
        hj.losses.vicreg(jnp.ones((1, 4)), jnp.ones((1, 4)))


def test_barlow_twins_matches_numpy():
    a, b = RNG.normal(size=(64, 6)), RNG.normal(size=(64, 6))
    za = (a - a.mean(0)) / (a.std(0) + 1e-6)
    zb = (b - b.mean(0)) / (b.std(0) + 1e-6)
    c = za.T @ zb / 64
    ref = ((1 - np.diag(c)) ** 2).sum() + 5e-3 * ((c**2).sum() - (np.diag(c) ** 2).sum())
    loss, _ = hj.losses.barlow_twins(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
    np.testing.assert_allclose(loss, ref, rtol=1e-4)


def lasso_coordinate_descent(w, y, l1, sweeps=2000):
    """Reference solver (independent of ours): cyclic coordinate descent on
    ||y - W z||^2 + l1 |z|_1, in float64."""
    z = np.zeros(w.shape[1])
    col_sq = (w**2).sum(0)
    for _ in range(sweeps):
        for j in range(len(z)):
            r = y - w @ z + w[:, j] * z[j]
            rho = w[:, j] @ r
            z[j] = np.sign(rho) * max(abs(rho) - l1 / 2, 0) / col_sq[j]
    return z


@pytest.mark.parametrize("accelerated", [True, False])
def test_ista_and_fista_reach_the_lasso_optimum(accelerated):
    w = RNG.normal(size=(12, 20)) / np.sqrt(12)
    y = w[:, :3] @ np.array([1.5, -2.0, 1.0]) + 0.05 * RNG.normal(size=12)
    l1 = 0.1
    ref = lasso_coordinate_descent(w, y, l1)
    res = hj.losses.sparse_code(
        jnp.asarray(w, jnp.float32),
        jnp.asarray(y, jnp.float32),
        l1,
        steps=3000 if not accelerated else 500,
        accelerated=accelerated,
    )
    np.testing.assert_allclose(res.z, ref, atol=2e-3)
    e_ref = np.sum((y - w @ ref) ** 2) + l1 * np.abs(ref).sum()
    np.testing.assert_allclose(res.energy, e_ref, rtol=1e-4)
    # KKT: |2 W^T (y - W z)| <= l1 everywhere, = l1 on the support.
    grad = 2 * w.T @ (y - w @ np.asarray(res.z, np.float64))
    assert np.all(np.abs(grad) <= l1 + 1e-3)
    support = np.abs(np.asarray(res.z)) > 1e-6
    np.testing.assert_allclose(np.abs(grad[support]), l1, atol=1e-3)


def test_fista_beats_ista_at_equal_steps_and_orthonormal_closed_form():
    w = RNG.normal(size=(30, 30))
    y = RNG.normal(size=30)
    wj, yj = jnp.asarray(w, jnp.float32), jnp.asarray(y, jnp.float32)
    e_fista = hj.losses.sparse_code(wj, yj, 0.5, steps=50).energy
    e_ista = hj.losses.sparse_code(wj, yj, 0.5, steps=50, accelerated=False).energy
    assert e_fista < e_ista
    q, _ = np.linalg.qr(w)  # orthonormal W: z* = soft_threshold(W^T y, l1 / 2)
    res = hj.losses.sparse_code(jnp.asarray(q, jnp.float32), yj, 0.5, steps=100)
    np.testing.assert_allclose(res.z, hj.losses.soft_threshold(q.T @ y, 0.25), atol=1e-5)


def test_sparse_code_gradient_is_the_envelope_derivative():
    w = jnp.asarray(RNG.normal(size=(8, 10)) / 3, jnp.float32)
    y = jnp.asarray(RNG.normal(size=8), jnp.float32)
    g = jax.grad(lambda w: hj.losses.sparse_code(w, y, 0.2, steps=400).energy)(w)
    z = hj.losses.sparse_code(w, y, 0.2, steps=400).z
    np.testing.assert_allclose(g, -2 * jnp.outer(y - w @ z, z), atol=1e-4)


def test_kmeans_free_energy_is_distance_to_nearest_centroid():
    centroids = jnp.asarray(RNG.normal(size=(5, 3)), jnp.float32)
    for y in RNG.normal(size=(10, 3)):
        d = ((np.asarray(centroids) - y) ** 2).sum(1)
        f, z = hj.losses.kmeans_free_energy(centroids, jnp.asarray(y, jnp.float32))
        np.testing.assert_allclose(f, d.min(), rtol=1e-5)
        np.testing.assert_array_equal(z, np.eye(5)[d.argmin()])


def test_gaussian_kl_and_vae_energy():
    np.testing.assert_allclose(hj.losses.gaussian_kl(jnp.zeros(3), jnp.zeros(3)), 0.0)
    mean, log_var = jnp.array([1.0, -0.5]), jnp.array([0.2, -0.3])
    ref = 0.5 * np.sum(np.exp([0.2, -0.3]) + np.array([1.0, 0.25]) - 1 - np.array([0.2, -0.3]))
    np.testing.assert_allclose(hj.losses.gaussian_kl(mean, log_var), ref, rtol=1e-6)
    decode = lambda w, z: w * z
    key = jax.random.PRNGKey(0)
    z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, (2,))
    y = jnp.array([0.3, 0.1])
    e = hj.losses.vae_energy(decode, 2.0, mean, log_var, y, key, beta=0.5)
    np.testing.assert_allclose(e, jnp.sum((y - 2 * z) ** 2) + 0.5 * ref, rtol=1e-5)
