"""Image input pipeline throughput: JPEG decode + random resized crop + flip, by grain workers.

    python -m benchmarks.image_pipeline [--quick] [--out out/bench] [--workers 0 1 2]
        [--repeats 3] [--batches 40] [--batch-size 128] [--dtype float32|uint8]

Images/s of `hj.data.images.train_loader` (steady state: the first batches, which wait for the
workers to start, are not timed) for each worker count, on two sources:

1. shapes64: `hjepa_shapes_images` (64 x 64 JPEG, ~2.8 KB) cropped to 64 x 64, read from its
   array_record files (built under TFDS_DATA_DIR on first use, ~30 s).
2. photo500: 512 in-memory JPEGs of 375 x 500 (ImageNet's typical size; shapes upscaled with
   noise, ~60 KB each) cropped to 224 x 224.

Each count is timed --repeats times and the best kept: the machine's other jobs add noise.
"x 1 worker" is the speed-up over one worker process; "images per CPU-second" divides by the
CPU time of this process and its workers (from /proc), so a constant value means the workers
add no overhead and the speed-up is limited by free cores. Tables go to stdout and everything
to OUT/image_pipeline.json.
"""

from __future__ import annotations

import gc
import glob
import os
import time

import numpy as np

from benchmarks.common import make_parser, write_json


def _photo_source(num: int):
    from PIL import Image

    from hjepa_jax.data import images, shapes_images

    small = shapes_images.generate("test", shapes_images.make_config(num_test=num))
    rng = np.random.default_rng(0)
    jpegs = []
    for img in small["image"]:
        big = np.asarray(Image.fromarray(img).resize((500, 375), Image.Resampling.BILINEAR))
        big = np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8)
        jpegs.append(shapes_images.encode_jpeg(big, 90))
    return images.ArraySource(jpegs, small["label"])


def _cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process and its live children (the
    grain workers), from /proc; 0 where there is no /proc."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    me, total = os.getpid(), 0.0
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.split("/")[2])
        if pid == me or int(fields[1]) == me:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _images_per_s(src, workers: int, size: int, batch_size: int, batches: int, dtype: str):
    from hjepa_jax.data import images

    loader = images.train_loader(
        src,
        batch_size=batch_size,
        image_size=size,
        seed=0,
        worker_count=workers,
        dtype=dtype,
        process_index=0,
        process_count=1,
    )
    it = iter(loader)
    for _ in range(max(2, 2 * workers)):  # workers started and their buffers filled
        next(it)
    start, cpu = time.perf_counter(), _cpu_seconds()
    for _ in range(batches):
        next(it)
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    del it, loader
    gc.collect()  # grain's iterator stops its worker processes when collected
    return batches * batch_size / wall, batches * batch_size / max(cpu, 1e-9)


def main(argv=None) -> None:
    p = make_parser("image_pipeline", __doc__, "fewer batches and repeats")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--dtype", default="float32", choices=["float32", "uint8"])
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.batches = 1, 10

    from hjepa_jax.data import images

    sources = {
        "shapes64": (images.image_source("hjepa_shapes_images", "train"), 64),
        "photo500": (_photo_source(512), 224),
    }
    result = {"batch_size": args.batch_size, "batches": args.batches, "dtype": args.dtype}
    result["tables"] = {}
    for name, (src, size) in sources.items():
        rows = {}
        for w in args.workers:
            runs = [
                _images_per_s(src, w, size, args.batch_size, args.batches, args.dtype)
                for _ in range(args.repeats)
            ]
            rates = [r for r, _ in runs]
            per_cpu = max(c for _, c in runs)
            rows[w] = {"best": max(rates), "all": rates, "per_cpu_s": per_cpu}
        result["tables"][name] = rows
        print(
            f"\n{name} -> {size}x{size}   images/s (best of {args.repeats})   x 1 worker"
            "   images per CPU-second"
        )
        one = rows.get(1, {}).get("best")
        for w, r in rows.items():
            ratio = f"{r['best'] / one:.2f}" if one else "-"
            print(
                f"  workers={w:<3d}        {r['best']:10.0f}                   {ratio:>5}"
                f"        {r['per_cpu_s']:8.0f}"
            )
    write_json(args.out / "image_pipeline.json", result)


if __name__ == "__main__":
    main()
