"""Latent-inference benchmarks: the cost of running `minimize` inside a training step.

    python -m benchmarks.latent [--quick] [--out out/bench] [--repeats N] [--max-cost N]

1. train step: median time of one jitted training step of the Fig. 4 ellipse model
   (`EllipseModel.loss`, adam, `hj.train.make_train_step`; 8 starts, grad="envelope") as the
   batch B and the inner steps S grow. One warm-up call first, so compile time is excluded.
2. memory: XLA's buffer sizes of that step from `lower(...).compile().memory_analysis()`
   (compile only, nothing runs) for grad="envelope" vs grad="unroll" as S grows at fixed B.
3. overhead: `hj.latent.minimize` vs the same loop written by hand (a plain `lax.scan` of
   `optax.sgd`: value_and_grad, update, apply_updates), both jitted and vmapped over B points;
   the two are timed alternately and must agree (max|diff|).

Tables go to stdout and everything to OUT/latent.json (atomic), with device and jax version.
--max-cost skips train-step combos with B * S above it; the table lists them as skipped.

Sample (full sweep, 5 min on a 2-core CPU shared with other jobs, so +-30% noise; jax 0.10.2;
--quick takes 15 s):

    train step, median ms    S=10   S=100   S=1000
      B=256                   5.6    45.6      454
      B=1024                 21.1     172     1589
      B=4096                  119     829     7873
      B=16384                 333    2501    27628
    compiled temp MiB, B=1024    S=10   S=100   S=1000
      envelope                   12.3    12.3     12.3   (flat: the envelope keeps no step)
      unroll                      578    5653    56419   (~7 KiB per example, start and step)
    minimize / hand-written scan (B 1024-4096, 100-1000 steps): 0.98-1.03x, identical outputs
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax import lax

import hjepa_jax as hj
from benchmarks.common import device_info, make_parser, table, time_calls, write_json
from hjepa_jax.models.ellipse import EllipseConfig, EllipseModel, ellipse_points

# fmt: off
FULL = {"batches": (256, 1024, 4096, 16384), "steps": (10, 100, 1000), "mem_batch": 1024,
        "overhead": ((1024, 100), (4096, 100), (4096, 1000))}
QUICK = {"batches": (256, 1024), "steps": (10, 100), "mem_batch": 256, "overhead": ((1024, 100),)}
MEM_STEPS = (10, 100, 1000)  # compile only: cheap even for unroll at S = 1000
SEED, LEARNING_RATE, N_TRAIN = 0, 3e-3, 1024  # fig4_ellipse's defaults
MEMORY_FIELDS = ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes")
MS, MIB = 1e3, 2.0**-20
# Table columns: (header, key, scale, format); the scale applies to f/g formats.
TRAIN_COLUMNS = (("B", "batch", 1, "d"), ("S", "inner_steps", 1, "d"),
                 ("median_ms", "median_s", MS, ".5g"), ("min_ms", "min_s", MS, ".5g"),
                 ("ns/(B*S)", "ns_per_example_step", 1, ".0f"))
MEMORY_COLUMNS = (("S", "inner_steps", 1, "d"), ("grad", "grad", 1, "s"),
                  ("temp", "temp_size_in_bytes", MIB, ".2f"),
                  ("args", "argument_size_in_bytes", MIB, ".2f"),
                  ("out", "output_size_in_bytes", MIB, ".2f"),
                  ("total", "total_bytes", MIB, ".2f"))
OVERHEAD_COLUMNS = (("B", "batch", 1, "d"), ("steps", "steps", 1, "d"),
                    ("hand_ms", "hand_s", MS, ".4g"), ("minimize_ms", "minimize_s", MS, ".4g"),
                    ("ratio", "ratio", 1, ".3f"), ("max|diff|", "max_abs_diff", 1, ".1e"))
# fmt: on


def ellipse_step(batch: int, inner_steps: int, grad: str = "envelope"):
    """(jitted train step, state, ys [B, 2]) of the Fig. 4 model, inner loop in `grad` mode."""
    cfg = EllipseConfig(inner_steps=inner_steps, grad=grad)
    model = EllipseModel(cfg)
    key = jax.random.PRNGKey(SEED)
    tx = optax.adam(LEARNING_RATE)
    state = hj.train.init_state(model.init(key), tx, key)
    ys = hj.train.sample_batch(ellipse_points(key, N_TRAIN, cfg), batch, key)  # [B, 2]
    return jax.jit(hj.train.make_train_step(model.loss, tx)), state, ys


def bench_train_step(batches, steps, repeats: int, max_cost: float) -> list[dict]:
    """Part 1: step time over B x S; combos with B * S > max_cost are skipped."""
    rows = []
    for b in batches:
        for s in steps:
            row = {"batch": b, "inner_steps": s}
            if b * s > max_cost:
                rows.append({**row, "skipped": f"B*S = {b * s} > max_cost"})
                continue
            step, state, ys = ellipse_step(b, s)
            (timing,) = time_calls([step], state, ys, repeats=repeats)
            ns = timing["median_s"] / (b * s) * 1e9
            rows.append({**row, **timing, "ns_per_example_step": ns})
            print(f"  train step B={b} S={s}: {timing['median_s'] * MS:.1f} ms", flush=True)
    return rows


def bench_memory(batch: int, steps) -> list[dict]:
    """Part 2: compiled buffer sizes of the train step, envelope vs unroll, over S."""
    rows = []
    for s in steps:
        for grad in hj.latent.GRAD_MODES:
            step, state, ys = ellipse_step(batch, s, grad)
            stats = step.lower(state, ys).compile().memory_analysis()
            sizes = {f: getattr(stats, f, None) for f in MEMORY_FIELDS}  # stats may be None
            known = [v for v in sizes.values() if v is not None]
            meta = dict(batch=batch, inner_steps=s, grad=grad)
            rows.append({**meta, **sizes, "total_bytes": sum(known) if known else None})
    return rows


def hand_minimize(energy, params, z0, y, steps: int, lr: float):
    """The inner loop by hand: `steps` plain optax.sgd steps on z in one lax.scan."""
    opt = optax.sgd(lr)
    value_and_grad = jax.value_and_grad(energy, argnums=1)

    def body(carry, _):
        z, opt_state = carry
        e, g = value_and_grad(params, z, y)
        updates, opt_state = opt.update(g, opt_state, z)
        return (optax.apply_updates(z, updates), opt_state), e

    (z, _), trace = lax.scan(body, (z0, opt.init(z0)), None, length=steps)
    return z, energy(params, z, y), trace


def bench_overhead(configs, repeats: int) -> list[dict]:
    """Part 3: hj.latent.minimize vs hand_minimize on the ellipse energy, vmapped over B."""
    cfg = EllipseConfig()
    model = EllipseModel(cfg)
    key = jax.random.PRNGKey(SEED)
    params = model.init(key)
    rows = []
    for b, s in configs:
        ys, z0s = ellipse_points(key, b, cfg), jnp.zeros((b, 1))

        def hand(z0, y, s=s):
            return hand_minimize(model.energy, params, z0, y, s, cfg.inner_lr)

        def lib(z0, y, s=s):
            opt = optax.sgd(cfg.inner_lr)
            return tuple(hj.latent.minimize(model.energy, params, z0, y, steps=s, optimizer=opt))

        fns = [jax.jit(jax.vmap(hand)), jax.jit(jax.vmap(lib))]
        outs = [fn(z0s, ys) for fn in fns]
        diff = max(float(jnp.max(jnp.abs(a - c))) for a, c in zip(*outs, strict=True))
        t_hand, t_lib = (t["median_s"] for t in time_calls(fns, z0s, ys, repeats=repeats))
        row = dict(batch=b, steps=s, hand_s=t_hand, minimize_s=t_lib, ratio=t_lib / t_hand)
        rows.append({**row, "max_abs_diff": diff})
    return rows


def main(argv=None) -> dict:
    parser = make_parser("latent", __doc__, "small sweep (< 1 min on CPU)")
    parser.add_argument("--repeats", type=int, help="timed calls (default 5; 3 with --quick)")
    parser.add_argument(
        "--max-cost",
        type=float,
        default=float("inf"),
        help="skip train-step combos with B * S above this",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    repeats = args.repeats or (3 if args.quick else 5)
    print(device_info(), flush=True)

    train_rows = bench_train_step(plan["batches"], plan["steps"], repeats, args.max_cost)
    mem_rows = bench_memory(plan["mem_batch"], MEM_STEPS)
    over_rows = bench_overhead(plan["overhead"], repeats)
    titles = (
        f"1. train step time (Fig. 4 model, 8 starts, envelope, median of {repeats})",
        f"2. compiled memory of the train step (MiB), B={plan['mem_batch']}",
        "3. overhead: hj.latent.minimize vs hand-written lax.scan (vmap, jit)",
    )
    for title, rows, columns in zip(
        titles,
        (train_rows, mem_rows, over_rows),
        (TRAIN_COLUMNS, MEMORY_COLUMNS, OVERHEAD_COLUMNS),
        strict=True,
    ):
        print("\n" + table(title, rows, columns))

    result = {
        **device_info(),
        "quick": args.quick,
        "repeats": repeats,
        "max_cost": None if args.max_cost == float("inf") else args.max_cost,
        "train_step": train_rows,
        "memory": mem_rows,
        "overhead": over_rows,
    }
    write_json(args.out / "latent.json", result)
    return result


if __name__ == "__main__":
    main()
