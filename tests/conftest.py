"""Test-session set-up (subprocesses started by tests inherit all three):
- datasets built by the tests go to a fresh folder, not ~/tensorflow_datasets, removed when
  the session ends;
- XLA's compiled programs are cached on disk (JAX's persistent compilation cache) and shared
  by the xdist workers and the experiments the tests launch, which compile the same programs
  again and again. The cache changes no result, only how long a repeated compile takes;
- XLA CPU compiles for compile speed (FAST_COMPILE): with its earlier fusion emitters, and
  with LLVM's optimization level 0 (XLA's default is 3). The suite is bound by compiling many
  small programs. On 2 cores from an empty compilation cache, the whole suite took 595 s with
  the emitters alone and 509 s with both; programs that run long (the quick experiments'
  training) run slower, up to twice as long for fig4_ellipse. Results agree with XLA's
  defaults to float rounding, and the suite passes under both. `HJEPA_TEST_XLA_DEFAULTS=1`
  runs the tests on XLA's defaults, as does a jaxlib that no longer knows the flags (checked
  once per session)."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if "TFDS_DATA_DIR" not in os.environ:  # made here (not inherited): removed at exit
    os.environ["TFDS_DATA_DIR"] = tempfile.mkdtemp(prefix="hjepa_tfds_")
    atexit.register(shutil.rmtree, os.environ["TFDS_DATA_DIR"], ignore_errors=True)
_CACHE = Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax_compilation"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

FAST_COMPILE = "--xla_cpu_use_fusion_emitters=false --xla_backend_optimization_level=0"
opted_out = os.environ.get("HJEPA_TEST_XLA_DEFAULTS") == "1"
if not opted_out and "HJEPA_TEST_XLA_CHECKED" not in os.environ:  # the first process only
    os.environ["HJEPA_TEST_XLA_CHECKED"] = "1"  # the rest inherit the flags and this
    flags = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()
    probe = [sys.executable, "-c", "import jax; jax.numpy.zeros(1).block_until_ready()"]
    env = {**os.environ, "XLA_FLAGS": flags}
    if subprocess.run(probe, env=env, capture_output=True, timeout=300).returncode == 0:
        os.environ["XLA_FLAGS"] = flags

import jax  # noqa: E402  (after the environment: a plugin may have imported it already)

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update(
    "jax_persistent_cache_min_compile_time_secs",
    float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
)
jax.config.update(
    "jax_persistent_cache_min_entry_size_bytes",
    int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]),
)

# The slowest modules first (about a minute or more each on 2 cores): xdist hands out whole
# files (--dist loadfile) in collection order, and a slow file handed out last leaves the
# other worker idle while it runs.
SLOW_FIRST = (
    "test_experiments.py",
    "test_planning_two_rooms.py",
    "test_checkpoint.py",
    "test_hjepa_moving_shapes.py",
    "test_bench_jepa.py",
    "test_benchmarks.py",
    "test_precision.py",
    "test_docs.py",
    "test_sharding.py",
    "test_bench_planning.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole
