"""Checkpointer.reached_preemption: False in a plain run, True at the step the job stops at
after a SIGTERM once jax.distributed is initialized (what a preempted TPU VM gets)."""

import os
import subprocess
import sys
import textwrap

from hjepa_jax import checkpoint


def test_false_without_a_preemption(tmp_path):
    ckpt = checkpoint.Checkpointer(tmp_path / "ckpt")
    try:
        assert [ckpt.reached_preemption(step) for step in range(5)] == [False] * 5
    finally:
        ckpt.close()


PREEMPTED = """\
import os, signal, socket, tempfile, time
import jax
from hjepa_jax.checkpoint import Checkpointer

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
sock.close()
jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=1, process_id=0)
ckpt = Checkpointer(tempfile.mkdtemp())
assert not any(ckpt.reached_preemption(step) for step in range(1, 4))
os.kill(os.getpid(), signal.SIGTERM)  # caught by JAX's preemption notifier: no exit
for step in range(4, 500):
    time.sleep(0.01)
    if ckpt.reached_preemption(step):
        print("sync point", step)
        break
ckpt.close()
"""


def test_true_after_a_sigterm_with_jax_distributed(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PREEMPTED)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("sync point "), proc.stdout + proc.stderr[-3000:]


TRAIN = """\
import os, signal, socket, sys
import jax, jax.numpy as jnp, optax
import hjepa_jax as hj

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
sock.close()
jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=1, process_id=0)
loss = lambda p, b, k: (jnp.sum((p["w"] - jnp.mean(b)) ** 2), {})
loop = hj.train.LoopConfig(steps=100000, batch_size=2, log_every=1000, ckpt_dir=sys.argv[1],
                           ckpt_every=100000, eval_every=5)
signal_at = lambda params: os.kill(os.getpid(), signal.SIGTERM) or {}
try:
    hj.train.train(loss, {"w": jnp.zeros(())}, optax.sgd(0.1), jnp.ones((8,)), loop=loop,
                   key=jax.random.PRNGKey(0), evaluate=signal_at)
except hj.train.Preempted as err:
    print("preempted", err.step)
"""


def test_train_saves_and_stops_at_the_preemption_sync_point(tmp_path):
    """A SIGTERM mid-run: the loop saves the step all hosts agree on, raises Preempted, and
    that checkpoint is the latest (a rerun resumes from it)."""
    proc = subprocess.run(
        [sys.executable, "-c", TRAIN, str(tmp_path / "ckpt")],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("preempted "), proc.stdout + proc.stderr[-3000:]
    step = int(proc.stdout.split()[1])
    assert 5 <= step < 100000
    ckpt = checkpoint.Checkpointer(tmp_path / "ckpt")
    try:
        assert ckpt.latest_step() == step
    finally:
        ckpt.close()
