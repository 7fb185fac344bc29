"""Output files that are never half-written, on a local disk or in a bucket (gs://, s3://).

    from hjepa_jax.io import as_path, atomic_write
    atomic_write(as_path("gs://bucket/run") / "metrics.json", lambda f: f.write(b"{}"))

Every output path is an `etils.epath.Path` (`as_path`): a local path behaves as `pathlib`, and
`gs://...` (or `s3://`, `az://`) goes to the bucket through TensorFlow's gfile or fsspec
(`pip install gcsfs` for gs://), where `pathlib.Path` would make a local folder `gs:`.

`atomic_write` never leaves half a file where a reader looks:
  local:  a temporary file in the target's folder, renamed over the target (`os.replace`,
          atomic on one file system); the file gets the mode `open()` would give it
          (0o666 & ~umask), not `tempfile.mkstemp`'s 0o600.
  remote: the content is built in memory, then uploaded in one write. An object store makes
          an object visible only once its upload has completed (GCS and S3 writes are atomic
          per object), so a reader sees the old object or the new one; a temporary object
          renamed after would cost a second copy (a bucket "rename" is copy + delete) and
          gain nothing. If `write` raises, nothing is uploaded.
In a multi-process JAX job only process 0 writes (the others compute the same outputs).
"""

from __future__ import annotations

import functools
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import jax
from etils import epath

from hjepa_jax import _checks

__all__ = ["as_path", "atomic_write", "copy_tree", "is_remote", "on_process_0", "umask"]


def is_remote(path: str | os.PathLike) -> bool:
    """Whether `path` names a bucket or another file system by URL (`gs://b/x`, `s3://...`).

    >>> is_remote("gs://bucket/run"), is_remote("out/run")
    (True, False)
    """
    return "://" in os.fspath(path)


def as_path(path: str | os.PathLike) -> epath.Path:
    """`path` as an `etils.epath.Path`: local paths as pathlib, `gs://...` kept a URL.

    >>> str(as_path("gs://bucket/run") / "metrics.json")
    'gs://bucket/run/metrics.json'
    """
    if not isinstance(path, str | os.PathLike):
        _checks.broken("as_path", "path", path, "a str or os.PathLike", "pass a path or URL")
    return path if isinstance(path, epath.Path) else epath.Path(os.fspath(path))


def umask() -> int:
    """The process's umask, e.g. 0o022 (reading it means setting it; it is set straight back).

    >>> 0 <= umask() <= 0o777
    True
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Write `path` so that it is never seen half-written (see the module docstring).

    Args:
      path: the file to write, local or remote (`gs://...`); missing local parent folders
        are created (a bucket has no folders to create).
      write: called once with a file opened for binary writing ("wb"): the temporary file
        (local) or an in-memory buffer (remote).

    Only process 0 of a multi-process job writes; on the others this does nothing. If `write`
    raises, `path` keeps its old content (locally the temporary file is removed) and the
    error propagates. A new local file's mode is 0o666 & ~umask, as `open()` would make it.

    Raises:
      ValueError: `path` is not a path or `write` is not callable.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> atomic_write(folder / "a" / "note.txt", lambda f: f.write(b"hello"))
    >>> (folder / "a" / "note.txt").read_text()
    'hello'
    """
    if not isinstance(path, str | os.PathLike):
        _checks.broken("atomic_write", "path", path, "a str or os.PathLike", "pass the file's path")
    _checks.function("atomic_write", "write", write, "(binary file) -> anything")
    if jax.process_index() != 0:
        return
    if is_remote(path):
        buffer = io.BytesIO()
        write(buffer)
        as_path(path).write_bytes(buffer.getvalue())  # one upload: all of it or nothing
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp's 0600, to what open() would have made
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def copy_tree(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy every file under the local folder `src` to `dst` (local or remote), each file in
    one write (`atomic_write`), keeping the relative paths. For outputs that a library
    writes to a local folder only (TensorBoard events, profiler traces) when the run's
    folder is a bucket."""
    src, dst = Path(src), as_path(dst)
    for file in sorted(p for p in src.rglob("*") if p.is_file()):
        data = file.read_bytes()
        atomic_write(dst / file.relative_to(src).as_posix(), lambda f, data=data: f.write(data))


def on_process_0(draw):
    """`draw` (host-side work that writes, such as an experiment's figure) run by process 0
    alone; on the other processes of a multi-host job it returns None at once. Computations
    on a trained model (probes, planning) run on every process: global arrays need them all."""

    @functools.wraps(draw)
    def drawn(*args, **kwargs):
        if jax.process_index() == 0:
            return draw(*args, **kwargs)
        return None

    return drawn
