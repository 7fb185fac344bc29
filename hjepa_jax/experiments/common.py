"""What every experiment shares: run flags, config fields (`fields`), atomic outputs, the
metrics file.

`atomic_write` is `hjepa_jax.io.atomic_write` (only process 0 writes; never half a file; modes
follow the umask); `on_process_0` marks each experiment's `draw` (only process 0 draws). An
experiment's output folder `out` is an `etils.epath.Path` (`hjepa_jax.io.as_path`), so
`out / "x.png"` may be a local file or a `gs://` object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import matplotlib

from hjepa_jax import checkpoint, parallel
from hjepa_jax.experiments.fields import (  # noqa: F401 (for the experiments)
    AtLeast,
    Count,
    MayBeEmpty,
    NonNegative,
    Positive,
    Whole,
    add_config_flags,
    check_fields,
    config,
    config_from_args,
    field_problem,
    parse_field,
)
from hjepa_jax.io import atomic_write, on_process_0  # noqa: F401 (for the experiments)
from hjepa_jax.train import DTYPES, LoopConfig

matplotlib.use("Agg")  # experiments draw to files only
import matplotlib.pyplot as plt  # noqa: E402

# Keys every metrics.json carries, so runs compare across experiments and devices.
REQUIRED_METRICS = ("final_loss", "steps", "examples_per_s", "wall_s", "resumed_from_step")
# Memory keys of hj.train's summary (where known): a combined summary keeps the largest.
MEMORY_METRICS = ("param_bytes_per_device", "step_bytes_per_device", "peak_bytes_per_device")


def save_figure(fig: plt.Figure, path: Path) -> None:
    """Save a matplotlib figure as PNG atomically (local or remote `path`) and close it."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)


def combined_summary(summaries: list[dict], batch_size: int, final_loss: float) -> dict:
    """The run keys of an experiment that trains several models (REQUIRED_METRICS):

    steps, wall time and resumed steps add up over the runs; examples/s is over all of them;
    `final_loss` is the one the experiment names (its main model's, or a mean); the memory
    keys (MEMORY_METRICS, where every run has them) are the largest run's.
    """
    wall = sum(s["wall_s"] for s in summaries)
    combined = {
        "final_loss": final_loss,
        "steps": sum(s["steps"] for s in summaries),
        "wall_s": wall,
        "examples_per_s": sum(s["steps"] * batch_size for s in summaries) / wall,
        "resumed_from_step": sum(s["resumed_from_step"] for s in summaries),
    }
    for name in MEMORY_METRICS:
        if summaries and all(name in s for s in summaries):
            combined[name] = max(s[name] for s in summaries)
    return combined


def save_metrics(path: Path, metrics: dict, cfg) -> dict:
    """Write metrics.json: flat name -> number, plus "config". Returns what was written.

    Raises:
      ValueError: a required key is missing or a value is not a finite-or-nan number.
    """
    missing = [k for k in REQUIRED_METRICS if k not in metrics]
    if missing:
        raise ValueError(f"save_metrics: missing required metrics {missing}.")
    flat = {}
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = float(value)
            except (TypeError, ValueError) as err:
                raise ValueError(f"save_metrics: {name}={value!r} is not a number.") from err
        flat[name] = value
    flat["config"] = dataclasses.asdict(cfg)
    text = json.dumps(flat, indent=2, sort_keys=True).encode()
    atomic_write(path, lambda f: f.write(text))
    return flat


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How to run an experiment, whatever it trains: checkpoints, logs, devices, precision."""

    ckpt_dir: str | None = None  # resume from / save to this folder
    ckpt_every: int = 1000
    keep: int = 2  # checkpoints kept
    tensorboard: bool = False
    parallel: str = "jit"  # "jit" (shardings) or "pmap"
    mesh: str | None = None  # "data=2,fsdp=4"; None: every device on "data"
    dtype: str = "float32"  # computation dtype, "float32" or "bfloat16"
    grad_accum: int = 1  # micro-batches per step
    remat: bool = False  # recompute transformer blocks in the backward pass
    profile_steps: tuple[int, int] | None = None  # a jax.profiler trace of steps a..b

    def loop(self, cfg, out: Path, model: str | None = None) -> LoopConfig:
        """The LoopConfig of one trained model (`model` names it when there are several).
        `out` may be a local folder or a bucket (an etils.epath.Path); its logs go there."""
        ckpt_dir = self.ckpt_dir
        if ckpt_dir is not None and model is not None:
            ckpt_dir = checkpoint.subdir(ckpt_dir, model)
        log_dir = out if model is None else out / model
        return LoopConfig(
            steps=cfg.steps,
            batch_size=cfg.batch_size,
            log_every=cfg.log_every,
            parallel=self.parallel,
            ckpt_dir=ckpt_dir,
            ckpt_every=self.ckpt_every,
            keep=self.keep,
            log_dir=str(log_dir),
            tensorboard=self.tensorboard,
            mesh=self.mesh,
            dtype=self.dtype,
            grad_accum=self.grad_accum,
            remat=self.remat,
            profile_steps=self.profile_steps,
        )


def _flag_type(name: str, parse):
    """An argparse `type` named `name` whose ValueError becomes argparse's one-line error
    ("argument --flag: <message>")."""

    def parse_flag(text: str):
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse_flag.__name__ = name
    return parse_flag


def parse_mesh_flag(text: str) -> str:
    """--mesh: "data=2,fsdp=4" checked (`hj.parallel.parse_mesh`), returned normalized."""
    sizes = parallel.parse_mesh(text)
    return ",".join(f"{axis}={size}" for axis, size in sizes.items())


def parse_profile_steps(text: str) -> tuple[int, int]:
    """--profile-steps: "A:B" -> (A, B), 1 <= A <= B."""
    first, colon, last = text.partition(":")
    try:
        pair = (int(first), int(last)) if colon else None
    except ValueError:
        pair = None
    if pair is None or not 1 <= pair[0] <= pair[1]:
        raise ValueError(f"must be A:B with 1 <= A <= B (steps A to B), e.g. 10:12, got {text!r}")
    return pair


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every experiment shares (RunOptions, plus multi-process set-up)."""
    group = parser.add_argument_group("running (checkpoints, logs, devices, hosts)")
    group.add_argument(
        "--ckpt-dir", default=None, help="checkpoint folder; a rerun with the same folder resumes"
    )
    count = parse_field("count", Count)
    group.add_argument("--ckpt-every", type=count, default=1000, help="(default 1000)")
    group.add_argument("--keep", type=count, default=2, help="checkpoints kept (default 2)")
    group.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard event files next to train_log.jsonl",
    )
    group.add_argument(
        "--parallel",
        choices=("jit", "pmap"),
        default="jit",
        help="jit with shardings over all devices, or pmap (default jit)",
    )
    group.add_argument(
        "--mesh",
        type=_flag_type("mesh", parse_mesh_flag),
        default=None,
        metavar="AXIS=SIZE,...",
        help="device mesh of the jit path, axes data, fsdp, model, e.g. data=2,fsdp=4 "
        "(fsdp > 1 shards parameters and optimizer state; data left out takes the devices "
        "left; default: every device on data)",
    )
    group.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float32",
        help="computation dtype; bfloat16 keeps parameters, optimizer state and batch "
        "statistics float32 (default float32)",
    )
    group.add_argument(
        "--grad-accum",
        type=count,
        default=1,
        metavar="N",
        help="split each batch into N micro-batches, one update (batch statistics are then "
        "per micro-batch; default 1)",
    )
    group.add_argument(
        "--remat",
        action="store_true",
        help="recompute transformer blocks in the backward pass (less memory, more compute)",
    )
    group.add_argument(
        "--profile-steps",
        type=_flag_type("steps", parse_profile_steps),
        default=None,
        metavar="A:B",
        help="write a jax.profiler trace of steps A to B to OUT/[MODEL/]profile",
    )
    group.add_argument(
        "--batch-per-device",
        type=count,
        default=None,
        metavar="N",
        help="batch_size = N x the data-parallel devices (instead of --batch-size)",
    )
    group.add_argument("--coordinator", default=None, help="multi-process: host:port of process 0")
    group.add_argument(
        "--num-processes", type=int, default=None, help="multi-process: number of processes"
    )
    group.add_argument(
        "--process-id", type=int, default=None, help="multi-process: this process's index"
    )


def run_options(args: argparse.Namespace) -> RunOptions:
    return RunOptions(
        ckpt_dir=args.ckpt_dir,
        ckpt_every=args.ckpt_every,
        keep=args.keep,
        tensorboard=args.tensorboard,
        parallel=args.parallel,
        mesh=args.mesh,
        dtype=args.dtype,
        grad_accum=args.grad_accum,
        remat=args.remat,
        profile_steps=args.profile_steps,
    )
