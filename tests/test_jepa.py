"""hj.jepa and hj.hjepa: energies against closed forms, multimodal prediction, H-JEPA shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hjepa_jax as hj
from hjepa_jax.hjepa import HJEPAConfig
from hjepa_jax.jepa import JEPAConfig

W = jnp.array([[1.0], [0.5]])


def shift_predict(params, s_x, z):
    """Pred(s_x, z) = s_x + W z (W fixed in params), a linear latent predictor."""
    return s_x + params @ z if z.shape[0] else s_x


def test_free_energy_is_ridge_minimum_inside_the_ball():
    cfg = JEPAConfig(
        latent_dim=1, latent_steps=300, latent_lr=0.1, latent_l2=0.3, latent_radius=10.0
    )
    s_x, s_y = jnp.array([0.2, -0.1]), jnp.array([1.0, 0.5])
    res = hj.jepa.infer_latent(W, shift_predict, s_x, s_y, cfg, jax.random.PRNGKey(0))
    r = s_y - s_x
    z = jnp.linalg.solve(W.T @ W + 0.3 * jnp.eye(1), W.T @ r)  # ridge
    np.testing.assert_allclose(res.z, z, atol=1e-5)
    expected = jnp.sum((r - W @ z) ** 2) + 0.3 * jnp.sum(z**2)
    np.testing.assert_allclose(res.energy, expected, rtol=1e-5)


def test_ball_limits_the_latent():
    cfg = JEPAConfig(
        latent_dim=1, latent_steps=200, latent_lr=0.1, latent_l2=0.0, latent_radius=0.5
    )
    res = hj.jepa.infer_latent(
        W, shift_predict, jnp.zeros(2), jnp.array([4.0, 2.0]), cfg, jax.random.PRNGKey(0)
    )
    np.testing.assert_allclose(res.z, [0.5], atol=1e-6)  # the ridge z = 4 is cut to the ball


def test_deterministic_predictor_energy_and_loss_terms():
    cfg = JEPAConfig(latent_dim=0)
    s_x = jax.random.normal(jax.random.PRNGKey(0), (16, 2))
    s_y = s_x + 1.0
    loss, m = hj.jepa.loss(W, shift_predict, s_x, s_y, cfg, jax.random.PRNGKey(1))
    np.testing.assert_allclose(m["energy"], 2.0, rtol=1e-6)  # ||s_y - s_x||^2 = 2
    _, terms = hj.losses.vicreg(s_x, s_y)
    expected = 25 * 2.0 / 2 + 25 * terms["variance"] + terms["covariance"]  # F per dimension
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    _, m = hj.jepa.loss(
        W, shift_predict, jnp.ones((8, 2)), jnp.ones((8, 2)), cfg, jax.random.PRNGKey(1)
    )
    np.testing.assert_allclose(m["variance"], 0.99, rtol=1e-5)  # collapsed: full hinge
    assert m["embedding_std"] == 0.0


def test_latent_jepa_predicts_both_modes_where_a_deterministic_one_averages():
    """y = x + c [1, 0] with c = +-1 at random: the future is bimodal."""
    kx, kc = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(kx, (512, 2))
    c = jnp.where(jax.random.bernoulli(kc, 0.5, (512, 1)), 1.0, -1.0)
    y = x + c * jnp.array([1.0, 0.0])

    def predict(p, s_x, z):
        return p["a"] @ s_x + p["b"] + (p["w"] @ z if z.shape[0] else 0.0)

    def fit(cfg):
        params = {"a": jnp.eye(2), "b": jnp.zeros(2), "w": 0.1 * jnp.ones((2, cfg.latent_dim))}
        loss_fn = lambda p, batch, key: hj.jepa.loss(p, predict, *batch, cfg, key)
        res = hj.train.train(
            loss_fn,
            params,
            optax.adam(0.02),
            (x, y),
            loop=hj.train.LoopConfig(steps=300, batch_size=128, log_every=300),
            key=jax.random.PRNGKey(2),
        )
        return res.state.params, res.history[-1]["energy"]

    common = dict(variance=0.0, covariance=0.0, prediction=1.0)
    p_det, f_det = fit(JEPAConfig(latent_dim=0, **common))
    p_lat, f_lat = fit(
        JEPAConfig(
            latent_dim=1,
            latent_steps=20,
            latent_lr=0.3,
            latent_starts=2,
            latent_l2=0.01,
            latent_radius=1.0,
            **common,
        )
    )
    assert f_det == pytest.approx(1.0, abs=0.15)  # the mean of the two futures: error 1
    assert f_lat < 0.2
    modes = hj.jepa.predict_modes(p_lat, predict, jnp.zeros(2), jnp.array([[-1.0], [1.0]]))
    np.testing.assert_allclose(jnp.sort(modes[:, 0]), [-1.0, 1.0], atol=0.25)


def test_hjepa_windows_levels_and_baseline():
    s1 = jnp.arange(2 * 8 * 3, dtype=jnp.float32).reshape(2, 8, 3)
    w = hj.hjepa.windows(s1, 4)
    assert w.shape == (2, 2, 12)
    np.testing.assert_array_equal(w[0, 1], s1[0, 4:8].reshape(-1))
    with pytest.raises(ValueError, match="fewer than two windows of 5"):
        hj.hjepa.windows(s1, 5)
    np.testing.assert_allclose(hj.hjepa.copy_last_energy(s1), 27.0)  # steps of 3 in 3 dims

    enc2 = lambda p, x: p @ x
    params = {
        "pred1": jnp.eye(3)[:, :1],
        "enc2": jnp.ones((2, 12)) / 12,
        "pred2": jnp.eye(2)[:, :1],
    }
    pred = lambda p, s, z: s + (p @ z if z.shape[0] else 0.0)
    cfg = HJEPAConfig(level1=JEPAConfig(latent_dim=1), level2=JEPAConfig(latent_dim=0), window=4)
    loss, m = hj.hjepa.loss(params, s1, pred, enc2, pred, cfg, jax.random.PRNGKey(0))
    assert jnp.isfinite(loss)
    assert {"level1_energy", "level2_energy", "level1_embedding_std"} <= set(m)
    grads = jax.grad(
        lambda p: hj.hjepa.loss(p, s1, pred, enc2, pred, cfg, jax.random.PRNGKey(0))[0]
    )(params)
    assert all(jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
