"""hj.hjepa's learned level 2 (macro-actions over k level-1 steps) and hj.planning.hierarchical
planning over its codes."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hjepa_jax as hj


def encode_tanh(w, chunk):
    """b = tanh(W chunk): a bounded code [A2] of one chunk [k * A]."""
    return jnp.tanh(w @ chunk)


def encode_linear(w, chunk):
    return w @ chunk


def predict_shift(v, s, b):
    """s_{t+k} = s_t + V b."""
    return s + v @ b


def test_macro_sequences_by_hand():
    states = np.arange(2 * 8 * 3, dtype=np.float32).reshape(2, 8, 3)  # T = 7
    actions = np.arange(2 * 7 * 2, dtype=np.float32).reshape(2, 7, 2)
    coarse, chunks = hj.hjepa.macro_sequences(jnp.asarray(states), jnp.asarray(actions), 3)
    # J = 7 // 3 = 2: states 0, 3, 6; chunks of actions 0..2 and 3..5 (action 6 dropped).
    np.testing.assert_array_equal(coarse, states[:, [0, 3, 6]])
    assert chunks.shape == (2, 2, 6)
    for b in range(2):
        for j in range(2):
            np.testing.assert_array_equal(chunks[b, j], actions[b, 3 * j : 3 * j + 3].ravel())


def test_macro_sequences_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"macro_sequences: T=2 is too small: .* k=3"):
        hj.hjepa.macro_sequences(jnp.zeros((2, 3, 3)), jnp.zeros((2, 2, 2)), 3)
    match = r"macro_sequences: actions.shape=\(2, 6, 2\), but actions must have shape \(2, 7, \*\)"
    with pytest.raises(ValueError, match=match):
        hj.hjepa.macro_sequences(jnp.zeros((2, 8, 3)), jnp.zeros((2, 6, 2)), 3)
    with pytest.raises(ValueError, match=r"macro_sequences: states.shape=\(8, 3\), but states"):
        hj.hjepa.macro_sequences(jnp.zeros((8, 3)), jnp.zeros((7, 2)), 3)
    with pytest.raises(ValueError, match=r"macro_sequences: k=0, but k must be an integer >= 1"):
        hj.hjepa.macro_sequences(jnp.zeros((2, 8, 3)), jnp.zeros((2, 7, 2)), 0)
    with pytest.raises(ValueError, match=r"MacroConfig: code_std=-1.0, but code_std must be"):
        hj.hjepa.MacroConfig(code_std=-1.0)


def _problem(seed=0, b=3, t=10, d=2, a=2, a2=3, k=3):
    rng = np.random.default_rng(seed)
    states = rng.normal(size=(b, t + 1, d)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(b, t, a)).astype(np.float32)
    params = {
        "enc_a": rng.normal(size=(a2, k * a)).astype(np.float32),
        "pred2": rng.normal(size=(d, a2)).astype(np.float32),
    }
    return states, actions, params


def _loss_by_loops(params, states, actions, cfg):
    w, v = np.asarray(params["enc_a"], np.float64), np.asarray(params["pred2"], np.float64)
    b_n, t, d = actions.shape[0], actions.shape[1], states.shape[-1]
    k, h = cfg.k, cfg.horizon
    j = t // k
    codes, energies, copy = [], [], []
    for b in range(b_n):
        coarse = [states[b, i * k] for i in range(j + 1)]
        code = [np.tanh(w @ actions[b, i * k : (i + 1) * k].ravel()) for i in range(j)]
        codes += code
        errors = []
        for start in range(j - h + 1):
            s = coarse[start]
            for step in range(h):
                s = s + v @ code[start + step]
                errors.append(np.sum((s - coarse[start + step + 1]) ** 2) / d)
        energies.append(np.mean(errors))
        copy += [np.sum((coarse[i + 1] - coarse[i]) ** 2) / d for i in range(j)]
    codes = np.stack(codes)
    energy = np.mean(energies)
    hinge = np.mean(np.maximum(cfg.code_std - np.sqrt(codes.var(axis=0) + 1e-4), 0))
    loss = cfg.prediction * energy + cfg.code_variance * hinge
    return loss, energy, np.mean(copy), np.mean(codes.std(axis=0))


def test_macro_loss_matches_loops():
    states, actions, params = _problem()
    cfg = hj.hjepa.MacroConfig(k=3, horizon=2, prediction=2.0, code_variance=3.0, code_std=0.9)
    total, m = hj.hjepa.macro_loss(params, encode_tanh, predict_shift, states, actions, cfg)
    loss, energy, copy, code_std = _loss_by_loops(params, states, actions, cfg)
    assert loss > 2.0 * energy  # the hinge is active: the check covers it
    np.testing.assert_allclose(total, loss, rtol=1e-5)
    np.testing.assert_allclose(m["level2_energy"], energy, rtol=1e-5)
    np.testing.assert_allclose(m["level2_copy_last"], copy, rtol=1e-5)
    np.testing.assert_allclose(m["code_std"], code_std, rtol=1e-5)


def test_macro_loss_jit_and_grad_agree_with_the_plain_call():
    states, actions, params = _problem(seed=1)
    cfg = hj.hjepa.MacroConfig(k=3, horizon=3)

    def f(p):
        return hj.hjepa.macro_loss(p, encode_tanh, predict_shift, states, actions, cfg)

    plain, m_plain = f(params)
    jitted, m_jit = jax.jit(f)(params)
    np.testing.assert_allclose(jitted, plain, rtol=1e-5)
    for name in m_plain:
        np.testing.assert_allclose(m_jit[name], m_plain[name], rtol=1e-5)
    grad = jax.jit(jax.grad(lambda p: f(p)[0]))
    grads = grad(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))
    assert float(jnp.sum(jnp.abs(grads["enc_a"]))) > 0
    # A collapsed code (all zeros) still has a finite gradient.
    grads = grad({**params, "enc_a": jnp.zeros_like(params["enc_a"])})
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))


def test_macro_loss_errors_name_the_argument():
    states, actions, params = _problem()
    cfg = hj.hjepa.MacroConfig(k=3, horizon=4)  # T = 10: 3 macro steps < 4
    with pytest.raises(ValueError, match=r"macro_loss: T=10 is too small: .* horizon=4"):
        hj.hjepa.macro_loss(params, encode_tanh, predict_shift, states, actions, cfg)
    cfg = hj.hjepa.MacroConfig(k=3)
    with pytest.raises(ValueError, match=r"macro_loss: params keys=\['pred2',\] lack enc_a"):
        hj.hjepa.macro_loss({"pred2": 0}, encode_tanh, predict_shift, states, actions, cfg)
    with pytest.raises(ValueError, match=r"macro_loss: predict2\(pred2, s \[D\], b \[A2\]\)"):
        wrong = {**params, "pred2": params["pred2"][:, :2]}  # codes have 3 entries
        hj.hjepa.macro_loss(wrong, encode_tanh, predict_shift, states, actions, cfg)


def test_linear_level2_learns_the_macro_dynamics_of_an_integrator():
    """s_{t+1} = s_t + a_t: s_{t+k} = s_t + sum of the chunk's actions, which a linear code
    W chunk [2] and s + V b can express. Trained from trajectories alone, the level-2 energy
    falls far below the copy-last baseline while the codes keep their spread."""
    d, k, t, batch = 2, 6, 12, 64
    actions = jax.random.uniform(jax.random.PRNGKey(0), (batch, t, d), minval=-1.0, maxval=1.0)
    s0 = jax.random.normal(jax.random.PRNGKey(1), (batch, 1, d))
    states = jnp.concatenate([s0, s0 + jnp.cumsum(actions, axis=1)], axis=1)
    cfg = hj.hjepa.MacroConfig(k=k, horizon=2)
    keys = jax.random.split(jax.random.PRNGKey(2))
    params = {
        "enc_a": 0.1 * jax.random.normal(keys[0], (2, k * d)),
        "pred2": 0.1 * jax.random.normal(keys[1], (d, 2)),
    }
    tx = optax.adam(0.03)

    def loss(p):
        return hj.hjepa.macro_loss(p, encode_linear, predict_shift, states, actions, cfg)

    @jax.jit
    def train(params):
        def step(carry, _):
            p, opt = carry
            grads = jax.grad(lambda q: loss(q)[0])(p)
            updates, opt = tx.update(grads, opt, p)
            return (optax.apply_updates(p, updates), opt), None

        (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=300)
        return params, loss(params)[1]

    _, before = loss(params)
    _, m = train(params)
    assert m["level2_copy_last"] > 1.0  # a 6-step chunk moves the state by ~sqrt(2) per dim
    assert m["level2_energy"] < 0.05 * m["level2_copy_last"], m
    assert m["level2_energy"] < 0.05 * before["level2_energy"], (before, m)
    assert m["code_std"] > 0.45, m


def _hierarchical_codes(**kw):
    mix = jnp.array([[1.0, 0.5, 0.0], [0.0, 0.5, -1.0]])  # s'' = s + M b, b [3]
    kwargs = dict(
        action_dim=2,
        bound=0.5,
        macro_horizon=3,
        horizon=4,
        samples=64,
        elites=8,
        iterations=4,
        coarse_predict=predict_shift,
        coarse_params=mix,
        macro_action_dim=3,
        macro_bound=1.0,
    )
    integrator = lambda p, s, a: s + a
    s0, goal = jnp.zeros(2), jnp.array([4.0, -3.0])
    plan = jax.jit(
        lambda key: hj.planning.hierarchical(integrator, None, s0, goal, key, **{**kwargs, **kw})
    )(jax.random.PRNGKey(0))
    return plan, s0, goal


def test_hierarchical_plans_over_codes_of_their_own_size_and_box():
    plan, s0, goal = _hierarchical_codes()
    assert plan.macro_actions.shape == (3, 3)
    assert plan.actions.shape == (4, 2)
    assert bool(jnp.all(jnp.abs(plan.macro_actions) <= 1.0 + 1e-6))
    assert bool(jnp.all(jnp.abs(plan.actions) <= 0.5 + 1e-6))  # level 1 keeps its bound
    assert jnp.linalg.norm(plan.subgoal - goal) < jnp.linalg.norm(s0 - goal)


def test_hierarchical_checks_the_macro_level_by_its_own_names():
    match = (
        r"hierarchical: macro_mean0.shape=\(3, 2\), but macro_mean0 must have shape \(3, 3\) "
        r"\(\[macro_horizon, macro_action_dim\]\)"
    )
    with pytest.raises(ValueError, match=match):
        _hierarchical_codes(macro_mean0=jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"hierarchical: macro_bound=0.0, but macro_bound must"):
        _hierarchical_codes(macro_bound=0.0)
    with pytest.raises(ValueError, match=r"hierarchical: coarse_predict\(params, s0, a \[A\]\)"):
        _hierarchical_codes(macro_action_dim=2)  # M b needs b [3]


def test_hierarchical_defaults_are_the_level_1_size_and_bound():
    integrator = lambda p, s, a: s + a
    kw = dict(action_dim=2, bound=1.0, samples=16, elites=4, iterations=2, macro_horizon=3)
    kw |= dict(horizon=2)
    args = (jnp.zeros(2), jnp.array([8.0, 0.0]), jax.random.PRNGKey(0))
    plan = lambda **more: jax.jit(
        lambda a: hj.planning.hierarchical(integrator, None, *a, **kw, **more)
    )(args)
    plain, explicit = plan(), plan(macro_action_dim=2, macro_bound=1.0)
    for a, b in zip(plain, explicit, strict=True):
        np.testing.assert_array_equal(a, b)
    match = r"macro_mean0 must have shape \(3, 2\) \(\[macro_horizon, action_dim\]\)"
    with pytest.raises(ValueError, match=match):
        plan(macro_mean0=jnp.zeros((2, 2)))
