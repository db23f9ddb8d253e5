"""Launchers: where a suite's cells run. ``local`` runs them one after another in this process
(:func:`bench.execution.cell.run_suite`'s own loop); ``ray`` runs each cell as a Ray task on a cluster.

With ``--launcher ray`` the driver (this process) keeps everything but the cells: the run lock,
the resume checks, the preflight and plan, then ``summary.csv``, the history database and the
report. Each pending (dataset, family, seed) cell becomes a task (``ray.remote`` with the
suite's ``resources``: :class:`bench.config.suite.Resources`) that runs :func:`bench.execution.cell.run_cell`
on a worker: it trains, samples and evaluates, writes its own cell folder (every file atomically,
as the local launcher does) and returns its record. A suite whose family gives
``resources.evaluate`` splits the cell in two tasks: train + sample with the family's requests,
then evaluation with its own (e.g. CPU-only), which Ray starts once the first has finished.

* **Results** go to the same run folder as the local launcher's, so ``--results`` must be a path
  that every node sees (a shared file system); a cell whose worker wrote elsewhere is recorded
  failed, saying so.
* **Data**: the driver's preflight loads each dataset once and puts it in Ray's object store
  (``ray.put``); the tasks receive it from there and load nothing.
* **Failures**: an exception inside a cell is recorded by the cell itself, as locally. A worker
  that dies or a node that is lost fails its task; Ray retries it ``max_retries`` times (from the
  cell's last artifact), then the driver records the cell failed with Ray's reason. The other
  cells go on. A full disk (:class:`~bench.core.files.StorageError`) stops the run, as locally.
* **Ctrl-C** cancels the outstanding tasks (a running cell gets ``KeyboardInterrupt`` and records
  itself ``interrupted``, as locally) and re-raises, so the command prints how to resume.
* **Determinism**: a cell seeds itself from its seed and loads nothing from earlier cells, so it
  gives the same numbers on any worker; a task runs torch on ``num_cpus`` threads (rounded down),
  and CPU results can differ in the last bits between thread counts (tests/test_launch_ray.py).

Ray is an optional extra (``pip install -e ".[ray]"``); :func:`ray_missing` tells the command line
before anything is written.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

from bench import data as datasets
from bench.config.suite import Suite, TaskResources
from bench.core import env
from bench.core.files import StorageError
from bench.execution.cell import Cell, dataset_failed, headline, record_stopped, run_cell
from bench.store.runs import RunDir

LAUNCHERS = ("local", "ray")
RAY_INSTALL = 'pip install -e ".[ray]"'
ROOT = env.ROOT
CANCEL_GRACE_S = 30.0  # how long Ctrl-C waits for the running cells to record themselves interrupted


def ray_missing() -> str | None:
    """Why ``--launcher ray`` cannot run here (Ray is not installed, with the command that installs it),
    or ``None``."""
    if importlib.util.find_spec("ray") is None:
        return f"--launcher ray: Ray is not installed; install it with: {RAY_INSTALL}"
    return None


def worker_env() -> dict[str, str]:
    """Environment variables of the Ray workers: this checkout first on ``PYTHONPATH`` (so that workers run
    the driver's code, not another installed copy), the registry's extra family folders, and passive
    OpenMP waiting (as ``run_bench.py`` sets it)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    out = {"PYTHONPATH": path, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    if os.environ.get("GENBENCH_FAMILIES"):
        out["GENBENCH_FAMILIES"] = os.environ["GENBENCH_FAMILIES"]
    return out


def ray_init(address: str | None = None, **kwargs: Any) -> Any:
    """``ray.init`` for genbench: ``address`` ``None`` starts a local Ray on this machine's CPUs and GPUs
    (``address="local"``), else connects to that cluster (``"auto"``: the one ``ray start`` made here).
    The workers get :func:`worker_env`. Returns Ray's context; ``kwargs`` go to ``ray.init``."""
    import ray

    if address is None:  # options of a new cluster only: Ray refuses them when connecting to one
        kwargs = {"include_dashboard": False, **kwargs}
    return ray.init(address=address or "local", log_to_driver=True, runtime_env={"env_vars": worker_env()}, **kwargs)


def connect(address: str | None = None) -> dict[str, float]:
    """Start or reach Ray (:func:`ray_init`) unless this process already has; returns the cluster's total
    resources (``{"CPU": 2.0, "GPU": 0.0, ...}``)."""
    import ray

    if not ray.is_initialized():
        ray_init(address)
    return ray.cluster_resources()


def resource_problem(suite: Suite, families: list[str], dataset_names: list[str], cuda: bool) -> str | None:
    """Why some cell's task could never start on the connected Ray cluster (it asks for more CPUs or GPUs
    than any live node has: Ray would wait for such a node forever), or ``None``. One line naming the
    suite file and key."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    largest = {k: max((n.get(k, 0.0) for n in nodes), default=0.0) for k in ("CPU", "GPU")}
    for name in dataset_names:
        for family in families:
            res = suite.family(name, family).resources
            for key, task in ((f"families.{family}.resources", res), (f"families.{family}.resources.evaluate",
                                                                      res.evaluate)):
                if task is None:
                    continue
                want = task.ray_options(cuda)
                if not any(n.get("CPU", 0.0) >= want["num_cpus"] and n.get("GPU", 0.0) >= want["num_gpus"]
                           for n in nodes):
                    gpus = "" if task.num_gpus is not None or not cuda else " (num_gpus unset: 1 on CUDA)"
                    return (f"{suite.source}: {key}: a task asks for {want['num_cpus']:g} CPUs and "
                            f"{want['num_gpus']:g} GPUs{gpus}, more than any node of the Ray cluster has (the "
                            f"largest: {largest['CPU']:g} CPUs, {largest['GPU']:g} GPUs); lower it in the suite "
                            "or with --set")
    return None


def _cell_task(suite: Suite, ds: Any, family: str, seed: int, root: str, run_id: str, stages: tuple[str, ...],
               estimate: Any, device_type: str, threads: int, before: Any = None) -> Any:
    """The body of a cell's Ray task: :func:`bench.execution.cell.run_cell` on this worker, with ``threads`` torch
    threads, on ``device_type`` (``"cuda"``: the GPU Ray assigned). ``before``: the record of the cell's
    train + sample task, when this task is its evaluation; a cell whose first task did not finish those
    stages is returned as it is. Returns the cell's record."""
    import torch

    if before is not None and before.status != "partial":
        return before
    torch.set_num_threads(threads)
    device = torch.device("cuda" if device_type == "cuda" and torch.cuda.is_available() else "cpu")
    run = RunDir(root, suite.name, run_id)
    return run_cell(suite, ds, family, seed, run, device, stages, progress=False, estimate=estimate)


def _reason(e: BaseException, retries: int) -> str:
    """One line: why Ray could not finish a task (a lost worker or node, a cancelled task...)."""
    text = " ".join(str(e).split()) or type(e).__name__
    cut = text[:300] + ("..." if len(text) > 300 else "")
    tried = f"; retried {retries} time{'s' if retries != 1 else ''}" if retries else ""
    return f"ray: {type(e).__name__}: {cut}{tried}"


def run_ray(suite: Suite, run: RunDir, cells: list[Cell], total: int, device: Any, stages: tuple[str, ...],
            plan: Any, preloaded: dict[str, Any], log: Callable[[str], None], address: str | None = None,
            max_retries: int = 1, done_before: int = 0) -> None:
    """Run ``cells`` as Ray tasks and wait for them all, logging ``[j/total] cell: headline`` as each finishes.

    Connects to ``address`` (``None``: a new local Ray) unless Ray is already initialized in this
    process (then that cluster is used and left running). ``done_before``: cells already skipped, for
    the progress count. Records come from the cells (each writes its own); the driver writes one only
    for a cell whose task Ray could not finish, or whose dataset failed to load.

    Raises:
        KeyboardInterrupt: Ctrl-C; outstanding tasks are cancelled first.
        StorageError: a cell could not write its results; outstanding tasks are cancelled.
    """
    import ray
    from ray.exceptions import RayError, RayTaskError

    started = not ray.is_initialized()
    if started:
        ray_init(address)
    try:
        cuda = device.type == "cuda"
        task = ray.remote(_cell_task)
        refs: dict[Any, Cell] = {}  # the last task of each cell -> the cell
        every: list[Any] = []  # every task submitted (a split cell has two), for cancelling
        ds_refs: dict[str, Any] = {}
        loaded: dict[str, Any] = {}
        j = done_before
        try:
            for cell in cells:
                if cell.dataset not in loaded:
                    try:  # the preflight's copy when it loaded the dataset, once into the object store
                        ds = (preloaded[cell.dataset] if cell.dataset in preloaded
                              else datasets.load(cell.dataset, suite.data, suite.eval.entropy_mc))
                        loaded[cell.dataset], ds_refs[cell.dataset] = ds, ray.put(ds)
                    except Exception as e:  # a missing dataset fails its cells, not the suite
                        loaded[cell.dataset] = e
                ds = loaded[cell.dataset]
                if isinstance(ds, Exception):
                    r = dataset_failed(suite, run, cell.dataset, cell.family, cell.seed, ds)
                    j += 1
                    log(f"[{j}/{total}] {cell.cid}: {headline(r)}")
                    continue
                res = suite.family(cell.dataset, cell.family).resources
                est = plan.estimate_for(cell.cid) if plan is not None else None
                args = (suite, ds_refs[cell.dataset], cell.family, cell.seed, str(run.root), run.run_id)
                opts = {"max_retries": max_retries, "retry_exceptions": False, "name": cell.cid}
                split = res.evaluate is not None and "evaluate" in stages
                first = tuple(s for s in stages if s != "evaluate") if split else stages
                ref = task.options(**res.ray_options(cuda), **opts).remote(*args, first, est, device.type,
                                                                           res.threads())
                if split:  # the evaluation starts when train + sample have finished (their record is its input)
                    every.append(ref)
                    ev: TaskResources = res.evaluate
                    ref = task.options(**ev.ray_options(cuda), **opts).remote(*args, stages, est, device.type,
                                                                              ev.threads(), ref)
                every.append(ref)
                refs[ref] = cell
            while refs:
                [ref], _ = ray.wait(list(refs), num_returns=1)
                cell = refs.pop(ref)
                try:
                    r = ray.get(ref)
                except RayTaskError as e:  # raised outside run_cell's own handling (e.g. a full disk)
                    cause = e.cause if isinstance(e.cause, BaseException) else e
                    if isinstance(cause, StorageError):
                        log(f"[{j + 1}/{total}] {cell.cid}: FAILED ({cause}); stopping: the results cannot be "
                            "written")
                        raise cause from None
                    reason = (f"{type(cause).__name__}: {cause}".splitlines() or [""])[0]
                    r = _failed(run, cell, suite, loaded, device, reason)
                except RayError as e:  # the worker died, the node was lost, the task was cancelled
                    r = _failed(run, cell, suite, loaded, device, _reason(e, max_retries))
                else:
                    if not run.record_path(cell.cid).is_file():
                        r = _failed(run, cell, suite, loaded, device,
                                    "the worker wrote its cell folder where the driver cannot see it; --results "
                                    f"must be a shared file system path, the same on every node ({run.path})")
                j += 1
                log(f"[{j}/{total}] {cell.cid}: {headline(r)}")
        except BaseException:  # Ctrl-C or a full disk: stop the cells still running, let them record why
            _cancel(ray, every)
            raise
    finally:
        if started:
            ray.shutdown()


def _failed(run: RunDir, cell: Cell, suite: Suite, loaded: dict[str, Any], device: Any, reason: str) -> Any:
    """Record ``cell`` failed with ``reason`` (keeping what its own record says it finished), unless its
    worker wrote an ok record before Ray lost it (:func:`bench.execution.cell.record_stopped`)."""
    return record_stopped(suite, run, loaded[cell.dataset], cell.family, cell.seed, device, reason)


def _cancel(ray: Any, refs: list) -> None:
    """Cancel ``refs``: a running task gets ``KeyboardInterrupt`` (its cell records itself interrupted); after
    :data:`CANCEL_GRACE_S` the ones still running are killed."""
    for ref in refs:
        ray.cancel(ref, force=False)
    if refs:
        _, left = ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_S)
        for ref in left:
            ray.cancel(ref, force=True)
