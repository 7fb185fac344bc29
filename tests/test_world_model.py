"""hj.world_model: learned from observations of a 2-D point mass, then planned with."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hjepa_jax as hj
from hjepa_jax.world_model import WorldModelConfig

OBS = jnp.asarray(np.random.default_rng(0).normal(size=(6, 2)), jnp.float32)  # o = M p


def trajectories(key, n=512, t=8):
    """Positions p_{t+1} = p_t + a_t, a uniform in [-1, 1]^2, observed as o = M p."""
    k_p, k_a = jax.random.split(key)
    actions = jax.random.uniform(k_a, (n, t, 2), minval=-1.0, maxval=1.0)
    p0 = jax.random.uniform(k_p, (n, 1, 2), minval=-3.0, maxval=3.0)
    positions = jnp.concatenate([p0, p0 + jnp.cumsum(actions, axis=1)], axis=1)
    return positions @ OBS.T, actions, positions


ENC = hj.nn.MLP((32, 4))
PRED = hj.nn.MLP((64, 4))
INV = hj.nn.MLP((32, 2))
predict = lambda p, s, a: s + PRED.apply(p, jnp.concatenate([s, a]))
inverse = lambda p, s, n: INV.apply(p, jnp.concatenate([s, n]))


def loss_fn(params, batch, key):
    del key
    obs, actions = batch
    states = ENC.apply(params["enc"], obs)
    return hj.world_model.loss(
        params, predict, states, actions, WorldModelConfig(horizon=4), inverse
    )


@pytest.fixture(scope="module")
def trained():
    obs, actions, positions = trajectories(jax.random.PRNGKey(0))
    k = jax.random.split(jax.random.PRNGKey(1), 3)
    params = {
        "enc": ENC.init(k[0], jnp.zeros(6)),
        "pred": PRED.init(k[1], jnp.zeros(6)),
        "inv": INV.init(k[2], jnp.zeros(8)),
    }
    res = hj.train.train(
        loss_fn,
        params,
        optax.adam(3e-3),
        (obs, actions),
        loop=hj.train.LoopConfig(steps=1500, batch_size=64, log_every=500),
        key=jax.random.PRNGKey(2),
    )
    return res.state.params, res.history


def test_world_model_predicts_better_than_copy_last_and_keeps_position(trained):
    params, history = trained
    obs, actions, positions = trajectories(jax.random.PRNGKey(5), n=256)
    states = ENC.apply(params["enc"], obs)
    energy = jnp.mean(
        jax.vmap(lambda s, a: hj.world_model.multistep_energy(params["pred"], predict, s, a, 4))(
            states, actions
        )
    )
    copy = jnp.mean(jnp.sum((states[:, 1:] - states[:, :-1]) ** 2, -1)) / states.shape[-1]
    assert energy < 0.1 * copy
    flat_s, flat_p = np.asarray(states.reshape(-1, 4)), np.asarray(positions.reshape(-1, 2))
    r2, _ = hj.probes.regression_r2(flat_s[:1000], flat_p[:1000], flat_s[1000:], flat_p[1000:])
    assert r2 > 0.95  # the state still says where the point is: no collapse
    assert history[-1]["embedding_std"] > 0.3


def test_planning_in_the_learned_representation_reaches_the_goal(trained):
    params, _ = trained
    encode = lambda p: ENC.apply(params["enc"], p @ OBS.T)
    start, goal = jnp.array([-2.0, 1.0]), jnp.array([1.5, -1.5])
    plan = hj.planning.cem(
        predict,
        params["pred"],
        encode(start),
        encode(goal),
        jax.random.PRNGKey(0),
        horizon=6,
        action_dim=2,
        bound=1.0,
        samples=256,
        iterations=10,
    )
    true_final = start + jnp.sum(plan.actions, axis=0)  # execute the plan in the real world
    assert jnp.linalg.norm(true_final - goal) < 0.6


def test_short_trajectories_and_missing_inverse_are_named_errors():
    obs, actions, _ = trajectories(jax.random.PRNGKey(0), n=4, t=3)
    states = jnp.zeros((4, 4, 4))
    with pytest.raises(ValueError, match="shorter than H=4"):
        hj.world_model.loss({"pred": None}, predict, states, actions, WorldModelConfig())
    with pytest.raises(ValueError, match="needs an `inverse`"):
        hj.world_model.loss(
            {"pred": PRED.init(jax.random.PRNGKey(0), jnp.zeros(6))},
            predict,
            jnp.zeros((4, 5, 4)),
            jnp.zeros((4, 4, 2)),
            WorldModelConfig(horizon=2),
        )
    with pytest.raises(ValueError, match="needs a `context`"):
        hj.world_model.loss(
            {"pred": None},
            lambda p, s, a: s,
            jnp.zeros((4, 5, 4)),
            jnp.zeros((4, 4, 2)),
            WorldModelConfig(horizon=2, inverse_dynamics=0.0, context=1.0),
        )
    with pytest.raises(ValueError, match="context_temperature"):
        WorldModelConfig(context_temperature=0.0)


def test_context_term_is_infonce_of_each_trajectorys_ends_and_trains_the_encoder():
    """C = InfoNCE(h(s_0), h(s_T)) over the batch, by hand: cross-entropy of each row's cosine
    logits (temperature t) with its own trajectory as the class; its gradient reaches the
    states (so the encoder), and weight w adds w * C to the loss."""
    obs, actions, _ = trajectories(jax.random.PRNGKey(3), n=6, t=4)
    k_enc, k_ctx = jax.random.split(jax.random.PRNGKey(4))
    head = hj.nn.MLP((8, 5))
    params = {"enc": ENC.init(k_enc, jnp.zeros(6)), "pred": None}
    params["ctx"] = head.init(k_ctx, jnp.zeros(4))
    context = lambda p, s: head.apply(p, s)
    cfg = WorldModelConfig(horizon=2, prediction=0.0, variance=0.0, covariance=0.0,
                           inverse_dynamics=0.0, context=2.0, context_temperature=0.5)  # fmt: skip

    def total(params):
        states = ENC.apply(params["enc"], obs)
        return hj.world_model.loss(params, lambda p, s, a: s, states, actions, cfg, None, context)

    value, metrics = total(params)
    states = np.asarray(ENC.apply(params["enc"], obs), np.float64)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
    h0 = unit(np.asarray(head.apply(params["ctx"], states[:, 0]), np.float64))
    h1 = unit(np.asarray(head.apply(params["ctx"], states[:, -1]), np.float64))
    logits = h0 @ h1.T / 0.5
    by_hand = np.mean(np.log(np.exp(logits).sum(1)) - np.diag(logits))
    np.testing.assert_allclose(float(metrics["context"]), by_hand, rtol=1e-5)
    np.testing.assert_allclose(float(value), 2.0 * by_hand, rtol=1e-5)
    grads = jax.jit(jax.grad(lambda p: total(p)[0]))(params)
    assert max(float(jnp.abs(g).max()) for g in jax.tree_util.tree_leaves(grads["enc"])) > 0
    jitted, _ = jax.jit(total)(params)
    np.testing.assert_allclose(float(jitted), float(value), rtol=1e-5)


def test_hard_rollouts_weigh_by_their_energy_to_the_power_alpha():
    """cfg.hard = alpha: the prediction term is sum(e^(1 + alpha)) / sum(e^alpha) over the
    rollouts' energies e, and its gradient that of the weighted mean with the weights held
    constant; both by hand in closed form for the predictor s + a + b; alpha 0 is the plain
    mean, which the "prediction" metric always reports; a negative alpha is refused by name."""
    states = np.asarray(jax.random.normal(jax.random.PRNGKey(5), (3, 6, 2)), np.float64)
    actions = np.asarray(jax.random.normal(jax.random.PRNGKey(6), (3, 5, 2)), np.float64)
    bias = np.array([0.3, -0.2])
    # Horizon 2 from each start t < 4: residuals of the first and second predicted steps.
    r1 = states[:, :4] + actions[:, :4] + bias - states[:, 1:5]  # [3, 4, 2]
    r2 = states[:, :4] + actions[:, :4] + actions[:, 1:5] + 2 * bias - states[:, 2:6]
    e = (np.sum(r1**2, -1) + np.sum(r2**2, -1)) / 4  # mean over 2 steps, / D = 2
    de = (2 * r1 + 4 * r2) / 4  # de/db, [3, 4, 2]
    predict = lambda b, s, a: s + a + b
    base = dict(horizon=2, prediction=1.0, variance=0.0, covariance=0.0, inverse_dynamics=0.0)
    for alpha in (0.0, 1.0, 2.0):
        cfg = WorldModelConfig(**base, hard=alpha)
        run = jax.jit(
            lambda b, cfg=cfg: hj.world_model.loss(
                {"pred": b}, predict, jnp.asarray(states), jnp.asarray(actions), cfg
            )
        )
        value, metrics = run(jnp.asarray(bias, jnp.float32))
        w = e**alpha / np.mean(e**alpha)
        np.testing.assert_allclose(float(value), np.mean(w * e), rtol=1e-5)
        np.testing.assert_allclose(float(metrics["prediction"]), e.mean(), rtol=1e-5)
        grad = jax.grad(lambda b, f=run: f(b)[0])(jnp.asarray(bias, jnp.float32))
        np.testing.assert_allclose(
            grad, np.mean(w[..., None] * de, axis=(0, 1)), rtol=1e-4, atol=1e-6
        )
    assert float(value) > e.mean()  # alpha 2: the hard rollouts pull the mean up
    with pytest.raises(ValueError, match="hard"):
        WorldModelConfig(hard=-1.0)
