"""benchmarks.jepa runs and writes every part (a smoke run: speed is never asserted here, only
that the numbers exist and are positive, and that the envelope gradient keeps the compiled
memory of the step flat in the latent steps). Part 4 runs in a child process started by
`main` (`python -m benchmarks.jepa --devices-only`, with forced host devices)."""

import json

from benchmarks import jepa


def test_jepa_benchmark_writes_every_part(tmp_path, capsys):
    # fmt: off
    result = jepa.main(["--quick", "--repeats", "1", "--max-batch", "64", "--encoders", "mlp",
                        "--latent-steps", "5", "20", "--steps", "2", "--max-devices", "2",
                        "--out", str(tmp_path)])
    # fmt: on
    assert json.loads((tmp_path / "jepa.json").read_text()) == json.loads(json.dumps(result))
    printed = capsys.readouterr().out
    for title in ("1. train step vs batch", "2. train step vs latent", "3. compiled memory"):
        assert title in printed
    assert "4. hj.train.train" in printed
    assert result["device"]["count"] >= 1 and result["jax_version"]

    batch = result["batch"]
    assert [(r["encoder"], r["batch"]) for r in batch] == [("mlp", 64)]
    latent = result["latent_steps"]
    assert [(r["batch"], r["latent_steps"]) for r in latent] == [(64, 5), (64, 20)]
    for r in batch + latent:
        for k in ("median_s", "min_s", "examples_per_s", "us_per_example", "compile_s"):
            assert r[k] > 0, k
    assert latent[0]["vs_fewest"] == 1.0 and latent[0]["us_per_example_step"] is None

    memory = {(r["sweep"], r["encoder"], r["latent_steps"]): r for r in result["memory"]}
    assert len(memory) == len(result["memory"]) == 3
    temps = [memory["latent_steps", "mlp", s]["temp_size_in_bytes"] for s in (5, 20)]
    if None not in temps:  # the backend reports buffer sizes
        assert all(r["total_bytes"] > 0 for r in result["memory"])
        assert temps[1] <= 1.1 * temps[0]  # envelope: no inner step is kept for backward

    devices = result["devices"]
    assert json.loads((tmp_path / "jepa_devices.json").read_text()) == devices
    assert devices["batch"] == 64 and devices["steps"] == 2
    assert devices["device"]["count"] >= 2 or devices["device"]["platform"] != "cpu"  # forced
    rows = devices["rows"]
    assert [(r["parallel"], r["devices"]) for r in rows] == [
        ("jit", n) for n in (1, 2)[: min(2, devices["device"]["count"])]
    ]
    assert all(r["examples_per_s"] > 0 and r["step_s"] > 0 for r in rows)
    assert rows[0]["speedup"] == 1.0
