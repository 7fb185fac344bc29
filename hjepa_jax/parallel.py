"""Data parallelism and FSDP on any number of devices and hosts: meshes, shardings, pmap.

The same training code runs on 1 CPU, 8 GPUs or a TPU pod slice; only the mesh changes:

    mesh = make_mesh()                       # all devices of all hosts on the "data" axis
    mesh = make_mesh(fsdp=8)                 # ... or 8 of them on "fsdp" (--mesh data=2,fsdp=8)
    state = put(state, state_shardings(state, mesh))   # FSDP shards, or replicated
    batch = shard_batch(batch, mesh)         # [B, ...] split along B over ("data", "fsdp")

A mesh has three named axes, ("data", "fsdp", "model"), of sizes data x fsdp x model = the
device count. The batch is split over "data" and "fsdp" together (data_size(mesh) devices);
each parameter and optimizer-state leaf of at least FSDP_MIN_SIZE elements is split along its
largest axis divisible by the "fsdp" size over "fsdp" (`fsdp_spec`), the others replicated;
"model" is left to models that shard their own layers (the batch and the state are replicated
over it). Under `jax.jit` with these shardings XLA gathers each parameter where it is used and
reduce-scatters its gradient, and batch statistics (means, VICReg's covariance, InfoNCE's
negatives) are over the global batch. On the `pmap` path each device sees its [B / n] slice
and the gradients are averaged with `lax.pmean`; the same numbers result for losses that are
means over examples.

Multi-host: call `initialize_distributed` (from flags, the JAX_COORDINATOR_ADDRESS /
JAX_NUM_PROCESSES / JAX_PROCESS_ID environment variables, or JAX's detection of a TPU pod,
SLURM or Open MPI) before anything else touches JAX; meshes then span every process's devices.
This module imports nothing else of hjepa_jax.
"""

from __future__ import annotations

import math
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "MESH_AXES",
    "FSDP_MIN_SIZE",
    "detected_cluster",
    "initialize_distributed",
    "parse_mesh",
    "make_mesh",
    "spread_devices",
    "data_axes",
    "data_sharding",
    "replicated",
    "data_size",
    "check_batch_size",
    "fsdp_spec",
    "state_shardings",
    "put",
    "replicate",
    "shard_batch",
    "bytes_per_device",
    "peak_bytes_per_device",
    "pmap_split",
    "pmap_replicate",
    "pmap_unreplicate",
]

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"
MODEL_AXIS = "model"
MESH_AXES = (DATA_AXIS, FSDP_AXIS, MODEL_AXIS)
FSDP_MIN_SIZE = 1024  # leaves with fewer elements (biases, norms, keys) stay replicated


def detected_cluster() -> str | None:
    """The cluster that `jax.distributed.initialize()` would join with no arguments, or None.

    JAX's own detection, in the order `initialize` tries it: a Cloud TPU pod slice (GCE or
    GKE), SLURM (`srun`), Open MPI (`mpirun`), Kubernetes. Detection reads environment
    variables (and, on a Cloud TPU VM only, the VM's metadata); it starts nothing.
    """
    from jax._src import clusters  # the list jax.distributed.initialize walks; no public API

    for env in clusters.ClusterEnv._cluster_types:
        if not env.opt_in_only_method and env.is_env_present():
            return env.name or env.__name__
    return None


def initialize_distributed(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Join a multi-process JAX job; a no-op (returns False) for a single process.

    Arguments left as None are read from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
    JAX_PROCESS_ID. When none of them is set, JAX's own cluster detection decides
    (`detected_cluster`): on a Cloud TPU pod slice, under SLURM's `srun` or Open MPI's
    `mpirun`, every process joins the one job with no flags, instead of running as an
    independent job that shares the others' checkpoint folder. `num_processes=1` (or
    `--num-processes 1`) runs a single process even inside a cluster. On CPU the
    cross-process collectives use gloo.

    Args:
      coordinator: "host:port" of process 0, e.g. "127.0.0.1:12345".
      num_processes: number of processes in the job.
      process_id: this process's index in [0, num_processes).

    Returns:
      True when `jax.distributed.initialize` was called.

    Raises:
      ValueError: an incomplete or inconsistent set of arguments.
      RuntimeError: a cluster was detected but joining it failed (the message names the
        cluster and JAX's error): a job whose processes cannot meet must not train alone.
    """
    env = os.environ
    coordinator = coordinator or env.get("JAX_COORDINATOR_ADDRESS") or None
    if num_processes is None and env.get("JAX_NUM_PROCESSES"):
        num_processes = int(env["JAX_NUM_PROCESSES"])
    if process_id is None and env.get("JAX_PROCESS_ID"):
        process_id = int(env["JAX_PROCESS_ID"])
    if num_processes is None and coordinator is None and process_id is None:
        cluster = detected_cluster()
        return cluster is not None and _join_detected(cluster)
    if num_processes is None or num_processes == 1:
        return False
    if num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}.")
    if process_id is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be in [0, {num_processes}), got {process_id}.")
    if (coordinator is None) != (process_id is None):
        raise ValueError(
            "multi-process: give both --coordinator and --process-id (or neither, on a TPU "
            f"pod where JAX finds them), got coordinator={coordinator!r}, "
            f"process_id={process_id!r}."
        )
    _use_gloo_on_cpu()
    jax.distributed.initialize(coordinator, num_processes, process_id)
    return True


def _use_gloo_on_cpu() -> None:
    """Cross-process collectives on the CPU backend need gloo (set before JAX starts)."""
    if jax.config.jax_platforms in (None, "", "cpu"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")


def _join_detected(cluster: str) -> bool:
    """`jax.distributed.initialize()` in the detected `cluster`; a failure raises."""
    _use_gloo_on_cpu()
    try:
        jax.distributed.initialize()
    except Exception as err:  # JAX raises RuntimeError, ValueError, KeyError, ... here
        raise RuntimeError(
            f"initialize_distributed: JAX detected a {cluster} cluster but could not join it "
            f"({type(err).__name__}: {err}). Fix the cluster's set-up, or give --coordinator, "
            "--num-processes and --process-id (--num-processes 1 runs one process alone)."
        ) from err
    return True


def parse_mesh(text: str) -> dict[str, int]:
    """Axis sizes from "data=2,fsdp=4" (the --mesh flag): {"data": 2, "fsdp": 4}.

    Axes are among MESH_AXES, each named once, sizes integers >= 1; an axis left out is 1,
    except "data", which `make_mesh` sizes to take the remaining devices.

    >>> parse_mesh("data=2,fsdp=4")
    {'data': 2, 'fsdp': 4}

    Raises:
      ValueError: one line naming the part that is wrong.
    """
    sizes: dict[str, int] = {}
    for part in str(text).split(","):
        name, eq, value = part.strip().partition("=")
        name = name.strip()
        if not eq or name not in MESH_AXES:
            raise ValueError(
                f"mesh {text!r}: {part.strip()!r} is not AXIS=SIZE with AXIS one of "
                f"{', '.join(MESH_AXES)} (e.g. data=2,fsdp=4)"
            )
        if name in sizes:
            raise ValueError(f"mesh {text!r}: axis {name} is given twice")
        try:
            size = int(value)
        except ValueError:
            size = 0
        if size < 1:
            raise ValueError(f"mesh {text!r}: {name} must be an integer >= 1, got {value!r}")
        sizes[name] = size
    return sizes


def make_mesh(
    model: int = 1, devices=None, *, fsdp: int = 1, data: int | None = None, spec=None
) -> Mesh:
    """A 3-D mesh ("data", "fsdp", "model") over `devices` (default: every device of every
    host), laid out by `jax.experimental.mesh_utils.create_device_mesh` (the TPU torus or
    the GPU topology; the plain device order on CPU).

    Args:
      model: size of the model axis (1 = no model parallelism); must divide the device count.
      devices: the devices to use, default `jax.devices()`.
      fsdp: size of the FSDP axis (1 = parameters replicated).
      data: size of the data axis; None takes the devices left (n / (fsdp * model)).
      spec: "data=2,fsdp=4" or {"data": 2, "fsdp": 4} (the --mesh flag), instead of the
        three sizes.

    Returns:
      Mesh of shape [data, fsdp, model].

    Raises:
      ValueError: the sizes do not multiply to the device count (names them).
    """
    if spec is not None:
        sizes = parse_mesh(spec) if isinstance(spec, str) else dict(spec)
        model, fsdp, data = sizes.get(MODEL_AXIS, 1), sizes.get(FSDP_AXIS, 1), sizes.get(DATA_AXIS)
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    if model < 1 or n % model:
        raise ValueError(f"make_mesh: model={model} must divide the {n} devices.")
    if fsdp < 1 or n % (fsdp * model):
        raise ValueError(f"make_mesh: fsdp={fsdp} x model={model} must divide the {n} devices.")
    if data is None:
        data = n // (fsdp * model)
    if data * fsdp * model != n:
        raise ValueError(
            f"make_mesh: data={data} x fsdp={fsdp} x model={model} = {data * fsdp * model} "
            f"devices, but there are {n}; leave data out to use all of them."
        )
    shape = (data, fsdp, model)
    try:
        from jax.experimental import mesh_utils

        grid = mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)
    except (ValueError, NotImplementedError, AssertionError, AttributeError):
        grid = np.asarray(devices, dtype=object).reshape(shape)  # no topology to follow
    return Mesh(grid, MESH_AXES)


def spread_devices(n: int) -> list:
    """`n` devices taken evenly from every process (the first n / processes local devices of
    each), for a mesh smaller than the job that every process still takes part in.

    Raises:
      ValueError: n is not a positive multiple of the process count, or too many.
    """
    processes = jax.process_count()
    if n < 1 or n % processes or n > jax.device_count():
        raise ValueError(
            f"spread_devices: {n} devices do not spread over {processes} processes of "
            f"{jax.device_count() // processes} devices each."
        )
    per = n // processes
    by_process = [[d for d in jax.devices() if d.process_index == p] for p in range(processes)]
    return [d for local in by_process for d in local[:per]]


def data_axes(mesh: Mesh) -> tuple[str, ...]:
    """The mesh axes a batch is split over: "data" and "fsdp" (those the mesh has)."""
    return tuple(a for a in (DATA_AXIS, FSDP_AXIS) if a in mesh.axis_names)


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over ("data", "fsdp"), the rest replicated."""
    return NamedSharding(mesh, P(data_axes(mesh)))


def replicated(mesh: Mesh) -> NamedSharding:
    """The whole array on every device."""
    return NamedSharding(mesh, P())


def data_size(mesh: Mesh) -> int:
    """Number of data-parallel shards of a batch: data x fsdp."""
    return math.prod(mesh.shape[a] for a in data_axes(mesh))


def check_batch_size(batch_size: int, mesh: Mesh | int, grad_accum: int = 1) -> None:
    """A global batch must split evenly over the data-parallel devices (a mesh, or a count),
    and each device's rows into `grad_accum` micro-batches.

    Raises:
      ValueError: saying which batch sizes would do, e.g. "batch_size=32 is not divisible by
        the 64 data-parallel devices; pass --batch-size 64 (a multiple of 64) or
        --batch-per-device N".
    """
    n = mesh if isinstance(mesh, int) else data_size(mesh)
    if batch_size % n:
        fit = -(-batch_size // n) * n
        raise ValueError(
            f"batch_size={batch_size} is not divisible by the {n} data-parallel devices; "
            f"pass --batch-size {fit} (a multiple of {n}) or --batch-per-device N"
        )
    if batch_size % (n * grad_accum):
        m = n * grad_accum
        fit = -(-batch_size // m) * m
        raise ValueError(
            f"batch_size={batch_size} does not split into grad_accum={grad_accum} "
            f"micro-batches on each of the {n} data-parallel devices; pass --batch-size {fit} "
            f"(a multiple of {n} x {grad_accum}) or --batch-per-device N (a multiple of "
            f"{grad_accum})"
        )


def fsdp_spec(shape, fsdp: int, min_size: int = FSDP_MIN_SIZE) -> P:
    """How FSDP splits one leaf of `shape` over `fsdp` devices: along its largest axis whose
    size `fsdp` divides (the first of equals), over "fsdp"; P() (replicated) when fsdp is 1,
    the leaf has fewer than `min_size` elements, or no axis divides.

    >>> [tuple(fsdp_spec(shape, 8)) for shape in [(64, 256), (66, 4), (64,)]]
    [(None, 'fsdp'), (), ()]
    """
    shape = tuple(shape)
    divisible = [i for i, size in enumerate(shape) if size % fsdp == 0]
    if fsdp <= 1 or math.prod(shape) < min_size or not divisible:
        return P()
    axis = max(divisible, key=lambda i: (shape[i], -i))
    return P(*(FSDP_AXIS if i == axis else None for i in range(len(shape))))


def state_shardings(tree, mesh: Mesh, min_size: int = FSDP_MIN_SIZE):
    """A NamedSharding per leaf of `tree` (arrays or ShapeDtypeStructs): `fsdp_spec` over the
    mesh's "fsdp" axis, so a parameter and its optimizer moments (same shape) split alike."""
    fsdp = mesh.shape.get(FSDP_AXIS, 1)
    return jax.tree_util.tree_map(
        lambda leaf: NamedSharding(mesh, fsdp_spec(np.shape(leaf), fsdp, min_size)), tree
    )


def put(tree, shardings):
    """Place host (or device) arrays under `shardings` (one, or a pytree of them matching
    `tree`), on one host or many.

    Every process must pass the same global values (e.g. data generated from the same seed);
    each process materializes only the pieces its own devices hold.
    """

    def place(leaf, sharding):
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    if isinstance(shardings, jax.sharding.Sharding):
        return jax.tree_util.tree_map(lambda leaf: place(leaf, shardings), tree)
    return jax.tree_util.tree_map(place, tree, shardings)


_put = put  # the name before FSDP


def replicate(tree, mesh: Mesh):
    """Every leaf replicated on every device of the mesh."""
    return put(tree, replicated(mesh))


def shard_batch(tree, mesh: Mesh):
    """Leaves [B, ...] split along B over the data axes (B divisible by data_size)."""
    return put(tree, data_sharding(mesh))


def bytes_per_device(tree, shardings=None) -> int:
    """Bytes one device holds of `tree` (arrays, or ShapeDtypeStructs with `shardings`: one
    or a pytree of them): each leaf's shard shape times its item size, summed. The largest
    shard is counted where shards differ in size (they do not, for the shardings here)."""
    leaves = jax.tree_util.tree_leaves(tree)
    if shardings is None:
        shardings = [leaf.sharding for leaf in leaves]
    elif isinstance(shardings, jax.sharding.Sharding):
        shardings = [shardings] * len(leaves)
    else:
        shardings = jax.tree_util.tree_leaves(
            shardings, is_leaf=lambda x: isinstance(x, jax.sharding.Sharding)
        )
    return int(
        sum(
            math.prod(sharding.shard_shape(tuple(leaf.shape))) * np.dtype(leaf.dtype).itemsize
            for leaf, sharding in zip(leaves, shardings, strict=True)
        )
    )


def peak_bytes_per_device() -> int | None:
    """The most memory any local device has held since the process started, where the
    backend reports it (`device.memory_stats()["peak_bytes_in_use"]`: GPU, TPU); else None
    (the CPU backend reports nothing)."""
    peaks = []
    for device in jax.local_devices():
        try:
            stats = device.memory_stats()
        except Exception:  # some backends raise instead of returning None
            stats = None
        if stats and "peak_bytes_in_use" in stats:
            peaks.append(int(stats["peak_bytes_in_use"]))
    return max(peaks) if peaks else None


# ---- the pmap path: leading device axis instead of shardings ----


def pmap_split(tree, n: int):
    """[B, ...] -> [n, B / n, ...] for `jax.pmap` over n local devices."""

    def split(leaf):
        if leaf.shape[0] % n:
            raise ValueError(f"batch of {leaf.shape[0]} does not split over {n} devices.")
        return leaf.reshape(n, leaf.shape[0] // n, *leaf.shape[1:])

    return jax.tree_util.tree_map(split, tree)


def pmap_replicate(tree, n: int):
    """One copy of each leaf per local device, stacked: [...] -> [n, ...] (moved to the
    devices by the first pmapped call; its outputs then stay there). A leaf may be a global
    array replicated over several hosts (a restored checkpoint): its local copy is used."""

    def local(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            leaf = leaf.addressable_data(0)
        return np.broadcast_to(np.asarray(leaf), (n, *np.shape(leaf)))

    return jax.tree_util.tree_map(local, tree)


def pmap_unreplicate(tree):
    """The first device's copy: [n, ...] -> [...]."""
    return jax.tree_util.tree_map(lambda leaf: leaf[0], tree)
