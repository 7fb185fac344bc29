"""Run one experiment, or all of them and write a report.

    hjepa-run NAME --out DIR [--quick] [--seed S] [--FIELD VALUE ...]
    hjepa-run all --quick --out out/      # every experiment + out/report.md
    hjepa-run NAME --help                 # the config fields and defaults

`hjepa-run` is the installed console script; `python -m hjepa_jax.experiments.run` is the same.

Each experiment writes DIR/metrics.json (flat numbers plus "config") and DIR/*.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

from hjepa_jax import checkpoint, parallel
from hjepa_jax.experiments import (
    common,
    fig3_parabola,
    fig4_ellipse,
    fig5_collapse,
    hjepa_moving_shapes,
    jepa_digits,
    methods_landscapes,
    planning_two_rooms,
    report,
)

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
    )
}

log = logging.getLogger("hjepa_jax.experiments")


def run_one(module, config, out: Path, options: common.RunOptions) -> dict:
    """Run `module` with `config`, writing its outputs under `out`. Returns metrics.json."""
    out.mkdir(parents=True, exist_ok=True)
    log.info("%s: starting, config %s", module.NAME, config)
    start = time.perf_counter()
    metrics = module.run(config, out, options)
    written = common.save_metrics(out / "metrics.json", metrics, config)
    log.info("%s: done in %.1f s, metrics in %s", module.NAME, time.perf_counter() - start, out)
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hjepa-run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="name", required=True, metavar="NAME")
    every = sub.add_parser("all", help="run every experiment, then write OUT/report.md")
    every.add_argument("--out", type=Path, required=True, help="output folder")
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
        one.add_argument("--out", type=Path, required=True, help="output folder")
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
    args = build_parser().parse_args(argv)
    parallel.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    options = common.run_options(args)
    if args.name != "all":
        module = EXPERIMENTS[args.name]
        config = common.config_from_args(module.Config, args, args.quick)
        run_one(module, config, args.out, options)
        return 0
    results = {}
    for name, module in EXPERIMENTS.items():
        config = module.Config().quick() if args.quick else module.Config()
        if args.seed is not None:
            config = dataclasses.replace(config, seed=args.seed)
        if options.ckpt_dir is not None:
            options = dataclasses.replace(options, ckpt_dir=checkpoint.subdir(args.ckpt_dir, name))
        results[name] = run_one(module, config, args.out / name, options)
    path = report.write_report(args.out, {n: EXPERIMENTS[n] for n in results}, results)
    log.info("report: %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
