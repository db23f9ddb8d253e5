"""Checks of a whole run before its first cell, and the plan they feed.

In order, each failure being one line (:class:`PreflightError`) and exit status 2, before
anything is written to the results folder:

1. the device exists (``--device cuda`` on a machine without CUDA);
2. the memory that ``eval.n_samples`` and the data sizes imply fits in this machine's available memory,
   ``--jobs`` cells at once (each in a worker process with its own interpreter and torch);
3. the Inception weights (image suites that evaluate) and the report's packages are there;
4. every family builds with its configuration (an optional package it needs is installed);
5. every dataset loads, once (a missing one names where the harness looked and how to provide it:
   the data root, ``GENBENCH_DATA_MIRROR``, the network);
6. the plan (:mod:`bench.execution.plan`): probes, estimates, and the disk the artifacts need, which must fit
   in the free space of the results and data folders.

The datasets loaded here are handed to the runner, so no cell loads (or downloads) one again.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench import data as datasets
from bench.config.suite import Suite
from bench.core import env
from bench.core.timing import Stopwatch
from bench.data.images import data_root
from bench.evaluation.inception.extractor import InceptionWeightsError, verified_weights_path
from bench.evaluation.modality import modality as get_modality
from bench.execution.plan import Plan, describe, free_bytes, make_plan, size, unestimated_plan
from models.base import MissingDependencyError

MEMORY_HEADROOM = 2**29  # the interpreter, torch and the models beside the data-sized arrays (0.5 GiB)
DISK_MARGIN = 1.05
# The most cells at once the plan may choose by modality (None: as many as the cores; --jobs overrides).
DEFAULT_MAX_JOBS: dict[str, int | None] = {"vector": None, "image": None}


class PreflightError(RuntimeError):
    """A run that cannot start; ``str()`` is one line: what is missing, where the harness looked, how to fix it."""

@dataclass
class Ready:
    """What the preflight found: the device, the loaded datasets, the plan, and how long it took."""

    device: torch.device
    datasets: dict[str, datasets.Dataset]
    plan: Plan
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def check_device(suite: Suite) -> torch.device:
    """The device the suite asks for, if this machine has it.

    Raises:
        PreflightError: CUDA asked for but unavailable, or an unknown device name.
    """
    try:
        return env.resolve_device(suite.device)
    except RuntimeError as e:
        why = str(e).splitlines()[0]
        if "CUDA" in why or suite.device.startswith("cuda"):
            built = f"torch {torch.__version__}, built for CUDA {torch.version.cuda}" if torch.version.cuda \
                else f"torch {torch.__version__}, a CPU-only build"
            why = f"device {suite.device!r}: CUDA is not available on this machine ({built}, no GPU visible)"
        raise PreflightError(f"{why}; run with --device cpu (or --device auto)") from None


def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable`` of /proc/meminfo, else physical memory)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_needed(suite: Suite, names: list[str]) -> dict[str, int]:
    """Peak bytes the data-sized arrays of a cell need, by part (the largest dataset decides).

    Parts: the dataset itself (train + test), the samples (held twice while they are
    concatenated), and the evaluation: images hold Inception features of the samples and
    the reference (float32, plus float64 copies for KID and precision/recall), one block of
    the precision/recall distance matrix, and the novelty search's float32 copies of the
    samples and the training set; 2D holds a block of the MMD and k-NN distance matrices.
    """
    ev = suite.eval
    worst: dict[str, int] = {}
    for name in names:
        lay = datasets.layout(name, suite.data)
        n = ev.n_samples
        parts = {"dataset": (lay.n_train + lay.n_test) * lay.dims * lay.itemsize,
                 "samples": 2 * n * lay.dims * lay.itemsize}
        parts.update(get_modality(suite.modality).memory_parts(ev, lay.n_train, lay.n_test, lay.dims, lay.itemsize))
        if sum(parts.values()) > sum(worst.values()):
            worst = parts
    return worst


def check_memory(suite: Suite, names: list[str], jobs: int = 1) -> None:
    """Refuse a run whose data-sized arrays cannot fit in this machine's available memory, ``jobs`` cells at once.

    With several jobs each worker process holds a cell's arrays and its own interpreter and torch
    (:data:`MEMORY_HEADROOM`), and the driver keeps its copy of the datasets besides.

    Raises:
        PreflightError: naming ``eval.n_samples`` (or the part that dominates), or ``--jobs``, the need and
            what is available.
    """
    parts = memory_needed(suite, names)
    per, have = sum(parts.values()) + MEMORY_HEADROOM, available_memory()
    if per > have:
        top = max(parts, key=parts.get)
        key = "the datasets" if top == "dataset" else f"eval.n_samples = {suite.eval.n_samples}"
        detail = ", ".join(f"{k} {size(v)}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]))
        raise PreflightError(f"{suite.source}: {key}: a cell needs about {size(per - MEMORY_HEADROOM)} of memory "
                             f"({detail}), and this machine has {size(have)} available; lower eval.n_samples (or "
                             "fid_reference_n)")
    if jobs > 1 and jobs_memory(parts, jobs) > have:
        fit = max_jobs_in_memory(parts, have)
        raise PreflightError(f"--jobs {jobs}: {jobs} cells at once need about {size(jobs_memory(parts, jobs))} of "
                             f"memory ({size(per)} per worker process, the driver's datasets besides), and this "
                             f"machine has {size(have)} available; use --jobs {fit} or fewer")


def jobs_memory(parts: dict[str, int], jobs: int) -> int:
    """Bytes ``jobs`` cells at once need: per worker process the cell's arrays (``parts``, from
    :func:`memory_needed`) and :data:`MEMORY_HEADROOM`; with more than one job, the driver's process too."""
    per = sum(parts.values()) + MEMORY_HEADROOM
    return per if jobs <= 1 else jobs * per + parts.get("dataset", 0) + MEMORY_HEADROOM


def max_jobs_in_memory(parts: dict[str, int], have: int) -> int:
    """The most jobs whose memory (:func:`jobs_memory`) fits in ``have`` bytes (at least 1)."""
    jobs = 1
    while jobs < 4096 and jobs_memory(parts, jobs + 1) <= have:
        jobs += 1
    return jobs


def load_datasets(suite: Suite, names: list[str]) -> dict[str, datasets.Dataset]:
    """Every dataset of the run, loaded once (extracting or downloading it where that is how it is provided).

    Raises:
        PreflightError: a dataset is missing or corrupt (the loader's message says where it looked).
    """
    out = {}
    for name in names:
        try:
            out[name] = datasets.load(name, suite.data, suite.eval.entropy_mc)
        except datasets.DatasetError as e:
            raise PreflightError(f"dataset {name}: {str(e).splitlines()[0]}") from None
    return out


def check_packages(suite: Suite, stages: tuple[str, ...]) -> None:
    """The Inception weights (image suites that evaluate) and the report's packages (pandas, matplotlib).

    Raises:
        PreflightError: what is missing and the package to install.
    """
    if get_modality(suite.modality).inception and "evaluate" in stages:
        try:
            verified_weights_path()
        except InceptionWeightsError as e:
            raise PreflightError(f"evaluate stage: {str(e).splitlines()[0]}") from None
    needed = {"evaluate": ("pandas",), "report": ("pandas", "matplotlib")}
    for stage, pkgs in needed.items():
        for pkg in pkgs if stage in stages else ():
            if importlib.util.find_spec(pkg) is None:
                raise PreflightError(f"the {stage} stage needs the package {pkg!r}, which is not installed; "
                                     f"pip install {pkg} (or run up to --stage sample here and evaluate elsewhere)")


def check_disk(plan: Plan, results_root: Path, data_dir: Path) -> None:
    """The planned artifacts must fit in the free space of the results and data folders.

    Raises:
        PreflightError: the folder, the need and the free space.
    """
    needs: dict[int, list] = {}
    for path, n in ((results_root, plan.results_bytes), (data_dir, plan.cache_bytes)):
        where, free, dev = free_bytes(path)
        entry = needs.setdefault(dev, [where, free, 0])
        entry[2] += n
    for where, free, need in needs.values():
        if need * DISK_MARGIN > free:
            raise PreflightError(f"{where}: the planned artifacts need about {size(need)} (results "
                                 f"{size(plan.results_bytes)}, data caches {size(plan.cache_bytes)}), but only "
                                 f"{size(free)} is free there; free space, or point --results / data.root elsewhere")


def run(suite: Suite, *, dataset_names: list[str], families: list[str], stages: tuple[str, ...],
        results_root: Path, done: set[str] = frozenset(), progress=None, jobs: int | None = None,
        threads: int | None = None, estimate: bool = True) -> Ready:
    """All checks, in order, then the plan (see the module docstring).

    ``jobs`` and ``threads`` (``--jobs``, ``--threads``) fix the parallelism; without them the plan chooses
    it (:func:`bench.execution.plan.make_plan`), at most as many jobs as fit in the available memory and
    the modality's default allows (:data:`DEFAULT_MAX_JOBS`). ``estimate=False`` (``--no-estimate``, which needs
    both) skips the cost model: :func:`bench.execution.plan.unestimated_plan`.

    Raises:
        PreflightError: the first check that fails (``estimate=False`` without ``jobs`` and ``threads``: first).
    """
    if not estimate and (jobs is None or threads is None):
        raise PreflightError("--no-estimate needs --jobs and --threads (or $GENBENCH_JOBS and $GENBENCH_THREADS): "
                             "without the cost model's probes nothing chooses the split")
    with Stopwatch() as clock:
        device = check_device(suite)
        check_memory(suite, dataset_names, jobs or 1)
        max_jobs = min(DEFAULT_MAX_JOBS.get(suite.modality) or 4096,
                       max_jobs_in_memory(memory_needed(suite, dataset_names), available_memory()))
        check_packages(suite, stages)
        model_stages = bool({"train", "sample", "evaluate"} & set(stages))
        try:
            specs = describe(suite, dataset_names, families) if model_stages else {}
        except MissingDependencyError as e:
            raise PreflightError(str(e).splitlines()[0]) from None
        prepare = {n: datasets.layout(n, suite.data).prepare_bytes for n in dataset_names} if model_stages else {}
        where, free, _ = free_bytes(data_root(suite.data.root))
        if sum(prepare.values()) * DISK_MARGIN > free:
            raise PreflightError(f"{where}: preparing the datasets needs about {size(sum(prepare.values()))}, but "
                                 f"only {size(free)} is free there; free space, or point data.root elsewhere")
        loaded = load_datasets(suite, dataset_names) if model_stages else {}
    if estimate:
        plan = make_plan(suite, specs, loaded, device, stages=stages, done=done,
                         results_dir=results_root / suite.name, progress=progress, jobs=jobs, threads=threads,
                         max_jobs=max_jobs)
    else:
        plan = unestimated_plan(suite, specs, device, stages=stages, jobs=jobs, threads=threads, done=done,
                                results_dir=results_root / suite.name)
    plan.preflight_seconds = clock.seconds
    check_disk(plan, results_root, data_root(suite.data.root))
    for name, n in prepare.items():  # written by the loads above (and checked before them): shown in the plan
        if n:
            plan.cache_bytes += n
            plan.cache_items.insert(0, f"{name} files, written by the preflight")
    return Ready(device, loaded, plan, clock.seconds)
