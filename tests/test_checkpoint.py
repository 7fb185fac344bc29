"""Checkpoints as a user meets them: kill a run, rerun the same command, get the same model."""

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hjepa_jax import checkpoint, parallel
from hjepa_jax.experiments import run

ROOT = Path(__file__).resolve().parents[1]


def final_params(ckpt: Path):
    """(step, parameter leaves) of the latest checkpoint, saved on any number of processes,
    read onto this process's first device."""
    import orbax.checkpoint as ocp

    c = checkpoint.Checkpointer(ckpt)
    step = c.latest_step()
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree_util.tree_map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
        c.manager.item_metadata(step).state,
    )
    args = ocp.args.Composite(state=ocp.args.StandardRestore(target))
    state = c.manager.restore(step, args=args).state
    c.close()
    return step, jax.tree_util.tree_leaves(state["params"])


def test_other_config_is_refused_naming_the_field(tmp_path):
    ckpt = tmp_path / "ckpt"
    args = ["fig4_ellipse", "--quick", "--steps", "20", "--grid", "11"]
    args += ["--out", str(tmp_path / "o"), "--ckpt-dir", str(ckpt)]
    assert run.main(args) == 0  # in this process; the rerun is the user's command
    res = subprocess.run(
        [sys.executable, "-m", "hjepa_jax.experiments.run", *args, "--hidden", "32,32"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
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


# fig4_ellipse at a small size, a checkpoint every 20 of its 160 steps: the kill comes as soon
# as the first checkpoint is listed, 140 steps (seconds) before the last one
STEPS = 160
ARGS = [
    *("fig4_ellipse", "--quick", "--steps", str(STEPS), "--n-train", "64", "--hidden", "8,8"),
    *("--n-starts", "2", "--inner-steps", "5", "--grid", "11"),
    *("--log-every", "10", "--ckpt-every", "20"),
]


def launch(out: Path, ckpt: Path, path: str, processes: int = 2) -> list[subprocess.Popen]:
    """The same `hjepa-run` command as the processes of one job over loopback. (One process
    alone runs the same code with process_count() == 1; the job covers it.)"""
    command = [sys.executable, "-m", "hjepa_jax.experiments.run", *ARGS]
    command += ["--parallel", path, "--out", str(out), "--ckpt-dir", str(ckpt)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command += ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(processes)]
    return [
        subprocess.Popen(
            [*command, "--process-id", str(i)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(processes)
    ]


def finish(procs: list[subprocess.Popen]) -> list[str]:
    """Wait for the processes, which must succeed; their output (stderr too, for a job)."""
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), "\n".join(map(str, logs))
    return logs


@pytest.mark.parametrize("path", ["jit", "pmap"])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, path):
    """A 2-process job with --ckpt-dir is killed with SIGKILL after a checkpoint,
    and the same command run again ends with the parameters of an uninterrupted run (started
    beside it, in its own folders), bit for bit.
    (A 2-process job on the pmap path crashed at its first save: "Cannot serialize host local
    jax.Array".)"""
    full = launch(tmp_path / "full", tmp_path / "ckpt_full", path)  # meanwhile:
    ckpt = tmp_path / "ckpt"
    procs = launch(tmp_path / "run", ckpt, path)
    deadline = time.time() + 240
    while time.time() < deadline and not any(p.name.isdigit() for p in ckpt.glob("*")):
        assert all(p.poll() is None for p in procs), [p.communicate()[0] for p in procs]
        time.sleep(0.01)
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait()
    logs = finish(full)
    # one progress log per job: process 0's
    assert "fig4_ellipse: done in" in logs[0] and "fig4_ellipse: done in" not in logs[1]
    killed_at = checkpoint.Checkpointer(ckpt).latest_step()
    assert killed_at is not None and killed_at < STEPS, killed_at

    finish(launch(tmp_path / "run", ckpt, path))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    uninterrupted = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == killed_at
    assert metrics["final_loss"] == uninterrupted["final_loss"]
    step_a, a = final_params(ckpt)
    step_b, b = final_params(tmp_path / "ckpt_full")
    assert step_a == step_b == STEPS
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    log = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    assert json.loads(log[-1])["step"] == STEPS
