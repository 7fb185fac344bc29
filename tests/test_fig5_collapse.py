"""fig5_collapse (paper Fig. 5), quick mode: the energy-only joint embedding collapses, the
predictor, VICReg and the contrastive joint embedding do not, and the log shows it happen.

Thresholds leave a wide margin over quick runs of seeds 0-3 (docs/results.md):
collapsed std 0.008-0.013, gap 6e-4-1.2e-3, relative gap 0.26-0.32; the others std >= 0.86,
gap >= 25, relative gap >= 0.87.
"""

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from hjepa_jax.experiments import fig5_collapse, run

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cli_outputs  # noqa: E402

HEALTHY = ("predictor", "vicreg", "contrastive")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """(config, out folder, metrics.json) of one quick run through the command line,
    `hjepa-run fig5_collapse --quick`, shared by this module's tests."""
    out = tmp_path_factory.mktemp("fig5_collapse")
    assert run.main(["fig5_collapse", "--quick", "--out", str(out)]) == 0
    return fig5_collapse.Config().quick(), out, json.loads((out / "metrics.json").read_text())


def test_energy_only_joint_embedding_collapses(quick):
    _, _, m = quick
    assert m["final_std_energy_only"] < 0.05  # every x maps to (nearly) one point
    assert m["energy_gap_energy_only"] < 0.01  # random pairs as low as positive pairs
    assert m["relative_gap_energy_only"] < 0.6  # not only a smaller scale
    assert m["final_loss"] == m["final_loss_energy_only"] < 0.01  # its loss "succeeded"


@pytest.mark.parametrize("case", HEALTHY)
def test_predictor_vicreg_and_contrastive_do_not_collapse(quick, case):
    _, _, m = quick
    assert m[f"final_std_{case}"] > 0.5  # the data have std 1 per coordinate
    assert m[f"final_std_{case}"] > 20 * m["final_std_energy_only"]
    assert m[f"energy_gap_{case}"] > 10  # random pairs keep high energy
    assert m[f"relative_gap_{case}"] > 0.75
    assert m[f"energy_pos_{case}"] < m[f"energy_rand_{case}"] / 4


def test_collapse_is_logged_while_training(quick):
    cfg, out, _ = quick
    for case in fig5_collapse.CASES:
        log = (out / case / "train_log.jsonl").read_text()
        rows = [json.loads(line) for line in log.splitlines()]
        assert len(rows) == cfg.steps // cfg.log_every
        for key in ("embedding_std", "effective_rank", "energy_pos", "energy_rand"):
            assert key in rows[0] and key in rows[-1]
        if case == "energy_only":  # the std falls as it trains
            assert rows[-1]["embedding_std"] < rows[0]["embedding_std"] / 5
        else:
            assert rows[-1]["embedding_std"] > 0.5


def test_metrics_and_figure_are_written(quick):
    cfg, out, m = quick
    assert cli_outputs.check(out) == m  # what every experiment's command line writes
    assert m["steps"] == 4 * cfg.steps and m["wall_s"] > 0
    assert m["config"] == json.loads(json.dumps(dataclasses.asdict(cfg)))
    png = out / "fig5_collapse.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
