"""The local launcher's worker processes: ``--jobs N`` runs N cells at a time, each in a process of its own.

The driver (the ``run_bench.py`` process) keeps everything but the cells, as with Ray: the run lock, the
resume checks, the preflight and the plan, then ``summary.csv``, the history database and the report,
which it alone writes. It starts ``jobs`` workers (``multiprocessing`` with the *spawn* start method: a
fresh interpreter, never a fork of a process whose OpenMP threads already run) and hands each free worker
the next cell in the plan's order (longest first: :func:`bench.execution.parallel.dispatch_order`). A
worker sets its torch, BLAS and OpenMP threads to the plan's ``threads``, receives each dataset once (the
preflight's copy, pickled), runs :func:`bench.execution.cell.run_cell` (which writes every file of the
cell, atomically) and answers with the cell's headline. Workers are kept for the whole run: starting one
(an interpreter, then torch) costs about as much CPU as a 2D cell's evaluation.

Why not ``concurrent.futures.ProcessPoolExecutor``: one worker that dies breaks the whole pool
(``BrokenProcessPool`` fails every running and pending cell), and it gives no handle to stop one running
cell so that it records itself interrupted. Here each worker has its own pipe and process sentinel.

Guarantees, as in the one-process launcher:

* **A failing cell** records its exception itself and the others go on.
* **A dying cell** (the worker process exits: ``os._exit``, a segfault, the kernel's OOM killer) is
  recorded ``failed`` by the driver with the exit code or signal, keeping the stages its own record
  says it finished; a new worker takes the next cell.
* **Ctrl-C** reaches the driver (workers ignore SIGINT, so that a terminal's Ctrl-C, sent to the whole
  process group, is delivered once). The driver sends each busy worker SIGTERM, which the worker turns
  into ``KeyboardInterrupt`` once: its cell records itself ``interrupted``, as in one process. A cell
  that has not answered after :data:`CANCEL_GRACE_S` is killed and recorded interrupted by the driver.
  Then ``KeyboardInterrupt`` is re-raised (exit 130 and the resume command).
* **A full disk** (:class:`~bench.core.files.StorageError` from a cell) stops the other cells as Ctrl-C
  does and is re-raised (exit 3).
* **A killed driver**: each worker asks the kernel to kill it when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``, Linux) and also checks its parent every second, so that no worker
  writes into a run folder whose lock is gone; ``--resume`` then redoes the unfinished cells.
* **Determinism**: a cell seeds itself and reads nothing from earlier cells, so its numbers do not depend
  on which worker runs it or when; at equal thread counts a run with ``--jobs 2`` equals one with
  ``--jobs 1`` on every non-timing column (``tests/test_workers.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

import torch

import models
from bench import data as datasets
from bench.config.suite import Suite
from bench.core.files import StorageError
from bench.execution.cell import Cell, dataset_failed, headline, record_stopped, run_cell
from bench.execution.parallel import set_threads
from bench.store.runs import RunDir

SPAWN = multiprocessing.get_context("spawn")
CANCEL_GRACE_S = 30.0  # how long a stop waits for the running cells to record themselves interrupted
PARENT_CHECK_S = 1.0  # how often a worker checks that its driver is alive (where prctl is missing)
_PR_SET_PDEATHSIG = 1


# --------------------------------------------------------------------------- the worker process
def _die_with_parent(parent: int) -> None:
    """Exit when the driver ``parent`` dies: the kernel's parent-death signal where there is one (Linux), and a
    thread that checks the parent every :data:`PARENT_CHECK_S` seconds everywhere."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the signal was asked for
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_S)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="genbench-parent-watch").start()


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM from the driver: ``KeyboardInterrupt`` once (later ones are ignored while the cell records it)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def worker_main(conn: Connection, parent: int, threads: int, device_type: str, families: list[str]) -> None:
    """The body of a worker process: run the cells the driver sends over ``conn`` until told to stop.

    ``families``: folders of family files the driver imported (:func:`models.discovered_folders`; those of
    ``GENBENCH_FAMILIES`` the worker finds itself), imported first so that the suites it receives unpickle.

    Messages in: ``("dataset", name, pickled Dataset)``, ``("cell", suite, dataset, family, seed, results root,
    run id, stages, estimate)``, ``("stop",)``. Messages out, one per cell: ``("done", headline)``,
    ``("error", reason)`` (raised outside the cell's own handling), ``("interrupted", None)`` or
    ``("storage", (reason, path, errno))`` (a :class:`~bench.core.files.StorageError`); after the last two the
    worker exits.
    """
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver forwards Ctrl-C, once, as SIGTERM
    signal.signal(signal.SIGTERM, _interrupt)
    set_threads(threads)
    models.discover(*[f for f in families if os.path.isdir(f)])
    device = torch.device("cuda" if device_type == "cuda" and torch.cuda.is_available() else "cpu")
    loaded: dict[str, datasets.Dataset] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if msg[0] == "stop":
            return
        if msg[0] == "dataset":
            loaded[msg[1]] = pickle.loads(msg[2])
            continue
        _, suite, name, family, seed, root, run_id, stages, estimate = msg
        try:
            r = run_cell(suite, loaded[name], family, seed, RunDir(root, suite.name, run_id), device, stages,
                         progress=False, estimate=estimate)
            conn.send(("done", headline(r)))
        except KeyboardInterrupt:
            conn.send(("interrupted", None))
            return
        except StorageError as e:  # sent as its fields: the exception's own pickle loses them
            conn.send(("storage", (e.reason, None if e.path is None else str(e.path), e.errno)))
            return
        except Exception as e:  # outside run_cell's own handling (it records its exceptions itself)
            conn.send(("error", (f"{type(e).__name__}: {e}".splitlines() or [""])[0]))


# --------------------------------------------------------------------------- the driver
@dataclass
class _Worker:
    index: int
    process: Any  # multiprocessing.context.SpawnProcess
    conn: Connection
    cell: Cell | None = None
    datasets: set[str] = field(default_factory=set)


def _start(index: int, threads: int, device_type: str) -> _Worker:
    """A new worker process with ``threads`` threads; its BLAS/OpenMP pools are sized before they load."""
    ours, theirs = SPAWN.Pipe()
    env = {k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # inherited by the new interpreter, read when it loads NumPy and torch
    try:
        folders = [str(f) for f in models.discovered_folders()]
        p = SPAWN.Process(target=worker_main, args=(theirs, os.getpid(), threads, device_type, folders),
                          name=f"genbench-worker-{index}", daemon=True)
        p.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    theirs.close()
    return _Worker(index, p, ours)


def death_reason(exitcode: int | None) -> str:
    """One line: how a worker process ended (``exitcode`` as :attr:`multiprocessing.Process.exitcode`)."""
    if exitcode is None:
        return "its worker process stopped answering"
    if exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.Signals._value2member_map_ else -exitcode
        hint = " (the kernel's out-of-memory killer sends it)" if -exitcode == signal.SIGKILL else ""
        return f"its worker process was killed by signal {name}{hint}"
    return f"its worker process exited with code {exitcode} before the cell finished"


def run_workers(suite: Suite, run: RunDir, cells: list[Cell], total: int, device: torch.device,
                stages: tuple[str, ...], plan: Any, preloaded: dict[str, Any], log: Callable[[str], None], *,
                jobs: int, threads: int, done_before: int = 0) -> None:
    """Run ``cells`` on ``jobs`` worker processes of ``threads`` threads each, in the given order (a free worker
    takes the next), logging ``[j/total] cell: headline`` as each finishes.

    Records come from the cells (each writes its own); the driver writes one only for a cell whose worker
    died, that did not answer a stop in time, or whose dataset failed to load.

    Raises:
        KeyboardInterrupt: Ctrl-C (or a worker stopped from outside); the running cells are stopped first and
            each recorded interrupted.
        StorageError: a cell could not write its results; the other running cells are stopped first.
    """
    queue = deque(cells)
    workers: list[_Worker] = []
    loaded: dict[str, Any] = {}
    blobs: dict[str, bytes] = {}
    j = done_before

    def finished(cell: Cell, line: str) -> None:
        nonlocal j
        j += 1
        log(f"[{j}/{total}] {cell.cid}: {line}")

    try:
        # start the workers at once: each takes seconds to load torch, and the first send to one waits for that
        workers += [_start(i, threads, device.type) for i in range(min(jobs, len(queue)))]
        while True:
            while queue and (len(workers) < jobs or any(w.cell is None for w in workers)):
                cell = queue.popleft()
                if cell.dataset not in loaded:
                    try:  # the preflight's copy when it loaded the dataset
                        loaded[cell.dataset] = (preloaded[cell.dataset] if cell.dataset in preloaded else
                                                datasets.load(cell.dataset, suite.data, suite.eval.entropy_mc))
                        blobs[cell.dataset] = pickle.dumps(loaded[cell.dataset], protocol=pickle.HIGHEST_PROTOCOL)
                    except Exception as e:  # a missing dataset fails its cells, not the suite
                        loaded[cell.dataset] = e
                ds = loaded[cell.dataset]
                if isinstance(ds, Exception):
                    finished(cell, headline(dataset_failed(suite, run, cell.dataset, cell.family, cell.seed, ds)))
                    continue
                for dead in [w for w in workers if w.cell is None and not w.process.is_alive()]:
                    workers.remove(dead)
                w = next((w for w in workers if w.cell is None), None)
                if w is None:
                    w = _start(len(workers), threads, device.type)
                    workers.append(w)
                if cell.dataset not in w.datasets:
                    w.conn.send(("dataset", cell.dataset, blobs[cell.dataset]))
                    w.datasets.add(cell.dataset)
                est = plan.estimate_for(cell.cid) if plan is not None else None
                w.conn.send(("cell", suite, cell.dataset, cell.family, cell.seed, str(run.root), run.run_id, stages,
                             est))
                w.cell = cell
            busy = [w for w in workers if w.cell is not None]
            if not busy:
                break
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for w in busy:
                if w.conn not in ready and w.process.sentinel not in ready:
                    continue
                cell, msg = w.cell, _receive(w)
                if msg is None and w.process.is_alive():
                    continue
                if msg is None:  # the process died: record the cell failed, start a new worker for the next
                    w.process.join(timeout=5)
                    r = record_stopped(suite, run, loaded[cell.dataset], cell.family, cell.seed, device,
                                       death_reason(w.process.exitcode), threads=threads)
                    workers.remove(w)
                    finished(cell, headline(r))
                    continue
                w.cell = None
                kind, value = msg
                if kind == "done":
                    finished(cell, value)
                elif kind == "error":
                    finished(cell, headline(record_stopped(suite, run, loaded[cell.dataset], cell.family,
                                                           cell.seed, device, value, threads=threads)))
                elif kind == "interrupted":  # stopped from outside the driver: stop the run as Ctrl-C does
                    workers.remove(w)
                    raise KeyboardInterrupt
                else:  # "storage": the disk is full or read-only
                    workers.remove(w)
                    error = StorageError(*value)
                    log(f"[{j + 1}/{total}] {cell.cid}: FAILED ({error}); stopping: the results cannot be written")
                    raise error
    except BaseException:
        _stop(workers, suite, run, loaded, device, threads)
        raise
    finally:
        _shutdown(workers)


def _receive(w: _Worker) -> tuple[str, Any] | None:
    """The worker's answer if one is waiting; ``None`` when there is none (its process may have ended)."""
    try:
        return w.conn.recv() if w.conn.poll() else None
    except (EOFError, OSError):  # the process ended: its end of the pipe is closed
        return None
    except Exception:  # a message cut short (the worker was stopped while sending it): no answer
        return None


def _stop(workers: list[_Worker], suite: Suite, run: RunDir, loaded: dict[str, Any], device: torch.device,
          threads: int) -> None:
    """Stop the running cells: SIGTERM each busy worker (its cell records itself interrupted and answers),
    wait up to :data:`CANCEL_GRACE_S` for the answers, then kill the rest and record their cells interrupted
    here."""
    busy = [w for w in workers if w.cell is not None]
    for w in busy:
        with contextlib.suppress(ProcessLookupError):
            os.kill(w.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + CANCEL_GRACE_S
    left = list(busy)
    try:
        while left and time.monotonic() < deadline:
            ready = set(wait([w.conn for w in left] + [w.process.sentinel for w in left],
                             timeout=max(0.0, deadline - time.monotonic())))
            for w in [w for w in left if w.conn in ready or w.process.sentinel in ready]:
                if _receive(w) is not None:
                    w.cell = None  # it answered: its cell wrote its own record
                left.remove(w)
    except KeyboardInterrupt:  # a second Ctrl-C: do not wait
        pass
    for w in busy:
        if w.process.is_alive():
            w.process.kill()
            w.process.join(timeout=5)
        if w.cell is not None:  # no answer: the driver records the cell (unless it had finished ok)
            cell, w.cell = w.cell, None
            with contextlib.suppress(StorageError):
                record_stopped(suite, run, loaded[cell.dataset], cell.family, cell.seed, device,
                               "interrupted (Ctrl-C) before the cell could record it; resume the run to finish it",
                               status="interrupted", threads=threads)


def _shutdown(workers: list[_Worker]) -> None:
    """Tell idle workers to stop and wait for them (kill the ones that do not end)."""
    for w in workers:
        with contextlib.suppress(OSError, ValueError):
            w.conn.send(("stop",))
    for w in workers:
        w.process.join(timeout=10)
        if w.process.is_alive():
            w.process.kill()
            w.process.join(timeout=5)
        w.conn.close()
