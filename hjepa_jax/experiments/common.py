"""What every experiment shares: config flags, atomic outputs, the metrics file.

`atomic_write` is `hjepa_jax.io.atomic_write` (only process 0 writes; never half a file; modes
follow the umask); `on_process_0` marks each experiment's `draw` (only process 0 draws). An
experiment's output folder `out` is an `etils.epath.Path` (`hjepa_jax.io.as_path`), so
`out / "x.png"` may be a local file or a `gs://` object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Annotated

import matplotlib

from hjepa_jax import checkpoint, parallel
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

    def loop(self, config, out: Path, model: str | None = None) -> LoopConfig:
        """The LoopConfig of one trained model (`model` names it when there are several).
        `out` may be a local folder or a bucket (an etils.epath.Path); its logs go there."""
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
    count = _parse_field("count", Count)
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


@dataclasses.dataclass(frozen=True)
class AtLeast:
    """A config field's lower bound, `Annotated[int, AtLeast(1)]`; `strict`: value > low."""

    low: float
    strict: bool = False

    def problem(self, value) -> str | None:
        if value > self.low or (value == self.low and not self.strict):
            return None
        return f"must be {'>' if self.strict else '>='} {self.low:g}, got {value!r}"


Count = Annotated[int, AtLeast(1)]  # sizes, steps, numbers of things
Positive = Annotated[float, AtLeast(0.0, strict=True)]  # learning rates, scales, temperatures
NonNegative = Annotated[float, AtLeast(0.0)]  # weights and noise levels that may be 0
Whole = Annotated[int, AtLeast(0)]  # counts where 0 means none (or "only at the end")


def field_problem(kind, value) -> str | None:
    """What is wrong with `value` as a config field of type `kind`, or None.

    `kind` may be `Annotated[T, AtLeast(...)]`, `Literal[...]` (the allowed values) or
    `tuple[X, ...]` (each item checked as X); other types are not checked here.
    """
    origin = typing.get_origin(kind)
    if origin is typing.Annotated:
        base, *extras = typing.get_args(kind)
        found = field_problem(base, value)
        for extra in extras:
            found = found or (extra.problem(value) if isinstance(extra, AtLeast) else None)
        return found
    if origin is typing.Literal:
        allowed = typing.get_args(kind)
        return None if value in allowed else f"must be one of {list(allowed)}, got {value!r}"
    if origin is tuple and len(typing.get_args(kind)) == 2 and typing.get_args(kind)[1] is ...:
        if not value:
            return "must name at least one value"
        for item in value:
            found = field_problem(typing.get_args(kind)[0], item)
            if found:
                return found
    return None


def check_fields(config) -> None:
    """Raise ValueError naming the first field of `config` whose value its type refuses."""
    hints = typing.get_type_hints(type(config), include_extras=True)
    for field in dataclasses.fields(config):
        found = field_problem(hints[field.name], getattr(config, field.name))
        if found:
            raise ValueError(f"{type(config).__module__}.Config: {field.name} {found}")


def config(cls):
    """Make `cls` an experiment config: a frozen dataclass whose fields are checked when it
    is built (types such as `Count`, `Positive`, `Literal[...]`), then its own cross-field
    `check()` if it has one. Either raises ValueError naming the field."""

    def __post_init__(self):
        check_fields(self)
        if hasattr(self, "check"):
            self.check()

    cls.__post_init__ = __post_init__
    return dataclasses.dataclass(frozen=True)(cls)


def _scalar_type(kind):
    """The plain Python type under `Annotated` / `Literal` (int, float, str or bool)."""
    origin = typing.get_origin(kind)
    if origin is typing.Annotated:
        return _scalar_type(typing.get_args(kind)[0])
    if origin is typing.Literal:
        return type(typing.get_args(kind)[0])
    return kind


def _parse_field(name: str, kind):
    """An argparse `type` for a config field: parses the text, then checks the value against
    the field's type (`field_problem`), so a bad flag is refused before anything runs.
    (A `Literal` field parses to its base type; argparse `choices` then checks it.)"""
    if typing.get_origin(kind) is typing.Literal:
        return _scalar_type(kind)
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"config field {name}: optional types are not flags")
    if origin is tuple:
        item = _scalar_type(typing.get_args(kind)[0])
        parse = lambda s: tuple(item(v) for v in s.split(","))  # noqa: E731
    elif _scalar_type(kind) is bool:
        parse = lambda s: {"true": True, "false": False, "1": True, "0": False}[s.lower()]  # noqa: E731
    else:
        parse = _scalar_type(kind)

    def parse_and_check(text: str):
        try:
            value = parse(text)
        except KeyError as err:  # argparse reports a ValueError as "invalid <type> value"
            raise ValueError(text) from err
        found = field_problem(kind, value)
        if found:
            raise argparse.ArgumentTypeError(found)
        return value

    parse_and_check.__name__ = getattr(_scalar_type(kind), "__name__", name)
    return parse_and_check


def add_config_flags(parser: argparse.ArgumentParser, config_cls) -> None:
    """One `--field-name` flag per dataclass field, help showing the default, and `--preset`
    where the config has named presets (a class attribute `PRESETS: {name: {field: value}}`).

    Flags default to None so that only the ones given override the (quick or preset) config.
    """
    presets = getattr(config_cls, "PRESETS", {})
    if presets:
        parser.add_argument(
            "--preset",
            choices=sorted(presets),
            default=None,
            help="start from a named set of fields (other flags still override them)",
        )
    defaults = config_cls()
    hints = typing.get_type_hints(config_cls, include_extras=True)
    for field in dataclasses.fields(config_cls):
        kind = hints[field.name]
        literal = typing.get_origin(kind) is typing.Literal
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            dest=field.name,
            type=_parse_field(field.name, kind),
            choices=typing.get_args(kind) if literal else None,
            default=None,
            help=f"(default {getattr(defaults, field.name)!r})",
        )


def config_from_args(config_cls, args: argparse.Namespace, quick: bool):
    """The default (or quick, or preset) config with the given flags applied.

    Raises:
      ValueError: both --quick and --preset, or a preset whose fields the config refuses.
    """
    preset = getattr(args, "preset", None)
    if preset is not None and quick:
        raise ValueError("--quick and --preset each pick a config; give one")
    config = config_cls().quick() if quick else config_cls()
    if preset is not None:
        config = dataclasses.replace(config, **config_cls.PRESETS[preset])
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(config_cls)
        if getattr(args, f.name, None) is not None
    }
    return dataclasses.replace(config, **given)
