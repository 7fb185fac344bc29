"""The one training loop: a pure jit-compiled step and a loop around it that logs progress.

    state' , metrics = train_step(state, data)      # pure; state = params, opt_state, step, key

The step draws its minibatch and its randomness from `fold_in(state.key, state.step)`, so a
run is a deterministic function of (initial state, data, steps): it can be stopped and resumed
at any step and reach the same parameters. The loop knows no model: experiments hand it a
`loss_fn(params, batch, key) -> (loss, metrics)` and an optax optimizer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from tqdm.auto import tqdm

LossFn = Callable[[Any, Any, jax.Array], tuple[jax.Array, dict]]


class TrainState(NamedTuple):
    """Everything a run carries between steps.

    Attributes:
      params: model parameters (pytree).
      opt_state: the optax optimizer state.
      step: [] int32, number of steps taken.
      key: the run's base PRNG key; step t uses fold_in(key, t).
    """

    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array


class TrainResult(NamedTuple):
    """What `train` returns.

    Attributes:
      state: the final TrainState.
      history: one dict of float metrics per logged step (with "step").
      summary: final_loss, steps, examples_per_s, wall_s, resumed_from_step (DESIGN.md keys).
    """

    state: TrainState
    history: list[dict]
    summary: dict


def init_state(params, tx: optax.GradientTransformation, key: jax.Array) -> TrainState:
    """A fresh TrainState at step 0."""
    return TrainState(params, tx.init(params), jnp.zeros((), jnp.int32), key)


def sample_batch(data, batch_size: int, key: jax.Array):
    """A minibatch of `batch_size` examples drawn uniformly (with replacement) from `data`.

    Args:
      data: pytree of arrays sharing a leading axis [N, ...].
      batch_size: B.
      key: PRNG key.

    Returns:
      The pytree with leaves [B, ...].
    """
    n = jax.tree_util.tree_leaves(data)[0].shape[0]
    idx = jax.random.randint(key, (batch_size,), 0, n)
    return jax.tree_util.tree_map(lambda leaf: leaf[idx], data)


def make_train_step(
    loss_fn: LossFn, tx: optax.GradientTransformation, batch_size: int
) -> Callable[[TrainState, Any], tuple[TrainState, dict]]:
    """The pure step `(state, data) -> (state, metrics)`; jit it (the loop does).

    metrics holds "loss", "grad_norm" and whatever `loss_fn` returns as aux.
    """

    def train_step(state: TrainState, data) -> tuple[TrainState, dict]:
        data_key, loss_key = jax.random.split(jax.random.fold_in(state.key, state.step))
        batch = sample_batch(data, batch_size, data_key)
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, batch, loss_key
        )
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **aux}
        return TrainState(params, opt_state, state.step + 1, state.key), metrics

    return train_step


def train(
    loss_fn: LossFn,
    params,
    tx: optax.GradientTransformation,
    data,
    *,
    steps: int,
    batch_size: int,
    key: jax.Array,
    log_every: int = 100,
    desc: str = "train",
) -> TrainResult:
    """Train `params` for `steps` jit-compiled steps, with a progress bar and a metric history.

    Args:
      loss_fn: `loss_fn(params, batch, key) -> (loss [], metrics dict of [] arrays)`.
      params: initial parameters.
      tx: optax optimizer.
      data: pytree of arrays [N, ...], kept on device; each step samples B of them.
      steps: number of steps (>= 1).
      batch_size: B (>= 1).
      key: PRNG key of the run.
      log_every: steps between logged metrics (the last step is always logged).
      desc: progress bar label.

    Raises:
      ValueError: bad steps / batch_size / log_every.
      FloatingPointError: the loss became NaN or infinite (names the step).
    """
    for name, value in (("steps", steps), ("batch_size", batch_size), ("log_every", log_every)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"train: {name} must be an integer >= 1, got {value!r}.")
    step_fn = jax.jit(make_train_step(loss_fn, tx, batch_size), donate_argnums=0)
    state = init_state(params, tx, key)
    history: list[dict] = []
    start = time.perf_counter()
    first_done = start
    with tqdm(total=steps, desc=desc, mininterval=1.0, leave=False) as bar:
        for t in range(steps):
            state, metrics = step_fn(state, data)
            if t == 0:
                jax.block_until_ready(state)
                first_done = time.perf_counter()  # compile time excluded from throughput
            if (t + 1) % log_every == 0 or t + 1 == steps:
                row = {"step": t + 1, **{k: float(v) for k, v in metrics.items()}}
                if not jnp.isfinite(row["loss"]):
                    raise FloatingPointError(f"train: loss is {row['loss']} at step {t + 1}.")
                history.append(row)
                bar.set_postfix(loss=f"{row['loss']:.4g}")
            bar.update(1)
    jax.block_until_ready(state)
    end = time.perf_counter()
    timed_steps = max(steps - 1, 1)
    summary = {
        "final_loss": history[-1]["loss"],
        "steps": steps,
        "examples_per_s": batch_size * timed_steps / max(end - first_done, 1e-9),
        "wall_s": end - start,
        "resumed_from_step": 0,
    }
    return TrainResult(state, history, summary)
