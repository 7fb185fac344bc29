"""Orbax checkpoints of a whole training state, strict and resumable on any mesh.

A checkpoint of step t is a folder `DIR/t/` with two items:
  state: the TrainState pytree (params, optimizer state, step, PRNG key);
  meta:  JSON {"config": the experiment's settings, "metrics": the last logged metrics,
         "data_position": t}.
Orbax writes each step to `t.orbax-checkpoint-tmp/` and renames it when complete, so a run
killed mid-save leaves no checkpoint that loads half-written (the partial folder is never
listed and is cleaned up by the next run). Restoring places every leaf with the sharding the
caller asks for, so a checkpoint saved on 8 devices restores on 1, 2 or a pod slice.
Every process of a multi-host job must call save and restore; orbax coordinates the writes.
Orbax (and tensorstore under it) is imported when the first `Checkpointer` is made, not with
`hjepa_jax`.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

__all__ = ["RESUMABLE_FIELDS", "Checkpointer", "config_differences", "state_differences", "subdir"]

# Settings that may change between a run and its resumption (they do not change the math of
# the steps already taken).
RESUMABLE_FIELDS = ("steps", "log_every")


def subdir(directory: str | Path, name: str) -> str:
    """`directory/name` for a local folder or a bucket path, gs://... (Path would mangle it)."""
    directory = str(directory)
    if "://" in directory:
        return f"{directory.rstrip('/')}/{name}"
    return str(Path(directory) / name)


def _flat_shapes(tree) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{"params/dense_0/kernel": (shape, dtype), ...} for a pytree of arrays or metadata.

    NamedTuples and dicts give their field names, sequences their indices, so a state and
    the checkpoint's metadata of it (where NamedTuples are stored as dicts) give equal keys.
    """

    def name(entry) -> str:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                return str(getattr(entry, attr))
        return str(entry)

    leaves, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))
    return {
        "/".join(name(e) for e in path): (tuple(v.shape), np.dtype(v.dtype)) for path, v in leaves
    }


def _json_normal(config: dict) -> dict:
    """The config as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(config))


def config_differences(saved: dict, current: dict) -> list[str]:
    """Fields whose values differ between a checkpoint's config and the current one."""
    saved, current = _json_normal(saved), _json_normal(current)
    keys = (saved.keys() | current.keys()) - set(RESUMABLE_FIELDS)
    return [
        f"{k}: checkpoint {saved.get(k, '<missing>')!r} != now {current.get(k, '<missing>')!r}"
        for k in sorted(keys)
        if saved.get(k) != current.get(k)
    ]


def state_differences(saved_tree, target) -> list[str]:
    """Leaves missing on either side, or with another shape or dtype."""
    saved, wanted = _flat_shapes(saved_tree), _flat_shapes(target)
    diffs = [f"{k}: only in the checkpoint" for k in sorted(saved.keys() - wanted.keys())]
    diffs += [f"{k}: not in the checkpoint" for k in sorted(wanted.keys() - saved.keys())]
    for k in sorted(saved.keys() & wanted.keys()):
        if saved[k] != wanted[k]:
            (s_shape, s_dtype), (w_shape, w_dtype) = saved[k], wanted[k]
            diffs.append(f"{k}: checkpoint {s_shape} {s_dtype} != now {w_shape} {w_dtype}")
    return diffs


class Checkpointer:
    """Save and restore a training state in a folder, keeping the latest `keep` steps.

    Args:
      directory: the checkpoint folder (created if missing; may be a gs:// path).
      keep: number of latest checkpoints kept.
    """

    def __init__(self, directory: str | Path, keep: int = 2):
        import orbax.checkpoint as ocp  # here, not at import: orbax loads tensorstore

        path = directory if "://" in str(directory) else Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, cleanup_tmp_directories=True
        )
        self.directory = path
        self.manager = ocp.CheckpointManager(
            path,
            options=options,
            item_handlers={
                "state": ocp.StandardCheckpointHandler(),
                "meta": ocp.JsonCheckpointHandler(),
            },
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def reached_preemption(self, step: int) -> bool:
        """Whether the job is being preempted and `step` is where every process stops.

        True at orbax's preemption sync point: a SIGTERM (what a Spot or preemptible TPU VM
        gets before it is taken away) reached some host, JAX's preemption notifier (set up
        by `jax.distributed.initialize`, which `hjepa-run` calls on a TPU VM and under the
        multi-process flags) passed the notice to all hosts, and they agreed on the step to
        stop at: one past the largest step any host had reached. Every process then gets
        True for that same step, so the loop saves it there and exits, and the next run
        with the same folder resumes from it (tpu_setup/resume.sh relaunches the run once
        the VM is recreated). False without a preemption, and always False in a process
        that did not initialize jax.distributed (a plain single-process run).

        Call it on every process after every step, with the number of steps made; the
        sync protocol counts on each host reporting each step.
        """
        return bool(self.manager.reached_preemption(int(step)))

    def save(self, step: int, state, meta: dict) -> None:
        """Save `state` (any pytree of arrays) and `meta` (JSON-able) as step `step`.

        Asynchronous: returns once the arrays are copied to host; `close` waits for the write.
        """
        import orbax.checkpoint as ocp

        if step in self.manager.all_steps():
            return  # already saved (e.g. the final step of a run that was resumed at its end)
        meta = {**meta, "data_position": int(step)}
        self.manager.save(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )

    def read_meta(self, step: int) -> dict:
        """The JSON item of a saved step."""
        import orbax.checkpoint as ocp

        args = ocp.args.Composite(meta=ocp.args.JsonRestore())
        return self.manager.restore(step, args=args)["meta"]

    def restore(self, step: int, target, sharding=None, config: dict | None = None):
        """Restore step `step` into the structure of `target`, strictly.

        Args:
          step: a saved step.
          target: a pytree with the wanted structure, shapes and dtypes (arrays or
            ShapeDtypeStructs), e.g. the abstract state (`jax.eval_shape` of its init).
          sharding: where the restored leaves go, whatever mesh the checkpoint was saved
            from: one jax.sharding.Sharding for every leaf (e.g. replicated on the current
            mesh), a pytree of them matching `target` (e.g. FSDP's), or None for each target
            leaf's own `.sharding` (ShapeDtypeStructs made with one). Each process reads only
            the shards its devices hold.
          config: when given, the settings the checkpoint must have been saved with.

        Returns:
          (state with the structure of `target`, meta dict).

        Raises:
          ValueError: naming every config field or state leaf that differs.
        """
        import orbax.checkpoint as ocp

        meta = self.read_meta(step)
        if config is not None:
            diffs = config_differences(meta.get("config", {}), config)
            if diffs:
                raise ValueError(
                    f"checkpoint {self.directory}/{step} was saved with other settings; "
                    "use another --ckpt-dir or the same settings. Differences: " + "; ".join(diffs)
                )
        saved_tree = self.manager.item_metadata(step)["state"].tree
        diffs = state_differences(saved_tree, target)
        if diffs:
            raise ValueError(
                f"checkpoint {self.directory}/{step} does not match the model being trained: "
                + "; ".join(diffs)
            )
        if sharding is None:
            shardings = jax.tree_util.tree_map(lambda x: x.sharding, target)
        elif isinstance(sharding, jax.sharding.Sharding):
            shardings = jax.tree_util.tree_map(lambda x: sharding, target)
        else:
            shardings = sharding
        abstract = jax.tree_util.tree_map(
            lambda x, s: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=s), target, shardings
        )
        restored = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        )
        return restored["state"], meta

    def close(self) -> None:
        """Wait for pending writes and release the manager."""
        self.manager.wait_until_finished()
        self.manager.close()
