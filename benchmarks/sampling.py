"""Sampling benchmarks: Langevin chains, ISTA / FISTA sparse coding, contrastive train steps.

    python -m benchmarks.sampling [--quick] [--out out/bench] [--repeats N] [--max-batch B]
        [--chain-steps S] [--sparse-steps S] [--negatives K] [--train-langevin-steps S]

1. langevin: chains/s and chain-steps/s of a jitted `jax.vmap` of `hj.sampling.langevin_sample`
   (one key per chain, T = 1, step 0.01, uniform starts in [-3, 3]^2) on a random 2-D energy
   MLP F(y) = MLP(64, 64, 1)(y), as the number of chains B grows at fixed steps S; "x sgd" is
   its time over the same loop without noise (`hj.latent.minimize`, optax.sgd), timed in turn.
2. sparse coding: iterations/s (B * steps / time) of a jitted vmap of `hj.losses.sparse_code`
   (FISTA: accelerated=True, ISTA: False) on a random 64 x 128 dictionary W (unit columns) and
   signals y = W z + noise with 10% of z non-zero, l1 = 0.1; and the mean energy each reaches
   at equal steps, with its gap to a 10x longer FISTA run on the same signals (not timed).
3. train step: one jitted `hj.train.make_train_step(loss_fn, adam)` step per method on the
   same batch of 2-D ring points and the same energy MLP: the energy-only baseline (mean
   F(y)), hinge / log_loss / square_square / square_exponential with one corrupted-noise
   negative per example, nll with K noise negatives and with K Langevin negatives (K chains
   of S steps from uniform noise, clamped to [-3, 3]), and infonce / VICReg on two noisy views
   through a small encoder MLP(64, 64, 16). The column "dF/dy per ex" counts the energy gradient
   evaluations of the sampler per example (K * S): that is what dominates.

Each timing is the median of --repeats calls after one untimed warm-up call (compile time
excluded); the fns of one table are called in turn so that drift affects them alike. Tables go
to stdout and everything to OUT/sampling.json (atomic), with device and jax version.

Sample (full sweep, 1m40s on a 2-core CPU shared with other jobs, so +-30% noise or worse;
jax 0.10.2; --quick takes 30-40 s):

    1. Langevin, 50 steps   chains/s   chain-steps/s   ns/chain-step   x sgd (no noise)
       B=256                  5.3e4         2.6e6           380           2.1
       B=4096                 7.9e4         4.0e6           252           1.5
       B=65536                5.4e4         2.7e6           374           1.3
    2. sparse coding, 100 steps   iters/s (B=4096)   energy (mean)   gap to optimum
       ISTA                           5.7e6              1.0175          3.9e-2
       FISTA                          4.6e6              0.9785          1.6e-5
       (FISTA costs 1.0-1.6x ISTA per iteration and is 2000x closer to the optimum)
    3. train step, B=1024                          median ms   x energy_only
       energy_only                                     0.69          1.00
       hinge, log_loss, square_*, 1 noise negative  0.91-1.01     1.3-1.5
       nll, 4 noise negatives                          2.8           4.1
       nll, 4 Langevin chains x 20 steps (80 dF/dy)   24.5          36    (the sampler dominates)
       infonce (encoder, B x B logits)                 6.9          10
       vicreg (encoder)                                1.4           2.1
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

import hjepa_jax as hj
from benchmarks.common import device_info, make_parser, table, time_calls, write_json

# fmt: off
FULL = {"chains": (256, 1024, 4096, 16384, 65536), "sparse_batches": (256, 1024, 4096, 16384),
        "train_batch": 1024}
QUICK = {"chains": (256, 4096), "sparse_batches": (256, 4096), "train_batch": 256}
MS = 1e3
LANGEVIN = {"step_size": 0.01, "temperature": 1.0}
BOX = (-3.0, 3.0)  # uniform chain starts and the clamp of training negatives
DICT_SHAPE, L1, REF_FACTOR = (64, 128), 0.1, 10  # W [Y, Z]; reference run: 10x the steps
NOISE_STD, MARGIN, GAMMA, BETA, INFONCE_T = 0.5, 1.0, 1.0, 1.0, 0.1
# Table columns: (header, key, scale, format); the scale applies to f/g formats.
LANGEVIN_COLUMNS = (("chains", "chains", 1, "d"), ("steps", "steps", 1, "d"),
                    ("median_ms", "median_s", MS, ".4g"), ("min_ms", "min_s", MS, ".4g"),
                    ("chains/s", "chains_per_s", 1, ".4g"),
                    ("chain-steps/s", "chain_steps_per_s", 1, ".4g"),
                    ("ns/chain-step", "ns_per_chain_step", 1, ".1f"),
                    ("sgd_ms", "sgd_s", MS, ".4g"), ("x sgd", "vs_sgd", 1, ".2f"))
SPARSE_COLUMNS = (("method", "method", 1, "s"), ("B", "batch", 1, "d"),
                  ("steps", "steps", 1, "d"), ("median_ms", "median_s", MS, ".4g"),
                  ("iters/s", "iterations_per_s", 1, ".4g"),
                  ("ns/iter", "ns_per_iteration", 1, ".1f"),
                  ("energy", "energy_mean", 1, ".5f"), ("gap", "energy_gap", 1, ".2e"))
TRAIN_COLUMNS = (("method", "method", 1, "s"), ("model", "model", 1, "s"),
                 ("negatives", "negatives", 1, "s"), ("dF/dy per ex", "sampler_grad_evals", 1, "d"),
                 ("median_ms", "median_s", MS, ".4g"), ("min_ms", "min_s", MS, ".4g"),
                 ("x baseline", "vs_baseline", 1, ".2f"),
                 ("us/example", "us_per_example", 1, ".2f"))
# fmt: on


def energy_mlp(key: jax.Array):
    """(energy(params, y) -> [], params) of a random MLP(64, 64, 1) on 2-D points."""
    mlp = hj.nn.MLP((64, 64, 1))
    return (lambda params, y: mlp.apply(params, y)[0]), mlp.init(key, jnp.zeros(2))


def uniform_starts(key: jax.Array, n: int) -> jax.Array:
    """[n, 2] chain starts, uniform in the BOX square."""
    return jax.random.uniform(key, (n, 2), minval=BOX[0], maxval=BOX[1])


def bench_langevin(chains, steps: int, repeats: int) -> list[dict]:
    """Part 1: a jitted vmap of langevin_sample over B chains of `steps` steps each, timed
    alternately with the same loop without noise (`hj.latent.minimize` with optax.sgd)."""
    energy, params = energy_mlp(jax.random.PRNGKey(0))

    def chain(params, y0, key):
        return hj.sampling.langevin_sample(energy, params, y0, key=key, steps=steps, **LANGEVIN).z

    def descent(params, y0, key):  # the same gradient steps, no noise: what the noise costs
        del key
        opt = optax.sgd(LANGEVIN["step_size"])
        return hj.latent.minimize(energy, params, y0, steps=steps, optimizer=opt).z

    # params are arguments, not constants folded into the program (as in a training step)
    fns = [jax.jit(jax.vmap(fn, in_axes=(None, 0, 0))) for fn in (chain, descent)]
    rows = []
    for b in chains:
        k_start, k_chain = jax.random.split(jax.random.PRNGKey(b))
        y0s, keys = uniform_starts(k_start, b), jax.random.split(k_chain, b)
        timing, plain = time_calls(fns, params, y0s, keys, repeats=repeats)
        t = timing["median_s"]
        rows.append(
            {"chains": b, "steps": steps, **timing, "chains_per_s": b / t,
             "chain_steps_per_s": b * steps / t, "ns_per_chain_step": t / (b * steps) * 1e9,
             "sgd_s": plain["median_s"], "vs_sgd": t / plain["median_s"]}
        )  # fmt: skip
        print(f"  langevin B={b}: {t * MS:.1f} ms", flush=True)
    return rows


def sparse_problem(key: jax.Array, batch: int) -> tuple[jax.Array, jax.Array]:
    """(W [Y, Z] with unit columns, ys [B, Y] = W z + 0.01 noise, z 10% non-zero)."""
    k_w, k_mask, k_z, k_noise = jax.random.split(key, 4)
    w = jax.random.normal(k_w, DICT_SHAPE)
    w = w / jnp.linalg.norm(w, axis=0)
    mask = jax.random.bernoulli(k_mask, 0.1, (batch, DICT_SHAPE[1]))
    z = mask * jax.random.normal(k_z, (batch, DICT_SHAPE[1]))
    return w, z @ w.T + 0.01 * jax.random.normal(k_noise, (batch, DICT_SHAPE[0]))


def sparse_coder(steps: int, accelerated: bool):
    """jit(vmap(sparse_code)): (W [Y, Z] shared, signals [B, Y]) -> energies [B]."""
    code = lambda w, y: hj.losses.sparse_code(w, y, L1, steps=steps, accelerated=accelerated)
    return jax.jit(jax.vmap(lambda w, y: code(w, y).energy, in_axes=(None, 0)))


def bench_sparse(batches, steps: int, repeats: int) -> list[dict]:
    """Part 2: ISTA vs FISTA iterations/s over B, and the energy each reaches in `steps`."""
    rows = []
    methods = (("ISTA", False), ("FISTA", True))
    for b in batches:
        w, ys = sparse_problem(jax.random.PRNGKey(1), b)
        fns = [sparse_coder(steps, acc) for _, acc in methods]
        reference = float(jnp.mean(sparse_coder(REF_FACTOR * steps, True)(w, ys)))
        timings = time_calls(fns, w, ys, repeats=repeats)
        for (name, _), fn, timing in zip(methods, fns, timings, strict=True):
            t, energy = timing["median_s"], float(jnp.mean(fn(w, ys)))
            rows.append(
                {"method": name, "batch": b, "steps": steps, **timing,
                 "iterations_per_s": b * steps / t, "ns_per_iteration": t / (b * steps) * 1e9,
                 "energy_mean": energy, "reference_energy_mean": reference,
                 "reference_steps": REF_FACTOR * steps, "energy_gap": energy - reference}
            )  # fmt: skip
        done = ", ".join(f"{r['method']} {r['median_s'] * MS:.1f} ms" for r in rows[-2:])
        print(f"  sparse code B={b}: {done}", flush=True)
    return rows


def ring_points(key: jax.Array, n: int) -> jax.Array:
    """[n, 2] points on the unit circle with 0.05 noise: the training batch of part 3."""
    k_angle, k_noise = jax.random.split(key)
    angle = jax.random.uniform(k_angle, (n,), maxval=2 * math.pi)
    ring = jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)
    return ring + 0.05 * jax.random.normal(k_noise, (n, 2))


def train_methods(negatives: int, langevin_steps: int) -> list[dict]:
    """The methods of part 3: name, model ("energy" or "encoder"), sampler and loss_fn.

    Each loss_fn(params, batch [B, 2], key) -> (loss [], {}).
    """
    energy, _ = energy_mlp(jax.random.PRNGKey(0))
    encoder = hj.nn.MLP((64, 64, 16))
    f_batch = jax.vmap(energy, in_axes=(None, 0))
    k_neg, chain_steps = negatives, langevin_steps

    def pair_loss(loss, **kw):  # one corrupted-noise negative per example
        def loss_fn(params, y, key):
            y_bar = hj.sampling.corrupt_noise(key, y, NOISE_STD)
            return loss(f_batch(params, y), f_batch(params, y_bar), **kw), {}

        return loss_fn

    def energy_only(params, y, key):
        del key
        return jnp.mean(f_batch(params, y)), {}

    def nll_noise(params, y, key):  # K corrupted-noise negatives: nll without a sampler
        y_bars = hj.sampling.corrupt_noise(key, jnp.repeat(y[:, None], k_neg, axis=1), NOISE_STD)
        f_negs = jax.vmap(f_batch, in_axes=(None, 0))(params, y_bars)  # [B, K]
        return hj.losses.nll(f_batch(params, y), f_negs, BETA), {}

    def nll_langevin(params, y, key):  # K Langevin chains of S steps per example
        b = y.shape[0]
        k_start, k_chain = jax.random.split(key)
        y0s = uniform_starts(k_start, b * k_neg)

        def chain(y0, k):  # .energy: F at the (stopped) sample, differentiable in params
            return hj.sampling.langevin_sample(
                energy, params, y0, key=k, steps=chain_steps, bounds=BOX, **LANGEVIN
            ).energy

        f_negs = jax.vmap(chain)(y0s, jax.random.split(k_chain, b * k_neg)).reshape(b, k_neg)
        return hj.losses.nll(f_batch(params, y), f_negs, BETA), {}

    def two_views(loss, **kw):  # embeddings of two noisy views through the encoder
        def loss_fn(params, y, key):
            k_a, k_b = jax.random.split(key)
            s_a = encoder.apply(params, hj.sampling.corrupt_noise(k_a, y, 0.1))
            s_b = encoder.apply(params, hj.sampling.corrupt_noise(k_b, y, 0.1))
            out = loss(s_a, s_b, **kw)
            return (out[0] if isinstance(out, tuple) else out), {}

        return loss_fn

    langevin_label = f"langevin K={k_neg} x S={chain_steps}"
    pair = "noise x1"
    return [
        dict(method="energy_only", model="energy", negatives="none", fn=energy_only),
        dict(method="hinge", model="energy", negatives=pair,
             fn=pair_loss(hj.losses.hinge, margin=MARGIN)),
        dict(method="log_loss", model="energy", negatives=pair, fn=pair_loss(hj.losses.log_loss)),
        dict(method="square_square", model="energy", negatives=pair,
             fn=pair_loss(hj.losses.square_square, margin=MARGIN)),
        dict(method="square_exponential", model="energy", negatives=pair,
             fn=pair_loss(hj.losses.square_exponential, gamma=GAMMA)),
        dict(method="nll", model="energy", negatives=f"noise x{k_neg}", fn=nll_noise),
        dict(method="nll", model="energy", negatives=langevin_label, fn=nll_langevin,
             sampler_grad_evals=k_neg * chain_steps),
        dict(method="infonce", model="encoder", negatives="in-batch",
             fn=two_views(hj.losses.infonce, temperature=INFONCE_T)),
        dict(method="vicreg", model="encoder", negatives="none", fn=two_views(hj.losses.vicreg)),
    ]  # fmt: skip


def bench_train_step(batch: int, negatives: int, langevin_steps: int, repeats: int):
    """Part 3: one jitted adam train step per method on the same [B, 2] batch."""
    key = jax.random.PRNGKey(2)
    ys = ring_points(key, batch)
    tx = optax.adam(1e-3)
    _, energy_params = energy_mlp(jax.random.PRNGKey(0))
    encoder_params = hj.nn.MLP((64, 64, 16)).init(jax.random.PRNGKey(3), jnp.zeros(2))
    methods = train_methods(negatives, langevin_steps)
    fns = []
    for m in methods:
        params = energy_params if m["model"] == "energy" else encoder_params
        state = hj.train.init_state(params, tx, key)
        step = jax.jit(hj.train.make_train_step(m["fn"], tx))
        fns.append(lambda y, step=step, state=state: step(state, y))
    timings = time_calls(fns, ys, repeats=repeats)
    base = timings[0]["median_s"]
    rows = []
    for m, timing in zip(methods, timings, strict=True):
        meta = {k: v for k, v in m.items() if k != "fn"}
        t = timing["median_s"]
        rows.append(
            {"sampler_grad_evals": 0, **meta, "batch": batch, **timing,
             "vs_baseline": t / base, "us_per_example": t / batch * 1e6}
        )  # fmt: skip
    return rows


def main(argv=None) -> dict:
    parser = make_parser("sampling", __doc__, "small sweep (< 1 min on CPU)")
    parser.add_argument("--repeats", type=int, help="timed calls (default 5; 3 with --quick)")
    parser.add_argument(
        "--max-batch", type=int, help="drop batch sizes above this (keeps the smallest)"
    )
    parser.add_argument("--chain-steps", type=int, default=50, help="Langevin steps of part 1")
    parser.add_argument("--sparse-steps", type=int, default=100, help="ISTA / FISTA iterations")
    parser.add_argument("--negatives", type=int, default=4, help="K Langevin negatives (nll)")
    parser.add_argument(
        "--train-langevin-steps", type=int, default=20, help="S steps of each nll chain"
    )
    args = parser.parse_args(argv)
    plan = dict(QUICK if args.quick else FULL)
    if args.max_batch is not None:
        for name in ("chains", "sparse_batches"):
            sizes = plan[name]
            plan[name] = tuple(b for b in sizes if b <= args.max_batch) or sizes[:1]
        plan["train_batch"] = min(plan["train_batch"], max(args.max_batch, 2))
    repeats = args.repeats or (3 if args.quick else 5)
    print(device_info(), flush=True)

    lang_rows = bench_langevin(plan["chains"], args.chain_steps, repeats)
    sparse_rows = bench_sparse(plan["sparse_batches"], args.sparse_steps, repeats)
    train_rows = bench_train_step(
        plan["train_batch"], args.negatives, args.train_langevin_steps, repeats
    )
    titles = (
        f"1. Langevin chains (jit(vmap(langevin_sample)), 2-D MLP energy, median of {repeats})",
        f"2. sparse coding, W {DICT_SHAPE[0]}x{DICT_SHAPE[1]}, l1={L1} (energy: mean over B; "
        f"gap: to FISTA x{REF_FACTOR} steps)",
        f"3. one adam train step per method, B={plan['train_batch']} (x baseline: / energy_only)",
    )
    for title, rows, columns in zip(
        titles,
        (lang_rows, sparse_rows, train_rows),
        (LANGEVIN_COLUMNS, SPARSE_COLUMNS, TRAIN_COLUMNS),
        strict=True,
    ):
        print("\n" + table(title, rows, columns))

    result = {
        **device_info(),
        "quick": args.quick,
        "repeats": repeats,
        "max_batch": args.max_batch,
        "langevin": {**LANGEVIN, "steps": args.chain_steps},
        "sparse": {"dictionary": list(DICT_SHAPE), "l1": L1, "steps": args.sparse_steps},
        "train": {"negatives": args.negatives, "langevin_steps": args.train_langevin_steps},
        "langevin_chains": lang_rows,
        "sparse_coding": sparse_rows,
        "train_step": train_rows,
    }
    write_json(args.out / "sampling.json", result)
    return result


if __name__ == "__main__":
    main()
