"""Data parallelism: 1, 2, 4, 8 devices, pmap, and two processes give the same training.

The devices are forced CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count=8), so
each case runs in a fresh process: tests/multidevice_worker.py.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hjepa_jax import parallel

sys.path.insert(0, str(Path(__file__).resolve().parent))
import parallel_case  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORKER = str(ROOT / "tests" / "multidevice_worker.py")


def params(result):
    return np.concatenate([np.asarray(p) for p in result["params"]])


@pytest.fixture(scope="module")
def multi_device_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("devices")
    subprocess.run(
        [sys.executable, WORKER, "devices", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return out


@pytest.fixture(scope="module")
def multi_device(multi_device_dir):
    return json.loads((multi_device_dir / "result.json").read_text())


@pytest.mark.parametrize("case", ["jit2", "jit4", "jit8", "pmap8"])
def test_n_devices_give_the_single_device_params(multi_device, case):
    assert multi_device[case]["devices"] == 8
    np.testing.assert_allclose(
        params(multi_device[case]), params(multi_device["jit1"]), rtol=1e-5, atol=1e-6
    )
    assert multi_device[case]["loss"] == pytest.approx(multi_device["jit1"]["loss"], rel=1e-5)


def test_two_processes_train_like_one(multi_device, tmp_path):
    """Two local processes (2 CPU devices each) joined over loopback with gloo."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, "process", str(tmp_path), f"127.0.0.1:{port}", "2", str(i)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    result = json.loads((tmp_path / "result.json").read_text())
    for path in ("jit", "pmap"):
        assert result[path]["devices"] == 4
        np.testing.assert_allclose(
            params(result[path]), params(multi_device["jit1"]), rtol=1e-5, atol=1e-6
        )


def test_checkpoint_from_8_devices_restores_on_1(multi_device, multi_device_dir):
    """Saved by the 8-device run; this process has 1 device. Nothing left to train."""
    restored = parallel_case.run(ckpt_dir=str(multi_device_dir / "ckpt8"))
    assert restored["devices"] == 1 and restored["resumed_from_step"] == 3
    np.testing.assert_array_equal(params(restored), params(multi_device["jit8"]))
    assert restored["loss"] == multi_device["jit8"]["loss"]


def test_mesh_axes_must_divide_the_devices():
    with pytest.raises(ValueError, match="model=3 must divide"):
        parallel.make_mesh(model=3, devices=[object()] * 4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_processes": 2, "process_id": 2, "coordinator": "127.0.0.1:1"}, "must be in"),
        ({"num_processes": 2, "coordinator": "127.0.0.1:1"}, "give both --coordinator"),
    ],
)
def test_bad_multiprocess_flags_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        parallel.initialize_distributed(**kwargs)


def test_single_process_needs_no_initialization():
    assert parallel.initialize_distributed() is False
    assert parallel.initialize_distributed(num_processes=1) is False


PROBE = (
    "import jax; from hjepa_jax import parallel; "
    "print(parallel.detected_cluster(), parallel.initialize_distributed(), jax.process_count())"
)


def slurm_env(tasks: str, proc: int, port: int) -> dict:
    """What `srun --ntasks TASKS` sets for task PROC on this host (JAX reads these)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "SLURM_"))}
    return env | {
        "SLURM_JOB_ID": "4242",
        "SLURM_STEP_NODELIST": "localhost",
        "SLURM_NTASKS": tasks,
        "SLURM_PROCID": str(proc),
        "SLURM_LOCALID": str(proc),
        "JAX_COORDINATOR_PORT": str(port),
    }


def test_srun_tasks_join_one_job_with_no_flags():
    """Under SLURM, two tasks started with no multi-process flags become one 2-process job
    (before, each ran alone, sharing the other's checkpoint folder)."""
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROBE],
            env=slurm_env("2", i, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert [log.strip().splitlines()[-1] for log in logs] == ["slurm True 2"] * 2


def test_a_detected_cluster_that_cannot_be_joined_fails_loudly():
    res = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=slurm_env("two", 0, free_port()),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode != 0
    assert "JAX detected a slurm cluster but could not join it" in res.stderr
    assert "--num-processes 1 runs one process alone" in res.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
