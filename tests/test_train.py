"""hj.train: the loop learns, is deterministic given its key, and stops on bad input or NaN."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hjepa_jax as hj

W_TRUE = jnp.array([2.0, -1.0, 0.5])


def regression_data(n=256):
    x = jax.random.normal(jax.random.PRNGKey(0), (n, 3))
    return x, x @ W_TRUE


def mse(w, batch, key):
    del key
    x, y = batch
    err = x @ w - y
    return jnp.mean(err**2), {"max_err": jnp.max(jnp.abs(err))}


def test_train_fits_linear_regression_and_reports_summary():
    res = hj.train.train(mse, jnp.zeros(3), optax.sgd(0.1), regression_data(), steps=200,
                         batch_size=32, key=jax.random.PRNGKey(1), log_every=50)
    np.testing.assert_allclose(res.state.params, W_TRUE, atol=1e-3)
    assert int(res.state.step) == 200
    assert [row["step"] for row in res.history] == [50, 100, 150, 200]
    assert {"loss", "grad_norm", "max_err"} <= set(res.history[-1])
    assert res.history[-1]["loss"] < 1e-5 * float(mse(jnp.zeros(3), regression_data(), None)[0])
    assert set(res.summary) == {"final_loss", "steps", "examples_per_s", "wall_s",
                                "resumed_from_step"}
    assert res.summary["steps"] == 200 and res.summary["examples_per_s"] > 0


def test_train_is_deterministic_given_key_and_differs_across_keys():
    run = lambda seed: hj.train.train(mse, jnp.zeros(3), optax.sgd(0.01), regression_data(),
                                      steps=20, batch_size=8, key=jax.random.PRNGKey(seed))
    a, b, c = run(3), run(3), run(4)
    np.testing.assert_array_equal(a.state.params, b.state.params)
    assert not np.array_equal(a.state.params, c.state.params)


def test_step_matches_manual_update():
    """One step = value_and_grad on the batch the step's key draws, then the optax update."""
    data = regression_data()
    tx = optax.sgd(0.1)
    state = hj.train.init_state(jnp.zeros(3), tx, jax.random.PRNGKey(5))
    new, metrics = jax.jit(hj.train.make_train_step(mse, tx, 16))(state, data)
    data_key, _ = jax.random.split(jax.random.fold_in(state.key, 0))
    batch = hj.train.sample_batch(data, 16, data_key)
    grad = jax.grad(lambda w: mse(w, batch, None)[0])(state.params)
    np.testing.assert_allclose(new.params, -0.1 * grad, rtol=1e-6)
    np.testing.assert_allclose(metrics["loss"], mse(state.params, batch, None)[0], rtol=1e-6)


@pytest.mark.parametrize("kwargs", [{"steps": 0}, {"batch_size": 0}, {"log_every": 0}])
def test_bad_loop_settings_are_refused(kwargs):
    settings = {"steps": 5, "batch_size": 4, "log_every": 1, **kwargs}
    with pytest.raises(ValueError, match=f"{next(iter(kwargs))} must be an integer >= 1"):
        hj.train.train(mse, jnp.zeros(3), optax.sgd(0.1), regression_data(),
                       key=jax.random.PRNGKey(0), **settings)


def test_non_finite_loss_stops_with_named_error():
    with pytest.raises(FloatingPointError, match=r"train: loss is (nan|inf) at step \d+"):
        hj.train.train(mse, jnp.zeros(3), optax.sgd(1e6), regression_data(), steps=10,
                       batch_size=32, key=jax.random.PRNGKey(0), log_every=1)
