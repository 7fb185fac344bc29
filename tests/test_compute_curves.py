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


def seed_runs(tmp_path, runs: list[dict]) -> str:
    """Each seed's metrics.json in its own folder -> "OUT0,OUT1,..", as the script takes them."""
    outs = []
    for i, metrics in enumerate(runs):
        out = tmp_path / f"seed{i}"
        out.mkdir()
        (out / "metrics.json").write_text(json.dumps(metrics))
        outs.append(str(out))
    return ",".join(outs)


def test_mean_and_std_over_seeds_and_a_png(tmp_path, capsys):
    outs = seed_runs(tmp_path, [run_metrics(0.4, 0.9), run_metrics(0.8, 0.7)])
    png = tmp_path / "curves.png"
    table = load_script().main(["--png", str(png), "four_rooms_fixed=" + outs])
    rows = table["four_rooms_fixed, plan_cost model"]
    assert rows["success_cem_four_rooms_fixed"] == [0.6, 0.2]
    assert rows["success_hjepa_four_rooms_fixed"] == [0.8, 0.1]
    assert rows["compute_success_cem_2"] == [0.3, 0.1]
    assert png.stat().st_size > 10_000
    assert json.loads(capsys.readouterr().out) == table


def test_success_against_the_walls_between_start_and_goal(tmp_path, capsys):
    """--against walls: the distance sweep's success and the runs' own at the setting's wall
    count, averaged over the seeds; the panel's title names the plan cost."""
    runs = [
        {
            "distance_success_cem_0": near,
            "distance_success_cem_1": far / 2,
            "distance_path_0": 15.0 + i,
            "distance_path_1": 30.0,
            "path_median_three_rooms_fixed": 52.0,
            "success_cem_three_rooms_fixed": far,
            "config": {"plan_cost": "distance"},
        }
        for i, (near, far) in enumerate([(1.0, 0.2), (0.6, 0.0)])
    ]
    outs = seed_runs(tmp_path, runs)
    png = tmp_path / "walls.png"
    argv = ["--against", "walls", "--png", str(png), "three_rooms_fixed=" + outs]
    table = load_script().main(argv)
    rows = table["three_rooms_fixed, plan_cost distance"]
    assert rows["distance_success_cem_0"] == [0.8, 0.2]
    assert rows["distance_success_cem_1"] == [0.05, 0.05]
    assert rows["success_cem_three_rooms_fixed"] == [0.1, 0.1]
    assert png.stat().st_size > 10_000
    assert json.loads(capsys.readouterr().out) == table


def test_a_run_without_its_setting_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        load_script().main(["--png", str(tmp_path / "x.png"), str(tmp_path)])
