"""Scaling of the training loop: data parallelism over device counts, then FSDP and bfloat16.

    python -m benchmarks.scaling [--quick] [--out out/bench] [--batch B] [--steps S]
                                 [--vit-batch B] [--vit-width W] [--vit-depth D] [--vit-heads H]

1. Data parallelism: the Fig. 4 model (the inner z loop inside every step) through
   `hj.train.train` on meshes of 1, 2, 4, 8 ... devices with the same global batch, each
   mesh taking the same number of devices from every process (`hj.parallel.spread_devices`,
   so that on a pod every host takes part), and once on the pmap path over all devices.
2. Memory: a ViT-S-sized step (width 384, depth 12, 6 heads, MLP 4x, patches of 4 on 32x32x3
   images: 64 tokens; a regression loss) on all devices, with the parameters replicated
   (mesh data=N) or sharded (fsdp=N), in float32 or bfloat16: parameter bytes per device,
   XLA's count of one compiled step's bytes per device (arguments, outputs, temporaries),
   the backend's peak (`memory_stats`, GPU/TPU only: the process's peak so far, so it only
   grows from row to row) and examples/s.

On a CPU the devices are forced host devices (XLA_FLAGS=--xla_force_host_platform_device_count=8,
set here unless XLA_FLAGS already names a count): they share the same cores, so the tables
measure the overhead of sharding, not a speed-up. On a GPU or TPU host (or a pod slice: run
it on every host) they measure the real thing. Compile time is excluded (the loop times the
steps after the first). Prints the tables and writes OUT/scaling.json.
"""

from __future__ import annotations

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()


import functools  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import hjepa_jax as hj  # noqa: E402
from benchmarks.common import device_info, make_parser, table, write_json  # noqa: E402
from hjepa_jax.models import _common  # noqa: E402
from hjepa_jax.models.ellipse import EllipseConfig, EllipseModel, ellipse_points  # noqa: E402

SEED, LEARNING_RATE, N_TRAIN = 0, 3e-3, 1024  # fig4_ellipse's defaults
VIT_S = {"width": 384, "depth": 12, "heads": 6}  # ViT-S/16's transformer, on 64 patches
VIT_QUICK = {"width": 192, "depth": 4, "heads": 3}
IMAGE = (32, 32, 3)
COLUMNS = (
    ("parallel", "parallel", 1, "s"),
    ("devices", "devices", 1, "d"),
    ("examples/s", "examples_per_s", 1, ".0f"),
    ("step_ms", "step_s", 1e3, ".2f"),
    ("speed-up", "speedup", 1, ".2f"),
)
MB = 1 / 2**20
VIT_COLUMNS = (
    ("mesh", "mesh", 1, "s"),
    ("dtype", "dtype", 1, "s"),
    ("param MB/dev", "param_bytes_per_device", MB, ".2f"),
    ("step MB/dev", "step_bytes_per_device", MB, ".2f"),
    ("peak MB/dev", "peak_bytes_per_device", MB, ".1f"),
    ("examples/s", "examples_per_s", 1, ".1f"),
)


def measure(parallel: str, devices: int, batch: int, steps: int) -> dict:
    """Throughput of `steps` training steps of the Fig. 4 model on `devices` devices."""
    cfg = EllipseConfig()
    model = EllipseModel(cfg)
    key = jax.random.PRNGKey(SEED)
    mesh = hj.parallel.make_mesh(devices=hj.parallel.spread_devices(devices))
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


def vit_step(mesh: str, dtype: str, batch: int, steps: int, vit: dict) -> dict:
    """Memory and throughput of a ViT regression step (`vit`: width, depth, heads) on every
    device, with `mesh` ("data=N" or "fsdp=N") and `dtype`."""
    net = hj.nn.ViTEncoder(features=vit["width"], patch_size=4, mlp_ratio=4.0, **vit)
    rng = np.random.default_rng(SEED)
    images = rng.uniform(size=(4 * batch, *IMAGE)).astype(np.float32)
    targets = rng.normal(size=(4 * batch, vit["width"])).astype(np.float32)

    def loss(params, data, key):  # bfloat16 params (--dtype): the layers compute in bfloat16
        x, y = data
        return jnp.mean((_common.apply(net, params, x) - y) ** 2), {}

    loop = hj.train.LoopConfig(
        steps=steps, batch_size=batch, log_every=steps, mesh=mesh, dtype=dtype
    )
    res = hj.train.train(
        loss,
        functools.partial(net.init, jax.random.PRNGKey(SEED), images[:1]),  # made sharded
        optax.adam(1e-4),
        (images, targets),
        loop=loop,
        key=jax.random.PRNGKey(SEED),
        desc=f"ViT {mesh} {dtype}",
    )
    keys = ("param_bytes_per_device", "step_bytes_per_device", "peak_bytes_per_device")
    return {
        "mesh": mesh,
        "dtype": dtype,
        "examples_per_s": res.summary["examples_per_s"],
        **{k: res.summary.get(k) for k in keys},
    }


def main(argv=None) -> dict:
    parser = make_parser("scaling", __doc__, "fewer, smaller steps and a smaller ViT")
    parser.add_argument("--batch", type=int, default=None, help="global batch (1024 / 4096)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (20 / 100)")
    parser.add_argument("--vit-batch", type=int, default=None, help="ViT global batch (8/dev)")
    parser.add_argument("--vit-width", type=int, default=None, help="(ViT-S: 384)")
    parser.add_argument("--vit-depth", type=int, default=None, help="(ViT-S: 12)")
    parser.add_argument("--vit-heads", type=int, default=None, help="(ViT-S: 6)")
    args = parser.parse_args(argv)
    batch = args.batch or (1024 if args.quick else 4096)
    steps = args.steps or (20 if args.quick else 100)
    vit = dict(VIT_QUICK if args.quick else VIT_S)
    for name in vit:
        vit[name] = getattr(args, f"vit_{name}") or vit[name]
    n = jax.device_count()
    vit_batch = args.vit_batch or 8 * n
    print(device_info(), flush=True)

    processes = jax.process_count()
    counts = [k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256) if k % processes == 0 and k <= n]
    rows = [measure("jit", k, batch, steps) for k in counts]
    rows.append(measure("pmap", jax.local_device_count(), batch, steps))
    for row in rows:
        row["speedup"] = row["examples_per_s"] / rows[0]["examples_per_s"]
    print("\n" + table(f"Fig. 4 train step, global batch {batch}, {steps} steps", rows, COLUMNS))

    vit_rows = [
        vit_step(mesh, dtype, vit_batch, steps, vit)
        for mesh in (f"data={n}", f"fsdp={n}")
        for dtype in ("float32", "bfloat16")
    ]
    title = (
        f"ViT step (width {vit['width']}, depth {vit['depth']}, {vit['heads']} heads, 64 "
        f"patches), global batch {vit_batch}, {steps} steps, {n} devices"
    )
    print("\n" + table(title, vit_rows, VIT_COLUMNS))
    result = {
        **device_info(),
        "batch": batch,
        "steps": steps,
        "rows": rows,
        "vit": {**vit, "batch": vit_batch},
        "vit_rows": vit_rows,
    }
    write_json(args.out / "scaling.json", result)
    return result


if __name__ == "__main__":
    main()
