"""Run one experiment, or all of them and write a report.

    hjepa-run NAME --out DIR [--quick] [--seed S] [--FIELD VALUE ...]
    hjepa-run all --quick --out out/      # every experiment + out/report.md
    hjepa-run NAME --help                 # the config fields and defaults

`hjepa-run` is the installed console script; `python -m hjepa_jax.experiments.run` is the same.

Each experiment writes DIR/metrics.json (flat numbers plus "config") and DIR/*.png. DIR may
be a bucket (`--out gs://bucket/run`, through `etils.epath`; gs:// needs gcsfs or TensorFlow).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import jax

from hjepa_jax import checkpoint, parallel
from hjepa_jax.experiments import (
    common,
    fig3_parabola,
    fig4_ellipse,
    fig5_collapse,
    hjepa_moving_shapes,
    ijepa_images,
    jepa_digits,
    methods_landscapes,
    planning_two_rooms,
    report,
)
from hjepa_jax.io import as_path, is_remote
from hjepa_jax.train import Preempted

# The one place an experiment is looked up by name.
EXPERIMENTS = {
    module.NAME: module
    for module in (
        fig3_parabola,
        fig4_ellipse,
        fig5_collapse,
        methods_landscapes,
        jepa_digits,
        hjepa_moving_shapes,
        planning_two_rooms,
        ijepa_images,
    )
}

log = logging.getLogger("hjepa_jax.experiments")
PREEMPTED_EXIT = 143  # 128 + SIGTERM: stopped and saved, not done
OUT_HELP = "output folder, local or a bucket (gs://BUCKET/PATH)"


def run_one(module, config, out: Path, options: common.RunOptions) -> dict:
    """Run `module` with `config`, writing its outputs under `out`. Returns metrics.json."""
    if not is_remote(out):  # a bucket has no folders to make
        out.mkdir(parents=True, exist_ok=True)
    log.info("%s: starting, config %s", module.NAME, config)
    start = time.perf_counter()
    metrics = module.run(config, out, options)
    written = common.save_metrics(out / "metrics.json", metrics, config)
    log.info("%s: done in %.1f s, metrics in %s", module.NAME, time.perf_counter() - start, out)
    return written


class Parser(argparse.ArgumentParser):
    """A parser whose errors take one line, `prog: error: message (see prog --help)`, and exit
    with status 2 before anything is run or written."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def out_problem(out: Path) -> str | None:
    """Why `out` cannot be made an output folder, or None. Creates nothing that stays: the
    deepest existing folder above it gets a temporary folder, removed at once (a permission
    check alone would pass for root on a read-only file system).

    A bucket (`gs://...`) is not checked here: it has no folders to make, and whether this
    machine may write there shows only at the first write (a check would need credentials
    and a network round trip before the flags are even all read)."""
    if is_remote(out):
        return None
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        return f"--out {out}: {existing} is a file, not a folder"
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".hjepa-run-check-"))
    except OSError as err:
        return f"--out {out}: cannot create folders in {existing} ({err.strerror})"
    return None


def run_flag_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with a combination of run flags (each flag alone was checked as it was
    parsed), or None."""
    if getattr(args, "batch_per_device", None) is not None and (
        getattr(args, "batch_size", None) is not None
    ):
        return "--batch-per-device and --batch-size both set the batch size; give one"
    if args.parallel == "pmap" and args.mesh is not None:
        if parallel.parse_mesh(args.mesh).get(parallel.FSDP_AXIS, 1) > 1:
            return "--mesh with fsdp > 1 needs --parallel jit (pmap replicates the state)"
    return None


def data_parallel_devices(options: common.RunOptions) -> int:
    """How many devices a batch is split over with these options (after multi-process set-up):
    data x fsdp of the mesh on the jit path, every device on the pmap path.

    Raises:
      ValueError: the mesh does not fit the devices (names the sizes).
    """
    if options.parallel == "pmap":
        return parallel.make_mesh().size
    try:
        return parallel.data_size(parallel.make_mesh(spec=options.mesh))
    except ValueError as err:
        raise ValueError(f"--mesh {options.mesh}: {err}") from None


def batch_problem(config, devices: int, grad_accum: int = 1) -> str | None:
    """Why `config.batch_size` cannot be split over `devices` (and grad_accum micro-batches),
    saying which sizes would do; None when it can."""
    try:
        parallel.check_batch_size(config.batch_size, devices, grad_accum)
    except ValueError as err:
        return str(err)
    return None


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None):
    """Parse `argv` into (args, the experiment's own parser). Unknown flags are refused by
    the experiment's parser (its usage, not the top-level one), and so is an output folder
    that cannot be created."""
    args, unknown = parser.parse_known_args(argv)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    own = sub.choices[args.name]
    if unknown:
        own.error(f"unrecognized arguments: {' '.join(unknown)}")
    problem = out_problem(args.out) or run_flag_problem(args)
    if problem:
        own.error(problem)
    return args, own


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="hjepa-run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="name", required=True, metavar="NAME")
    every = sub.add_parser("all", help="run every experiment, then write OUT/report.md")
    every.add_argument("--out", type=as_path, required=True, help=OUT_HELP)
    every.add_argument("--quick", action="store_true", help="the quick variant of each config")
    every.add_argument("--seed", type=int, default=None, help="seed for every experiment")
    common.add_run_flags(every)
    for name, module in EXPERIMENTS.items():
        one = sub.add_parser(
            name,
            help=module.TITLE,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        one.add_argument("--out", type=as_path, required=True, help=OUT_HELP)
        one.add_argument("--quick", action="store_true", help="the quick variant of the config")
        common.add_config_flags(one, module.Config)
        common.add_run_flags(one)
    return parser


def configure_logging() -> None:
    """Show the experiments' progress (INFO, with the time) on stderr. The "hjepa_jax.experiments"
    logger gets its own handler: a library imported before main() runs has already given
    the root logger a handler at WARNING, which makes logging.basicConfig a no-op."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.handlers = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args, parser = parse_args(build_parser(), argv)
    try:  # a config's cross-field checks (the single-field ones ran as flags were parsed)
        configs = {
            name: common.config_from_args(module.Config, args, args.quick)
            for name, module in EXPERIMENTS.items()
            if args.name in (name, "all")
        }
    except ValueError as err:
        parser.error(str(err))
    parallel.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    if jax.process_index() != 0:  # one progress log per job, from the process that writes
        log.setLevel(logging.WARNING)
    options = common.run_options(args)
    try:  # the checks that need the devices: the mesh, and the batch sizes on it
        devices = data_parallel_devices(options)
        if args.batch_per_device is not None:
            configs = {
                name: dataclasses.replace(config, batch_size=args.batch_per_device * devices)
                for name, config in configs.items()
            }
    except ValueError as err:
        parser.error(str(err))
    for name, config in configs.items():
        problem = batch_problem(config, devices, options.grad_accum)
        if problem:
            parser.error(problem if args.name != "all" else f"{name}: {problem}")
    try:
        return run_all(args, configs, options)
    except Preempted as err:  # saved; a scheduler (tpu_setup/resume.sh) reruns the command
        log.warning("%s", err)
        return PREEMPTED_EXIT


def run_all(args: argparse.Namespace, configs: dict, options: common.RunOptions) -> int:
    """Run the experiment `args.name` names (or all of them and the report)."""
    if args.name != "all":
        run_one(EXPERIMENTS[args.name], configs[args.name], args.out, options)
        return 0
    results = {}
    for name, config in configs.items():
        module = EXPERIMENTS[name]
        if options.ckpt_dir is not None:
            options = dataclasses.replace(options, ckpt_dir=checkpoint.subdir(args.ckpt_dir, name))
        results[name] = run_one(module, config, args.out / name, options)
    path = report.write_report(args.out, {n: EXPERIMENTS[n] for n in results}, results)
    log.info("report: %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
