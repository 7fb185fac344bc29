"""benchmarks.planning runs and writes every part (a smoke run: no timing is asserted)."""

import json

import pytest

from benchmarks import planning

# --quick, with one size per sweep where two would check nothing more (two episode counts:
# the memory comparison)
SMOKE = "--quick --repeats 1 --episodes 8 64 --horizons 8 --samples 64 --batches 8"


def test_planning_benchmark_writes_every_part(tmp_path):
    result = planning.main([*SMOKE.split(), "--out", str(tmp_path)])
    assert json.loads((tmp_path / "planning.json").read_text()) == json.loads(json.dumps(result))
    planners = ["gradient_mpc", "cem", "mppi"]
    assert [(r["planner"], r["episodes"]) for r in result["episodes"]] == [
        (p, e) for p in planners for e in (8, 64)
    ]
    assert [(r["planner"], r["horizon"]) for r in result["horizon"]] == [(p, 8) for p in planners]
    assert [(r["planner"], r["samples"]) for r in result["samples"]] == [("cem", 64), ("mppi", 64)]
    for part in ("episodes", "horizon", "samples"):
        assert all(r["plan_steps_per_s"] > 0 for r in result[part])
    train = result["world_model_training"]
    assert [r["batch"] for r in train] == [8]
    for r in train:
        assert r["frames_per_s"] == pytest.approx(r["examples_per_s"] * 17)
        assert r["frames_per_s"] > 0
    rows = {(r["planner"], r["episodes"]): r for r in result["episodes"]}
    if rows[("cem", 64)]["memory_bytes"] is not None:  # a bigger batch reserves more memory
        assert rows[("cem", 64)]["memory_bytes"] > rows[("cem", 8)]["memory_bytes"]


def test_sweep_sizes_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        planning.main(["--quick", "--batches", "8", "0"])
    assert "argument --batches: must be >= 1, got 0" in capsys.readouterr().err
