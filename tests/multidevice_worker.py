"""Run by tests/test_parallel.py in a fresh process, so that it can choose its devices.

python tests/multidevice_worker.py devices OUT_DIR
    8 forced CPU devices: the run of parallel_case.py on meshes of 1, 2, 4, 8 devices and
    on the pmap path (the 8-device run also checkpoints to OUT_DIR/ckpt8);
    writes OUT_DIR/result.json.
python tests/multidevice_worker.py process OUT_DIR COORDINATOR NUM_PROCESSES PROCESS_ID
    2 CPU devices per process, joined into one job; the same run on the global mesh and
    on the pmap path; process 0 writes OUT_DIR/result.json.
"""

import sys

from forced_devices import force

force(8 if sys.argv[1] == "devices" else 2)

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
from parallel_case import run  # noqa: E402

from hjepa_jax import parallel  # noqa: E402


def main():
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "devices":
        result = {f"jit{n}": run(parallel.make_mesh(devices=jax.devices()[:n])) for n in (1, 2, 4)}
        result["jit8"] = run(ckpt_dir=str(out / "ckpt8"))
        result["pmap8"] = run(parallel="pmap")
    else:
        coordinator, n, pid = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        parallel.initialize_distributed(coordinator, n, pid)
        result = {"jit": run(), "pmap": run(parallel="pmap")}
        if jax.process_index() != 0:
            return
    (out / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
