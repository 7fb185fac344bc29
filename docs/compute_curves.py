"""Success against planning compute (or against the distance), averaged over training seeds,
a panel per group of runs.

    python docs/compute_curves.py --png FILE SETTING=OUT[,OUT...] [SETTING=OUT[,OUT...] ...]
    python docs/compute_curves.py --against walls --png FILE SETTING=OUT[,OUT...] [...]

Each OUT is the `--out` folder of a `planning_two_rooms` run in SETTING (its first setting,
e.g. three_rooms_fixed), one run per training seed: with `--compute-samples` (the default,
`--against compute`) or with `--goal-walls` (`--against walls`). The runs of a group are
averaged metric by metric (the mean over the seeds) and drawn as a run's own figure draws
that panel: `two_rooms_figures.draw_compute` (a line per sampling planner over its sample
counts, the main run at `--samples`, a planner outside the sweep as a point) or
`draw_success_by_walls` (a line per planner against the walls between start and goal, the
run's own tasks at the setting's wall count). Each panel's title names its runs' plan_cost.
Prints, per group, each success metric's mean and std over the seeds as JSON. Everything
drawn comes from the runs' metrics.json.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from hjepa_jax.experiments import two_rooms_figures as figures
from hjepa_jax.experiments.common import save_figure

SUCCESS = re.compile(r"(compute_success_\w+|distance_success_\w+|success_\w+)")


def average(runs: list[dict]) -> tuple[dict, dict]:
    """The mean of each numeric metric that every run has, and the std of the success ones."""
    number = lambda v: isinstance(v, int | float) and not isinstance(v, bool)
    keys = {k for k in set.intersection(*(set(r) for r in runs)) if all(number(r[k]) for r in runs)}
    mean = {k: float(np.mean([r[k] for r in runs])) for k in keys}
    std = {k: float(np.std([r[k] for r in runs])) for k in keys if SUCCESS.fullmatch(k)}
    return mean, std


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="SETTING=OUT[,OUT...]")
    parser.add_argument("--png", required=True)
    parser.add_argument("--samples", type=int, default=16, help="the main runs' samples")
    parser.add_argument(
        "--frontier", type=int, default=16, help="the main runs' search_frontier (hjepa_search)"
    )
    parser.add_argument("--against", choices=("compute", "walls"), default="compute")
    args = parser.parse_args(argv)
    groups = []
    for spec in args.runs:
        setting, sep, outs = spec.partition("=")
        if not sep or not outs:
            parser.error(f"runs must be SETTING=OUT[,OUT...], got {spec!r}")
        read = lambda out: json.loads((Path(out) / "metrics.json").read_text())
        groups.append((setting, [read(out) for out in outs.split(",")]))
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4.2), squeeze=False)
    table = {}
    for ax, (setting, runs) in zip(axes[0], groups, strict=True):
        mean, std = average(runs)
        if args.against == "compute":
            figures.draw_compute(ax, mean, setting, args.samples, frontier=args.frontier)
            what = ax.get_title().split("\n")[1]
        else:
            swept = (re.fullmatch(r"distance_success_(\w+)_\d+", k) for k in std)
            planners = sorted({m.group(1) for m in swept if m})
            figures.draw_success_by_walls(ax, mean, planners, setting)
            what = "success against the walls between start and goal"
        cost = {r.get("config", {}).get("plan_cost", "model") for r in runs}
        name = f"{setting}, plan_cost {'/'.join(sorted(cost))}"
        ax.set_title(f"{name}: mean of {len(runs)} seeds\n{what}", fontsize=9)
        table[name] = {k: [round(mean[k], 3), round(std[k], 3)] for k in sorted(std)}
    fig.tight_layout()
    save_figure(fig, Path(args.png))
    print(json.dumps(table, indent=1))
    return table


if __name__ == "__main__":
    main()
