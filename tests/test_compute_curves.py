"""docs/compute_curves.py: the seeds' metrics averaged key by key, and the panel drawn."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("cc", ROOT / "docs" / "compute_curves.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_metrics(success_cem: float, success_hjepa: float) -> dict:
    """The keys a planning run with --compute-samples 2 writes, for cem and hjepa."""
    return {
        "compute_success_cem_2": success_cem / 2,
        "compute_evals_cem_2": 4800,
        "compute_success_hjepa_2": success_hjepa,
        "compute_evals_hjepa_2": 5020,
        "success_cem_four_rooms_fixed": success_cem,
        "success_hjepa_four_rooms_fixed": success_hjepa,
        "success_random_four_rooms_fixed": 0.0,
        "plan_evals_per_episode_cem": 38400,
        "plan_evals_per_episode_hjepa": 12160,
        "plan_evals_per_episode_random": 0,
        "first_setting": "four_rooms_fixed",  # not a number: left out
    }


def test_mean_and_std_over_seeds_and_a_png(tmp_path, capsys):
    outs = []
    for i, (cem, hjepa) in enumerate([(0.4, 0.9), (0.8, 0.7)]):
        out = tmp_path / f"seed{i}"
        out.mkdir()
        (out / "metrics.json").write_text(json.dumps(run_metrics(cem, hjepa)))
        outs.append(str(out))
    png = tmp_path / "curves.png"
    table = load_script().main(["--png", str(png), "four_rooms_fixed=" + ",".join(outs)])
    rows = table["four_rooms_fixed"]
    assert rows["success_cem_four_rooms_fixed"] == [0.6, 0.2]
    assert rows["success_hjepa_four_rooms_fixed"] == [0.8, 0.1]
    assert rows["compute_success_cem_2"] == [0.3, 0.1]
    assert png.stat().st_size > 10_000
    assert json.loads(capsys.readouterr().out) == table


def test_a_run_without_its_setting_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        load_script().main(["--png", str(tmp_path / "x.png"), str(tmp_path)])
