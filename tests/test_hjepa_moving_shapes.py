"""hjepa_moving_shapes (paper Fig. 11), quick mode: the two-level H-JEPA predicts better than
copy-last at both levels, its states hold the shape's position, it does not collapse, and it
writes the metrics, embeddings and figure a user reads.

Thresholds leave a wide margin over quick runs of seeds 0-3 (docs/results.md):
level-1 F / copy-last 0.17-0.34 (no latent 0.21-0.84; worst pair 0.78), level-2 0.10-0.18;
latent gain on ambiguous transitions 0.38-0.62; decoded error z inferred 1.93-2.37 px vs
z = 0 2.52-2.65 px; probe position R^2 level 1 0.953-0.977, random 0.42-0.65; level-2 velocity
0.79-0.84, random <= 0.04; embedding std 0.98-1.01, effective rank 11.5-14.6.
"""

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from hjepa_jax.experiments import hjepa_moving_shapes, run

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cli_outputs  # noqa: E402


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """(config, out folder, metrics.json) of one quick run through the command line,
    `hjepa-run hjepa_moving_shapes --quick`, shared by this module's tests."""
    out = tmp_path_factory.mktemp("hjepa_moving_shapes")
    assert run.main(["hjepa_moving_shapes", "--quick", "--out", str(out)]) == 0
    return hjepa_moving_shapes.Config().quick(), out, json.loads((out / "metrics.json").read_text())


def test_both_levels_predict_better_than_copy_last(quick):
    _, _, m = quick
    assert m["level1_energy"] < 0.6 * m["copy_last_level1_energy"]  # one frame ahead
    for prefix in ("", "no_latent_"):  # k = 4 frames ahead, both models
        assert m[f"{prefix}level2_energy"] < 0.35 * m[f"{prefix}copy_last_level2_energy"]


def test_latent_lowers_level1_energy(quick):
    _, _, m = quick
    # Each model against its own copy-last (their representation spaces differ).
    # (A quick-mode effect: after the default 2000 steps the two ratios are within 15 %.)
    assert m["level1_energy_ratio"] < 0.9 * m["no_latent_level1_energy_ratio"]
    # In the latent model's own space, minimizing over z lowers F well below E(z = 0) ...
    assert m["latent_gain_ambiguous"] > 0.25
    # ... and the inferred z decodes closer to the true next position than z = 0.
    assert m["future_error_inferred_z_ambiguous"] < m["future_error_zero_z_ambiguous"]


def test_states_hold_position_far_above_a_random_encoder(quick):
    _, _, m = quick
    assert m["probe_position_r2_level1"] > 0.85
    assert m["probe_position_r2_level1"] > m["probe_position_r2_random"] + 0.2
    # at least 4x less unexplained variance than from a random encoder
    assert 1 - m["probe_position_r2_level1"] < 0.25 * (1 - m["probe_position_r2_random"])
    assert m["probe_position_r2_level2"] > 0.8
    assert m["probe_velocity_r2_level2"] > 0.5  # a window of states shows the motion
    assert m["probe_velocity_r2_level2_random"] < 0.3


def test_no_collapse(quick):
    cfg, out, m = quick
    assert m["embedding_std"] > 0.5 and m["no_latent_embedding_std"] > 0.5  # VICReg target 1
    assert m["effective_rank"] > 5
    assert m["embedding_std_level2"] > 0.5
    rows = [json.loads(s) for s in (out / "latent" / "train_log.jsonl").read_text().splitlines()]
    assert len(rows) == cfg.steps // cfg.log_every  # logged while training, per level
    for key in ("level1_embedding_std", "level2_embedding_std", "level1_effective_rank"):
        assert key in rows[-1]


def test_embeddings_metrics_and_figure_are_written(quick):
    cfg, out, m = quick
    n_states = cfg.num_frames - cfg.context + 1
    with np.load(out / "embeddings.npz") as f:
        assert sorted(f.files) == ["test_x", "test_y", "train_x", "train_y"]
        assert f["train_x"].shape == (cfg.num_train * n_states, cfg.dim1)
        assert f["train_y"].shape == (cfg.num_train * n_states, 4)  # position, velocity
        assert f["test_x"].shape == (cfg.num_test * n_states, cfg.dim1)
        assert f["test_y"].shape == (cfg.num_test * n_states, 4)
        assert np.all(np.isfinite(f["test_x"]))
    assert cli_outputs.check(out) == m  # what every experiment's command line writes
    assert m["steps"] == 2 * cfg.steps and m["wall_s"] > 0
    assert m["config"] == json.loads(json.dumps(dataclasses.asdict(cfg)))
    assert (out / "hjepa_moving_shapes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
