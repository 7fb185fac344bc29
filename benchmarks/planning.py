"""Planning benchmarks: how fast the planners of `hj.planning` run on a batch of problems.

    python -m benchmarks.planning [--quick] [--out out/bench]

On a random MLP world model s' = s + MLP([s, a]) (state D = 32, action A = 2, the size of the
Two Rooms model), one jitted, vmapped call plans a batch of E episodes. Reported: planning
calls per second and "planning steps" per second (E x the optimizer iterations), and the
memory XLA reserves for the batch (`hj.planning.memory_bytes`),
  1. against the number of episodes E (horizon 16; 256 samples for CEM / MPPI),
  2. against the horizon H (E = 64),
  3. against the number of samples N for CEM and MPPI (E = 64, H = 16);
and 4. the training speed of the Two Rooms world model itself (`hjepa_jax.models.two_rooms`
Model, full-mode ModelConfig: render, pool and encode 17-frame trajectories on mixed layouts,
multi-step prediction, VICReg, inverse dynamics; one jitted Adam step), in trajectories and
frames per second against the batch.
Compile time is excluded (one warm-up call). Prints tables, writes OUT/planning.json.
--episodes, --horizons, --samples and --batches replace a sweep's sizes (the tests' smoke run:
one or two sizes each).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import optax

import hjepa_jax as hj
from benchmarks.common import device_info, make_parser, table, time_calls, write_json
from hjepa_jax.envs import two_rooms
from hjepa_jax.models import two_rooms as two_rooms_agent

STATE, ACTION, ITERATIONS = 32, 2, 10
LENGTH, LEARNING_RATE = 16, 1e-3  # the Two Rooms experiment's trajectory length T, Adam's rate
COLUMNS = (
    ("planner", "planner", 1, "s"),
    ("E", "episodes", 1, "d"),
    ("H", "horizon", 1, "d"),
    ("N", "samples", 1, "d"),
    ("ms", "median_s", 1e3, ".2f"),
    ("plan steps/s", "plan_steps_per_s", 1, ".3g"),
    ("MiB", "memory_bytes", 2**-20, ".2f"),
)


def world_model():
    net = hj.nn.MLP((64, STATE))
    params = net.init(jax.random.PRNGKey(0), jnp.zeros(STATE + ACTION))
    return (lambda p, s, a: s + 0.1 * net.apply(p, jnp.concatenate([s, a]))), params


def planner_fn(name: str, horizon: int, samples: int):
    """(plan one problem: (s0, goal, key) -> actions) for `name`."""
    predict, params = world_model()
    if name == "gradient_mpc":
        return lambda s0, g, k: (
            hj.planning.gradient_mpc(
                predict,
                params,
                s0,
                g,
                jnp.zeros((horizon, ACTION)),
                bound=2.45,
                steps=ITERATIONS,
                optimizer=optax.adam(0.1),
            ).actions
        )
    fn = hj.planning.cem if name == "cem" else hj.planning.mppi
    return lambda s0, g, k: (
        fn(
            predict,
            params,
            s0,
            g,
            k,
            horizon=horizon,
            action_dim=ACTION,
            bound=2.45,
            samples=samples,
            iterations=ITERATIONS,
        ).actions
    )


def measure(name: str, episodes: int, horizon: int, samples: int, repeats: int) -> dict:
    plan = jax.jit(jax.vmap(planner_fn(name, horizon, samples)))
    keys = jax.random.split(jax.random.PRNGKey(1), episodes)
    s0 = jax.random.normal(jax.random.PRNGKey(2), (episodes, STATE))
    goals = jax.random.normal(jax.random.PRNGKey(3), (episodes, STATE))
    (timing,) = time_calls([plan], s0, goals, keys, repeats=repeats)
    memory = hj.planning.memory_bytes(jax.vmap(planner_fn(name, horizon, samples)), s0, goals, keys)
    return {
        "planner": name,
        "episodes": episodes,
        "horizon": horizon,
        "samples": samples if name != "gradient_mpc" else 0,
        **timing,
        "plan_steps_per_s": episodes * ITERATIONS / timing["median_s"],
        "memory_bytes": memory,
    }


TRAIN_COLUMNS = (
    ("B", "batch", 1, "d"),
    ("T", "length", 1, "d"),
    ("ms/step", "median_s", 1e3, ".1f"),
    ("traj/s", "examples_per_s", 1, ".4g"),
    ("frames/s", "frames_per_s", 1, ".4g"),
)


def measure_training(batch: int, repeats: int) -> dict:
    """One Adam step of the Two Rooms world model (full-mode config) on `batch` trajectories."""
    model = two_rooms_agent.Model(two_rooms_agent.ModelConfig())
    params = model.init(jax.random.PRNGKey(0))
    tx = optax.adam(LEARNING_RATE)
    data = two_rooms.random_trajectories(
        jax.random.PRNGKey(1),
        two_rooms.EnvParams(),
        two_rooms.LAYOUTS["mixed"],
        batch,
        LENGTH,
    )
    batch_data = (data.positions, data.actions, data.layouts)

    @jax.jit
    def step(params, opt_state, key):
        grads, _ = jax.grad(model.loss, has_aux=True)(params, batch_data, key)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    (timing,) = time_calls([step], params, tx.init(params), jax.random.PRNGKey(2), repeats=repeats)
    return {
        "batch": batch,
        "length": LENGTH,
        **timing,
        "examples_per_s": batch / timing["median_s"],
        "frames_per_s": batch * (LENGTH + 1) / timing["median_s"],
    }


def positive(text: str) -> int:
    """A size flag's value: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def main(argv=None) -> dict:
    parser = make_parser("planning", __doc__, "a smaller sweep")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls (5 / 2)")
    sweeps = parser.add_argument_group("the sizes of each sweep (default: full; --quick: smaller)")
    for flag, metavar, sizes in (
        ("--episodes", "E", "part 1 (8 64 256 1024; --quick: 8 64)"),
        ("--horizons", "H", "part 2 (8 16 32 64; --quick: 8 16)"),
        ("--samples", "N", "part 3 (64 256 1024; --quick: 64 256)"),
        ("--batches", "B", "part 4 (16 64 256; --quick: 8 32)"),
    ):
        sweeps.add_argument(flag, type=positive, nargs="+", metavar=metavar, help=sizes)
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    episodes = args.episodes or ((8, 64) if args.quick else (8, 64, 256, 1024))
    horizons = args.horizons or ((8, 16) if args.quick else (8, 16, 32, 64))
    samples = args.samples or ((64, 256) if args.quick else (64, 256, 1024))
    planners = ("gradient_mpc", "cem", "mppi")
    print(device_info(), flush=True)
    parts = {
        "episodes": [measure(p, e, 16, 256, repeats) for p in planners for e in episodes],
        "horizon": [measure(p, 64, h, 256, repeats) for p in planners for h in horizons],
        "samples": [measure(p, 64, 16, n, repeats) for p in ("cem", "mppi") for n in samples],
    }
    for title, rows in parts.items():
        print("\n" + table(f"planning vs {title} ({ITERATIONS} iterations)", rows, COLUMNS))
    batches = args.batches or ((8, 32) if args.quick else (16, 64, 256))
    parts["world_model_training"] = [measure_training(b, repeats) for b in batches]
    print("\n" + table("world-model training", parts["world_model_training"], TRAIN_COLUMNS))
    result = {**device_info(), "iterations": ITERATIONS, **parts}
    write_json(args.out / "planning.json", result)
    return result


if __name__ == "__main__":
    main()
