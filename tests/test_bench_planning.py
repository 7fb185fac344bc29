"""benchmarks.planning runs and writes every part (a smoke run: no timing is asserted)."""

import json

import pytest

from benchmarks import planning


def test_planning_benchmark_writes_every_part(tmp_path):
    result = planning.main(["--quick", "--repeats", "1", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "planning.json").read_text()) == json.loads(json.dumps(result))
    assert {r["planner"] for r in result["episodes"]} == {"gradient_mpc", "cem", "mppi"}
    for part in ("episodes", "horizon", "samples"):
        assert all(r["plan_steps_per_s"] > 0 for r in result[part])
    train = result["world_model_training"]
    assert [r["batch"] for r in train] == [8, 32]
    for r in train:
        assert r["frames_per_s"] == pytest.approx(r["examples_per_s"] * 17)
        assert r["frames_per_s"] > 0
    rows = {(r["planner"], r["episodes"]): r for r in result["episodes"]}
    if rows[("cem", 64)]["memory_bytes"] is not None:  # a bigger batch reserves more memory
        assert rows[("cem", 64)]["memory_bytes"] > rows[("cem", 8)]["memory_bytes"]
