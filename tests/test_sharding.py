"""FSDP over a named mesh: on 8 forced CPU devices, a ViT trained with its parameters and
optimizer state sharded over "fsdp" matches the replicated run, holds a fraction of the bytes
per device, and its checkpoint restores on another mesh and on one device. The --mesh,
--batch-per-device and batch-size checks of the command line.

The 8-device runs are in a fresh process: tests/sharding_worker.py (tests/sharding_case.py).
"""

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from hjepa_jax import parallel
from hjepa_jax.experiments import run

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sharding_case  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORKER = str(ROOT / "tests" / "sharding_worker.py")


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharding")
    res = subprocess.run(
        [sys.executable, WORKER, str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return out, json.loads((out / "result.json").read_text())


def params(out: Path, name: str) -> dict:
    with np.load(out / f"params_{name}.npz") as f:
        return dict(f)


def relative_difference(a: dict, b: dict) -> float:
    """max |a - b| over every parameter, over max |b|: the whole model's relative error.
    (Per leaf it would be ill-posed: the attention's key bias has a zero gradient, so it
    holds only rounding noise, of any relative size.)"""
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a) / max(
        float(np.abs(b[k]).max()) for k in b
    )


def test_fsdp_and_replicated_runs_reach_the_same_params(sharded):
    out, result = sharded
    assert result["devices"] == 8
    fsdp, replicated = params(out, "fsdp"), params(out, "replicated")
    assert relative_difference(fsdp, replicated) <= 1e-6
    assert result["fsdp"]["final_loss"] == pytest.approx(
        result["replicated"]["final_loss"], rel=1e-6
    )


def test_fsdp_holds_a_fraction_of_the_params_per_device(sharded):
    _, result = sharded
    fsdp = result["fsdp"]["param_bytes_per_device"]
    replicated = result["replicated"]["param_bytes_per_device"]
    total = sum(v.nbytes for v in params(sharded[0], "replicated").values())
    assert replicated == total  # every device holds every parameter
    assert fsdp <= replicated / 6  # biases and norms stay replicated: not quite 1/8
    # A kernel [64, 128] and its momentum split along the 128 axis; its bias stays whole.
    specs = result["specs"]
    assert specs["kernel"] == [[64, 128], "P(None, 'fsdp')"] and specs["kernel_shard"] == [64, 16]
    assert specs["mu"] == specs["kernel"]
    assert specs["bias"] == [[128], "P()"]


def test_fsdp_checkpoint_restores_on_another_mesh_and_on_one_device(sharded):
    out, result = sharded
    assert result["fsdp_resumed"]["resumed_from_step"] == 5  # data=2,fsdp=4: nothing left
    fsdp = params(out, "fsdp")
    resumed = params(out, "fsdp_resumed")
    assert all(np.array_equal(fsdp[k], resumed[k]) for k in fsdp)
    here = sharding_case.run(None, ckpt_dir=str(out / "ckpt"))  # this process: 1 device
    assert jax.device_count() == 1 and here.summary["resumed_from_step"] == 5
    restored = sharding_case.flat_params(here.state.params)
    assert all(np.array_equal(fsdp[k], restored[k]) for k in fsdp)


def test_fsdp_spec_picks_the_largest_divisible_axis():
    assert tuple(parallel.fsdp_spec((64, 256), 8)) == (None, "fsdp")
    assert tuple(parallel.fsdp_spec((4, 16, 64), 8)) == (None, None, "fsdp")
    assert tuple(parallel.fsdp_spec((66, 256), 8)) == (None, "fsdp")  # 66 does not divide
    assert tuple(parallel.fsdp_spec((66, 250), 8)) == ()  # no axis divides: replicated
    assert tuple(parallel.fsdp_spec((512,), 8)) == ()  # small: replicated
    assert tuple(parallel.fsdp_spec((64, 256), 1)) == ()


def test_make_mesh_axes_and_errors():
    mesh = parallel.make_mesh()
    assert mesh.axis_names == ("data", "fsdp", "model") and parallel.data_size(mesh) == 1
    devices = [object()] * 8
    with pytest.raises(ValueError, match="fsdp=3 x model=1 must divide the 8 devices"):
        parallel.make_mesh(devices=devices, spec="fsdp=3")
    with pytest.raises(ValueError, match="data=2 x fsdp=2 x model=1 = 4 devices, but there are 8"):
        parallel.make_mesh(devices=devices, spec="data=2,fsdp=2")
    with pytest.raises(ValueError, match="'x=2' is not AXIS=SIZE"):
        parallel.parse_mesh("x=2")


def test_batch_size_error_says_how_to_scale_the_batch():
    with pytest.raises(ValueError) as err:
        parallel.check_batch_size(32, 64)
    assert str(err.value) == (
        "batch_size=32 is not divisible by the 64 data-parallel devices; pass --batch-size 64 "
        "(a multiple of 64) or --batch-per-device N"
    )
    with pytest.raises(ValueError, match=r"grad_accum=4 .* pass --batch-size 36 \(a multiple"):
        parallel.check_batch_size(34, 1, grad_accum=4)


def refused(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        run.main(list(args))
    return exit_.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--mesh", "x=2"], "argument --mesh: mesh 'x=2': 'x=2' is not AXIS=SIZE"),
        (["--mesh", "fsdp=0"], "argument --mesh: mesh 'fsdp=0': fsdp must be an integer >= 1"),
        (["--mesh", "fsdp=2"], "--mesh fsdp=2: make_mesh: fsdp=2 x model=1 must divide the 1"),
        (["--mesh", "fsdp=2", "--parallel", "pmap"], "--mesh with fsdp > 1 needs --parallel jit"),
        (["--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
        (["--grad-accum", "0"], "argument --grad-accum: must be >= 1, got 0"),
        (["--grad-accum", "3", "--batch-size", "16"], "pass --batch-size 18 (a multiple of 1 x 3)"),
        (["--profile-steps", "3:2"], "argument --profile-steps: must be A:B with 1 <= A <= B"),
        (["--batch-per-device", "0"], "argument --batch-per-device: must be >= 1, got 0"),
        (["--batch-per-device", "4", "--batch-size", "8"], "both set the batch size; give one"),
    ],
)
def test_bad_run_flags_are_refused_in_one_line(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    code, err = refused(capsys, "fig4_ellipse", "--out", str(out), *flags)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_batch_per_device_sets_the_batch_size(tmp_path):
    args = ["fig4_ellipse", "--quick", "--steps", "2", "--grid", "11", "--hidden", "8"]
    args += ["--inner-steps", "2", "--n-starts", "2", "--batch-per-device", "24"]
    assert run.main([*args, "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["batch_size"] == 24 * jax.device_count()
    assert metrics["param_bytes_per_device"] == 4 * (2 * 8 + 8 + 8 * 2 + 2)
