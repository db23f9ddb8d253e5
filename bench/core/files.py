"""Files: atomic writes, checksums, safe folder names. The one place genbench writes a file.

Every file is written to a uniquely named temporary in its folder, flushed to disk
(fsync) and renamed into place (:func:`atomic_write`, built on
:func:`models.files.atomic_write`), so an interrupted or failing write never leaves a
half-written file and two writers never share a temporary. A write that fails because
the disk is full, the file too large, or the folder read-only raises
:class:`StorageError` (one line naming the path) and removes its temporary.
"""

from __future__ import annotations

import errno
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from models import files as model_files
from models.files import sha256_file

__all__ = ["StorageError", "storage_error", "atomic_write", "sweep_temporaries", "write_json", "write_text",
           "save_npz", "load_npz", "sha256_file", "read_json_dict", "check_name", "inside", "SAFE_NAME_RULE",
           "TMP_SUFFIX"]

TMP_SUFFIX = model_files.TMP_SUFFIX


# --------------------------------------------------------------------------- names
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
SAFE_NAME_RULE = "1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"


def check_name(value: str) -> str | None:
    """Why ``value`` is not a safe folder name for a suite or run id (``None`` if it is).

    A safe name is :data:`SAFE_NAME_RULE`: no separators, no ``..``, not absolute,
    not hidden, so ``<root>/<suite>/<run_id>`` stays inside ``<root>``.
    """
    if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value):
        return f"{value!r} is not allowed (use {SAFE_NAME_RULE})"
    return None


def inside(root: Path, path: Path) -> bool:
    """Whether ``path`` resolves (following symlinks) to ``root`` or below it."""
    return path.resolve().is_relative_to(root.resolve())



def read_json_dict(path: str | Path) -> dict:
    """The JSON object in ``path``, or ``{}`` when absent or damaged: for files that only add
    information (``run.json``'s provenance, ``plan.json``'s estimates), so readers say less rather
    than fail."""
    try:
        info = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}



# --------------------------------------------------------------------------- writing
_STORAGE = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.EFBIG: "file too large for the file system or the `ulimit -f` limit",
            errno.EROFS: "read-only file system", errno.EACCES: "permission denied", errno.EPERM: "not permitted"}


class StorageError(Exception):
    """The results cannot be written: the disk is full, a file too large, the folder read-only or not ours.

    ``str()`` is one line, e.g. ``no space left on device (results/toy2d/r/.../model.pt)``.
    Continuing a suite after it is pointless; the runner stops.
    """

    def __init__(self, reason: str, path: str | Path | None, errno_: int | None = None):
        super().__init__(f"{reason} ({path})" if path else reason)
        self.reason, self.path, self.errno = reason, path, errno_


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


def storage_error(e: BaseException, path: str | Path | None = None, writing: bool = False) -> StorageError | None:
    """The :class:`StorageError` that ``e`` amounts to, or ``None`` if it is another kind of failure.

    A full disk, a file too large and a read-only file system always are; a denied
    permission only when ``writing`` (a dataset we may not read is another failure).
    """
    if isinstance(e, StorageError):
        return e
    if isinstance(e, OSError) and (e.errno in _FULL or writing and e.errno in _STORAGE):
        return StorageError(_STORAGE[e.errno], path or e.filename, e.errno)
    return None


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(f)`` on a new temporary file beside ``path``, flush it to disk, rename it to ``path``
    (:func:`models.files.atomic_write`), creating the folder first.

    The temporary, ``.<name>.<random>.tmp``, is unique to this call. Whatever ``write``
    raises, the temporary is removed and ``path`` keeps its old content (or stays absent).

    Raises:
        StorageError: the disk is full, the file too large, or the folder not writable.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return model_files.atomic_write(path, write)
    except BaseException as e:
        err = storage_error(e, path, writing=True)
        if err is None or err is e:
            raise
        raise err from e


def sweep_temporaries(folder: Path) -> list[Path]:
    """Delete the temporaries that killed writers left under ``folder`` (call it holding the run's lock).

    Matches this module's ``.<name>.<random>.tmp`` and the names older genbench versions
    used (``<name>.tmp``, ``<name>.tmp<pid>[.<ext>]``). Returns the paths removed.
    """
    old = re.compile(r".+\.tmp\d*(\.[A-Za-z0-9]+)?")
    removed = []
    for p in Path(folder).rglob("*"):
        if p.is_file() and not p.is_symlink() and (p.name.startswith(".") and p.name.endswith(TMP_SUFFIX)
                                                   or old.fullmatch(p.name)):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN and infinities become None, numpy scalars become Python ones."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically (:func:`atomic_write`)."""
    data = (json.dumps(_clean(obj), indent=2, allow_nan=False) + "\n").encode()
    return atomic_write(path, lambda f: f.write(data))


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8), atomically (:func:`atomic_write`)."""
    data = text.encode()
    return atomic_write(path, lambda f: f.write(data))


def save_npz(path: Path, **arrays: np.ndarray) -> Path:
    """``np.savez_compressed`` to ``path``, atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))




def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """Every array of an npz file (no pickles), or ``None`` if it is missing or does not load (truncated,
    corrupt: a cache to rebuild)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        return None
    except Exception:  # zipfile, zlib and numpy each raise their own kind on a damaged file
        return None

