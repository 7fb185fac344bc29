"""Data-parallel scaling of the training loop: examples/s and step time against device count.

    python -m benchmarks.scaling [--quick] [--out out/bench] [--batch B] [--steps S]

Trains the Fig. 4 model (the inner z loop inside every step) through `hj.train.train` on
meshes of 1, 2, 4, 8 ... devices with the same global batch, and once on the pmap path over
all devices. On a CPU the devices are forced host devices
(XLA_FLAGS=--xla_force_host_platform_device_count=8, set here unless XLA_FLAGS already names a
count): they share the same cores, so the table measures the overhead of sharding, not a
speed-up. On a GPU or TPU host it measures the real thing. Compile time is excluded (the
loop times the steps after the first). Prints a table and writes OUT/scaling.json.
"""

from __future__ import annotations

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()


import jax  # noqa: E402
import optax  # noqa: E402

import hjepa_jax as hj  # noqa: E402
from benchmarks.common import device_info, make_parser, table, write_json  # noqa: E402
from hjepa_jax.models.ellipse import EllipseConfig, EllipseModel, ellipse_points  # noqa: E402

SEED, LEARNING_RATE, N_TRAIN = 0, 3e-3, 1024  # fig4_ellipse's defaults
COLUMNS = (
    ("parallel", "parallel", 1, "s"),
    ("devices", "devices", 1, "d"),
    ("examples/s", "examples_per_s", 1, ".0f"),
    ("step_ms", "step_s", 1e3, ".2f"),
    ("speed-up", "speedup", 1, ".2f"),
)


def measure(parallel: str, devices: int, batch: int, steps: int) -> dict:
    """Throughput of `steps` training steps of the Fig. 4 model on `devices` devices."""
    cfg = EllipseConfig()
    model = EllipseModel(cfg)
    key = jax.random.PRNGKey(SEED)
    mesh = hj.parallel.make_mesh(devices=jax.devices()[:devices])
    loop = hj.train.LoopConfig(steps=steps, batch_size=batch, log_every=steps, parallel=parallel)
    res = hj.train.train(
        model.loss,
        model.init(key),
        optax.adam(LEARNING_RATE),
        ellipse_points(key, N_TRAIN, cfg),
        loop=loop,
        key=key,
        mesh=mesh,
        desc=f"{parallel} x{devices}",
    )
    eps = res.summary["examples_per_s"]
    return {"parallel": parallel, "devices": devices, "examples_per_s": eps, "step_s": batch / eps}


def main(argv=None) -> dict:
    parser = make_parser("scaling", __doc__, "fewer, smaller steps")
    parser.add_argument("--batch", type=int, default=None, help="global batch (1024 / 4096)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (20 / 100)")
    args = parser.parse_args(argv)
    batch = args.batch or (1024 if args.quick else 4096)
    steps = args.steps or (20 if args.quick else 100)
    print(device_info(), flush=True)

    counts = [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= jax.device_count()]
    rows = [measure("jit", n, batch, steps) for n in counts]
    rows.append(measure("pmap", jax.local_device_count(), batch, steps))
    for row in rows:
        row["speedup"] = row["examples_per_s"] / rows[0]["examples_per_s"]
    print("\n" + table(f"Fig. 4 train step, global batch {batch}, {steps} steps", rows, COLUMNS))
    result = {**device_info(), "batch": batch, "steps": steps, "rows": rows}
    write_json(args.out / "scaling.json", result)
    return result


if __name__ == "__main__":
    main()
