"""JEPA train-step benchmarks: the jepa_digits step against batch, latent steps and devices;
an I-JEPA ViT step, JAX against the reference PyTorch code.

    python -m benchmarks.jepa [--quick] [--out out/bench] [--repeats N] [--max-batch B]
        [--encoders mlp conv] [--latent-steps S ...] [--steps T] [--devices-batch B]
        [--max-devices N] [--[no-]pmap] [--devices-only]
        [--vit tiny|small|s16|none] [--vit-only] [--vit-batch B] [--vit-repeats N]
        [--vit-warmup N] [--torch --ijepa-src DIR] [--torch-venv DIR] [--torch-threads N]

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
5. ViT step (--vit SIZE; --vit-only runs this part alone): ms and images/s of one I-JEPA train
   step in JAX and in facebookresearch/ijepa's PyTorch code, at the same ViT, batch, image,
   patch and mask recipe (4 target blocks, scale 0.15-0.2, aspect 0.75-1.5; one context
   block, scale 0.85-1.0, the targets removed). Sizes (VIT_SIZES; heads of the predictor =
   the encoder's, as the reference's init_model): small, the default (image 64, patch 8,
   width 192, depth 6, 3 heads, predictor 96 x 3, B=32: seconds on a CPU); s16, ViT-S/16 on
   224 (384 x 12, 6 heads, predictor 192 x 6, B=8); tiny, with --quick (a smoke size).
   --vit-batch overrides the batch.
   JAX: `hjepa_jax.models.ijepa.IJEPA(cfg, (H, W, 3)).loss` (EMA target, no latent, with its
   collapse metrics) through `hj.train.make_train_step` with optax.adamw (lr 1e-3, weight
   decay 0.04) and the EMA (`IJEPA.optimizer`), jitted with the state donated, on random
   images and one batch of `hjepa_jax.masks.sample_multiblock` masks (C context and T target
   patches: fixed shapes).
   PyTorch: benchmarks/ijepa_torch.py, a child process in its own venv that imports the
   reference's VisionTransformer, vit_predictor, MaskCollator and apply_masks from --ijepa-src
   DIR (a checkout of facebookresearch/ijepa, whose CC-BY-NC code is not copied here) and runs
   the step of its train.py: the target encoder (no grad) on every patch and a layer norm, the
   context encoder on the context patches, the predictor, smooth L1, backward, AdamW, the EMA.
   Its collator's masks are cut to the JAX side's C and T, so both run the same tokens. Weight
   decay skips biases and norms on both sides. What still differs: our loss is L2 and
   computes collapse metrics (about 3% of the step), and our GELU is tanh's approximation.
   Both are timed alike: the first step (JAX compiles before it: compile_s; both in
   first_s), --vit-warmup - 1 more, then --vit-repeats timed steps each, in alternating rounds
   of VIT_ROUND (JAX, then PyTorch, never both at once), so that other jobs slow both alike.
   min_ms / median_ms: the fastest and the median step; images/s and JAX/PyTorch (> 1: JAX is
   faster) from the fastest. threads: XLA's CPU pool (one per core) and torch.set_num_threads
   (the cores, or --torch-threads); cpu/wall: the CPU seconds each process used over the wall
   seconds of its timed steps. PyTorch runs only with --torch and --ijepa-src: the venv
   (--torch-venv, default .venv-torch) is then made if missing with `python3 -m venv` and `pip
   install torch==2.13.0 numpy` (the CPU build), the only download; otherwise its row says why
   it was skipped. hjepa_jax itself never depends on torch. Where torch sees a GPU (a
   --torch-venv whose torch has CUDA), the child runs there, with float32 products in TF32
   as XLA's default on GPU; a GPU sample is in docs/results.md.

Parts 1-2 compile every step first, then time them all round-robin (`time_calls`: one warm-up
call each, then --repeats rounds), so that drift on a shared machine affects them alike;
compile time is excluded and reported apart. examples/s, us/example and the columns of part 2
come from the fastest call (min_ms), the one least disturbed by other jobs: on a shared CPU the
median can be 3-4x the min. Tables go to stdout and everything to OUT/jepa.json (atomic), with
device and jax version (with --vit-only, part 5 alone: "vit_step"); the child leaves its part
in OUT/jepa_devices.json, and part 5's PyTorch child its JSON and stderr in
OUT/jepa_vit_torch.json and .log.

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

Sample of part 5 (jax 0.10.2 against torch 2.13.0+cpu; DIR a checkout of
facebookresearch/ijepa), on the same shared 2-core CPU while another job kept one to two of
its cores busy throughout, so both processes were pinned to one core, where each keeps one
thread busy (cpu/wall 0.99 on both sides); 10 timed steps each, in rounds of 5:

    taskset -c 1 python -m benchmarks.jepa --vit-only [--vit s16] --torch --ijepa-src DIR
    5. ViT step (1 thread each)    B  image   C   T   min_ms  median_ms  images/s  JAX/PyTorch
       jax      192x6 p8, pred 96x3  32     64  11   9    268.7      279.7     119.1    0.80
       pytorch  192x6 p8, pred 96x3  32     64  11   9    215.9      232.3     148.2
       jax      ViT-S/16, 192x6      8    224  51  30     1861       1877     4.298    0.73
       pytorch  ViT-S/16, 192x6      8    224  51  30     1365       1386     5.861
    (JAX compiles in 7-10 s, excluded. Its forward is as fast as PyTorch's, its backward
    slower: the small encoder on all 64 patches of 32 images, 1 thread, takes 81 ms against
    94 forward, 486 against 301 forward and backward; XLA's flags for XNNPACK, oneDNN or
    fast math changed nothing.) On both cores beside that job, each side's two threads
    stalled on each other: 771 ms JAX against 6306 ms PyTorch at the small size (JAX/PyTorch
    8.2, PyTorch's OpenMP suffering most), so compare 2-core numbers only on an idle machine.
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
import dataclasses  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import hjepa_jax as hj  # noqa: E402
from benchmarks.common import device_info, make_parser, table, time_calls, write_json  # noqa: E402
from hjepa_jax.masks import MultiBlockSpec, multiblock_sizes, sample_multiblock  # noqa: E402
from hjepa_jax.models.digits_jepa import DigitsJEPA, DigitsJEPAConfig  # noqa: E402
from hjepa_jax.models.ijepa import IJEPA, IJEPAConfig  # noqa: E402

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
# Part 5: I-JEPA ViT sizes (pred_heads = heads, as the reference's init_model).
VIT_SIZES = {
    "tiny": {"label": "tiny 32x1 p4", "image": 32, "patch": 4, "width": 32, "depth": 1,
             "heads": 2, "pred_width": 16, "pred_depth": 1, "batch": 4},
    "small": {"label": "192x6 p8, pred 96x3", "image": 64, "patch": 8, "width": 192,
              "depth": 6, "heads": 3, "pred_width": 96, "pred_depth": 3, "batch": 32},
    "s16": {"label": "ViT-S/16, pred 192x6", "image": 224, "patch": 16, "width": 384,
            "depth": 12, "heads": 6, "pred_width": 192, "pred_depth": 6, "batch": 8},
}
VIT_LR, VIT_WEIGHT_DECAY, VIT_EMA_STEPS = 1e-3, 0.04, 10_000  # as in benchmarks/ijepa_torch.py
VIT_ROUND = 5  # part 5 alternates JAX and PyTorch in rounds of this many timed steps
TORCH_VERSION = "2.13.0"  # the CPU build; a plain `pip install torch` pulls a CUDA one
VIT_COLUMNS = (("framework", "framework", 1, "s"), ("ViT", "label", 1, "s"),
               ("B", "batch", 1, "d"), ("image", "image", 1, "d"),
               ("C", "context_patches", 1, "d"), ("T", "target_patches", 1, "d"),
               ("threads", "threads", 1, "d"), ("cpu/wall", "cpu_per_wall", 1, ".2f"),
               ("min_ms", "min_s", MS, ".4g"), ("median_ms", "median_s", MS, ".4g"),
               ("images/s", "images_per_s", 1, ".4g"), ("JAX/PyTorch", "ratio", 1, ".2f"),
               ("first_s", "first_s", 1, ".1f"))
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


def cores() -> int:
    """CPU cores this process may run on (XLA's CPU thread pool has one thread per core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def timed(step, n: int, cpu: list | None = None) -> list[float]:
    """Seconds of each of `n` calls of `step()` (which returns when the step is done): the
    loop of benchmarks/ijepa_torch.py, so that both sides are timed alike. Adds the
    process's CPU seconds over them to `cpu[0]`."""
    times = []
    start_cpu = time.process_time()
    for _ in range(n):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    if cpu is not None:
        cpu[0] += time.process_time() - start_cpu
    return times


def summary(times: list[float], cpu_s: float) -> dict:
    """Median and min seconds, and cpu_per_wall: CPU over wall seconds (the cores kept busy)."""
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times,
            "cpu_per_wall": cpu_s / sum(times)}  # fmt: skip


def vit_model(size: dict) -> IJEPA:
    """The I-JEPA model of a VIT_SIZES entry (EMA target, no latent)."""
    cfg = IJEPAConfig(
        patch_size=size["patch"],
        width=size["width"],
        depth=size["depth"],
        heads=size["heads"],
        pred_width=size["pred_width"],
        pred_depth=size["pred_depth"],
        pred_heads=size["heads"],
    )
    return IJEPA(cfg, (size["image"], size["image"], 3))


def vit_base_row(framework: str, name: str, size: dict, batch: int) -> dict:
    return {"framework": framework, "size": name, "label": size["label"], "batch": batch,
            "image": size["image"], "patch": size["patch"]}  # fmt: skip


def jax_vit_step(model: IJEPA, spec: MultiBlockSpec, batch: int) -> tuple:
    """Part 5, JAX: `IJEPA.loss` through `hj.train.make_train_step` with adamw (weight decay on
    the weights, not on biases and norms, as the reference; and the EMA of the target,
    `model.optimizer`), jitted with the state donated, on random images and one
    batch of `sample_multiblock(spec)` masks. Returns (compile_s, run, last): `run()` takes
    one step, carrying the state, and returns when it is done; `last()` its metrics."""
    key = jax.random.PRNGKey(SEED)
    k_init, k_mask, k_image = jax.random.split(key, 3)
    decay = functools.partial(jax.tree_util.tree_map, lambda x: x.ndim > 1)  # not biases, norms
    adamw = optax.adamw(VIT_LR, weight_decay=VIT_WEIGHT_DECAY, mask=decay)
    tx = model.optimizer(adamw, VIT_EMA_STEPS)
    state = hj.train.init_state(jax.jit(model.init)(k_init), tx, key)
    masks = sample_multiblock(k_mask, batch, spec)
    images = jax.random.uniform(k_image, (batch, *model.image_shape))
    data = {"image": images, "context_idx": masks.context_idx, "target_idx": masks.target_idx}
    step = jax.jit(hj.train.make_train_step(model.loss, tx), donate_argnums=0)
    start = time.perf_counter()
    compiled = step.lower(state, data).compile()
    compile_s = time.perf_counter() - start
    carry = {"state": state, "metrics": None}

    def run():
        carry["state"], metrics = compiled(carry["state"], data)
        carry["metrics"] = jax.block_until_ready(metrics)

    return compile_s, run, lambda: (carry["state"], carry["metrics"])


def torch_python(venv: Path) -> Path:
    """The python of `venv` with torch and numpy, made on request: `python3 -m venv` if
    missing, then `pip install torch==TORCH_VERSION numpy` if torch is not there."""
    python = venv / "bin" / "python"
    if python.exists():
        probe = subprocess.run([python, "-c", "import torch, numpy"], capture_output=True)
        if probe.returncode == 0:
            return python
    else:
        print(f"  creating {venv} (python3 -m venv)", flush=True)
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    print(f"  installing torch=={TORCH_VERSION} numpy into {venv}", flush=True)
    pip = [python, "-m", "pip", "install", "-q", f"torch=={TORCH_VERSION}", "numpy"]
    subprocess.run(pip, check=True)
    return python


class TorchChild:
    """benchmarks/ijepa_torch.py --serve in the torch venv: it builds the reference's step,
    takes its first and warm-up steps, then times as many steps as it is told, in turn with
    the JAX steps. Its stderr goes to OUT/jepa_vit_torch.log, its JSON to
    OUT/jepa_vit_torch.json."""

    PROMPT = "@ijepa_torch "  # benchmarks/ijepa_torch.py's PROMPT

    def __init__(self, python: Path, args, size: dict, batch: int, sizes: tuple[int, int]):
        self.json = args.out / "jepa_vit_torch.json"
        self.log = args.out / "jepa_vit_torch.log"
        cmd = [str(python), str(Path(__file__).with_name("ijepa_torch.py")), "--serve"]
        cmd += ["--ijepa-src", str(args.ijepa_src), "--out", str(self.json)]
        for key in ("image", "patch", "width", "depth", "heads", "pred_width", "pred_depth"):
            cmd += [f"--{key.replace('_', '-')}", str(size[key])]
        cmd += ["--batch", str(batch), "--target-patches", str(sizes[0])]
        cmd += ["--context-patches", str(sizes[1]), "--warmup", str(args.vit_warmup)]
        cmd += ["--threads", str(args.torch_threads or cores())]
        print(f"  starting {' '.join(cmd)}", flush=True)
        args.out.mkdir(parents=True, exist_ok=True)
        self.json.unlink(missing_ok=True)
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
            )
        self.reply()  # {"ready": true}: built and warmed up

    def reply(self):
        for line in self.proc.stdout:
            if line.startswith(self.PROMPT):
                return json.loads(line[len(self.PROMPT) :])
        tail = self.log.read_text().strip().splitlines() or ["no output"]
        raise RuntimeError(f"exit {self.proc.wait()}: {tail[-1]}")

    def timed(self, n: int) -> list[float]:
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        return self.reply()

    def close(self) -> dict:
        self.proc.stdin.close()
        self.proc.stdout.read()
        if self.proc.wait():
            raise RuntimeError(f"exit {self.proc.returncode}: see {self.log}")
        return json.loads(self.json.read_text())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_torch(args, size: dict, batch: int, sizes: tuple[int, int]):
    """(TorchChild, None) or (None, why PyTorch is not run)."""
    src = args.ijepa_src
    if not args.torch:
        return None, "no --torch: PyTorch is not run"
    if src is None:
        return None, "no --ijepa-src DIR, a checkout of facebookresearch/ijepa"
    if not (src / "src" / "models" / "vision_transformer.py").is_file():
        return None, f"{src} has no src/models/vision_transformer.py"
    python = torch_python(args.torch_venv)
    try:
        return TorchChild(python, args, size, batch, sizes), None
    except RuntimeError as err:
        print(f"  the PyTorch child failed: {err}", flush=True)
        return None, f"the PyTorch child failed ({err})"


def bench_vit(args) -> dict:
    """Part 5: the PyTorch child is started and warmed up first (if --torch), then the JAX
    step is compiled (compile_s, excluded from the timing) and warmed up, then both are timed
    in alternating rounds of VIT_ROUND steps (never at the same time) until each has
    --vit-repeats; images/s from the fastest step, JAX/PyTorch the ratio of those (also
    of the medians in the JSON). PyTorch runs at the JAX side's token counts (C, T)."""
    name = args.vit
    size = VIT_SIZES[name]
    batch = args.vit_batch or size["batch"]
    model = vit_model(size)
    spec = MultiBlockSpec(grid=model.grid)
    t, c = multiblock_sizes(spec)  # the shapes sample_multiblock gives
    child, why = start_torch(args, size, batch, (t, c))
    jax_times, jax_cpu = [], [0.0]
    try:
        compile_s, run, last = jax_vit_step(model, spec, batch)
        print(
            f"  compiled the JAX step ({size['label']}, B={batch}) in {compile_s:.1f} s", flush=True
        )
        first_s = timed(run, 1)[0]
        timed(run, args.vit_warmup - 1)
        while len(jax_times) < args.vit_repeats:
            n = min(VIT_ROUND, args.vit_repeats - len(jax_times))
            jax_times += timed(run, n, jax_cpu)
            if child is not None:
                try:
                    child.timed(n)  # it keeps its times
                except RuntimeError as err:
                    child.kill()
                    child, why = None, f"the PyTorch child failed ({err})"
        torch_res = child.close() if child is not None else None
    finally:
        if child is not None:
            child.kill()
    state, metrics = last()
    trained = {k: v for k, v in state.params.items() if k != "target"}
    jax_row = {
        **vit_base_row("jax", name, size, batch),
        "context_patches": c,
        "target_patches": t,
        "threads": cores(),
        **summary(jax_times, jax_cpu[0]),
        "images_per_s": batch / min(jax_times),
        "compile_s": compile_s,
        "first_s": compile_s + first_s,
        "loss": float(metrics["loss"]),
        "trained_params": sum(x.size for x in jax.tree_util.tree_leaves(trained)),
        "jax_version": jax.__version__,
    }
    torch_row = vit_base_row("pytorch", name, size, batch)
    if torch_res is None:
        torch_row["skipped"] = why
        ratio = ratio_median = None
    else:
        torch_row.update(torch_res, first_s=torch_res["first_step_s"])
        torch_row["images_per_s"] = batch / torch_res["min_s"]
        ratio = jax_row["images_per_s"] / torch_row["images_per_s"]
        ratio_median = torch_row["median_s"] / jax_row["median_s"]
    jax_row["ratio"], jax_row["ratio_median"] = ratio, ratio_median
    config = {k: v for k, v in size.items() if k != "label"}
    return {
        "size": name,
        "config": {**config, "batch": batch, "pred_heads": size["heads"]},
        "masks": {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(spec).items()
            if k != "candidates"
        },
        "cores": cores(),
        "warmup": args.vit_warmup,
        "repeats": args.vit_repeats,
        "round": VIT_ROUND,
        "rows": [jax_row, torch_row],
        "ratio": ratio,
        "ratio_median": ratio_median,
    }


def vit_title(vit: dict) -> str:
    return (
        f"5. I-JEPA ViT train step, JAX vs PyTorch ({vit['repeats']} timed steps each after "
        f"{vit['warmup']} warm-up, in alternating rounds of {vit['round']}, {vit['cores']} "
        "cores; JAX/PyTorch: ratio of images/s)"
    )


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
    vit = parser.add_argument_group("part 5, the I-JEPA ViT step, JAX vs PyTorch")
    vit.add_argument(
        "--vit",
        choices=(*VIT_SIZES, "none"),
        help="ViT size (default small; tiny with --quick; s16: ViT-S/16 on 224; none: skip)",
    )
    vit.add_argument("--vit-only", action="store_true", help="run part 5 alone")
    vit.add_argument("--vit-batch", type=int, help="batch of part 5 (default: the size's)")
    vit.add_argument("--vit-repeats", type=int, help="timed steps of part 5 (10; 3 with --quick)")
    vit.add_argument("--vit-warmup", type=int, default=2, help="untimed steps first (>= 1)")
    vit.add_argument(
        "--torch",
        action="store_true",
        help=f"also time PyTorch (creates --torch-venv with torch=={TORCH_VERSION} if missing)",
    )
    vit.add_argument(
        "--ijepa-src", type=Path, help="a checkout of facebookresearch/ijepa (for --torch)"
    )
    vit.add_argument(
        "--torch-venv",
        type=Path,
        default=Path(__file__).resolve().parents[1] / ".venv-torch",
        help="the torch venv (default .venv-torch at the repository root)",
    )
    vit.add_argument("--torch-threads", type=int, help="torch.set_num_threads (default: cores)")
    args = parser.parse_args(argv)
    args.vit = args.vit or ("tiny" if args.quick else "small")
    args.vit_repeats = args.vit_repeats or (3 if args.quick else 10)
    if args.vit_warmup < 1 or args.vit_repeats < 1:
        parser.error("--vit-warmup and --vit-repeats must be >= 1")
    if args.vit_only and args.vit == "none":
        parser.error("--vit-only needs a --vit size")
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

    if args.vit_only:
        print("5. I-JEPA ViT step, JAX and PyTorch in turn", flush=True)
        vit = bench_vit(args)
        print("\n" + table(vit_title(vit), vit["rows"], VIT_COLUMNS))
        result = {**device_info(), "vit_step": vit}
        write_json(args.out / "jepa.json", result)
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

    vit = None
    if args.vit != "none":
        print("5. I-JEPA ViT step, JAX and PyTorch in turn", flush=True)
        vit = bench_vit(args)

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
    if vit is not None:
        print("\n" + table(vit_title(vit), vit["rows"], VIT_COLUMNS))

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
        "vit_step": vit,
    }
    write_json(args.out / "jepa.json", result)
    return result


if __name__ == "__main__":
    main()
