"""What an experiment run through the command line (`hjepa-run NAME --out DIR`) leaves in DIR,
checked by tests/test_experiments.py for most experiments and by the test modules that run
the others' quick size through the command line."""

import json
import os
import stat
from pathlib import Path

from hjepa_jax.experiments import common

PNG = b"\x89PNG\r\n\x1a\n"


def check(out: Path) -> dict:
    """metrics.json has the required metrics and the config (seed 0: the default), figures
    are PNGs, nothing half-written is left behind, and the files follow the umask (0644
    under umask 022, as open() writes them, not the 0600 of a temporary file). Returns the
    metrics."""
    m = json.loads((out / "metrics.json").read_text())
    assert set(common.REQUIRED_METRICS) <= set(m)
    assert m["resumed_from_step"] == 0 and m["steps"] > 0 and m["examples_per_s"] > 0
    assert m["config"] == m["config"] | {"seed": 0}
    pngs = list(out.glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == PNG for p in pngs)
    assert not list(out.glob(".*.tmp"))
    mask = os.umask(0o022)
    os.umask(mask)
    for path in [out / "metrics.json", *pngs]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path
    return m
