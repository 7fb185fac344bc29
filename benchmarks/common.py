"""What the benchmarks share: timing, plain-text tables, device facts, the JSON file."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax

from hjepa_jax.io import atomic_write


def make_parser(module: str, doc: str, quick_help: str) -> argparse.ArgumentParser:
    """The options every benchmark has: --quick and --out (default out/bench), --help showing
    the module docstring."""
    p = argparse.ArgumentParser(
        prog=f"python -m benchmarks.{module}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--out", type=Path, default=Path("out/bench"), help="output folder")
    return p


def device_info() -> dict:
    """The platform, device kind and count, and the jax version: where the numbers come from."""
    device = jax.devices()[0]
    return {
        "device": {
            "platform": device.platform,
            "device_kind": device.device_kind,
            "count": jax.device_count(),
        },
        "jax_version": jax.__version__,
    }


def write_json(path: Path, result: dict) -> None:
    """Write `result` to `path` atomically and say where."""
    atomic_write(Path(path), lambda f: f.write(json.dumps(result, indent=2).encode()))
    print(f"\nwrote {path}")


def time_calls(fns, *args, repeats: int) -> list[dict]:
    """Median and min seconds of each `fn(*args)`: one warm-up call each, then `repeats`
    rounds calling the fns in turn (so drift affects them alike)."""
    for fn in fns:
        jax.block_until_ready(fn(*args))  # compile + first run, not timed
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times, strict=True):
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            ts.append(time.perf_counter() - start)
    return [
        {"median_s": statistics.median(ts), "min_s": min(ts), "repeats": repeats} for ts in times
    ]


def table(title: str, rows: list[dict], columns) -> str:
    """A titled plain-text table; a missing value prints '-', a skipped row says why."""

    def cell(row, key, scale, fmt):
        value = row.get(key)
        return "-" if value is None else format(value * scale if fmt[-1] in "fg" else value, fmt)

    cells = [[c[0] for c in columns]] + [[cell(r, *c[1:]) for c in columns] for r in rows]
    widths = [max(map(len, col)) for col in zip(*cells, strict=True)]
    notes = ["", *(f"  skipped ({r['skipped']})" if "skipped" in r else "" for r in rows)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([title, *(line + note for line, note in zip(lines, notes, strict=True))])
