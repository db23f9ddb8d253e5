"""Runs a suite: every (dataset, family, seed) cell, here (the local launcher) or as Ray tasks
(:mod:`bench.execution.ray_launcher`).

The local launcher runs ``jobs`` cells at a time with ``threads`` torch threads each, as the plan chose
them (:mod:`bench.execution.parallel`) or ``--jobs``/``--threads`` fixed them: one job runs the cells one
after another in this process, in the suite's order; several run them in worker processes, longest
first (:mod:`bench.execution.workers`).

Before the first cell :func:`bench.execution.resume.check_cells` discards corrupt artifacts and refuses (or,
with ``--force``, redoes) cells whose settings changed. A cell whose ``record.json`` says ``ok`` is skipped on
a re-run with the same run id (``--run-id`` or ``--resume``); a failed or interrupted cell is redone from its
last artifact (:func:`bench.execution.cell.run_cell`). One process writes a run at a time
(:class:`~bench.store.runs.RunLock`). After the cells, ``finish`` (the caller's: the summary, the history and
the report, :func:`bench.report.run_report.finish_run`) runs under the same lock.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench import data as datasets
from bench.config.suite import Suite
from bench.core import env
from bench.core.files import StorageError, sweep_temporaries, write_json
from bench.execution.cell import Cell, dataset_failed, headline, run_cell
from bench.execution.parallel import thread_limit
from bench.execution.ray_launcher import run_ray
from bench.execution.resume import apply_checks, check_cells
from bench.execution.workers import run_workers
from bench.store.runs import RunDir, RunLock, cell_id


@dataclass
class RunOptions:
    """How to run a suite (from the command line).

    Attributes:
        root: results root folder.
        run_id: reuse (resume) this run id; ``None`` makes a new one.
        families, datasets: run only these (``None``: all of the suite's).
        force: redo cells even if their record says ``ok``.
        progress: show progress bars.
        stages: stages to run, a subset of ("train", "sample", "evaluate", "report").
        launcher: where the cells run: ``"local"`` (this process, one after another) or ``"ray"``
            (each cell a Ray task; :mod:`bench.execution.ray_launcher`).
        ray_address: the Ray cluster to use (``"auto"``: the one ``ray start`` made on this node);
            ``None`` starts a local Ray. Only with ``launcher="ray"``.
        ray_retries: how many times Ray retries a cell whose worker died or whose node was lost.
        jobs: cells at a time (local launcher); ``None``: the plan's choice, else 1.
        threads: torch threads per cell (local launcher); ``None``: the plan's choice, else this process's.
    """

    root: Path = Path("results")
    run_id: str | None = None
    families: list[str] | None = None
    datasets: list[str] | None = None
    force: bool = False
    progress: bool = True
    stages: tuple[str, ...] = ("train", "sample", "evaluate", "report")
    launcher: str = "local"
    ray_address: str | None = None
    ray_retries: int = 1
    jobs: int | None = None
    threads: int | None = None


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def open_run(suite: Suite, opts: RunOptions) -> RunDir:
    """The run folder: ``opts.run_id``'s (resumed if it exists), else a new one with a fresh id.

    Raises:
        UnsafePath: an unsafe run id (:func:`bench.core.files.check_name`).
        StorageError: the folder cannot be created.
    """
    if opts.run_id:
        return RunDir(opts.root, suite.name, opts.run_id)
    return RunDir.create(opts.root, suite.name)


def write_run_info(run: RunDir, suite: Suite, device: torch.device, launcher: dict[str, Any] | None = None,
                   threads: int | None = None) -> None:
    """``run.json``: the resolved suite, profile and why, versions, device (``torch_threads``: the cells'
    ``threads`` when given), git SHA, command and launcher of this start."""
    info = env.device_info(device)
    if threads is not None:
        info["torch_threads"] = threads
    write_json(run.path / "run.json", {
        "suite": suite.name, "run_id": run.run_id, "profile": suite.profile, "profile_reason": suite.profile_reason,
        "suite_file": suite.source, "resolved": suite.resolved(), "git_sha": env.git_sha(), "versions": env.versions(),
        "device": info, "command": sys.argv, "launcher": launcher or {"name": "local"},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })


def _pending(cells: list[tuple[str, str, int]], checks: dict, opts: RunOptions) -> list[Cell]:
    """The cells still to run, numbered 1..N in ``cells``' order; each done one (without ``--force``) is logged
    as skipped."""
    pending = []
    for k, (name, family, seed) in enumerate(cells, 1):
        cid = cell_id(name, family, seed)
        if checks[cid].done and not opts.force:
            log(f"[{k}/{len(cells)}] {cid}: done before, skipped")
        else:
            pending.append(Cell(k, name, family, seed))
    return pending


def _run_on_ray(suite: Suite, run: RunDir, cells: list[tuple[str, str, int]], checks: dict, device: torch.device,
                opts: RunOptions, plan: Any, preloaded: dict) -> None:
    """The cells of :func:`run_suite` as Ray tasks (:func:`bench.execution.ray_launcher.run_ray`), the done ones
    skipped."""
    pending = _pending(cells, checks, opts)
    run_ray(suite, run, pending, len(cells), device, opts.stages, plan, preloaded, log, address=opts.ray_address,
            max_retries=opts.ray_retries, done_before=len(cells) - len(pending))


def run_suite(suite: Suite, opts: RunOptions, ready: Any = None,
              finish: Callable[[RunDir, tuple[str, ...]], None] | None = None) -> RunDir:
    """Run every selected cell of ``suite`` and write the summary and report.

    ``ready`` (a :class:`bench.execution.preflight.Ready`) brings the device, the datasets the
    preflight loaded and the plan, whose estimates go into the records (and ``plan.json``);
    without it the device is resolved and each dataset loaded here (a missing one fails
    its cells).

    Returns the run folder; cell statuses are in its records. ``summary.csv`` and the
    report need pandas and matplotlib, which a train/sample-only run (e.g. on a GPU
    machine without them) does not import. ``run.json`` (and ``plan.json``) are written only
    by a start that runs cells: rebuilding a report leaves them as they were.

    Raises:
        KeyboardInterrupt: Ctrl-C; the interrupted cell's record says so, finished cells stay.
        RunLocked: another process is writing this run.
        RunConflict: cells were made with other settings, or have records of a newer schema
            (without ``opts.force``); nothing was changed.
        StorageError: the results cannot be written; the suite stopped there.
    """
    device = ready.device if ready is not None else env.resolve_device(suite.device)
    plan = ready.plan if ready is not None else None
    preloaded = dict(ready.datasets) if ready is not None else {}
    run = open_run(suite, opts)
    names = [d for d in suite.datasets if not opts.datasets or d in opts.datasets]
    families = [f for f in suite.families if not opts.families or f in opts.families]
    cells = [(name, family, seed) for name in names for family in families for seed in suite.seeds]
    runs_cells = bool({"train", "sample", "evaluate"} & set(opts.stages))
    with RunLock(run.path) as lock:
        if lock.stale:
            log(f"genbench: {lock.stale}")
        swept = sweep_temporaries(run.path)
        if swept:
            log(f"genbench: removed {len(swept)} temporary file(s) an interrupted writer left, e.g. {swept[0]}")
        checks = check_cells(run, suite, cells, opts.force) if runs_cells else {}
        total = len(cells)
        log(f"genbench: suite {suite.name!r} ({suite.profile or 'default'} profile), run {run.run_id}, "
            f"{total} cells on {device}; results in {run.path}")
        jobs = opts.jobs or (plan.jobs if plan is not None else 1)
        threads = opts.threads or (plan.threads if plan is not None else None)
        if runs_cells:
            apply_checks(run, checks, log)
            write_run_info(run, suite, device, {"name": opts.launcher, **(
                {"address": opts.ray_address or "local", "max_retries": opts.ray_retries}
                if opts.launcher == "ray" else {"jobs": jobs, "threads": threads or torch.get_num_threads()})},
                threads=threads if opts.launcher == "local" else None)
            if plan is not None:
                write_json(run.path / "plan.json", plan.to_dict())
        if runs_cells and opts.launcher == "ray":
            _run_on_ray(suite, run, cells, checks, device, opts, plan, preloaded)
        if runs_cells and opts.launcher == "local" and jobs > 1:
            _run_on_workers(suite, run, cells, checks, device, opts, plan, preloaded, jobs,
                            threads or torch.get_num_threads())
        with thread_limit(threads) if threads else contextlib.nullcontext():
            _run_here(suite, run, cells if runs_cells and opts.launcher == "local" and jobs == 1 else [], checks,
                      device, opts, plan, preloaded)
        if finish is not None:
            finish(run, opts.stages)
    return run


def _run_on_workers(suite: Suite, run: RunDir, cells: list[tuple[str, str, int]], checks: dict, device: torch.device,
                    opts: RunOptions, plan: Any, preloaded: dict, jobs: int, threads: int) -> None:
    """The cells of :func:`run_suite` on ``jobs`` worker processes (:func:`bench.execution.workers.run_workers`),
    the done ones skipped, the others in the plan's order (longest first)."""
    pending = _pending(cells, checks, opts)
    if plan is not None:  # the plan's dispatch order; a cell it does not know goes last
        rank = {cid: i for i, cid in enumerate(plan.order())}
        pending.sort(key=lambda c: rank.get(c.cid, len(rank)))
    log(f"genbench: {jobs} cells at a time in worker processes, {threads} torch thread{'s' if threads > 1 else ''} "
        "each")
    run_workers(suite, run, pending, len(cells), device, opts.stages, plan, preloaded, log, jobs=jobs,
                threads=threads, done_before=len(cells) - len(pending))


def _run_here(suite: Suite, run: RunDir, cells: list[tuple[str, str, int]], checks: dict, device: torch.device,
              opts: RunOptions, plan: Any, preloaded: dict) -> None:
    """The cells of :func:`run_suite` one after another in this process, in the suite's order."""
    total = len(cells)
    ds, loaded = None, None
    for k, (name, family, seed) in enumerate(cells, 1):
        cid = cell_id(name, family, seed)
        if checks[cid].done and not opts.force:
            log(f"[{k}/{total}] {cid}: done before, skipped")
            continue
        if loaded != name:
            try:  # the preflight's copy when it loaded the dataset
                ds = preloaded[name] if name in preloaded else datasets.load(name, suite.data,
                                                                             suite.eval.entropy_mc)
            except Exception as e:  # a missing dataset fails its cells, not the suite
                ds = e
            loaded = name
        if isinstance(ds, Exception):
            r = dataset_failed(suite, run, name, family, seed, ds)
        else:
            try:
                r = run_cell(suite, ds, family, seed, run, device, opts.stages, opts.progress,
                             plan.estimate_for(cid) if plan is not None else None)
            except StorageError as e:
                log(f"[{k}/{total}] {cid}: FAILED ({e}); stopping: the results cannot be written")
                raise
        log(f"[{k}/{total}] {cid}: {headline(r)}")
