"""How many cells run at once, on how many threads each, and in what order: the arithmetic of ``--jobs``.

The local launcher runs ``jobs`` cells at a time, each in its own worker process with ``threads`` torch
(and BLAS/OpenMP) threads (:mod:`bench.execution.workers`). Which split of the cores is fastest depends
on the CPU: the 2D networks (at most 25k parameters) gain little or nothing from a second thread, so two
one-thread cells finish sooner than two two-thread cells one after the other; an image network may use
every core well. So the plan (:mod:`bench.execution.plan`) measures every cell's cost at 1 thread and at
all the cores, and this module turns those estimates into a choice:

* :func:`at_threads`: a cell's seconds at ``t`` threads, by Amdahl's law through the two measured points
  (exact at 1 and at ``cores`` threads);
* :func:`dispatch_order`: the order cells are handed to free workers: the suite's order for one job,
  longest first (the LPT rule, Graham 1969) for several;
* :func:`simulate`: greedy list scheduling in that order, as the launcher does it, with the one-off
  costs each worker process pays (loading Inception, a per-process reference) or that the first cells
  to reach the evaluation pay (a disk cache not yet built); the makespan is the estimated wall time;
* :func:`choose`: the (jobs, threads) split with the shortest makespan among those that fit the cores
  and the memory.

Besides :func:`thread_limit` (:func:`bench.core.env.thread_limit`, which sets the thread counts) and
:func:`set_threads`, everything here is plain arithmetic on seconds, with no clock, so tests can check it by hand.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from threadpoolctl import threadpool_limits

from bench.core.env import thread_limit

__all__ = ["thread_limit"]  # re-exported: the launcher's modules import it from here


def usable_cores() -> int:
    """CPU cores this process may run on: its affinity mask (``os.sched_getaffinity``), else ``os.cpu_count()``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_threads(n: int) -> None:
    """Set this process's torch, BLAS and OpenMP thread counts to ``n`` for good (a worker process)."""
    torch.set_num_threads(n)
    threadpool_limits(limits=n)


def at_threads(t1: float, tc: float, cores: int, t: int) -> float:
    """Seconds of a task at ``t`` threads, from its seconds ``t1`` at 1 thread and ``tc`` at ``cores`` threads.

    Amdahl's law, T(t) = T(1) ((1 - p) + p / t), with the parallel fraction p fitted through both points:
    p = (1 - tc / t1) / (1 - 1 / cores), capped at 1. A task that is slower on more threads (p < 0, as
    small networks often are: the threads' synchronization costs more than they save) gets slower with t.
    Example: t1 = 10 s, tc = 6 s on 4 cores -> p = 0.533, T(2) = 10 (0.467 + 0.267) = 7.33 s.

    Raises:
        ValueError: ``t`` outside [1, cores], or negative seconds.
    """
    if not 1 <= t <= cores:
        raise ValueError(f"need 1 <= t <= cores, got t={t}, cores={cores}")
    if t1 < 0 or tc < 0:
        raise ValueError(f"need seconds >= 0, got {t1=} {tc=}")
    if t == 1 or t1 == 0:
        return t1
    if t == cores:
        return tc
    p = min(1.0, (1 - tc / t1) / (1 - 1 / cores))
    return t1 * ((1 - p) + p / t)


@dataclass
class Task:
    """One cell to schedule.

    Attributes:
        cell: its id.
        dataset: its dataset (one-off costs are per dataset).
        seconds: estimated wall time without one-off costs; ``None`` when its probe failed (counted as 0,
            dispatched first: a failing cell ends early, an unknown one should not start last).
        evaluate_seconds: the part of ``seconds`` spent in the evaluate stage, where one-off costs are paid.
    """

    cell: str
    dataset: str
    seconds: float | None
    evaluate_seconds: float = 0.0


@dataclass
class OneOff:
    """A cost some cells pay once: a load or a cache build.

    Attributes:
        dataset: the dataset it serves, or ``"*"`` for any.
        label: what it is (shown in the plan).
        seconds: its cost.
        per_process: paid once by every process that evaluates such a cell (an in-memory load, e.g. the
            Inception network); else once per data root (a disk cache), by the first cell to reach the
            evaluation, and again by any cell on another worker that reaches its evaluation before that
            first one has finished building it (both build it; atomic writes keep the result whole).
        paid: already paid by the driver process (e.g. Inception loaded by the plan's probe): free for
            cells that run in that process (one job), not for worker processes.
    """

    dataset: str
    label: str
    seconds: float
    per_process: bool
    paid: bool = False


@dataclass
class Slot:
    """Where and when a cell runs in the simulated schedule: worker index, start and end (seconds from the
    first cell), and the one-off costs it pays (label -> seconds)."""

    worker: int
    start: float
    end: float
    one_off: dict[str, float] = field(default_factory=dict)


def dispatch_order(tasks: list[Task], jobs: int) -> list[Task]:
    """The order in which the launcher hands cells to free workers: the given (suite) order for one job;
    longest estimate first for several (unknown estimates first, ties in the given order)."""
    if jobs <= 1:
        return list(tasks)
    return sorted(tasks, key=lambda t: (t.seconds is not None, -(t.seconds or 0.0)))


def simulate(tasks: list[Task], jobs: int, one_offs: Iterable[OneOff] = (), *,
             in_process: bool | None = None) -> tuple[dict[str, Slot], float]:
    """Greedy list scheduling of ``tasks`` on ``jobs`` workers in :func:`dispatch_order`: each cell starts on
    the worker that frees first (the lowest index on a tie), as the launcher runs them.

    ``in_process`` (default: ``jobs == 1``): the cells run in the driver process, so one-offs marked
    ``paid`` cost nothing. Returns ({cell: :class:`Slot`}, the makespan in seconds).

    Example: cells of 4, 3 and 2 s on 2 workers run 4 | 3 then 2: makespan 5 s.
    """
    in_process = jobs == 1 if in_process is None else in_process
    items = [o for o in one_offs if not (in_process and o.paid)]
    free = [(0.0, w) for w in range(jobs)]
    heapq.heapify(free)
    seen: set[tuple[int, str]] = set()  # (worker, label) of per-process one-offs already paid
    built: dict[str, float] = {}  # label -> when the first cell that builds that disk cache ends
    slots: dict[str, Slot] = {}
    makespan = 0.0
    for task in dispatch_order(tasks, jobs):
        start, w = heapq.heappop(free)
        base = task.seconds or 0.0
        reaches_eval = start + base - task.evaluate_seconds
        paid: dict[str, float] = {}
        for o in items:
            if o.dataset not in ("*", task.dataset) or task.seconds is None:
                continue
            if o.per_process:
                if (w, o.label) not in seen:
                    seen.add((w, o.label))
                    paid[o.label] = o.seconds
            elif o.label not in built or built[o.label] > reaches_eval:
                paid[o.label] = o.seconds
        end = start + base + sum(paid.values())
        for o in items:
            if not o.per_process and o.label in paid:
                built[o.label] = min(built.get(o.label, end), end)
        slots[task.cell] = Slot(w, start, end, paid)
        makespan = max(makespan, end)
        heapq.heappush(free, (end, w))
    return slots, makespan


@dataclass
class Choice:
    """The chosen split and what the others would have taken.

    Attributes:
        jobs, threads: cells at once, and torch threads per cell.
        wall_seconds: the estimated wall time (makespan) of the chosen split; ``None`` without an estimate
            (``--no-estimate``).
        candidates: every split considered, ``{"jobs", "threads", "wall_seconds"}``, fastest first.
        given: ``"--jobs"``, ``"--threads"``, both or neither: what the command line fixed.
    """

    jobs: int
    threads: int
    wall_seconds: float | None
    candidates: list[dict[str, float | None]]
    given: tuple[str, ...] = ()


def splits(cores: int, *, jobs: int | None = None, threads: int | None = None, max_jobs: int | None = None,
           cells: int | None = None) -> list[tuple[int, int]]:
    """The (jobs, threads) splits to consider on ``cores`` cores: every one with jobs x threads <= cores, at
    most ``max_jobs`` jobs (memory, the modality) and no more jobs than ``cells``; ``jobs`` or ``threads`` fix
    that part. A ``jobs`` above the cores is honoured at one thread each (oversubscribed: the user asked)."""
    if jobs is not None and threads is not None:
        return [(jobs, threads)]
    if jobs is not None:
        return [(jobs, t) for t in range(1, max(1, cores // jobs) + 1)]
    top = max(1, min(cores, max_jobs or cores, cells or cores))
    ts = [threads] if threads is not None else list(range(1, cores + 1))
    out = [(j, t) for j in range(1, top + 1) for t in ts if j * t <= max(cores, t)]
    return out or [(1, ts[0])]


def choose(walls: dict[tuple[int, int], float], given: tuple[str, ...] = ()) -> Choice:
    """The split of shortest estimated wall time (fewer jobs, then fewer threads, on a tie)."""
    if not walls:
        raise ValueError("no split to choose from")
    ranked = sorted(walls.items(), key=lambda kv: (kv[1], kv[0][0], kv[0][1]))
    (j, t), wall = ranked[0]
    return Choice(j, t, wall, [{"jobs": a, "threads": b, "wall_seconds": s} for (a, b), s in ranked], given)
