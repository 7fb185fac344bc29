"""JEPA train-step benchmarks: the jepa_digits step against batch, latent steps and devices.

    python -m benchmarks.jepa [--quick] [--out out/bench] [--repeats N] [--max-batch B]
        [--encoders mlp conv] [--latent-steps S ...] [--steps T] [--devices-batch B]
        [--max-devices N] [--[no-]pmap] [--devices-only]

The step is `hjepa_jax.models.digits_jepa.DigitsJEPA(cfg, (8, 8, 1)).loss` (two augmented
views, a shared MLP (256, 256, 64) or conv (32, 64 channels, stride 2) encoder, the latent
predictor with z in R^2 minimized by `latent_steps` projected SGD steps under the envelope
gradient, VICReg's variance and covariance terms) through `hj.train.make_train_step` with
adam, on random 8x8x1 images in [0, 1] (speed does not depend on what the pixels show).

1. batch: time (median and min) and examples/s of one jitted train step as the batch B grows,
   for the MLP and the conv encoder, at the default latent_steps = 5.
2. latent steps: the same at a fixed batch (the first encoder, MLP) as the inner steps S
   grow; "x fewest S" is the time over the fewest steps', "us/(B*S)" the cost of one more
   inner step per example.
3. memory: XLA's buffer sizes (temp, arguments, outputs) of each step of parts 1-2 from
   `lower(...).compile().memory_analysis()` (the executable that is timed; None where the
   backend does not say). The envelope gradient keeps no inner step, so memory is flat in S.
4. devices: `hj.train.train` (the whole loop: the batch sampled inside the step and sharded
   over the mesh's "data" axis) with the same global batch on meshes of 1, 2, 4, 8 ...
   devices, and (not with --quick) the pmap path over all of them; examples/s excludes the
   first, compiling step, wall_s includes it. This part runs in a child process,
   `python -m benchmarks.jepa --devices-only`, as forcing host devices needs
   XLA_FLAGS=--xla_force_host_platform_device_count=8 before jax starts (the child sets it
   unless XLA_FLAGS already names a count; parts 1-3 run on the parent's default devices).
   On a CPU the forced devices share the same cores, so it measures sharding overhead, not a
   speed-up; on a GPU / TPU host it measures the real devices.

Parts 1-2 compile every step first, then time them all round-robin (`time_calls`: one warm-up
call each, then --repeats rounds), so that drift on a shared machine affects them alike;
compile time is excluded and reported apart. examples/s, us/example and the columns of part 2
come from the fastest call (min_ms), the one least disturbed by other jobs: on a shared CPU the
median can be 3-4x the min. Tables go to stdout and everything to OUT/jepa.json (atomic), with
device and jax version; the child leaves its part in OUT/jepa_devices.json.

Sample (full sweep: 1m30s on a 2-core CPU shared with other jobs, so the medians run 1.5-3x
the mins and even the mins are +-30%; jax 0.10.2; --quick takes 45 s, compiles ~2-4 s a step):

    1. train step, latent_steps 5 (min ms)   B=64   B=256   B=1024   B=4096   examples/s
       mlp encoder                            3.5    10.2     34.4      149   1.8e4-3.0e4
       conv encoder                          10.3    12.8     45.9      240   0.6e4-2.2e4
    2. mlp, B=256 (min ms)     S=1    S=5   S=20   S=50   (~3.7 us per example and inner step)
                               9.4   10.2   27.9   55.6
    3. compiled temp MiB       B=64   B=256   B=1024   B=4096   args + out (params, adam)
       mlp                     0.38    3.25     19.8     82.0     4.5
       conv                    1.07    5.63     26.0    106.0     3.1
       mlp, B=256, S=1..50     3.251 - 3.252 (flat: the envelope keeps no inner step)
    4. hj.train.train, B=1024, 8 forced CPU devices   x1     x2     x4     x8    pmap x8
       examples/s                                   2.3e4  1.7e4  1.1e4  4.5e3  2.9e3
       (the devices share 2 cores: the cost of sharding, not a speed-up)
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and "--devices-only" in sys.argv[1:]:  # before jax starts
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
        ).strip()

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import hjepa_jax as hj  # noqa: E402
from benchmarks.common import device_info, make_parser, table, time_calls, write_json  # noqa: E402
from hjepa_jax.models.digits_jepa import DigitsJEPA, DigitsJEPAConfig  # noqa: E402

# fmt: off
# The (MLP, latent_batch, 5 latent steps) step of part 2 is part 1's: compiled and timed once.
FULL = {"batches": (64, 256, 1024, 4096), "latent_steps": (1, 5, 20, 50), "latent_batch": 256,
        "devices_batch": 1024, "devices_steps": 30, "pmap": True}
QUICK = {"batches": (64, 256), "latent_steps": (5, 50), "latent_batch": 256,
         "devices_batch": 256, "devices_steps": 5, "pmap": False}
ENCODERS = ("mlp", "conv")
DEFAULT_LATENT_STEPS = DigitsJEPAConfig().latent_steps  # part 1's
SEED, LEARNING_RATE = 0, 1e-3  # jepa_digits's defaults
IMAGE_SHAPE, N_IMAGES = (8, 8, 1), 2048
MEMORY_FIELDS = ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes")
MS, MIB = 1e3, 2.0**-20
# Table columns: (header, key, scale, format); the scale applies to f/g formats.
BATCH_COLUMNS = (("encoder", "encoder", 1, "s"), ("B", "batch", 1, "d"),
                 ("S", "latent_steps", 1, "d"), ("median_ms", "median_s", MS, ".4g"),
                 ("min_ms", "min_s", MS, ".4g"), ("examples/s", "examples_per_s", 1, ".4g"),
                 ("us/example", "us_per_example", 1, ".3g"), ("compile_s", "compile_s", 1, ".1f"))
LATENT_COLUMNS = (("encoder", "encoder", 1, "s"), ("B", "batch", 1, "d"),
                  ("S", "latent_steps", 1, "d"), ("median_ms", "median_s", MS, ".4g"),
                  ("min_ms", "min_s", MS, ".4g"), ("examples/s", "examples_per_s", 1, ".4g"),
                  ("x fewest S", "vs_fewest", 1, ".2f"),
                  ("us/(B*S)", "us_per_example_step", 1, ".3g"),
                  ("compile_s", "compile_s", 1, ".1f"))
MEMORY_COLUMNS = (("sweep", "sweep", 1, "s"), ("encoder", "encoder", 1, "s"),
                  ("B", "batch", 1, "d"), ("S", "latent_steps", 1, "d"),
                  ("temp", "temp_size_in_bytes", MIB, ".3f"),
                  ("args", "argument_size_in_bytes", MIB, ".3f"),
                  ("out", "output_size_in_bytes", MIB, ".3f"),
                  ("total", "total_bytes", MIB, ".3f"),
                  ("temp KiB/ex", "temp_kib_per_example", 1, ".3g"))
DEVICE_COLUMNS = (("parallel", "parallel", 1, "s"), ("devices", "devices", 1, "d"),
                  ("examples/s", "examples_per_s", 1, ".4g"), ("step_ms", "step_s", MS, ".4g"),
                  ("speed-up", "speedup", 1, ".2f"), ("wall_s", "wall_s", 1, ".1f"))
# fmt: on


@functools.cache
def digits_data(seed: int = 0, n: int = N_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """(images [n, 8, 8, 1] uniform in [0, 1], labels [n] in 0..9): random stand-ins for
    hj.data.load("hjepa_digits", "train"), whose content does not change the speed."""
    k_image, k_label = jax.random.split(jax.random.PRNGKey(seed))
    images = jax.random.uniform(k_image, (n, *IMAGE_SHAPE))
    return np.asarray(images), np.asarray(jax.random.randint(k_label, (n,), 0, 10))


def memory(compiled) -> dict:
    """temp / argument / output bytes of a compiled step and their total (None-safe)."""
    stats = compiled.memory_analysis()  # None on backends that do not report
    sizes = {f: getattr(stats, f, None) for f in MEMORY_FIELDS}
    known = [v for v in sizes.values() if v is not None]
    return {**sizes, "total_bytes": sum(known) if known else None}


def build_step(encoder: str, batch: int, latent_steps: int) -> dict:
    """Compile one adam train step of the jepa_digits model (`lower(...).compile()`: the
    executable that is timed is the one whose memory is read). Returns the row's keys,
    compile_s, memory, and "run": the step bound to its state and batch."""
    model = DigitsJEPA(DigitsJEPAConfig(encoder=encoder, latent_steps=latent_steps), IMAGE_SHAPE)
    key = jax.random.PRNGKey(SEED)
    tx = optax.adam(LEARNING_RATE)
    state = hj.train.init_state(model.init(key), tx, key)
    data = hj.train.sample_batch(digits_data(SEED), batch, key)  # ([B, 8, 8, 1], [B])
    step = jax.jit(hj.train.make_train_step(model.loss, tx))
    start = time.perf_counter()
    compiled = step.lower(state, data).compile()
    compile_s = time.perf_counter() - start
    print(f"  compiled {encoder} B={batch} S={latent_steps} in {compile_s:.1f} s", flush=True)
    return {
        "encoder": encoder,
        "batch": batch,
        "latent_steps": latent_steps,
        "compile_s": compile_s,
        "memory": memory(compiled),
        "run": functools.partial(compiled, state, data),
    }


def bench_steps(configs, repeats: int) -> dict:
    """Compile every (encoder, batch, latent_steps) of `configs` once, then time them all
    round-robin (`time_calls`: drift on a shared machine affects them alike).
    Returns {config: row}."""
    built = {c: build_step(*c) for c in dict.fromkeys(configs)}
    print(f"  timing {len(built)} steps, {repeats} rounds", flush=True)
    timings = time_calls([b.pop("run") for b in built.values()], repeats=repeats)
    rows = {}
    for c, b, timing in zip(built, built.values(), timings, strict=True):
        fastest, batch = timing["min_s"], b["batch"]
        rows[c] = {**b, **timing, "examples_per_s": batch / fastest}
        rows[c]["us_per_example"] = fastest / batch * 1e6
    return rows


def latent_columns(rows: list[dict]) -> list[dict]:
    """Part 2's derived columns (from the fastest calls): time relative to the fewest latent
    steps, and the cost of one more inner step per example."""
    first = rows[0]
    for row in rows:
        row["vs_fewest"] = row["min_s"] / first["min_s"]
        extra = row["latent_steps"] - first["latent_steps"]
        extra_s = row["min_s"] - first["min_s"]
        row["us_per_example_step"] = extra_s / (row["batch"] * extra) * 1e6 if extra else None
    return rows


def memory_rows(batch_rows: list[dict], latent_rows: list[dict]) -> list[dict]:
    """Part 3: the compiled buffer sizes of the steps of parts 1 and 2, one row each."""
    rows = []
    for sweep, source in (("batch", batch_rows), ("latent_steps", latent_rows)):
        for r in source:
            mem = r["memory"]
            temp = mem["temp_size_in_bytes"]
            per_ex = None if temp is None else temp / r["batch"] / 1024
            meta = {k: r[k] for k in ("encoder", "batch", "latent_steps")}
            rows.append({"sweep": sweep, **meta, **mem, "temp_kib_per_example": per_ex})
    return rows


def measure_devices(parallel: str, devices: int, batch: int, steps: int) -> dict:
    """examples/s of `steps` hj.train.train steps of the MLP jepa_digits model on `devices`."""
    model = DigitsJEPA(DigitsJEPAConfig(), IMAGE_SHAPE)
    key = jax.random.PRNGKey(SEED)
    mesh = hj.parallel.make_mesh(devices=jax.devices()[:devices])
    loop = hj.train.LoopConfig(steps=steps, batch_size=batch, log_every=steps, parallel=parallel)
    res = hj.train.train(
        model.loss,
        model.init(key),
        optax.adam(LEARNING_RATE),
        digits_data(SEED),
        loop=loop,
        key=key,
        mesh=mesh,
        desc=f"{parallel} x{devices}",
    )
    eps = res.summary["examples_per_s"]
    wall = res.summary["wall_s"]
    print(f"  {parallel} x{devices}: {eps:.4g} examples/s, {wall:.1f} s with compile", flush=True)
    row = {"parallel": parallel, "devices": devices, "examples_per_s": eps, "step_s": batch / eps}
    return {**row, "wall_s": wall}


def bench_devices(batch: int, steps: int, max_devices: int, pmap: bool) -> list[dict]:
    """Part 4 (in this process): jit meshes of 1, 2, 4, 8 ... devices, then pmap over all."""
    most = min(jax.device_count(), max_devices)
    counts = [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= most and batch % n == 0]
    rows = [measure_devices("jit", n, batch, steps) for n in counts]
    if pmap and batch % jax.local_device_count() == 0:
        rows.append(measure_devices("pmap", jax.local_device_count(), batch, steps))
    for row in rows:
        row["speedup"] = row["examples_per_s"] / rows[0]["examples_per_s"]
    return rows


def run_devices_child(out: Path, batch: int, steps: int, max_devices: int, pmap: bool) -> dict:
    """Part 4 in a child `python -m benchmarks.jepa --devices-only` (it forces 8 host
    devices before jax starts); returns what it wrote to OUT/jepa_devices.json."""
    env = dict(os.environ)
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # this process may hold the GPU
    cmd = [sys.executable, "-m", "benchmarks.jepa", "--devices-only", "--out", str(out)]
    cmd += ["--devices-batch", str(batch), "--steps", str(steps), "--max-devices", str(max_devices)]
    cmd += ["--pmap"] if pmap else ["--no-pmap"]
    root = Path(__file__).resolve().parents[1]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    print(f"  child done in {time.perf_counter() - start:.1f} s", flush=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}")
    return json.loads((out / "jepa_devices.json").read_text())


def devices_title(batch: int, steps: int) -> str:
    return f"4. hj.train.train, MLP encoder, global batch {batch}, {steps} steps, vs devices"


def main(argv=None) -> dict:
    parser = make_parser("jepa", __doc__, "small sweep (< 1 min on CPU)")
    parser.add_argument("--repeats", type=int, help="timed calls (default 20; 10 with --quick)")
    parser.add_argument(
        "--max-batch", type=int, help="drop batch sizes above this (keeps the smallest)"
    )
    parser.add_argument(
        "--latent-steps", type=int, nargs="+", help="inner steps of part 2 (1 5 20 50 / 5 50)"
    )
    parser.add_argument(
        "--encoders",
        nargs="+",
        choices=ENCODERS,
        default=list(ENCODERS),
        help="encoders of part 1 (the first one is part 2's)",
    )
    parser.add_argument("--steps", type=int, help="train steps per mesh in part 4 (30 / 5)")
    parser.add_argument(
        "--devices-batch", type=int, help="global batch of part 4 (1024 / 256; divisible by 8)"
    )
    parser.add_argument("--max-devices", type=int, default=64, help="largest mesh of part 4")
    parser.add_argument(
        "--pmap",
        action=argparse.BooleanOptionalAction,
        help="part 4 also times the pmap path over all devices (default: not with --quick)",
    )
    parser.add_argument(
        "--devices-only", action="store_true", help="run part 4 here, write jepa_devices.json"
    )
    args = parser.parse_args(argv)
    plan = dict(QUICK if args.quick else FULL)
    if args.max_batch is not None:
        sizes = plan["batches"]
        plan["batches"] = tuple(b for b in sizes if b <= args.max_batch) or sizes[:1]
        plan["latent_batch"] = min(plan["latent_batch"], args.max_batch)
        plan["devices_batch"] = min(plan["devices_batch"], args.max_batch)
    plan["latent_steps"] = tuple(args.latent_steps or plan["latent_steps"])
    plan["devices_batch"] = args.devices_batch or plan["devices_batch"]
    plan["devices_steps"] = args.steps or plan["devices_steps"]
    plan["pmap"] = plan["pmap"] if args.pmap is None else args.pmap
    repeats = args.repeats or (10 if args.quick else 20)
    print(device_info(), flush=True)

    if args.devices_only:
        rows = bench_devices(
            plan["devices_batch"], plan["devices_steps"], args.max_devices, plan["pmap"]
        )
        title = devices_title(plan["devices_batch"], plan["devices_steps"])
        print("\n" + table(title, rows, DEVICE_COLUMNS))
        result = {
            **device_info(),
            "batch": plan["devices_batch"],
            "steps": plan["devices_steps"],
            "rows": rows,
        }
        write_json(args.out / "jepa_devices.json", result)
        return result

    print("1-3. compile the steps of parts 1 and 2, then time them in turn", flush=True)
    batch_configs = [(e, b, DEFAULT_LATENT_STEPS) for e in args.encoders for b in plan["batches"]]
    latent_configs = [(args.encoders[0], plan["latent_batch"], s) for s in plan["latent_steps"]]
    rows = bench_steps(batch_configs + latent_configs, repeats)
    batch_rows = [dict(rows[c]) for c in batch_configs]
    latent_rows = latent_columns([dict(rows[c]) for c in latent_configs])
    mem_rows = memory_rows(batch_rows, latent_rows)
    print("4. devices (child process: python -m benchmarks.jepa --devices-only)", flush=True)
    devices = run_devices_child(
        args.out, plan["devices_batch"], plan["devices_steps"], args.max_devices, plan["pmap"]
    )

    titles = (
        f"1. train step vs batch (latent_steps {DEFAULT_LATENT_STEPS}, {repeats} calls)",
        f"2. train step vs latent steps ({args.encoders[0]} encoder, B={plan['latent_batch']}, "
        f"{repeats} calls)",
        "3. compiled memory of the train step (MiB; envelope gradient: flat in S)",
        devices_title(devices["batch"], devices["steps"])
        + f" ({devices['device']['platform']}, {devices['device']['count']} devices)",
    )
    for title, part, columns in zip(
        titles,
        (batch_rows, latent_rows, mem_rows, devices["rows"]),
        (BATCH_COLUMNS, LATENT_COLUMNS, MEMORY_COLUMNS, DEVICE_COLUMNS),
        strict=True,
    ):
        print("\n" + table(title, part, columns))

    result = {
        **device_info(),
        "quick": args.quick,
        "repeats": repeats,
        "max_batch": args.max_batch,
        "image_shape": list(IMAGE_SHAPE),
        "batch": batch_rows,
        "latent_steps": latent_rows,
        "memory": mem_rows,
        "devices": devices,
    }
    write_json(args.out / "jepa.json", result)
    return result


if __name__ == "__main__":
    main()
