"""The one training loop: a pure compiled step, data parallel on any mesh, resumable.

    state', metrics = train_step(state, batch)      # pure; state = params, opt_state, step, key

Step t draws its minibatch and its randomness from fold_in(state.key, t), so a run is a
deterministic function of (initial state, data, steps): stopped at any checkpoint and resumed,
it reaches the parameters an uninterrupted run reaches. The loop knows no model: experiments
hand it `loss_fn(params, batch, key) -> (loss, metrics)` and an optax optimizer.

Parallelism (`LoopConfig.parallel`):
  "jit":  one `jax.jit` with explicit in/out shardings over a mesh ("data", "fsdp", "model";
          `LoopConfig.mesh`, default every device on "data"): the batch is split over "data"
          and "fsdp"; with an "fsdp" axis every large parameter and optimizer-state leaf is
          split along its largest divisible axis over it (`hj.parallel.fsdp_spec`), the rest
          replicated. The state is created by `jax.jit` with those out_shardings (from
          `params`, or from an init function so that no host ever holds a full copy) and
          restored from a checkpoint straight into them. Batch statistics are over the
          global batch.
  "pmap": the same step under `jax.pmap` over local devices, gradients averaged by pmean
          (state replicated: no fsdp).

Memory and speed (`LoopConfig`): `dtype="bfloat16"` computes the loss with bfloat16
parameters (a cast inside the step: the parameters, their gradients and the optimizer state
stay float32; models of `hjepa_jax.models` cast their inputs to their parameters' dtype and
take batch statistics in float32); `grad_accum=N` splits each step's batch into N
micro-batches whose mean gradient makes one update (`optax.MultiSteps`; batch statistics,
e.g. VICReg's, are then per micro-batch); `remat=True` recomputes each transformer block's
activations in the backward pass (`hj.nn.vit.remat_blocks`); `profile_steps=(a, b)` writes a
`jax.profiler` trace of steps a..b to `log_dir/profile`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from hjepa_jax import checkpoint, io, parallel

__all__ = [
    "DTYPES",
    "PARALLEL_MODES",
    "LoopConfig",
    "LossFn",
    "Preempted",
    "TrainResult",
    "TrainState",
    "accumulating",
    "cast_floating",
    "init_state",
    "is_stream",
    "make_train_step",
    "mixed_precision",
    "sample_batch",
    "step_keys",
    "train",
]

LossFn = Callable[[Any, Any, jax.Array], tuple[jax.Array, dict]]
PARALLEL_MODES = ("jit", "pmap")
DTYPES = ("float32", "bfloat16")


class Preempted(RuntimeError):
    """The job was told to stop (a SIGTERM at a preemption, seen by every host at the same
    step once `jax.distributed` is initialized): `train` saved a checkpoint at `step` in
    `ckpt_dir` and stopped. Rerunning the same command resumes from it."""

    def __init__(self, step: int, ckpt_dir: str):
        super().__init__(f"train: preempted; saved step {step} in {ckpt_dir}, rerun to resume.")
        self.step, self.ckpt_dir = step, ckpt_dir


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
      summary: final_loss, steps, examples_per_s (training only: neither the first,
        compiling step nor the evaluations), wall_s, resumed_from_step (the keys every
        experiment reports in its metrics.json); param_bytes_per_device (the bytes of the
        parameter shards one device holds), step_bytes_per_device (XLA's count of one
        compiled step's arguments, outputs and temporaries on a device; jit path) and, where
        the backend reports it (`device.memory_stats()`: GPU, TPU), peak_bytes_per_device.
      evaluations: one dict per evaluation (`train(evaluate=...)`, every
        `loop.eval_every` steps and at the end), each with "step"; kept in the checkpoints,
        so a resumed run's list starts with those made before it stopped.
    """

    state: TrainState
    history: list[dict]
    summary: dict
    evaluations: list[dict] = []


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """How to run the loop (not what to train).

    Attributes:
      steps: total number of steps of the run (a resumed run continues up to it).
      batch_size: global batch size B, divisible by the number of data-parallel devices
        (times grad_accum).
      log_every: steps between logged metrics (the last step is always logged).
      parallel: "jit" or "pmap".
      ckpt_dir: where checkpoints go; a run with the same folder resumes from the latest.
      ckpt_every: steps between checkpoints (and one at the end).
      keep: how many of the latest checkpoints to keep.
      log_dir: where `train_log.jsonl` (and TensorBoard events, profiler traces) are
        written, a local folder or a bucket (gs://...); None: nowhere.
      tensorboard: also write TensorBoard event files to log_dir.
      mesh: the jit path's mesh as "data=2,fsdp=4" (`hj.parallel.parse_mesh`); None: every
        device on "data". An "fsdp" axis > 1 shards the state (FSDP).
      dtype: the computation dtype of the loss, "float32" or "bfloat16" (`mixed_precision`).
      grad_accum: micro-batches per step (`accumulating`); 1: none.
      remat: recompute transformer blocks' activations in the backward pass.
      profile_steps: (a, b): a `jax.profiler` trace of steps a..b (1-based, as the "step" of
        train_log.jsonl) in log_dir/profile; None: no trace.
      eval_every: steps between calls of `train(evaluate=...)` (and one at the end); None:
        only at the end.
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
    mesh: str | None = None
    dtype: str = "float32"
    grad_accum: int = 1
    remat: bool = False
    profile_steps: tuple[int, int] | None = None
    eval_every: int | None = None

    def __post_init__(self):
        names = ("steps", "batch_size", "log_every", "ckpt_every", "keep", "grad_accum")
        for name in names + (("eval_every",) if self.eval_every is not None else ()):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"train: {name} must be an integer >= 1, got {value!r}.")
        if self.parallel not in PARALLEL_MODES:
            raise ValueError(
                f"train: parallel must be one of {PARALLEL_MODES}, got {self.parallel!r}."
            )
        if self.tensorboard and self.log_dir is None:
            raise ValueError("train: tensorboard=True needs a log_dir.")
        if self.dtype not in DTYPES:
            raise ValueError(f"train: dtype must be one of {DTYPES}, got {self.dtype!r}.")
        if self.mesh is not None:
            try:
                sizes = parallel.parse_mesh(self.mesh)
            except ValueError as err:
                raise ValueError(f"train: {err}.") from None
            if self.parallel == "pmap" and sizes.get(parallel.FSDP_AXIS, 1) > 1:
                raise ValueError(
                    "train: the pmap path replicates the state; an fsdp mesh axis needs "
                    "parallel='jit'."
                )
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"train: batch_size={self.batch_size} does not split into "
                f"grad_accum={self.grad_accum} equal micro-batches."
            )
        if self.profile_steps is not None:
            pair = tuple(self.profile_steps)
            ints = all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
            if len(pair) != 2 or not ints or not 1 <= pair[0] <= pair[1]:
                raise ValueError(
                    f"train: profile_steps must be (a, b) with 1 <= a <= b, got "
                    f"{self.profile_steps!r}."
                )
            if self.log_dir is None:
                raise ValueError("train: profile_steps needs a log_dir.")


def cast_floating(tree, dtype):
    """Every floating-point leaf of `tree` cast to `dtype`; other leaves (ints, keys) as they are.

    >>> import jax.numpy as jnp
    >>> tree = cast_floating({"w": jnp.ones(2), "n": jnp.arange(2)}, jnp.bfloat16)
    >>> str(tree["w"].dtype), str(tree["n"].dtype)
    ('bfloat16', 'int32')
    """

    def cast(leaf):
        dtype_of = getattr(leaf, "dtype", None)
        if dtype_of is not None and jnp.issubdtype(dtype_of, jnp.floating):
            return leaf.astype(dtype)
        return leaf

    return jax.tree_util.tree_map(cast, tree)


def mixed_precision(loss_fn: LossFn, dtype) -> LossFn:
    """`loss_fn` computed with its parameters cast to `dtype` (e.g. bfloat16), its loss and
    metrics cast back to float32.

    The cast is inside the differentiated function: the gradients come back float32, for the
    float32 parameters, and the optimizer state stays float32. Layers compute in the dtype of
    their inputs and parameters (flax `dtype=None`), so a model computes in bfloat16 once its
    inputs are cast to its parameters' dtype (every experiment's model does:
    `hjepa_jax.models._common.apply`); its batch statistics (VICReg's variance and
    covariance, the collapse metrics) are taken on float32 representations. A model that
    does not cast its float32 inputs computes in float32 with bfloat16-rounded weights.
    float32 returns `loss_fn` itself.
    """
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float32:
        return loss_fn

    def cast_loss(params, batch, key):
        loss, aux = loss_fn(cast_floating(params, dtype), batch, key)
        return cast_floating((loss, aux), jnp.float32)

    return cast_loss


def accumulating(tx: optax.GradientTransformation, grad_accum: int):
    """`tx` updating once per `grad_accum` gradients, with their mean (`optax.MultiSteps`);
    `tx` itself for 1. What `make_train_step(..., grad_accum=N)` expects."""
    if grad_accum == 1:
        return tx
    return optax.MultiSteps(tx, every_k_schedule=grad_accum).gradient_transformation()


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
    loss_fn: LossFn,
    tx: optax.GradientTransformation,
    axis_name: str | None = None,
    grad_accum: int = 1,
    micro_sharding=None,
) -> Callable[[TrainState, Any], tuple[TrainState, dict]]:
    """The pure step `(state, batch) -> (state, metrics)`.

    metrics holds "loss", "grad_norm" and whatever `loss_fn` returns as aux. With `axis_name`
    (the pmap path) gradients and metrics are averaged over that axis, and each device's loss
    key is folded with its index so that devices draw different noise.

    With `grad_accum=N > 1`, `tx` must be `accumulating(tx, N)` (optax.MultiSteps): the batch
    [B, ...] is cut into N micro-batches of B / N (rows i, N + i, 2N + i, ... form micro-batch
    i, so each is spread over the devices like the batch; `micro_sharding` constrains them
    so on the jit path), scanned one after the other at the same parameters with loss keys
    fold_in(key, i); the mean of their gradients makes one update. Metrics are means over
    the micro-batches and "grad_norm" is the norm of the mean gradient. Batch statistics in
    `loss_fn` (VICReg's variance and covariance, InfoNCE's negatives) are per micro-batch.
    """

    def grads_of(params, batch, loss_key):
        if axis_name is not None:
            loss_key = jax.random.fold_in(loss_key, jax.lax.axis_index(axis_name))
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, loss_key)
        metrics = {"loss": loss, **aux}
        if axis_name is not None:
            grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
        return grads, metrics

    def train_step(state: TrainState, batch) -> tuple[TrainState, dict]:
        _, loss_key = step_keys(state)
        if grad_accum == 1:
            grads, metrics = grads_of(state.params, batch, loss_key)
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
            metrics["grad_norm"] = optax.tree.norm(grads)
            return TrainState(params, opt_state, state.step + 1, state.key), metrics

        def micro(leaf):  # [B, ...] -> [N, B / N, ...], micro-batch i = rows i, N + i, ...
            leaf = leaf.reshape(leaf.shape[0] // grad_accum, grad_accum, *leaf.shape[1:])
            return jnp.swapaxes(leaf, 0, 1)

        micro_batches = jax.tree_util.tree_map(micro, batch)
        if micro_sharding is not None:
            micro_batches = jax.lax.with_sharding_constraint(micro_batches, micro_sharding)

        def one(carry, xs):
            params, opt_state = carry
            i, micro_batch = xs
            grads, metrics = grads_of(params, micro_batch, jax.random.fold_in(loss_key, i))
            mean = jax.tree_util.tree_map(  # MultiSteps' running mean, with this gradient
                lambda acc, g: acc + (g - acc) / (opt_state.mini_step + 1),
                opt_state.acc_grads,
                grads,
            )
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), (
                metrics,
                optax.tree.norm(mean),
            )

        xs = (jnp.arange(grad_accum), micro_batches)
        (params, opt_state), (metrics, norms) = jax.lax.scan(
            one, (state.params, state.opt_state), xs
        )
        metrics = jax.tree_util.tree_map(lambda m: jnp.mean(m, axis=0), metrics)
        metrics["grad_norm"] = norms[-1]
        return TrainState(params, opt_state, state.step + 1, state.key), metrics

    return train_step


class _Runner(NamedTuple):
    """One parallel mode: how to place the data, step, and read the state back."""

    place: Callable  # (state, data) -> (placed_state, placed_data)
    step: Callable  # (placed_state, placed_data) -> (placed_state, metrics)
    unplace: Callable  # placed_state -> TrainState, one copy (what a checkpoint saves)
    step_bytes: Callable  # () -> bytes one compiled step uses on a device, or None


def is_stream(data) -> bool:
    """A batch stream (hj.data.Batches or alike) rather than in-memory arrays: it yields this
    process's rows of each global batch and can save and restore its position."""
    return all(hasattr(data, name) for name in ("__next__", "get_state", "set_state"))


def _next_rows(batches, state):
    """The stream's next rows. When the stream says it has none ready (an optional
    `starved()`, as `hj.data.images.BatchStream` has), the steps already dispatched are
    waited for first: the devices would idle anyway, and the time `next` then takes is their
    idle time, not time that overlaps running steps (which the loop, dispatching ahead,
    would otherwise count)."""
    starved = getattr(batches, "starved", None)
    if starved is not None and starved():
        jax.block_until_ready(state)
    return next(batches)


class _Compiled:
    """A jitted function compiled ahead of time at its first call (`lower(...).compile()`,
    the one compilation), so that XLA's memory count of the step can be read."""

    def __init__(self, jitted):
        self.jitted, self.compiled = jitted, None

    def __call__(self, *args):
        if self.compiled is None:
            self.compiled = self.jitted.lower(*args).compile()
        return self.compiled(*args)

    def step_bytes(self) -> int | None:
        try:
            m = self.compiled.memory_analysis()
            total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
            return int(total - m.alias_size_in_bytes)
        except Exception:  # not compiled yet, or a backend without the analysis
            return None


def _jit_runner(loss_fn, tx, loop: LoopConfig, mesh, stream: bool, shardings) -> _Runner:
    parallel.check_batch_size(loop.batch_size, mesh, loop.grad_accum)
    rep, shard = parallel.replicated(mesh), parallel.data_sharding(mesh)
    micro = NamedSharding(mesh, P(None, parallel.data_axes(mesh)))
    train_step = make_train_step(loss_fn, tx, grad_accum=loop.grad_accum, micro_sharding=micro)
    if stream:  # each process feeds its rows; the step sees the global batch
        compiled = _Compiled(
            jax.jit(
                train_step,
                in_shardings=(shardings, shard),
                out_shardings=(shardings, rep),
                donate_argnums=0,
            )
        )

        def step(state, batches):
            local = _next_rows(batches, state)
            batch = jax.tree_util.tree_map(  # host rows -> global arrays (placed ones stay)
                lambda x: (
                    x
                    if isinstance(x, jax.Array) and x.sharding == shard
                    else jax.make_array_from_process_local_data(shard, np.asarray(x))
                ),
                local,
            )
            return compiled(state, batch)

        return _Runner(lambda state, data: (state, data), step, lambda s: s, compiled.step_bytes)

    def sampled_step(state, data):
        data_key, _ = step_keys(state)
        batch = sample_batch(data, loop.batch_size, data_key)
        return train_step(state, jax.lax.with_sharding_constraint(batch, shard))

    compiled = _Compiled(
        jax.jit(
            sampled_step,
            in_shardings=(shardings, rep),
            out_shardings=(shardings, rep),
            donate_argnums=0,
        )
    )
    place = lambda state, data: (state, parallel.replicate(data, mesh))
    return _Runner(place, compiled, lambda state: state, compiled.step_bytes)


def _pmap_runner(loss_fn, tx, loop: LoopConfig, mesh, stream: bool) -> _Runner:
    n = jax.local_device_count()
    batch_size = loop.batch_size
    if batch_size % (n * jax.process_count()):
        raise ValueError(
            f"batch_size={batch_size} is not divisible by the "
            f"{n * jax.process_count()} devices of the pmap path."
        )
    parallel.check_batch_size(batch_size, n * jax.process_count(), loop.grad_accum)
    axis = parallel.DATA_AXIS
    pstep = jax.pmap(
        make_train_step(loss_fn, tx, axis_name=axis, grad_accum=loop.grad_accum),
        axis_name=axis,
        donate_argnums=0,
    )
    per_process = batch_size // jax.process_count()

    @jax.jit
    def global_batch(key, step, data):  # the batch the jit path draws at this step
        data_key, _ = step_keys(TrainState(None, None, step, key))
        return sample_batch(data, batch_size, data_key)

    def local_rows(pstate, data):
        if stream:
            return _next_rows(data, pstate)
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

    return _Runner(place, step, unplace, lambda: None)


class _Log:
    """train_log.jsonl and optional TensorBoard events, written by process 0 only.

    In a local folder the log is appended line by line. In a bucket (gs://...), where an
    object cannot be appended to, the whole log is rewritten (one upload, `io.atomic_write`)
    at most every `REMOTE_FLUSH_S` seconds and at the end, and TensorBoard's events are
    written to a local temporary folder and copied there at the end.
    """

    REMOTE_FLUSH_S = 30.0

    def __init__(self, loop: LoopConfig, desc: str):
        self.jsonl = self.tb = self.tb_local = None
        self.remote = False
        if loop.log_dir is None or jax.process_index() != 0:
            return
        self.dir = io.as_path(loop.log_dir)
        self.remote = io.is_remote(self.dir)
        if self.remote:
            path = self.dir / "train_log.jsonl"
            self.text = path.read_text() if path.exists() else ""  # a resumed run's rows
            self.flushed = time.monotonic()
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.jsonl = open(self.dir / "train_log.jsonl", "a")  # noqa: SIM115
        if loop.tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError as err:
                raise ImportError(
                    "--tensorboard needs tensorboardX: pip install 'hjepa_jax[tensorboard]'"
                ) from err
            if self.remote:
                self.tb_local = tempfile.mkdtemp(prefix="hjepa-tensorboard-")
            tb_dir = self.tb_local or str(self.dir / "tensorboard")
            self.tb = SummaryWriter(tb_dir, comment=desc)

    def write(self, row: dict) -> None:
        line = json.dumps(row) + "\n"
        if self.jsonl is not None:
            self.jsonl.write(line)
            self.jsonl.flush()
        if self.remote:
            self.text += line
            if time.monotonic() - self.flushed > self.REMOTE_FLUSH_S:
                self._flush_remote()
        if self.tb is not None:
            for name, value in row.items():
                if name != "step":
                    self.tb.add_scalar(name, value, row["step"])

    def _flush_remote(self) -> None:
        data = self.text.encode()
        io.atomic_write(self.dir / "train_log.jsonl", lambda f: f.write(data))
        self.flushed = time.monotonic()

    def close(self) -> None:
        for f in (self.jsonl, self.tb):
            if f is not None:
                f.close()
        if self.remote:
            self._flush_remote()
        if self.tb_local is not None:
            io.copy_tree(self.tb_local, self.dir / "tensorboard")
            shutil.rmtree(self.tb_local, ignore_errors=True)


class _Profile:
    """A `jax.profiler` trace of steps a..b (1-based) into log_dir/profile, by process 0.

    A bucket gets the trace through a local temporary folder, copied when the trace stops."""

    def __init__(self, loop: LoopConfig, resumed_from: int):
        self.start_at = self.stop_at = None
        self.active = False
        if loop.profile_steps is None or jax.process_index() != 0:
            return
        first, last = loop.profile_steps
        if last <= resumed_from:
            return  # those steps ran before the checkpoint this run resumed from
        self.start_at, self.stop_at = max(first, resumed_from + 1), last
        self.dir = io.as_path(loop.log_dir) / "profile"
        self.local = tempfile.mkdtemp(prefix="hjepa-profile-") if io.is_remote(self.dir) else None

    def before(self, done: int) -> None:
        """Called before the step that makes `done` steps."""
        if done == self.start_at:
            jax.profiler.start_trace(self.local or str(self.dir))
            self.active = True

    def after(self, done: int, placed) -> None:
        """Called after the step that made `done` steps."""
        if self.active and done >= self.stop_at:
            self.stop(placed)

    def stop(self, placed=None) -> None:
        if not self.active:
            return
        if placed is not None:
            jax.block_until_ready(placed)
        jax.profiler.stop_trace()
        self.active = False
        if self.local is not None:
            io.copy_tree(self.local, self.dir)
            shutil.rmtree(self.local, ignore_errors=True)


def _state_target(params, tx, key, mesh, loop: LoopConfig):
    """(abstract TrainState, its shardings): shapes from `jax.eval_shape` of the init, FSDP's
    shardings on the jit path (replicated on the pmap path)."""
    make = params if callable(params) else (lambda: params)
    abstract = jax.eval_shape(lambda: init_state(make(), tx, key))
    if loop.parallel == "jit":
        shardings = parallel.state_shardings(abstract, mesh)
    else:
        shardings = jax.tree_util.tree_map(lambda _: parallel.replicated(mesh), abstract)
    return abstract, shardings


def _init_placed(params, tx, key, shardings) -> TrainState:
    """The fresh state, made by `jax.jit` straight into `shardings`: from an init function
    (each device computes only its shards: no host holds the whole model) or from given
    parameters (placed shard by shard from the host copy first)."""
    if callable(params):
        return jax.jit(lambda: init_state(params(), tx, key), out_shardings=shardings)()
    placed = parallel.put(params, shardings.params)
    make = jax.jit(
        lambda p: init_state(p, tx, key), in_shardings=(shardings.params,), out_shardings=shardings
    )
    return make(placed)


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
    evaluate: Callable[[Any], dict] | None = None,
) -> TrainResult:
    """Train `params` with the compiled step, logging, checkpoints and a progress bar.

    Args:
      loss_fn: `loss_fn(params, batch, key) -> (loss [], metrics dict of [] arrays)`; a mean
        over the batch's examples (on the pmap path each device's mean is averaged).
      params: initial parameters (ignored when a checkpoint is resumed), or a function of
        no arguments returning them (e.g. `functools.partial(model.init, key)`), which runs
        under `jax.jit` with the state's shardings: with FSDP no host then holds a full copy.
      tx: optax optimizer.
      data: pytree of arrays [N, ...], the same on every process, from which each step
        samples B rows inside the compiled step; or a batch stream (`is_stream`, e.g.
        `hj.data.Batches`) that yields this process's rows of each global batch and whose
        position is saved with every checkpoint. A stream with `starved()` (True when it has
        no batch ready) gets it asked before each batch; when True, the loop first waits for
        the dispatched steps to finish.
      loop: LoopConfig (steps, batch size, parallel mode, mesh, dtype, checkpoints, logs).
      key: PRNG key of the run.
      config: the experiment's settings, saved with each checkpoint; resuming with settings
        that differ (other than run-length fields) is refused.
      mesh: the device mesh of the jit path (default: `loop.mesh`, else every device on the
        data axis).
      desc: progress bar label.
      evaluate: `evaluate(params) -> {name: float}`, run on every process every
        `loop.eval_every` steps and after the last step (e.g. a probe of frozen features);
        each result, with "step", goes to `TrainResult.evaluations`, train_log.jsonl (names
        prefixed "eval_") and the checkpoints.

    Raises:
      ValueError: bad settings, or a checkpoint that does not match `config` / `params`.
      FloatingPointError: the loss became NaN or infinite (names the step).
      Preempted: with `loop.ckpt_dir`, the job reached orbax's preemption sync point; the
        state was saved at that step first.
    """
    if not isinstance(loop, LoopConfig):
        raise TypeError(f"train: loop must be a LoopConfig, got {type(loop).__name__}.")
    mesh = mesh or parallel.make_mesh(spec=loop.mesh)
    if loop.parallel == "pmap" and mesh.shape.get(parallel.FSDP_AXIS, 1) > 1:
        raise ValueError("train: the pmap path replicates the state; fsdp needs parallel='jit'.")
    stream = is_stream(data)
    if stream and data.global_batch_size != loop.batch_size:
        raise ValueError(
            f"train: the batch stream yields global batches of {data.global_batch_size}, "
            f"but batch_size={loop.batch_size}."
        )
    loss_fn = mixed_precision(loss_fn, loop.dtype)
    tx = accumulating(tx, loop.grad_accum)
    abstract, shardings = _state_target(params, tx, key, mesh, loop)
    if loop.parallel == "jit":
        runner = _jit_runner(loss_fn, tx, loop, mesh, stream, shardings)
    else:
        runner = _pmap_runner(loss_fn, tx, loop, mesh, stream)

    meta = {"config": config or {}, "metrics": {}, "evaluations": []}
    ckpt = state = None
    if loop.ckpt_dir is not None:
        ckpt = checkpoint.Checkpointer(loop.ckpt_dir, keep=loop.keep)
        latest = ckpt.latest_step()
        if latest is not None and latest > loop.steps:
            raise ValueError(
                f"train: the checkpoint in {loop.ckpt_dir} is at step {latest}, "
                f"past steps={loop.steps}."
            )
        if latest is not None:  # straight into the shardings: no fresh state is made
            state, saved = ckpt.restore(latest, abstract, shardings, meta["config"])
            meta["metrics"] = saved.get("metrics", {})
            meta["evaluations"] = saved.get("evaluations", [])
            if stream:
                data.set_state(saved["data_state"])
    if state is None:
        state = _init_placed(params, tx, key, shardings)
    resumed_from = int(state.step)

    from hjepa_jax.nn import vit  # flax, imported when a run starts

    log = _Log(loop, desc)
    profile = _Profile(loop, resumed_from)
    history: list[dict] = [meta["metrics"]] if meta["metrics"] else []  # the checkpoint's row
    start = first_done = time.perf_counter()
    eval_s = 0.0  # time in `evaluate`, left out of the throughput
    try:
        with (
            vit.remat_blocks(loop.remat) if loop.remat else contextlib.nullcontext(),
            tqdm(
                total=loop.steps,
                initial=resumed_from,
                desc=desc,
                mininterval=1.0,
                leave=False,
                disable=jax.process_index() != 0,
            ) as bar,
        ):
            placed, placed_data = runner.place(state, data)
            for t in range(resumed_from, loop.steps):
                done = t + 1
                profile.before(done)
                placed, metrics = runner.step(placed, placed_data)
                if t == resumed_from:
                    jax.block_until_ready(placed)
                    first_done = time.perf_counter()  # compile time excluded from throughput
                    eval_s = 0.0
                profile.after(done, placed)
                if done % loop.log_every == 0 or done == loop.steps:
                    row = {"step": done, **{k: float(np.mean(v)) for k, v in metrics.items()}}
                    if not np.isfinite(row["loss"]):
                        raise FloatingPointError(f"train: loss is {row['loss']} at step {done}.")
                    history.append(row)
                    log.write(row)
                    meta["metrics"] = row
                    bar.set_postfix(loss=f"{row['loss']:.4g}", refresh=False)
                if evaluate is not None and (
                    done == loop.steps or (loop.eval_every and done % loop.eval_every == 0)
                ):
                    began = time.perf_counter()
                    scores = evaluate(runner.unplace(placed).params)
                    scores = {k: float(v) for k, v in scores.items()}
                    eval_s += time.perf_counter() - began
                    meta["evaluations"].append({"step": done, **scores})
                    log.write({"step": done, **{f"eval_{k}": v for k, v in scores.items()}})
                # every process asks at every step: orbax agrees on one step for all hosts
                preempted = ckpt is not None and ckpt.reached_preemption(done)
                if ckpt is not None and (
                    preempted or done % loop.ckpt_every == 0 or done == loop.steps
                ):
                    if stream:
                        meta["data_state"] = data.get_state()
                    ckpt.save(done, runner.unplace(placed), meta)
                if preempted:
                    raise Preempted(done, loop.ckpt_dir)
                bar.update(1)
            jax.block_until_ready(placed)
    finally:
        profile.stop()
        log.close()
        if ckpt is not None:
            ckpt.close()
    end = time.perf_counter()
    ran = loop.steps - resumed_from
    summary = {
        "final_loss": meta["metrics"].get("loss", float("nan")),
        "steps": loop.steps,
        "examples_per_s": loop.batch_size * max(ran - 1, 1) / max(end - first_done - eval_s, 1e-9),
        "wall_s": end - start,
        "resumed_from_step": resumed_from,
        "param_bytes_per_device": parallel.bytes_per_device(abstract.params, shardings.params),
    }
    for name, value in (
        ("step_bytes_per_device", runner.step_bytes()),
        ("peak_bytes_per_device", parallel.peak_bytes_per_device()),
    ):
        if value is not None:
            summary[name] = value
    return TrainResult(runner.unplace(placed), history, summary, meta["evaluations"])
