"""Result records on disk.

Layout of one run::

    results/<suite>/<run_id>/
        run.json                         # resolved suite, versions, device, git SHA, start time
        .lock                            # the run lock (RunLock): who is writing the run
        <dataset>__<family>__s<seed>/    # one folder per cell
            record.json                  # status, config, every metric (keys carry units)
            model.pt                     # checkpoint (models.load_checkpoint)
            model_eval.json              # the model stage: timings, densities, its settings
            samples_<sampler>.npz        # samples used for the metrics
            density_grid.npz             # model density on a grid, for figures (2D)
            SHA256SUMS                   # checksums of the artifacts above, taken when written
        summary.csv                      # one row per cell and sampler
        report.md, figures/*.png

Every file is written to a uniquely named temporary in its folder, flushed and
renamed into place (:func:`atomic_write`), so an interrupted or failing write never
leaves a half-written file and two writers never share a temporary. A write that
fails because the disk is full, the file too large, or the folder read-only raises
:class:`StorageError` (one line naming the path) and removes its temporary.

A run is written by one process at a time: :class:`RunLock` holds ``<run>/.lock``.
Each cell folder keeps ``SHA256SUMS`` (the format of ``sha256sum``; ``sha256sum -c
SHA256SUMS`` checks a copied run), recorded when its artifacts are written, so that
a truncated or altered artifact is found (:func:`artifact_problem`) and redone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import numpy as np

import models
from bench.core.files import StorageError, check_name, inside, sha256_file, storage_error, write_json, write_text
from bench.store.schema import CellRecord, SchemaError, part_to_dict, record_from_dict, record_to_dict

SUMS = "SHA256SUMS"
LOCK = ".lock"


class RunRefused(Exception):
    """A run that cannot start as asked; nothing of it was written. ``str()`` is one line (exit code 2)."""

class UnsafePath(RunRefused, ValueError):
    """A suite name or run id that is not a safe folder name, or a run or cell folder that resolves
    outside its root (a symlink)."""


def cell_id(dataset: str, family: str, seed: int) -> str:
    """Folder name of a cell: ``<dataset>__<family>__s<seed>``."""
    return f"{dataset}__{family}__s{seed}"


def new_run_id() -> str:
    """A sortable run id from the local time: ``YYYYmmdd-HHMMSS``."""
    return time.strftime("%Y%m%d-%H%M%S")


# --------------------------------------------------------------------------- checksums
def read_sums(folder: Path) -> dict[str, str]:
    """``{file name: SHA-256}`` from ``<folder>/SHA256SUMS`` (empty if absent; malformed lines are skipped)."""
    try:
        text = (Path(folder) / SUMS).read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"([0-9a-f]{64}) [ *](\S+)", line.strip())
        if m and "/" not in m.group(2):
            out[m.group(2)] = m.group(1)
    return out


def update_sums(folder: Path, add: Iterable[str] = (), remove: Iterable[str] = ()) -> None:
    """Record the SHA-256 of the files ``add`` (names in ``folder``; absent ones are skipped) and forget
    ``remove``, in ``<folder>/SHA256SUMS``. One writer at a time: hold the run's lock."""
    folder = Path(folder)
    sums = read_sums(folder)
    for name in remove:
        sums.pop(name, None)
    for name in add:
        if (folder / name).is_file():
            sums[name] = sha256_file(folder / name)
    write_text(folder / SUMS, "".join(f"{h}  {n}\n" for n, h in sorted(sums.items())))


def artifact_problem(path: Path, sums: dict[str, str] | None = None) -> str | None:
    """Why the artifact ``path`` cannot be trusted, or ``None`` if it is sound.

    With a recorded SHA-256 (``sums``, from :func:`read_sums`) the file must match it;
    without one it must load: JSON parses, every array of an npz reads (zip CRCs
    checked), a checkpoint loads its metadata with ``weights_only=True``, a PNG verifies.
    """
    path = Path(path)
    expected = (sums or {}).get(path.name)
    try:
        if expected is not None:
            return None if sha256_file(path) == expected else f"its SHA-256 differs from the one recorded in {SUMS}"
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                for k in f.files:
                    f[k]
        elif path.suffix == ".pt":
            models.checkpoint_metadata(path)
        elif path.suffix == ".png":
            from PIL import Image

            with Image.open(path) as im:
                im.verify()
    except Exception as e:  # any failure to read is the answer
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return f"it does not load ({type(e).__name__}{': ' + msg[:160] if msg else ''})"
    return None


# --------------------------------------------------------------------------- the run lock
class RunLocked(RunRefused):
    """Another process holds the run's lock. ``str()`` is one line naming the holder."""

class RunLock:
    """Exclusive lock on a run folder, so that two processes never write one run.

    ``fcntl.flock`` on ``<run>/.lock``: the kernel releases it when the holder exits,
    even by SIGKILL. The file's body names the holder (pid, host, start time, command)
    while it is held and is emptied on release, so a body found by the next holder is
    a stale lock, reported by :attr:`stale`.

    Raises (``acquire``):
        RunLocked: another process holds it (the message names pid, host and start time).
        StorageError: the lock file cannot be created (read-only folder, full disk).
    """

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LOCK
        self.fd: int | None = None
        self.stale: str | None = None

    @staticmethod
    def _holder(text: str) -> str:
        try:
            h = json.loads(text)
            return f"pid {h['pid']} on host {h['host']}, started {h['started_at']} ({' '.join(h.get('command', []))})"
        except (ValueError, KeyError, TypeError):
            return "an unknown holder (unreadable lock file)"

    def acquire(self) -> RunLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            err = storage_error(e, self.path.parent, writing=True)
            if err is None:
                raise
            raise StorageError(f"cannot write the run folder: {err.reason}", self.path.parent, err.errno) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with os.fdopen(fd) as f:
                text = f.read()
            raise RunLocked(f"run {self.path.parent} is in use by {self._holder(text)}; wait for it to finish, "
                            "or use another --run-id") from None
        body = os.pread(fd, 1 << 16, 0).decode(errors="replace")
        if body.strip():
            try:
                h = json.loads(body)
                gone = h.get("host") == socket.gethostname() and not _alive(int(h["pid"]))
            except (ValueError, KeyError, TypeError):
                gone = False
            self.stale = (f"took over the stale lock of {self._holder(body)}"
                          + ("; that process is no longer running" if gone else "; it no longer held the lock"))
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": list(sys.argv)}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode() + b"\n", 0)
            os.fsync(fd)
        except OSError as e:
            os.close(fd)
            err = storage_error(e, self.path, writing=True)
            if err is None:
                raise
            raise err from e
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):  # an emptied body tells the next holder the lock was released cleanly
            os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- run folders
def _started(folder: Path) -> float:
    """When the run in ``folder`` last started (``run.json``'s ``started_at``/``written_at``), as a POSIX time;
    its modification time if it has neither."""
    path = folder / "run.json"
    try:
        info = json.loads(path.read_text())
        stamp = info.get("started_at") or info.get("written_at")
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except (OSError, ValueError, TypeError, AttributeError):
        try:
            return path.stat().st_mtime
        except OSError:
            return float("-inf")


class RunDir:
    """One run's folder: ``<root>/<suite>/<run_id>``.

    Raises:
        UnsafePath: ``suite`` or ``run_id`` is not a safe name (:func:`check_name`), or the folder
            resolves outside ``root`` (a symlink).
    """

    def __init__(self, root: str | Path, suite: str, run_id: str):
        for what, name in (("suite name", suite), ("run id", run_id)):
            problem = check_name(name)
            if problem:
                raise UnsafePath(f"{what} {problem}")
        self.root, self.suite, self.run_id = Path(root), suite, run_id
        self.path = self.root / suite / run_id
        if not inside(self.root, self.path):
            raise UnsafePath(f"run folder {self.path} resolves outside the results root {self.root} (a symlink)")

    @classmethod
    def latest(cls, root: str | Path, suite: str) -> RunDir | None:
        """The run of ``suite`` under ``root`` started most recently (by ``run.json``), or ``None``."""
        base = Path(root) / suite
        if check_name(suite) or not base.is_dir():
            return None
        runs = [p for p in base.iterdir() if not check_name(p.name) and (p / "run.json").is_file()]
        if not runs:
            return None
        newest = max(runs, key=lambda p: (_started(p), p.name))
        return cls(root, suite, newest.name)

    @classmethod
    def create(cls, root: str | Path, suite: str) -> RunDir:
        """A new run folder with a fresh id (:func:`new_run_id`, suffixed ``-2``, ``-3``... if taken).

        Raises:
            StorageError: the folder cannot be created.
        """
        base = new_run_id()
        for k in range(1, 1000):
            run = cls(root, suite, base if k == 1 else f"{base}-{k}")
            try:
                run.path.parent.mkdir(parents=True, exist_ok=True)
                run.path.mkdir()
                return run
            except FileExistsError:
                continue
            except OSError as e:
                err = storage_error(e, run.path, writing=True)
                if err is None:
                    raise
                raise err from e
        raise RuntimeError(f"no free run id {base}-<k> under {Path(root) / suite}")

    def cell(self, cell: str) -> Path:
        """The folder of ``cell``.

        Raises:
            UnsafePath: it resolves outside the run folder (a symlink).
        """
        path = self.path / cell
        if path.is_symlink() and not inside(self.path, path):
            raise UnsafePath(f"cell folder {path} resolves outside the run folder {self.path} (a symlink)")
        return path

    def record_path(self, cell: str) -> Path:
        return self.path / cell / "record.json"

    def read_record(self, cell: str) -> CellRecord | None:
        """The cell's record, or ``None`` if absent or not valid JSON.

        Raises:
            bench.store.schema.SchemaError: a record of an unreadable version, with an unknown key, or
                naming another cell than its folder.
        """
        path = self.record_path(cell)
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict):
            raise SchemaError(f"{path}: expected a JSON object, got {type(data).__name__}")
        try:
            rec = record_from_dict(data, f"{path}: ")
        except (TypeError, ValueError, AttributeError) as e:  # a hand-edited or foreign file
            if isinstance(e, SchemaError):
                raise
            raise SchemaError(f"{path}: malformed record ({type(e).__name__}: {e})") from None
        if rec.cell_id != cell:
            raise SchemaError(f"{path}: a record of cell {rec.cell_id!r} in the folder of cell {cell!r}")
        return rec

    def write_record(self, record: CellRecord) -> None:
        """Write ``record`` to its cell's ``record.json``, atomically."""
        write_json(self.record_path(record.cell_id), record_to_dict(record))

    def records(self) -> list[CellRecord]:
        """Every readable cell record of the run, sorted by cell folder (invalid JSON is skipped).

        Raises:
            bench.store.schema.SchemaError: a record of an unreadable version or with an unknown key.
        """
        out = []
        for p in sorted(self.path.glob("*/record.json")):
            rec = self.read_record(p.parent.name)
            if rec is not None:
                out.append(rec)
        return out


def load_samples(cell_dir: Path, sampler: str) -> np.ndarray:
    """The samples a cell saved for ``sampler`` (``samples_<sampler>.npz``): (N, *shape) array,
    float32 vectors or uint8 images."""
    with np.load(Path(cell_dir) / f"samples_{sampler}.npz") as f:
        return f["samples"]


def load_sample_labels(cell_dir: Path, sampler: str) -> np.ndarray | None:
    """The labels a conditional cell drew its samples for ``sampler`` with: (N,) int64, or ``None`` for an
    unconditional cell (no ``labels`` in ``samples_<sampler>.npz``)."""
    with np.load(Path(cell_dir) / f"samples_{sampler}.npz") as f:
        return f["labels"] if "labels" in f.files else None


def summary_frame(records: list[CellRecord]):
    """One row per (cell, sampler), with the cell's train and density metrics repeated.

    Columns: suite, run_id, dataset, family, seed, status, reason, likelihood_kind,
    sampler, then the flat metric keys (which carry their units, e.g. ``test_nll_nats``;
    see :func:`bench.store.schema.metric_info`).
    """
    def scalars(part) -> dict:
        return {} if part is None else {k: v for k, v in part_to_dict(part).items() if not isinstance(v, (dict, list))}

    rows = []
    for r in records:
        ids = {"suite": r.suite, "run_id": r.run_id, "dataset": r.dataset, "family": r.family, "seed": r.seed,
               "status": r.status, "reason": r.reason, "likelihood_kind": r.likelihood_kind}
        cell = {**scalars(r.train), **scalars(r.density)}
        if not r.samplers:
            rows.append({**ids, "sampler": None, **cell})
        for name, metrics in r.samplers.items():
            rows.append({**ids, "sampler": name, **cell, **scalars(metrics)})
    import pandas as pd  # lazy: the train/sample stages run where pandas may be missing

    return pd.DataFrame(rows)


def write_summary(run: RunDir) -> Path:
    """Write ``summary.csv`` of all records in ``run``, atomically; returns its path."""
    return write_text(run.path / "summary.csv", summary_frame(run.records()).to_csv(index=False))
