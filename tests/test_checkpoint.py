"""Checkpoints as a user meets them: kill a run, rerun the same command, get the same model."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hjepa_jax import checkpoint, parallel

ROOT = Path(__file__).resolve().parents[1]
ARGS = [
    "fig4_ellipse",
    "--quick",
    "--steps",
    "300",
    "--grid",
    "11",
    "--log-every",
    "10",
    "--ckpt-every",
    "20",
]


def cli(out: Path, ckpt: Path):
    return [
        sys.executable,
        "-m",
        "hjepa_jax.experiments.run",
        *ARGS,
        "--out",
        str(out),
        "--ckpt-dir",
        str(ckpt),
    ]


def final_params(ckpt: Path):
    c = checkpoint.Checkpointer(ckpt)
    step = c.latest_step()
    state = c.manager.restore(step).state  # same topology: no target needed
    c.close()
    return step, jax.tree_util.tree_leaves(state["params"])


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    subprocess.run(
        cli(tmp_path / "full", tmp_path / "ckpt_full"),
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )

    ckpt = tmp_path / "ckpt"
    proc = subprocess.Popen(
        cli(tmp_path / "run", ckpt), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    while time.time() < deadline and not any(
        p.name.isdigit() and int(p.name) >= 60 for p in ckpt.glob("*")
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = checkpoint.Checkpointer(ckpt).latest_step()
    assert killed_at is not None and 60 <= killed_at < 300, killed_at

    subprocess.run(
        cli(tmp_path / "run", ckpt), cwd=ROOT, check=True, capture_output=True, timeout=300
    )
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == killed_at
    assert metrics["final_loss"] == full["final_loss"]
    step_a, a = final_params(ckpt)
    step_b, b = final_params(tmp_path / "ckpt_full")
    assert step_a == step_b == 300
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    log = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    assert json.loads(log[-1])["step"] == 300


def test_other_config_is_refused_naming_the_field(tmp_path):
    ckpt = tmp_path / "ckpt"
    base = [
        sys.executable,
        "-m",
        "hjepa_jax.experiments.run",
        "fig4_ellipse",
        "--quick",
        "--steps",
        "20",
        "--grid",
        "11",
        "--out",
        str(tmp_path / "o"),
        "--ckpt-dir",
        str(ckpt),
    ]
    subprocess.run(base, cwd=ROOT, check=True, capture_output=True, timeout=300)
    res = subprocess.run(
        [*base, "--hidden", "32,32"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert res.returncode != 0
    assert "hidden: checkpoint [64, 64] != now [32, 32]" in res.stderr


def test_partial_save_is_never_listed_and_restore_reshards(tmp_path):
    c = checkpoint.Checkpointer(tmp_path)
    state = {"w": jnp.arange(6.0).reshape(2, 3), "step": jnp.array(5, jnp.int32)}
    c.save(5, state, {"config": {}})
    c.close()
    (tmp_path / "9.orbax-checkpoint-tmp" / "state").mkdir(parents=True)  # a killed save
    (tmp_path / "9.orbax-checkpoint-tmp" / "state" / "junk").write_bytes(b"\0" * 100)
    c = checkpoint.Checkpointer(tmp_path)
    assert c.latest_step() == 5 and c.all_steps() == [5]
    restored, meta = c.restore(5, state, parallel.replicated(parallel.make_mesh()), config={})
    np.testing.assert_array_equal(restored["w"], state["w"])
    assert meta["data_position"] == 5
    with pytest.raises(ValueError, match=r"w: checkpoint \(2, 3\) float32 != now \(3, 2\)"):
        c.restore(5, {**state, "w": jnp.zeros((3, 2))}, parallel.replicated(parallel.make_mesh()))
    with pytest.raises(ValueError, match="extra: not in the checkpoint"):
        c.restore(5, {**state, "extra": jnp.zeros(1)}, parallel.replicated(parallel.make_mesh()))
    c.close()
