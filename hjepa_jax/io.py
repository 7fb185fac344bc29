"""Output files that are never half-written, and that follow the umask.

    from hjepa_jax.io import atomic_write
    atomic_write(Path("out/metrics.json"), lambda f: f.write(b"{}"))

`atomic_write` writes through a temporary file in the target's folder, then renames it over
the target (`os.replace`, atomic on one file system): a reader sees the old file or the new
one, never a part. The file gets the mode `open()` would give it (0o666 & ~umask), not
`tempfile.mkstemp`'s 0o600. In a multi-process JAX job only process 0 writes (the others
compute the same outputs).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import jax

from hjepa_jax import _checks

__all__ = ["atomic_write", "umask"]


def umask() -> int:
    """The process's umask, e.g. 0o022 (reading it means setting it; it is set straight back).

    >>> 0 <= umask() <= 0o777
    True
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Write `path` through a temporary file in the same folder, then rename: never half a file.

    Args:
      path: the file to write; missing parent folders are created.
      write: called once with the temporary file, opened for binary writing ("wb").

    Only process 0 of a multi-process job writes; on the others this does nothing. If `write`
    raises, the temporary file is removed, `path` keeps its old content, and the error
    propagates. The new file's mode is 0o666 & ~umask, as `open()` would make it.

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
