"""Checks of a whole run before its first cell, and the plan they feed.

In order, each failure being one line (:class:`PreflightError`) and exit status 2, before
anything is written to the results folder:

1. the device exists (``--device cuda`` on a machine without CUDA);
2. the memory that ``eval.n_samples`` and the data sizes imply fits in this machine's available memory;
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
from bench.execution.plan import Plan, describe, free_bytes, make_plan, size
from models.base import MissingDependencyError

MEMORY_HEADROOM = 2**29  # the interpreter, torch and the models beside the data-sized arrays (0.5 GiB)
DISK_MARGIN = 1.05


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


def check_memory(suite: Suite, names: list[str]) -> None:
    """Refuse a run whose data-sized arrays cannot fit in this machine's available memory.

    Raises:
        PreflightError: naming ``eval.n_samples`` (or the part that dominates), the need and what is available.
    """
    parts = memory_needed(suite, names)
    need, have = sum(parts.values()), available_memory()
    if need + MEMORY_HEADROOM > have:
        top = max(parts, key=parts.get)
        key = "the datasets" if top == "dataset" else f"eval.n_samples = {suite.eval.n_samples}"
        detail = ", ".join(f"{k} {size(v)}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]))
        raise PreflightError(f"{suite.source}: {key}: a cell needs about {size(need)} of memory ({detail}), and this "
                             f"machine has {size(have)} available; lower eval.n_samples (or fid_reference_n)")


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
        results_root: Path, done: set[str] = frozenset(), progress=None) -> Ready:
    """All checks, in order, then the plan (see the module docstring).

    Raises:
        PreflightError: the first check that fails.
    """
    with Stopwatch() as clock:
        device = check_device(suite)
        check_memory(suite, dataset_names)
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
    plan = make_plan(suite, specs, loaded, device, stages=stages, done=done,
                     results_dir=results_root / suite.name, progress=progress)
    plan.preflight_seconds = clock.seconds
    check_disk(plan, results_root, data_root(suite.data.root))
    for name, n in prepare.items():  # written by the loads above (and checked before them): shown in the plan
        if n:
            plan.cache_bytes += n
            plan.cache_items.insert(0, f"{name} files, written by the preflight")
    return Ready(device, loaded, plan, clock.seconds)
