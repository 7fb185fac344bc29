"""The benchmarks run and write their JSON (smoke runs; the numbers themselves are not tested
here: speed belongs in benchmarks/, never in a timed unit test)."""

import json
import subprocess
import sys
from pathlib import Path

from benchmarks import latent

ROOT = Path(__file__).resolve().parents[1]


def test_latent_benchmark_writes_tables_and_json(tmp_path, capsys):
    # --max-cost: one train step of part 1 is timed (B=256, S=10), the others are skipped
    args = ["--quick", "--repeats", "1", "--max-cost", "2560", "--out", str(tmp_path)]
    result = latent.main(args)
    assert json.loads((tmp_path / "latent.json").read_text()) == json.loads(json.dumps(result))
    printed = capsys.readouterr().out
    assert "1. train step time" in printed and "3. overhead" in printed
    timed, *skipped = result["train_step"]
    assert (timed["batch"], timed["inner_steps"]) == (256, 10) and timed["median_s"] > 0
    assert [(r["batch"], r["inner_steps"]) for r in skipped] == [
        (256, 100),
        (1024, 10),
        (1024, 100),
    ]
    assert all(r["skipped"].endswith("> max_cost") and "median_s" not in r for r in skipped)
    assert printed.count("skipped (B*S = ") == 3
    memory = {(r["inner_steps"], r["grad"]): r["temp_size_in_bytes"] for r in result["memory"]}
    if None not in memory.values():  # the backend reports buffer sizes
        assert memory[(1000, "envelope")] == memory[(10, "envelope")]
        assert memory[(1000, "unroll")] > 50 * memory[(10, "envelope")]
    assert all(r["max_abs_diff"] == 0.0 for r in result["overhead"])  # same numbers as by hand


def test_scaling_benchmark_covers_device_counts_fsdp_and_bfloat16(tmp_path):
    tiny_vit = ["--vit-width", "32", "--vit-depth", "1", "--vit-heads", "2", "--vit-batch", "16"]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.scaling",
            "--batch",
            "64",
            "--steps",
            "3",
            *tiny_vit,
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )
    result = json.loads((tmp_path / "scaling.json").read_text())
    assert [(r["parallel"], r["devices"]) for r in result["rows"]] == [
        ("jit", 1),
        ("jit", 2),
        ("jit", 4),
        ("jit", 8),
        ("pmap", 8),
    ]
    assert all(r["examples_per_s"] > 0 for r in result["rows"])
    vit = {(r["mesh"], r["dtype"]): r for r in result["vit_rows"]}
    assert set(vit) == {(m, d) for m in ("data=8", "fsdp=8") for d in ("float32", "bfloat16")}
    assert all(r["examples_per_s"] > 0 for r in vit.values())
    for dtype in ("float32", "bfloat16"):  # parameters stay float32, FSDP splits them
        replicated = vit[("data=8", dtype)]["param_bytes_per_device"]
        assert vit[("fsdp=8", dtype)]["param_bytes_per_device"] < replicated / 4
        assert replicated == vit[("data=8", "float32")]["param_bytes_per_device"]
