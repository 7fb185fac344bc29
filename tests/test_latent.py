"""hj.latent against independent computations: closed forms, grids, finite differences."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hjepa_jax as hj

# A quadratic energy E(w, z) = 1/2 z^T A z - b^T z with w = (A, b): z* = A^-1 b,
# F(w) = -1/2 b^T A^-1 b, dF/db = -z*, dF/dA = 1/2 z* z*^T.
A = jnp.array([[2.0, 0.5, 0.0], [0.5, 1.5, 0.2], [0.0, 0.2, 1.0]])
B = jnp.array([1.0, -2.0, 0.5])


def quadratic(w, z):
    a, b = w
    return 0.5 * z @ a @ z - b @ z


def closed_form(a, b):
    z = jnp.linalg.solve(a, b)
    return z, -0.5 * b @ z


def test_minimize_reaches_closed_form_minimum():
    res = hj.latent.minimize(quadratic, (A, B), jnp.zeros(3), steps=400, optimizer=optax.sgd(0.3))
    z_star, f_star = closed_form(A, B)
    np.testing.assert_allclose(res.z, z_star, atol=1e-5)
    np.testing.assert_allclose(res.energy, f_star, atol=1e-6)
    assert res.trace.shape == (400,)
    assert res.trace[0] == 0.0  # E at z0 = 0
    assert np.all(np.diff(np.asarray(res.trace)) <= 1e-6)  # gradient descent never goes up


def test_envelope_gradient_matches_closed_form():
    f = lambda w: (
        hj.latent.minimize(quadratic, w, jnp.zeros(3), steps=400, optimizer=optax.sgd(0.3)).energy
    )
    g_a, g_b = jax.grad(f)((A, B))
    z_star, _ = closed_form(A, B)
    np.testing.assert_allclose(g_b, -z_star, atol=1e-5)
    np.testing.assert_allclose(g_a, 0.5 * jnp.outer(z_star, z_star), atol=1e-5)


def test_unroll_gradient_matches_finite_differences_after_few_steps():
    """After 3 steps z is not optimal: only the unrolled gradient is exact there.

    F(b) after k steps is quadratic in b, so central differences are exact up to rounding.
    """
    f = lambda b, mode: (
        hj.latent.minimize(
            quadratic, (A, b), jnp.zeros(3), steps=3, optimizer=optax.sgd(0.3), grad=mode
        ).energy
    )
    eps = 0.05
    fd = np.array(
        [(f(B + eps * e, "unroll") - f(B - eps * e, "unroll")) / (2 * eps) for e in np.eye(3)]
    )
    np.testing.assert_allclose(jax.grad(f)(B, "unroll"), fd, atol=1e-4)
    assert not np.allclose(jax.grad(f)(B, "envelope"), fd, atol=1e-2)


def test_jit_vmap_grad_agree_with_plain_call():
    run = lambda b: hj.latent.minimize(
        quadratic, (A, b), jnp.zeros(3), steps=50, optimizer=optax.sgd(0.3)
    )
    bs = jnp.stack([B, -B, 2 * B])
    plain = [run(b) for b in bs]
    jitted = jax.jit(run)(bs[0])
    batched = jax.vmap(run)(bs)
    np.testing.assert_allclose(jitted.z, plain[0].z, rtol=1e-6)
    for i, p in enumerate(plain):
        np.testing.assert_allclose(batched.z[i], p.z, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(batched.energy[i], p.energy, rtol=1e-5)
    grads = jax.vmap(jax.grad(lambda b: run(b).energy))(bs)
    np.testing.assert_allclose(grads[1], jax.grad(lambda b: run(b).energy)(bs[1]), rtol=1e-5)


def test_jit_does_not_retrace_for_new_values():
    traces = []

    @jax.jit
    def f(b):
        traces.append(1)
        return hj.latent.minimize(quadratic, (A, b), jnp.zeros(3), steps=10).energy

    f(B)
    f(2 * B)
    assert len(traces) == 1


def test_multistart_finds_global_minimum_of_double_well():
    """A tilted double well has two minima; the lowest of several starts is the grid argmin."""
    energy = lambda w, z: jnp.sum((z**2 - 1.0) ** 2 + w * z)
    starts = jnp.linspace(-2.0, 2.0, 5)[:, None]
    for tilt in (0.3, -0.3):
        run = lambda z0, tilt=tilt: hj.latent.minimize(
            energy, tilt, z0, steps=300, optimizer=optax.sgd(0.02)
        )
        res = hj.latent.lowest(jax.vmap(run)(starts))
        grid = np.linspace(-2, 2, 400_001)
        e_grid = (grid**2 - 1) ** 2 + tilt * grid
        np.testing.assert_allclose(res.z[0], grid[np.argmin(e_grid)], atol=1e-3)
        np.testing.assert_allclose(res.energy, e_grid.min(), atol=1e-5)
        single = hj.latent.minimize(
            energy, tilt, jnp.array([np.sign(tilt) * 1.0]), steps=300, optimizer=optax.sgd(0.02)
        )
        assert single.energy > res.energy + 0.1  # one start stays in the wrong well


def test_any_optax_optimizer_and_pytree_latent():
    energy = lambda w, z: jnp.sum((z["a"] - w) ** 2) + jnp.sum((z["b"] + w) ** 2)
    z0 = {"a": jnp.zeros(2), "b": jnp.zeros(2)}
    opt = optax.adam(optax.cosine_decay_schedule(0.1, 500))
    res = hj.latent.minimize(energy, 1.5, z0, steps=500, optimizer=opt)
    np.testing.assert_allclose(res.z["a"], 1.5, atol=1e-3)
    np.testing.assert_allclose(res.z["b"], -1.5, atol=1e-3)


def _grad_temp_bytes(mode, steps):
    """Scratch memory of the gradient of a non-quadratic F (a linear step saves nothing)."""
    energy = lambda b, z: jnp.sum(jnp.cosh(z - b))
    f = lambda b: hj.latent.minimize(energy, b, jnp.zeros(3), steps=steps, grad=mode).energy
    analysis = jax.jit(jax.grad(f)).lower(B).compile().memory_analysis()
    if analysis is None:
        pytest.skip("this backend gives no memory analysis")
    return analysis.temp_size_in_bytes


def test_envelope_memory_does_not_grow_with_steps_unroll_does():
    assert _grad_temp_bytes("envelope", 1000) <= _grad_temp_bytes("envelope", 10) + 1024
    assert _grad_temp_bytes("unroll", 1000) > _grad_temp_bytes("unroll", 10) + 10_000


@pytest.mark.parametrize(
    ("kwargs", "z0", "energy", "match"),
    [
        ({"steps": 0}, jnp.zeros(3), quadratic, "steps must be an integer >= 1"),
        ({"steps": 2.5}, jnp.zeros(3), quadratic, "steps must be an integer >= 1"),
        ({"grad": "implicit"}, jnp.zeros(3), quadratic, "grad must be one of"),
        ({}, jnp.zeros(3, jnp.int32), quadratic, "floating-point"),
        ({}, jnp.zeros(3), lambda w, z: z * 2.0, r"scalar for one example, got shape \(3,\)"),
        ({}, jnp.zeros(4), quadratic, "failed for z0/args shapes"),
    ],
)
def test_bad_arguments_raise_named_errors(kwargs, z0, energy, match):
    with pytest.raises(ValueError, match=match):
        hj.latent.minimize(energy, (A, B), z0, **kwargs)


def test_infer_finds_argmin_over_y():
    free_energy = lambda w, y, x: jnp.sum((y - w * x) ** 2)
    res = hj.latent.infer(
        free_energy, 2.0, jnp.zeros(2), jnp.array([0.5, -1.0]), steps=100, optimizer=optax.sgd(0.25)
    )
    np.testing.assert_allclose(res.z, [1.0, -2.0], atol=1e-6)
    np.testing.assert_allclose(res.energy, 0.0, atol=1e-10)


def test_soft_min_matches_numpy_and_is_a_sum():
    e = np.array([[0.3, 1.2, -0.5, 2.0], [4.0, 4.0, 4.0, 4.0]], np.float32)
    for beta in (0.1, 1.0, 7.0):
        ref = -np.log(np.sum(np.exp(-beta * e.astype(np.float64)), axis=-1)) / beta
        np.testing.assert_allclose(hj.latent.soft_min(e, beta), ref, rtol=1e-5)
    # N equal energies: F_beta = e - log(N) / beta (a sum, not a mean).
    np.testing.assert_allclose(hj.latent.soft_min(e[1], 2.0), 4.0 - math.log(4) / 2.0, rtol=1e-6)


def test_soft_min_limits_and_stability():
    e = jnp.array([1e4, 1e4 + 1.0, 2e4])
    assert jnp.isfinite(hj.latent.soft_min(e, 100.0))
    np.testing.assert_allclose(hj.latent.soft_min(e, 1e3), 1e4, rtol=1e-6)
    assert hj.latent.soft_min(e, math.inf) == 1e4
    assert jnp.isfinite(hj.latent.soft_min(jnp.array([1.0, 2.0]), 1e-6))
    e = jnp.array([[0.5, 3.0], [1.0, -1.0]])
    np.testing.assert_allclose(hj.latent.soft_min(e, math.inf, axis=0), [0.5, -1.0])
    f_b = [float(hj.latent.soft_min(e[0], b)) for b in (0.1, 1.0, 10.0, 100.0)]
    assert f_b == sorted(f_b) and f_b[-1] <= 0.5  # rises towards the min as beta grows
    # jit with a traced beta agrees.
    np.testing.assert_allclose(jax.jit(hj.latent.soft_min)(e, 3.0), hj.latent.soft_min(e, 3.0))


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan")])
def test_soft_min_rejects_bad_beta(beta):
    with pytest.raises(ValueError, match="beta must be > 0"):
        hj.latent.soft_min(jnp.ones(3), beta)
