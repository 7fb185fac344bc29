"""The one training loop: a pure compiled step, data parallel on any mesh, resumable.

    state', metrics = train_step(state, batch)      # pure; state = params, opt_state, step, key

Step t draws its minibatch and its randomness from fold_in(state.key, t), so a run is a
deterministic function of (initial state, data, steps): stopped at any checkpoint and resumed,
it reaches the parameters an uninterrupted run reaches. The loop knows no model: experiments
hand it `loss_fn(params, batch, key) -> (loss, metrics)` and an optax optimizer.

Parallelism (`LoopConfig.parallel`):
  "jit":  params replicated and the batch split over the mesh's "data" axis, one `jax.jit`
          with explicit in/out shardings. Batch statistics are over the global batch.
  "pmap": the same step under `jax.pmap` over local devices, gradients averaged by pmean.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from hjepa_jax import checkpoint, parallel

__all__ = [
    "PARALLEL_MODES",
    "LoopConfig",
    "LossFn",
    "TrainResult",
    "TrainState",
    "init_state",
    "is_stream",
    "make_train_step",
    "sample_batch",
    "step_keys",
    "train",
]

LossFn = Callable[[Any, Any, jax.Array], tuple[jax.Array, dict]]
PARALLEL_MODES = ("jit", "pmap")


class TrainState(NamedTuple):
    """Everything a run carries between steps (and what a checkpoint holds).

    Attributes:
      params: model parameters (pytree).
      opt_state: the optax optimizer state.
      step: [] int32, number of steps taken; also the data position.
      key: the run's base PRNG key; step t uses fold_in(key, t).
    """

    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array


class TrainResult(NamedTuple):
    """What `train` returns.

    Attributes:
      state: the final TrainState (single copy, not replicated per device).
      history: one dict of float metrics per logged step (with "step"); a resumed run's
        starts with the last row logged before its checkpoint, so history[-1] always holds
        the final metrics, even when nothing was left to run.
      summary: final_loss, steps, examples_per_s, wall_s, resumed_from_step (the keys every
        experiment reports in its metrics.json).
    """

    state: TrainState
    history: list[dict]
    summary: dict


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """How to run the loop (not what to train).

    Attributes:
      steps: total number of steps of the run (a resumed run continues up to it).
      batch_size: global batch size B, divisible by the number of data-parallel devices.
      log_every: steps between logged metrics (the last step is always logged).
      parallel: "jit" or "pmap".
      ckpt_dir: where checkpoints go; a run with the same folder resumes from the latest.
      ckpt_every: steps between checkpoints (and one at the end).
      keep: how many of the latest checkpoints to keep.
      log_dir: where `train_log.jsonl` (and TensorBoard events) are written; None: nowhere.
      tensorboard: also write TensorBoard event files to log_dir.
    """

    steps: int
    batch_size: int
    log_every: int = 100
    parallel: str = "jit"
    ckpt_dir: str | None = None
    ckpt_every: int = 1000
    keep: int = 2
    log_dir: str | None = None
    tensorboard: bool = False

    def __post_init__(self):
        for name in ("steps", "batch_size", "log_every", "ckpt_every", "keep"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"train: {name} must be an integer >= 1, got {value!r}.")
        if self.parallel not in PARALLEL_MODES:
            raise ValueError(
                f"train: parallel must be one of {PARALLEL_MODES}, got {self.parallel!r}."
            )
        if self.tensorboard and self.log_dir is None:
            raise ValueError("train: tensorboard=True needs a log_dir.")


def init_state(params, tx: optax.GradientTransformation, key: jax.Array) -> TrainState:
    """A fresh TrainState at step 0."""
    return TrainState(params, tx.init(params), jnp.zeros((), jnp.int32), key)


def step_keys(state: TrainState) -> tuple[jax.Array, jax.Array]:
    """(data_key, loss_key) of the step `state.step`: both from fold_in(state.key, step)."""
    data_key, loss_key = jax.random.split(jax.random.fold_in(state.key, state.step))
    return data_key, loss_key


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
    loss_fn: LossFn, tx: optax.GradientTransformation, axis_name: str | None = None
) -> Callable[[TrainState, Any], tuple[TrainState, dict]]:
    """The pure step `(state, batch) -> (state, metrics)`.

    metrics holds "loss", "grad_norm" and whatever `loss_fn` returns as aux. With `axis_name`
    (the pmap path) gradients and metrics are averaged over that axis, and each device's loss
    key is folded with its index so that devices draw different noise.
    """

    def train_step(state: TrainState, batch) -> tuple[TrainState, dict]:
        _, loss_key = step_keys(state)
        if axis_name is not None:
            loss_key = jax.random.fold_in(loss_key, jax.lax.axis_index(axis_name))
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, batch, loss_key
        )
        metrics = {"loss": loss, **aux}
        if axis_name is not None:
            grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics["grad_norm"] = optax.tree.norm(grads)
        return TrainState(params, opt_state, state.step + 1, state.key), metrics

    return train_step


class _Runner(NamedTuple):
    """One parallel mode: how to place the state and data, step, and read the state back."""

    place: Callable  # (state, data) -> (placed_state, placed_data)
    step: Callable  # (placed_state, placed_data) -> (placed_state, metrics)
    unplace: Callable  # placed_state -> TrainState, one copy (what a checkpoint saves)


def is_stream(data) -> bool:
    """A batch stream (hj.data.Batches or alike) rather than in-memory arrays: it yields this
    process's rows of each global batch and can save and restore its position."""
    return all(hasattr(data, name) for name in ("__next__", "get_state", "set_state"))


def _jit_runner(loss_fn, tx, batch_size: int, mesh, stream: bool) -> _Runner:
    parallel.check_batch_size(batch_size, mesh)
    train_step = make_train_step(loss_fn, tx)
    rep, shard = parallel.replicated(mesh), parallel.data_sharding(mesh)
    if stream:  # each process feeds its rows; the step sees the global batch
        compiled = jax.jit(
            train_step, in_shardings=(rep, shard), out_shardings=(rep, rep), donate_argnums=0
        )

        def step(state, batches):
            local = next(batches)
            batch = jax.tree_util.tree_map(
                lambda x: jax.make_array_from_process_local_data(shard, np.asarray(x)), local
            )
            return compiled(state, batch)

        place = lambda state, data: (parallel.replicate(state, mesh), data)
        return _Runner(place, step, lambda state: state)

    def sampled_step(state, data):
        data_key, _ = step_keys(state)
        batch = sample_batch(data, batch_size, data_key)
        return train_step(state, jax.lax.with_sharding_constraint(batch, shard))

    compiled = jax.jit(
        sampled_step, in_shardings=(rep, rep), out_shardings=(rep, rep), donate_argnums=0
    )
    place = lambda state, data: (parallel.replicate(state, mesh), parallel.replicate(data, mesh))
    return _Runner(place, compiled, lambda state: state)


def _pmap_runner(loss_fn, tx, batch_size: int, mesh, stream: bool) -> _Runner:
    n = jax.local_device_count()
    if batch_size % (n * jax.process_count()):
        raise ValueError(
            f"batch_size={batch_size} is not divisible by the "
            f"{n * jax.process_count()} devices of the pmap path."
        )
    axis = parallel.DATA_AXIS
    pstep = jax.pmap(make_train_step(loss_fn, tx, axis_name=axis), axis_name=axis, donate_argnums=0)
    per_process = batch_size // jax.process_count()

    @jax.jit
    def global_batch(key, step, data):  # the batch the jit path draws at this step
        data_key, _ = step_keys(TrainState(None, None, step, key))
        return sample_batch(data, batch_size, data_key)

    def local_rows(pstate, data):
        if stream:
            return next(data)
        batch = jax.device_get(global_batch(pstate.key[0], pstate.step[0], data))
        start = jax.process_index() * per_process
        return jax.tree_util.tree_map(lambda x: x[start : start + per_process], batch)

    def step(pstate, data):
        return pstep(pstate, parallel.pmap_split(local_rows(pstate, data), n))

    def place(state, data):
        return parallel.pmap_replicate(state, n), data if stream else jax.device_put(data)

    def unplace(pstate):
        """One copy as a global array replicated over the mesh: the first local device's copy
        is a host-local array, which a multi-process checkpoint cannot save."""
        return parallel.replicate(jax.device_get(parallel.pmap_unreplicate(pstate)), mesh)

    return _Runner(place, step, unplace)


class _Log:
    """train_log.jsonl and optional TensorBoard events, written by process 0 only."""

    def __init__(self, loop: LoopConfig, desc: str):
        self.jsonl = self.tb = None
        if loop.log_dir is None or jax.process_index() != 0:
            return
        log_dir = Path(loop.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = open(log_dir / "train_log.jsonl", "a")  # noqa: SIM115
        if loop.tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError as err:
                raise ImportError(
                    "--tensorboard needs tensorboardX: pip install 'hjepa_jax[tensorboard]'"
                ) from err
            self.tb = SummaryWriter(str(log_dir / "tensorboard"), comment=desc)

    def write(self, row: dict) -> None:
        if self.jsonl is not None:
            self.jsonl.write(json.dumps(row) + "\n")
            self.jsonl.flush()
        if self.tb is not None:
            for name, value in row.items():
                if name != "step":
                    self.tb.add_scalar(name, value, row["step"])

    def close(self) -> None:
        for f in (self.jsonl, self.tb):
            if f is not None:
                f.close()


def train(
    loss_fn: LossFn,
    params,
    tx: optax.GradientTransformation,
    data,
    *,
    loop: LoopConfig,
    key: jax.Array,
    config: dict | None = None,
    mesh=None,
    desc: str = "train",
) -> TrainResult:
    """Train `params` with the compiled step, logging, checkpoints and a progress bar.

    Args:
      loss_fn: `loss_fn(params, batch, key) -> (loss [], metrics dict of [] arrays)`; a mean
        over the batch's examples (on the pmap path each device's mean is averaged).
      params: initial parameters (ignored when a checkpoint is resumed).
      tx: optax optimizer.
      data: pytree of arrays [N, ...], the same on every process, from which each step
        samples B rows inside the compiled step; or a batch stream (`is_stream`, e.g.
        `hj.data.Batches`) that yields this process's rows of each global batch and whose
        position is saved with every checkpoint.
      loop: LoopConfig (steps, batch size, parallel mode, checkpoints, logs).
      key: PRNG key of the run.
      config: the experiment's settings, saved with each checkpoint; resuming with settings
        that differ (other than run-length fields) is refused.
      mesh: the device mesh of the jit path (default: every device on the data axis).
      desc: progress bar label.

    Raises:
      ValueError: bad settings, or a checkpoint that does not match `config` / `params`.
      FloatingPointError: the loss became NaN or infinite (names the step).
    """
    if not isinstance(loop, LoopConfig):
        raise TypeError(f"train: loop must be a LoopConfig, got {type(loop).__name__}.")
    mesh = mesh or parallel.make_mesh()
    stream = is_stream(data)
    if stream and data.global_batch_size != loop.batch_size:
        raise ValueError(
            f"train: the batch stream yields global batches of {data.global_batch_size}, "
            f"but batch_size={loop.batch_size}."
        )
    if loop.parallel == "jit":
        runner = _jit_runner(loss_fn, tx, loop.batch_size, mesh, stream)
    else:
        runner = _pmap_runner(loss_fn, tx, loop.batch_size, mesh, stream)

    state = init_state(params, tx, key)
    meta = {"config": config or {}, "metrics": {}}
    ckpt = None
    if loop.ckpt_dir is not None:
        ckpt = checkpoint.Checkpointer(loop.ckpt_dir, keep=loop.keep)
        latest = ckpt.latest_step()
        if latest is not None and latest > loop.steps:
            raise ValueError(
                f"train: the checkpoint in {loop.ckpt_dir} is at step {latest}, "
                f"past steps={loop.steps}."
            )
        if latest is not None:
            state, saved = ckpt.restore(latest, state, parallel.replicated(mesh), meta["config"])
            meta["metrics"] = saved.get("metrics", {})
            if stream:
                data.set_state(saved["data_state"])
    resumed_from = int(state.step)

    log = _Log(loop, desc)
    history: list[dict] = [meta["metrics"]] if meta["metrics"] else []  # the checkpoint's row
    placed, placed_data = runner.place(state, data)
    start = first_done = time.perf_counter()
    try:
        with tqdm(
            total=loop.steps,
            initial=resumed_from,
            desc=desc,
            mininterval=1.0,
            leave=False,
            disable=jax.process_index() != 0,
        ) as bar:
            for t in range(resumed_from, loop.steps):
                placed, metrics = runner.step(placed, placed_data)
                if t == resumed_from:
                    jax.block_until_ready(placed)
                    first_done = time.perf_counter()  # compile time excluded from throughput
                done = t + 1
                if done % loop.log_every == 0 or done == loop.steps:
                    row = {"step": done, **{k: float(np.mean(v)) for k, v in metrics.items()}}
                    if not np.isfinite(row["loss"]):
                        raise FloatingPointError(f"train: loss is {row['loss']} at step {done}.")
                    history.append(row)
                    log.write(row)
                    meta["metrics"] = row
                    bar.set_postfix(loss=f"{row['loss']:.4g}", refresh=False)
                if ckpt is not None and (done % loop.ckpt_every == 0 or done == loop.steps):
                    if stream:
                        meta["data_state"] = data.get_state()
                    ckpt.save(done, runner.unplace(placed), meta)
                bar.update(1)
        jax.block_until_ready(placed)
    finally:
        log.close()
        if ckpt is not None:
            ckpt.close()
    end = time.perf_counter()
    ran = loop.steps - resumed_from
    summary = {
        "final_loss": meta["metrics"].get("loss", float("nan")),
        "steps": loop.steps,
        "examples_per_s": loop.batch_size * max(ran - 1, 1) / max(end - first_done, 1e-9),
        "wall_s": end - start,
        "resumed_from_step": resumed_from,
    }
    return TrainResult(runner.unplace(placed), history, summary)
