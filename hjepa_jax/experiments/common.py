"""What every experiment shares: config flags, atomic outputs, the metrics file."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import types
import typing
from pathlib import Path

import jax
import matplotlib

from hjepa_jax import checkpoint
from hjepa_jax.train import LoopConfig

matplotlib.use("Agg")  # experiments draw to files only
import matplotlib.pyplot as plt  # noqa: E402

# Keys every metrics.json carries (DESIGN.md), so runs compare across experiments and devices.
REQUIRED_METRICS = ("final_loss", "steps", "examples_per_s", "wall_s", "resumed_from_step")


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: never half a file.

    In a multi-process job only process 0 writes (the others compute the same outputs).
    """
    if jax.process_index() != 0:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_figure(fig: plt.Figure, path: Path) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    atomic_write(Path(path), lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)


def combined_summary(summaries: list[dict], batch_size: int, final_loss: float) -> dict:
    """The run keys of an experiment that trains several models (REQUIRED_METRICS):

    steps, wall time and resumed steps add up over the runs; examples/s is over all of them;
    `final_loss` is the one the experiment names (its main model's, or a mean).
    """
    wall = sum(s["wall_s"] for s in summaries)
    return {
        "final_loss": final_loss,
        "steps": sum(s["steps"] for s in summaries),
        "wall_s": wall,
        "examples_per_s": sum(s["steps"] * batch_size for s in summaries) / wall,
        "resumed_from_step": sum(s["resumed_from_step"] for s in summaries),
    }


def save_metrics(path: Path, metrics: dict, config) -> dict:
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
    flat["config"] = dataclasses.asdict(config)
    text = json.dumps(flat, indent=2, sort_keys=True).encode()
    atomic_write(Path(path), lambda f: f.write(text))
    return flat


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How to run an experiment, whatever it trains: checkpoints, logs, parallel mode."""

    ckpt_dir: str | None = None  # resume from / save to this folder
    ckpt_every: int = 1000
    keep: int = 2  # checkpoints kept
    tensorboard: bool = False
    parallel: str = "jit"  # "jit" (shardings) or "pmap"

    def loop(self, config, out: Path, model: str | None = None) -> LoopConfig:
        """The LoopConfig of one trained model (`model` names it when there are several)."""
        ckpt_dir = self.ckpt_dir
        if ckpt_dir is not None and model is not None:
            ckpt_dir = checkpoint.subdir(ckpt_dir, model)
        log_dir = out if model is None else out / model
        return LoopConfig(
            steps=config.steps,
            batch_size=config.batch_size,
            log_every=config.log_every,
            parallel=self.parallel,
            ckpt_dir=ckpt_dir,
            ckpt_every=self.ckpt_every,
            keep=self.keep,
            log_dir=str(log_dir),
            tensorboard=self.tensorboard,
        )


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every experiment shares (RunOptions, plus multi-process set-up)."""
    group = parser.add_argument_group("running (checkpoints, logs, devices, hosts)")
    group.add_argument(
        "--ckpt-dir", default=None, help="checkpoint folder; a rerun with the same folder resumes"
    )
    group.add_argument("--ckpt-every", type=int, default=1000, help="(default 1000)")
    group.add_argument("--keep", type=int, default=2, help="checkpoints kept (default 2)")
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
    )


def _parse_field(name: str, kind):
    """An argparse `type` for a config field: int, float, str, bool or tuple[int/float, ...]."""
    if kind is bool:
        return lambda s: {"true": True, "false": False, "1": True, "0": False}[s.lower()]
    origin = typing.get_origin(kind)
    if origin is tuple:
        item = typing.get_args(kind)[0]
        return lambda s: tuple(item(v) for v in s.split(","))
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"config field {name}: optional types are not flags")
    return kind


def add_config_flags(parser: argparse.ArgumentParser, config_cls) -> None:
    """One `--field-name` flag per dataclass field, help showing the default.

    Flags default to None so that only the ones given override the (quick) config.
    """
    defaults = config_cls()
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            dest=field.name,
            type=_parse_field(field.name, hints[field.name]),
            default=None,
            help=f"(default {getattr(defaults, field.name)!r})",
        )


def config_from_args(config_cls, args: argparse.Namespace, quick: bool):
    """The default (or quick) config with the given flags applied."""
    config = config_cls().quick() if quick else config_cls()
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(config_cls)
        if getattr(args, f.name, None) is not None
    }
    return dataclasses.replace(config, **given)
