"""Data parallelism on any number of devices and hosts: meshes, shardings, the pmap path.

The same training code runs on 1 CPU, 8 GPUs or a TPU pod slice; only the mesh changes:

    mesh = make_mesh()                       # all devices of all hosts on the "data" axis
    state = replicate(state, mesh)           # params, optimizer state, step, key everywhere
    batch = shard_batch(batch, mesh)         # [B, ...] split along B over "data"

Under `jax.jit` with these shardings, batch statistics (means, VICReg's covariance, InfoNCE's
negatives) are over the global batch automatically. On the `pmap` path each device sees its
[B / n] slice and the gradients are averaged with `lax.pmean`; the same numbers result for
losses that are means over examples.

Multi-host: call `initialize_distributed` (from flags, the JAX_COORDINATOR_ADDRESS /
JAX_NUM_PROCESSES / JAX_PROCESS_ID environment variables, or JAX's detection of a TPU pod,
SLURM or Open MPI) before anything else touches JAX.
This module imports nothing else of hjepa_jax.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "detected_cluster",
    "initialize_distributed",
    "make_mesh",
    "data_sharding",
    "replicated",
    "data_size",
    "check_batch_size",
    "replicate",
    "shard_batch",
    "pmap_split",
    "pmap_replicate",
    "pmap_unreplicate",
]

DATA_AXIS = "data"
MODEL_AXIS = "model"


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


def make_mesh(model: int = 1, devices=None) -> Mesh:
    """A 2-D mesh ("data", "model") over `devices` (default: every device of every host).

    Args:
      model: size of the model axis (1 = pure data parallelism); must divide the device count.
      devices: the devices to use, default `jax.devices()`.

    Returns:
      Mesh of shape [n / model, model].
    """
    devices = np.asarray(jax.devices() if devices is None else devices)
    if model < 1 or devices.size % model:
        raise ValueError(f"make_mesh: model={model} must divide the {devices.size} devices.")
    return Mesh(devices.reshape(-1, model), (DATA_AXIS, MODEL_AXIS))


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over "data", the rest replicated."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """The whole array on every device."""
    return NamedSharding(mesh, P())


def data_size(mesh: Mesh) -> int:
    """Number of shards along the data axis."""
    return mesh.shape[DATA_AXIS]


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """A global batch must split evenly over the data axis."""
    if batch_size % data_size(mesh):
        raise ValueError(
            f"batch_size={batch_size} is not divisible by the {data_size(mesh)} data-parallel "
            "devices; choose a multiple."
        )


def _put(tree, sharding: NamedSharding):
    """Place host (or device) arrays under `sharding`, on one host or many.

    Every process must pass the same global values (e.g. data generated from the same seed);
    each process materializes only the pieces its own devices hold.
    """

    def put(leaf):
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree_util.tree_map(put, tree)


def replicate(tree, mesh: Mesh):
    """Every leaf replicated on every device of the mesh."""
    return _put(tree, replicated(mesh))


def shard_batch(tree, mesh: Mesh):
    """Leaves [B, ...] split along B over the data axis (B divisible by the data size)."""
    return _put(tree, data_sharding(mesh))


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
