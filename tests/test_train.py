"""hj.train: the loop learns, is deterministic, logs, checkpoints, resumes exactly, refuses
mismatched checkpoints, and stops on bad input or NaN."""

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hjepa_jax as hj
from hjepa_jax.train import LoopConfig

W_TRUE = jnp.array([2.0, -1.0, 0.5])


def regression_data(n=256):
    x = jax.random.normal(jax.random.PRNGKey(0), (n, 3))
    return x, x @ W_TRUE


def mse(w, batch, key):
    del key
    x, y = batch
    err = x @ w - y
    return jnp.mean(err**2), {"max_err": jnp.max(jnp.abs(err))}


def noisy_mse(w, batch, key):
    """A loss that uses its key, so that resuming must restore the randomness too."""
    loss, aux = mse(w + 0.01 * jax.random.normal(key, w.shape), batch, key)
    return loss, aux


def fit(loss=mse, lr=0.1, steps=200, key=1, **loop):
    loop = LoopConfig(**{"steps": steps, "batch_size": 32, "log_every": 50, **loop})
    return hj.train.train(
        loss,
        jnp.zeros(3),
        optax.adam(lr),
        regression_data(),
        loop=loop,
        key=jax.random.PRNGKey(key),
        config={"lr": lr, "steps": steps},
    )


def test_train_fits_linear_regression_and_reports_summary():
    res = hj.train.train(
        mse,
        jnp.zeros(3),
        optax.sgd(0.1),
        regression_data(),
        loop=LoopConfig(steps=200, batch_size=32, log_every=50),
        key=jax.random.PRNGKey(1),
    )
    np.testing.assert_allclose(res.state.params, W_TRUE, atol=1e-3)
    assert int(res.state.step) == 200
    assert [row["step"] for row in res.history] == [50, 100, 150, 200]
    assert {"loss", "grad_norm", "max_err"} <= set(res.history[-1])
    assert res.history[-1]["loss"] < 1e-5 * float(mse(jnp.zeros(3), regression_data(), None)[0])
    assert set(res.summary) - {"peak_bytes_per_device"} == {  # peak: where reported
        "final_loss",
        "steps",
        "examples_per_s",
        "wall_s",
        "resumed_from_step",
        "param_bytes_per_device",
        "step_bytes_per_device",
    }
    assert res.summary["param_bytes_per_device"] == 3 * 4  # three float32 weights
    assert res.summary["steps"] == 200 and res.summary["examples_per_s"] > 0
    assert res.summary["resumed_from_step"] == 0


def test_train_is_deterministic_given_key_and_differs_across_keys():
    a, b, c = (
        fit(noisy_mse, steps=20, key=3),
        fit(noisy_mse, steps=20, key=3),
        fit(noisy_mse, steps=20, key=4),
    )
    np.testing.assert_array_equal(a.state.params, b.state.params)
    assert not np.array_equal(a.state.params, c.state.params)


def test_step_matches_manual_update():
    """One step = value_and_grad on the batch, then the optax update."""
    tx = optax.sgd(0.1)
    state = hj.train.init_state(jnp.zeros(3), tx, jax.random.PRNGKey(5))
    data_key, _ = hj.train.step_keys(state)
    batch = hj.train.sample_batch(regression_data(), 16, data_key)
    new, metrics = jax.jit(hj.train.make_train_step(mse, tx))(state, batch)
    grad = jax.grad(lambda w: mse(w, batch, None)[0])(state.params)
    np.testing.assert_allclose(new.params, -0.1 * grad, rtol=1e-6)
    np.testing.assert_allclose(metrics["loss"], mse(state.params, batch, None)[0], rtol=1e-6)
    assert int(new.step) == 1


def test_pmap_path_matches_jit_path():
    a = fit(steps=30, parallel="jit")
    b = fit(steps=30, parallel="pmap")
    np.testing.assert_allclose(b.state.params, a.state.params, rtol=1e-5, atol=1e-6)
    assert b.history[-1]["loss"] == pytest.approx(a.history[-1]["loss"], rel=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"log_every": 0}, "log_every must be an integer >= 1"),
        ({"parallel": "xmap"}, "parallel must be one of"),
        ({"tensorboard": True}, "tensorboard=True needs a log_dir"),
    ],
)
def test_bad_loop_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LoopConfig(**{"steps": 5, "batch_size": 4, **kwargs})


def test_non_finite_loss_stops_with_named_error():
    with pytest.raises(FloatingPointError, match=r"train: loss is (nan|inf) at step \d+"):
        hj.train.train(
            mse,
            jnp.zeros(3),
            optax.sgd(1e6),
            regression_data(),
            loop=LoopConfig(steps=10, batch_size=32, log_every=1),
            key=jax.random.PRNGKey(0),
        )


def test_jsonl_log_and_tensorboard_events(tmp_path):
    fit(steps=100, log_dir=str(tmp_path), tensorboard=True)
    rows = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [50, 100]
    assert {"loss", "grad_norm", "max_err"} <= set(rows[0])
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_resume_reaches_the_uninterrupted_params_exactly(tmp_path):
    """Interrupt after 60 of 100 steps (checkpoints every 20), resume: same params bitwise."""
    full = fit(noisy_mse, steps=100)
    ckpt = str(tmp_path / "ckpt")
    first = fit(noisy_mse, steps=60, ckpt_dir=ckpt, ckpt_every=20, keep=2)
    assert first.summary["resumed_from_step"] == 0
    assert hj.checkpoint.Checkpointer(ckpt).all_steps() == [40, 60]  # keeps the last 2
    resumed = fit(noisy_mse, steps=100, ckpt_dir=ckpt, ckpt_every=20)
    assert resumed.summary["resumed_from_step"] == 60
    assert [r["step"] for r in resumed.history] == [60, 100]  # the checkpoint's row first
    np.testing.assert_array_equal(resumed.state.params, full.state.params)
    np.testing.assert_array_equal(resumed.state.opt_state[0].mu, full.state.opt_state[0].mu)
    # Nothing left to do: the final state and loss come back from the checkpoint.
    again = fit(noisy_mse, steps=100, ckpt_dir=ckpt)
    assert again.summary["resumed_from_step"] == 100
    assert again.summary["final_loss"] == resumed.summary["final_loss"]
    assert again.history == [resumed.history[-1]]
    np.testing.assert_array_equal(again.state.params, full.state.params)


def test_resume_refuses_other_settings_and_other_shapes(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    fit(steps=20, ckpt_dir=ckpt, lr=0.1)
    with pytest.raises(ValueError, match=r"other settings.*lr: checkpoint 0\.1 != now 0\.2"):
        fit(steps=40, ckpt_dir=ckpt, lr=0.2)
    with pytest.raises(
        ValueError,
        match=r"does not match the model.*params: checkpoint \(3,\) "
        r"float32 != now \(4,\) float32",
    ):
        hj.train.train(
            mse,
            jnp.zeros(4),
            optax.adam(0.1),
            regression_data(),
            loop=LoopConfig(steps=40, batch_size=32, ckpt_dir=ckpt),
            key=jax.random.PRNGKey(1),
            config={"lr": 0.1, "steps": 40},
        )
    with pytest.raises(ValueError, match="at step 20, past steps=10"):
        fit(steps=10, ckpt_dir=ckpt, lr=0.1)


class Stream:
    """A minimal batch stream: consecutive rows of the data, cycling; its position resumes."""

    def __init__(self, data, batch_size):
        self.data, self.global_batch_size, self.position = data, batch_size, 0

    def __next__(self):
        n = self.data[0].shape[0]
        idx = (np.arange(self.global_batch_size) + self.position * self.global_batch_size) % n
        self.position += 1
        return tuple(np.asarray(x)[idx] for x in self.data)

    def get_state(self):
        return {"position": self.position}

    def set_state(self, state):
        self.position = state["position"]


def fit_stream(steps, loss=noisy_mse, **loop):
    loop = LoopConfig(steps=steps, batch_size=32, log_every=50, **loop)
    return hj.train.train(
        loss,
        jnp.zeros(3),
        optax.adam(0.1),
        Stream(regression_data(), 32),
        loop=loop,
        key=jax.random.PRNGKey(1),
    )


def test_stream_training_resumes_its_position_exactly(tmp_path):
    full = fit_stream(100)
    np.testing.assert_allclose(full.state.params, W_TRUE, atol=0.05)
    ckpt = str(tmp_path / "ckpt")
    fit_stream(60, ckpt_dir=ckpt, ckpt_every=20)
    resumed = fit_stream(100, ckpt_dir=ckpt)
    assert resumed.summary["resumed_from_step"] == 60
    np.testing.assert_array_equal(resumed.state.params, full.state.params)
    meta = hj.checkpoint.Checkpointer(ckpt).read_meta(100)
    assert meta["data_state"] == {"position": 100}


def test_stream_on_the_pmap_path_and_batch_size_check():
    a, b = fit_stream(30, mse), fit_stream(30, mse, parallel="pmap")  # pmap: own noise keys
    np.testing.assert_allclose(b.state.params, a.state.params, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="global batches of 32, but batch_size=16"):
        hj.train.train(
            mse,
            jnp.zeros(3),
            optax.adam(0.1),
            Stream(regression_data(), 32),
            loop=LoopConfig(steps=5, batch_size=16),
            key=jax.random.PRNGKey(0),
        )


def test_data_batches_feed_the_loop_and_resume(tmp_path):
    """hj.data.Batches is the stream the loop takes: shuffled epochs, position in checkpoints."""
    x, y = regression_data()
    source = {"x": np.asarray(x), "y": np.asarray(y)}
    loss = lambda w, b, key: mse(w, (b["x"], b["y"]), key)

    def fit_batches(steps, **loop):
        batches = hj.data.Batches(source, 32, seed=3)
        return hj.train.train(
            loss,
            jnp.zeros(3),
            optax.adam(0.1),
            batches,
            loop=LoopConfig(steps=steps, batch_size=32, **loop),
            key=jax.random.PRNGKey(0),
        )

    full = fit_batches(120)
    np.testing.assert_allclose(full.state.params, W_TRUE, atol=0.1)
    fit_batches(55, ckpt_dir=str(tmp_path), ckpt_every=10)  # stops mid-epoch (8 per epoch)
    resumed = fit_batches(120, ckpt_dir=str(tmp_path))
    assert resumed.summary["resumed_from_step"] == 55
    np.testing.assert_array_equal(resumed.state.params, full.state.params)


class SlowStream(Stream):
    """Stream whose every batch takes `delay` seconds to make (a decoder falling behind)."""

    def __init__(self, data, batch_size, delay):
        super().__init__(data, batch_size)
        self.delay = delay

    def __next__(self):
        time.sleep(self.delay)
        return super().__next__()


def heavy_mse(w, batch, key):
    """mse after 100 products of a 256 x 256 matrix, differentiated: a step of about 100 ms."""
    m = jax.lax.fori_loop(0, 100, lambda i, m: jnp.tanh(m @ m), jnp.eye(256) + w[0] * 1e-3)
    loss, aux = mse(w, batch, key)
    return loss + 1e-9 * jnp.sum(m), aux


@pytest.mark.parametrize("delay,heavy", [(0.02, True), (0.05, False)])
def test_a_prefetched_streams_waits_are_the_devices_idle_time(delay, heavy):
    """With batches prefetched to the devices, the loop waits on the stream only when the
    devices have finished the steps dispatched: a stream that keeps ahead of the steps
    (batches in 20 ms, steps of about 100 ms) is waited on for a small share of the run
    (without the wait for the devices, the loop, dispatching ahead, finds it empty at most
    batches and counts 16% of the run); one that falls behind (50 ms against a step of
    microseconds) is waited on for its whole delay."""
    slow = SlowStream(regression_data(), 32, delay)
    stream = hj.data.images.BatchStream(hj.data.images.prefetch_to_device(slow, size=2), 32)
    steps = 30
    loop = LoopConfig(steps=steps, batch_size=32, log_every=steps)
    start = time.perf_counter()
    try:
        hj.train.train(
            heavy_mse if heavy else mse,
            jnp.zeros(3),
            optax.adam(0.1),
            stream,
            loop=loop,
            key=jax.random.PRNGKey(1),
        )
    finally:
        stream.close()
    wall = time.perf_counter() - start
    waited = sum(stream.waits[1:])  # after the first batch
    if heavy:
        assert waited < 0.05 * wall, (waited, wall)
    else:
        assert waited > 0.6 * delay * (steps - 1), (waited, wall)
