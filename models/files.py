"""Atomic file writes and SHA-256 checksums: the one implementation genbench has of each.

``models/`` depends on nothing else of genbench, so the harness (``bench.core.files``) builds on
these two functions rather than the other way round: checkpoints, records, samples, caches and
baselines are all written by :func:`atomic_write` and checksummed by :func:`sha256_file`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TMP_SUFFIX = ".tmp"


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(f)`` on a new temporary file beside ``path``, fsync it, then rename it to ``path``.

    The temporary, ``.<name>.<random>.tmp`` in ``path``'s folder, is unique to this call, so concurrent
    writers never share one; readers see the old file or the new one, never a mix. Whatever ``write``
    raises, the temporary is removed and ``path`` keeps its old content (or stays absent). The file gets
    mode 0644 (``mkstemp`` creates 0600; results and caches are shared like any data file).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: the folder cannot be written or the write fails (``errno.ENOSPC`` when the disk is full);
            its ``filename`` is ``path``, not the temporary.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.errno is not None and e.filename in (tmp, None):
            raise OSError(e.errno, e.strerror, str(path)) from e  # name the file, not the temporary
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, 64 lowercase hex digits (what ``sha256sum`` prints).

    Raises:
        OSError: the file cannot be read.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
