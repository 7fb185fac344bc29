"""benchmarks.jepa runs and writes every part (a smoke run: speed is never asserted here, only
that the numbers exist and are positive, and that the envelope gradient keeps the compiled
memory of the step flat in the latent steps). Part 4 runs in a child process started by
`main` (`python -m benchmarks.jepa --devices-only`, with forced host devices). Part 5, the
I-JEPA ViT step, runs here on its JAX side only: PyTorch is never installed in this venv, and
its row must say why it was skipped."""

import ast
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

from benchmarks import jepa


def test_jepa_benchmark_writes_every_part(tmp_path, capsys):
    # fmt: off
    result = jepa.main(["--quick", "--repeats", "1", "--max-batch", "64", "--encoders", "mlp",
                        "--latent-steps", "5", "20", "--steps", "2", "--max-devices", "2",
                        "--vit", "none", "--out", str(tmp_path)])
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
    assert result["vit_step"] is None  # --vit none
    rows = devices["rows"]
    assert [(r["parallel"], r["devices"]) for r in rows] == [
        ("jit", n) for n in (1, 2)[: min(2, devices["device"]["count"])]
    ]
    assert all(r["examples_per_s"] > 0 and r["step_s"] > 0 for r in rows)
    assert rows[0]["speedup"] == 1.0


def test_vit_step_jax_side_and_skipped_torch_row(tmp_path, capsys):
    """Part 5 alone at the tiny size: the JAX row's fields, the table, the JSON; --torch without
    --ijepa-src is skipped before any venv is made (and without --torch it says so too)."""
    assert importlib.util.find_spec("torch") is None  # hjepa_jax never depends on torch
    venv = tmp_path / "venv-torch"
    # fmt: off
    result = jepa.main(["--vit-only", "--vit", "tiny", "--vit-repeats", "3", "--torch",
                        "--torch-venv", str(venv), "--out", str(tmp_path)])
    # fmt: on
    assert not venv.exists()
    assert json.loads((tmp_path / "jepa.json").read_text()) == json.loads(json.dumps(result))
    assert result["jax_version"] and "batch" not in result  # part 5 only
    vit = result["vit_step"]
    size = jepa.VIT_SIZES["tiny"]
    assert vit["size"] == "tiny" and vit["config"]["batch"] == size["batch"]
    assert vit["repeats"] == 3 and vit["masks"]["num_targets"] == 4
    assert vit["masks"]["target_scale"] == [0.15, 0.2]
    assert vit["masks"]["context_scale"] == [0.85, 1.0]
    jax_row, torch_row = vit["rows"]
    assert jax_row["framework"] == "jax" and torch_row["framework"] == "pytorch"
    for row in (jax_row, torch_row):
        assert (row["batch"], row["image"], row["label"]) == (4, 32, size["label"])
    for k in ("min_s", "median_s", "images_per_s", "compile_s", "first_s", "cpu_per_wall"):
        assert jax_row[k] > 0, k
    assert len(jax_row["times_s"]) == 3 and jax_row["min_s"] <= jax_row["median_s"]
    assert jax_row["images_per_s"] == 4 / jax_row["min_s"]
    assert jax_row["context_patches"] >= 1 and jax_row["target_patches"] >= 1
    assert jax_row["threads"] >= 1 and jax_row["trained_params"] > 0
    assert jax_row["ratio"] is None and vit["ratio"] is None
    assert "--ijepa-src" in torch_row["skipped"] and "min_s" not in torch_row

    printed = capsys.readouterr().out
    assert "5. I-JEPA ViT train step, JAX vs PyTorch" in printed
    header = next(line for line in printed.splitlines() if line.lstrip().startswith("framework"))
    for column in ("ViT", "B", "image", "min_ms", "median_ms", "images/s", "JAX/PyTorch"):
        assert column in header.split(), column
    assert "skipped (no --ijepa-src" in printed

    size, sizes = jepa.VIT_SIZES["tiny"], (9, 11)  # no JAX step: the reasons alone
    plain = SimpleNamespace(torch=False, ijepa_src=None, torch_venv=venv)
    assert jepa.start_torch(plain, size, 4, sizes) == (None, "no --torch: PyTorch is not run")
    wrong = SimpleNamespace(torch=True, ijepa_src=tmp_path, torch_venv=venv)
    child, why = jepa.start_torch(wrong, size, 4, sizes)
    assert child is None and "has no src/models/vision_transformer.py" in why
    assert not venv.exists()


def test_torch_side_script_imports_neither_jax_nor_hjepa_jax():
    """benchmarks/ijepa_torch.py runs in the torch venv, where neither is installed."""
    source = Path(jepa.__file__).with_name("ijepa_torch.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert "torch" in imported and not imported & {"jax", "jaxlib", "hjepa_jax", "benchmarks"}
