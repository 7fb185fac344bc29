"""--out gs://bucket/run: every output goes to the bucket, through etils.epath, and nothing to
the current folder (before, a `pathlib.Path` flag made a local folder `./gs:/bucket/run`).

The bucket is a fake: an in-memory fsspec file system registered for gs://, which etils.epath
reaches through its fsspec backend as it would reach gcsfs on a Cloud TPU VM.
"""

import importlib
import json

import fsspec
import numpy as np
import pytest
from etils.epath import backend as epath_backend
from etils.epath import gpath
from fsspec.implementations.memory import MemoryFileSystem

from hjepa_jax import io
from hjepa_jax.experiments import report, run


@pytest.fixture
def bucket(monkeypatch):
    """A fresh fake gs:// file system; returns its store {"bucket/path": file}."""

    class FakeGCS(MemoryFileSystem):
        protocol = ("gs", "gcs")
        store: dict = {}
        pseudo_dirs = [""]
        root_marker = ""

        @classmethod
        def _strip_protocol(cls, path):  # as gcsfs: "gs://b/x" -> "b/x"
            path = fsspec.utils.stringify_path(path)
            for prefix in ("gs://", "gcs://"):
                path = path.removeprefix(prefix)
            return path.strip("/")

    for name in ("gs", "gcs"):
        monkeypatch.setitem(importlib.import_module("fsspec.registry")._registry, name, FakeGCS)
    monkeypatch.setattr(gpath, "_is_tf_installed", lambda: False)  # epath's fsspec backend
    epath_backend.fsspec_backend._get_filesystem.cache_clear()
    yield FakeGCS.store
    epath_backend.fsspec_backend._get_filesystem.cache_clear()


TINY_DIGITS = "--steps 10 --hidden 32 --embed-dim 8 --batch-size 32 --log-every 5"


def test_an_experiment_writes_its_outputs_to_the_bucket(bucket, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = "gs://bucket/run"
    args = ["jepa_digits", "--quick", "--out", out, "--tensorboard", *TINY_DIGITS.split()]
    assert run.main(args) == 0
    assert list(tmp_path.iterdir()) == []  # no ./gs:/bucket/run
    files = set(bucket)
    for name in ("metrics.json", "jepa_digits.png", "embeddings.npz"):
        assert f"bucket/run/{name}" in files, sorted(files)
    for model in ("vicreg", "no_vicreg"):
        rows = bucket[f"bucket/run/{model}/train_log.jsonl"].getvalue().decode().splitlines()
        assert [json.loads(r)["step"] for r in rows] == [5, 10]
        assert any(f.startswith(f"bucket/run/{model}/tensorboard/events.out") for f in files)
    metrics = json.loads(bucket["bucket/run/metrics.json"].getvalue())
    assert metrics["steps"] == 20 and metrics["config"]["steps"] == 10
    assert bucket["bucket/run/jepa_digits.png"].getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [f for f in files if f.endswith(".tmp")]

    # The report of `hjepa-run all` reads the figures back from the bucket.
    modules, results = {"run": run.jepa_digits}, {"run": metrics}
    path = report.write_report(io.as_path("gs://bucket"), modules, results)
    assert str(path) == "gs://bucket/report.md"
    assert "(run/jepa_digits.png)" in bucket["bucket/report.md"].getvalue().decode()


def test_the_out_check_skips_buckets_and_still_refuses_local_files(tmp_path):
    assert run.out_problem(io.as_path("gs://bucket/run")) is None
    (tmp_path / "file").write_text("")
    assert "is a file" in run.out_problem(io.as_path(tmp_path / "file" / "run"))


def test_a_failed_remote_write_uploads_nothing(bucket):
    io.atomic_write("gs://bucket/a.npz", lambda f: np.savez(f, x=np.arange(3)))
    assert np.load(io.as_path("gs://bucket/a.npz").open("rb"))["x"].tolist() == [0, 1, 2]

    def fail(f):
        f.write(b"half")
        raise OSError("network down")

    with pytest.raises(OSError, match="network down"):
        io.atomic_write("gs://bucket/a.npz", fail)
    with pytest.raises(OSError, match="network down"):
        io.atomic_write("gs://bucket/b.json", fail)
    assert sorted(bucket) == ["bucket/a.npz"]  # the old object, whole; no new one


def test_only_process_0_writes(bucket, monkeypatch):
    monkeypatch.setattr(io.jax, "process_index", lambda: 1)
    io.atomic_write("gs://bucket/x.json", lambda f: f.write(b"{}"))
    assert bucket == {}


def test_only_process_0_draws_the_figures(monkeypatch):
    """The other processes of a multi-host job skip each experiment's drawing itself, not
    only its write (`hjepa_jax.io.on_process_0`)."""
    for module in run.EXPERIMENTS.values():
        with pytest.raises(TypeError):  # process 0 draws: here, with no arguments, it fails
            module.draw()
    monkeypatch.setattr(io.jax, "process_index", lambda: 1)
    for name, module in run.EXPERIMENTS.items():
        assert module.draw() is None, name
