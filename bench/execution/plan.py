"""The plan of a run, printed before the first cell: the cells, their estimated wall time, and the disk they use.

Cost model ``genbench.cost/3``. Every rate is measured on this device by a probe, never assumed:

* **train**: ``min(steps, max_seconds / t_step + 1) * t_step``. ``t_step`` is the median of
  :data:`PROBE_TRAIN_STEPS` - 1 steps of the real training loop (:func:`bench.execution.train.train`) at the
  configured batch, after one warm-up step, on synthetic data of the dataset's shape. 2D cells add
  the training monitor (:func:`monitor_seconds`): its checkpoints times the cheapest sampler's
  ``t(monitor_n)`` (plus an exact density's on as many points).
* **sample**: per sampler, ``(warm-up + repeats + extra) * t(B) + (warm-up + repeats) * t(b)`` with
  B the throughput batch, b the latency batch and ``extra`` the untimed calls that fill ``n_samples``;
  ``t(n) = a + s n`` goes through the last two of timed ``sample`` calls at n = 1, 4, 16, ...,
  which go straight to n = B as soon as t(B) is predicted to take at most :data:`PROBE_CALL_MAX_S`
  (then t(B) is measured, not extrapolated: see :func:`_fit`); the NFE are those of the real sampler.
  The default sampler adds its ``batch_sweep`` timings: ``(warm-up + sweep_repeats) * t(b)`` per batch b.
* **density**: the family's density call fitted the same way, times the examples evaluated (test
  set, bounds on ``bound_n``) plus the timing calls (as many as a sampler of its ``density_nfe``);
  2D cells add the quadrature, normalization and figure grids (``quadrature_grid``,
  ``density_grid``) at the same per-point cost. A cell with a ``pf_ode`` sampler (unconditional) adds the
  probability-flow ODE likelihood (:func:`bench.evaluation.ode.ode_likelihood`): its ``log_prob`` fitted
  the same way, on ``bound_n`` test points, and in 2D on its quadrature grid of ``(quadrature_grid // 4)²``.
* **evaluate**: images: Inception features of each sampler's N samples at the measured images/s;
  novelty, precision/recall/density/coverage, KID and FID as floating-point work at the measured
  matmul rates (float32 torch, float64 torch, float64 NumPy) plus a measured symmetric
  eigendecomposition scaled as F³. 2D: the sample metrics timed on min(N, 1000) points, scaled as N².
* **one-off**: what a fresh data root still has to build: reference statistics (N_ref images
  through Inception per split), the dataset classifier (MNIST, CIFAR-10: its epochs of measured steps), the test
  set's nearest-training distances; and, once per process, loading the Inception extractor and
  the square root of each reference covariance (an F x F eigendecomposition, F = 2048); in 2D, once per
  process and dataset, the true mixture's reference sample metrics and claim T30's reference rows (a Gaussian
  and a KDE fitted, scored on the test set and sampled: :func:`bench.evaluation.vector.reference_estimates`),
  timed once and cached like a probe. Each is charged to the first cell that needs it.

**Parallelism** (:mod:`bench.execution.parallel`). On a CPU every probe above runs twice, at 1 thread and
at all the cores (each cached under its thread count). Each split of the cores into ``jobs`` cells at a
time of ``threads`` threads (jobs x threads <= cores; other thread counts by Amdahl's law through the two
measured points) is scheduled on paper: the cells go, longest first, to the worker that frees first, and
every worker pays the per-process one-offs (Inception, a 2D dataset's reference metrics) of the datasets
it sees. The split of shortest makespan is chosen (``--jobs``/``--threads`` fix it instead); its makespan
is the printed wall time, each cell's slot (worker, start, end) is in ``plan.json``, and the records get
the chosen thread count (``device.torch_threads``). The probes run alone, so the estimate of two cells at
once assumes they do not slow each other down (shared caches and memory bandwidth do, a little: the
measured error is in docs/design/cost-model.md).

Cells that are already done (a resumed run) cost nothing. The report stage (a few seconds) is not
estimated. Probes cost a few seconds per family; their results are cached per device and
configuration under ``<data root>/cache/plan/`` (delete that folder to measure again), so a second
``--dry-run`` is fast. A cached probe is measured again when it was taken while other processes
kept more than a quarter of a core busy (:class:`bench.core.timing.Contention`; a shared 2-core machine
runs everything about half as fast, and such rates made CIFAR's evaluation estimate 3x too long),
or when it is 30 days old (:func:`stale_reason`). Each record stores its estimate
(:class:`bench.store.schema.CellEstimate`) beside the measured ``stage_seconds``; the report shows the error.

Disk: per cell the checkpoint (4 bytes per parameter), each sampler's samples (N x D values,
uncompressed upper bound) and Inception features (N x 2048 float32), the density grid (2D) and the
JSON files; under the data root what the first load writes (extracted data) and the caches not yet built.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

import models
from bench import data as datasets
from bench.config.suite import EvalConfig, Suite, sampler_settings
from bench.core import env
from bench.core.files import write_json
from bench.core.timing import Contention, Stopwatch, measure
from bench.data.images import data_root
from bench.evaluation import image as evalimg
from bench.evaluation import vector as eval2d
from bench.evaluation.inception.extractor import FEATURE_DIM
from bench.evaluation.metrics import classifier as clf
from bench.evaluation.modality import IMAGE
from bench.evaluation.modality import modality as get_modality
from bench.evaluation.ode import ode_sampler, quadrature_side
from bench.execution.parallel import (
    Choice,
    OneOff,
    Slot,
    Task,
    at_threads,
    choose,
    simulate,
    splits,
    thread_limit,
    usable_cores,
)
from bench.execution.train import train
from bench.store.runs import cell_id
from bench.store.schema import CellEstimate
from models.samplers import Sampler

COST_MODEL = "genbench.cost/3"  # /2: probes time the real batch (see _fit); /3: batch sweep, ODE likelihood, T30 rows
PROBE_TRAIN_STEPS = 4  # 1 warm-up + 3 timed
PROBE_CALL_MAX_S = 60.0  # a probe times the real batch when that call should take at most this long
CKPT_OVERHEAD_BYTES = 64 * 1024
JSON_BYTES = 256 * 1024  # record.json, model_eval.json (training history included)
INCEPTION_LOAD = "Inception load"


# --------------------------------------------------------------------------- what each cell runs
@dataclass
class FamilySpec:
    """One family on one dataset as it will run: parameters, samplers (name -> NFE), density call."""

    dataset: str
    family: str
    shape: tuple[int, ...]
    params: int
    samplers: dict[str, int]
    sampler_objects: dict[str, Sampler]
    density_call: str | None
    config_key: str
    density_nfe: int = 1


def _json_key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def describe(suite: Suite, dataset_names: list[str], families: list[str]) -> dict[tuple[str, str], FamilySpec]:
    """Build each (dataset, family) model once, on the CPU, to read what it will run.

    Raises:
        models.base.MissingDependencyError: a family needs a package that is not installed.
    """
    out = {}
    for name in dataset_names:
        lay = datasets.layout(name, suite.data)
        for family in families:
            entry = suite.family(name, family)
            model = models.build(entry.family or family, suite.modality, entry.model, lay.shape)
            caps = model.capabilities
            call = ("log_prob" if caps.log_prob else "log_prob_bounds" if caps.bound
                    else "energy" if caps.energy else None)
            key = _json_key({"family": entry.family or family, "modality": suite.modality, "shape": lay.shape,
                             "model": dataclasses.asdict(entry.model), "train": dataclasses.asdict(entry.train),
                             "samplers": sampler_settings(entry.samplers)})
            out[(name, family)] = FamilySpec(name, family, lay.shape, sum(p.numel() for p in model.parameters()),
                                             {k: s.nfe(model) for k, s in entry.samplers.items()}, entry.samplers,
                                             call, key, model.density_nfe())
            del model
    return out


# --------------------------------------------------------------------------- probes
@dataclass
class Linear:
    """t(n) = a + s n seconds, fitted to two calls. ``stopped``: the probe stopped a call that ran over
    :data:`PROBE_CALL_MAX_S` (:class:`ProbeStopped`), so the line is a lower bound."""

    a: float
    s: float
    stopped: bool = False

    def __call__(self, n: float) -> float:
        return self.a + self.s * n


class ProbeStopped(Exception):
    """A probe call ran longer than :data:`PROBE_CALL_MAX_S` and was stopped (:func:`deadline`)."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`ProbeStopped` in the block once ``seconds`` of wall time have passed (``SIGALRM``), so that
    no single probe call of a valid but extreme setting (a 25,000-NFE sampler) holds the plan for minutes.

    The signal interrupts Python code between bytecodes (a sampler's loop), not one long C call (a single huge
    matrix product), so a call may overrun by one such operation. Off the main thread or without ``SIGALRM``
    (Windows) the block runs unbounded. An enclosing alarm is not supported (the plan sets none).
    """
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise ProbeStopped(f"over {seconds:g} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _time_call(fn, device) -> float:
    """Seconds of one call; calls under 50 ms are re-timed as the median of 5 after a warm-up.

    Raises:
        ProbeStopped: the first call ran over :data:`PROBE_CALL_MAX_S` (it is stopped there).
    """
    with deadline(PROBE_CALL_MAX_S):
        first = measure(fn, device=device, warmup=0, repeats=1).median_s
    if first >= 0.05:
        return first
    return measure(fn, device=device, warmup=1, repeats=5).median_s


def _line(p0: tuple[int, float], p1: tuple[int, float]) -> Linear:
    (n0, t0), (n1, t1) = p0, p1
    s = max((t1 - t0) / (n1 - n0), 0.0)
    return Linear(max(t1 - s * n1, 0.0), s)


def _fit(call, n_max: int, device) -> Linear:
    """Fit t(n) = a + s n to timed calls at n = 1, 4, 16, ..., timing the real batch ``n_max`` itself
    as soon as the line through the last two points (through the origin after the first) predicts
    that call takes at most :data:`PROBE_CALL_MAX_S`; growth stops early when the next call would
    take longer than that. The line goes through the last two points (exact at ``n_max`` when it was
    timed, an extrapolation otherwise).

    Why time the real batch: on a CPU the cost per sample falls steeply with the batch (t is
    concave), so a line through small batches overestimates large ones. Measured on the MNIST cpu
    profile (2-core CPU): the 100-step DDPM takes 0.41 s per sample at n = 1, 0.19 at 4 and 0.10-0.12
    from 16 to 200; the old fit (stop at the first call over 0.5 s: n = 1 and 4) put the PixelCNN's
    784-NFE sampling stage at 2859 s and the DDPM's three samplers at 943 s, where the run took 428 s and
    195 s.
    """
    try:
        points = [(1, _time_call(lambda: call(1), device))]
    except ProbeStopped:  # one example takes over PROBE_CALL_MAX_S: at least that much per call, whatever n
        return Linear(PROBE_CALL_MAX_S, 0.0, stopped=True)
    while points[-1][0] < n_max:
        n, t = points[-1]
        line = _line(*points[-2:]) if len(points) >= 2 else Linear(0.0, t / n)
        if line(n_max) <= PROBE_CALL_MAX_S:
            k = n_max
        elif 4 * t > PROBE_CALL_MAX_S:
            if len(points) == 1:  # one example costs over a quarter of the limit: its time is all we know, and
                # the real batch costs more (a conditional U-Net's marginal ELBO, K x T passes: 18 s at n = 1,
                # ~84 s at 20), so the constant is a lower bound, said so in the plan
                return Linear(t, 0.0, stopped=True)
            break
        else:
            k = min(n_max, 4 * n)
        try:
            points.append((k, _time_call(lambda k=k: call(k), device)))
        except ProbeStopped:  # the batch ran over: the line through the smaller ones, raised to reach the limit
            line = _through(points)
            return Linear(line.a, max(line.s, (PROBE_CALL_MAX_S - line.a) / k), stopped=True)
    return _through(points)


def _through(points: list[tuple[int, float]]) -> Linear:
    """The line through the last two timed points, or the constant of the only one."""
    return Linear(points[0][1], 0.0) if len(points) == 1 else _line(*points[-2:])


def probe_family(spec: FamilySpec, suite: Suite, device: torch.device) -> dict[str, Any]:
    """Measure one family on this device: a training step, each sampler's t(n), the density call's t(n).

    Returns plain data (cached as JSON): ``train_step_s``, ``samplers`` {name: [a, s]},
    ``density`` [a, s] or ``None``, ``ode`` [a, s] (the ``pf_ode`` sampler's ``log_prob``) or ``None``,
    ``stopped`` (the calls of which one probe call ran over :data:`PROBE_CALL_MAX_S` and was stopped: their
    [a, s] is a lower bound, :func:`_fit`), ``probe_seconds``.
    """
    entry = suite.family(spec.dataset, spec.family)
    ev = suite.eval
    with Stopwatch(device) as clock:
        torch.manual_seed(0)
        model = models.build(entry.family or spec.family, suite.modality, entry.model, spec.shape)
        x = get_modality(suite.modality).synthetic(spec.shape, max(4 * entry.train.batch_size, 512))
        cfg = dataclasses.replace(entry.train, steps=PROBE_TRAIN_STEPS, max_seconds=None)
        y = (torch.randint(model.num_classes, (len(x),), generator=torch.Generator().manual_seed(0))
             if model.conditional else None)  # a conditional model trains on (synthetic) labels
        stats = train(model, x, cfg, device=device, seed=0, progress=False, y_train=y)
        starts = [h["seconds"] for h in stats.history] + [stats.seconds]
        train_step_s = float(np.median(np.diff(starts[1:]))) if len(starts) > 2 else stats.seconds
        samplers, stopped = {}, []
        for name, sampler in spec.sampler_objects.items():
            fit = _fit(lambda n, s=sampler: model.sample(n, generator=torch.Generator(device).manual_seed(0),
                                                         sampler=s),
                       max(ev.throughput_batch, ev.latency_batch), device)
            samplers[name] = [fit.a, fit.s]
            stopped += [f"sampler {name!r}"] if fit.stopped else []
        density = None
        if spec.density_call is not None:
            xd = x[: max(ev.density_batch, 1)].to(device)
            fn = getattr(model, spec.density_call)
            kw = {} if spec.density_call == "energy" else {"generator": torch.Generator(device).manual_seed(0)}
            n_max = min(ev.density_batch, ev.bound_n) if spec.density_call == "log_prob_bounds" else ev.density_batch
            fit = _fit(lambda n: fn(xd[:n], **kw), min(n_max, len(xd)), device)
            density = [fit.a, fit.s]
            stopped += [f"density call {spec.density_call}"] if fit.stopped else []
        ode = None
        found = None if model.conditional else ode_sampler(spec.sampler_objects)
        if found is not None:  # the probability-flow ODE likelihood of the density stage
            sampler = model.resolve_sampler(found[1])
            xo = x[: max(min(ev.density_batch, ev.bound_n), 1)].to(device)
            fit = _fit(lambda n: sampler.log_prob(model, xo[:n], generator=torch.Generator(device).manual_seed(0)),
                       len(xo), device)
            ode = [fit.a, fit.s]
            stopped += ["probability-flow ODE likelihood"] if fit.stopped else []
    return {"train_step_s": train_step_s, "samplers": samplers, "density": density, "ode": ode,
            "stopped": stopped, "probe_seconds": clock.seconds}


def probe_evaluation(device: torch.device, *, inception: bool, classifier: bool | tuple[str, ...]) -> dict[str, Any]:
    """Measure the evaluate stage's rates on this device: matmul GFLOP/s (float32, float64, NumPy float64),
    a 1024 x 1024 symmetric eigendecomposition, and where asked Inception images/s (and its load time)
    and the training step of the classifier of each dataset in ``classifier`` (``True``: MNIST's), as
    ``classifier_step_s`` (MNIST) and ``classifier_step_s_<dataset>``."""
    out: dict[str, Any] = {}
    with Stopwatch(device) as clock:
        for key, dtype in (("gflops32", torch.float32), ("gflops64", torch.float64)):
            a = torch.randn(1024, 1024, dtype=dtype)
            out[key] = 2 * 1024**3 / _time_call(lambda a=a: a @ a, "cpu") / 1e9
        an = np.random.default_rng(0).standard_normal((1024, 1024))
        out["numpy_gflops64"] = 2 * 1024**3 / _time_call(lambda: an @ an, "cpu") / 1e9
        sym = an @ an.T  # LAPACK's first call and one-off stalls vary by 10x: a median after a warm-up
        out["eigh_1024_s"] = measure(lambda: np.linalg.eigh(sym), warmup=1, repeats=3).median_s
        if inception:
            with Stopwatch(device) as load:
                ext = evalimg.inception(device)  # the run's own extractor: loaded once per process
            imgs = IMAGE.synthetic((3, 32, 32), ext.batch_size)
            t = measure(lambda: ext(imgs), device=device, warmup=1, repeats=1).median_s
            out.update(inception_load_s=load.seconds, inception_img_per_s=len(imgs) / t)
        for name in (("mnist",) if classifier is True else classifier or ()):
            out["classifier_step_s" if name == "mnist" else f"classifier_step_s_{name}"] = \
                clf.training_step_seconds(name)
    out["probe_seconds"] = clock.seconds
    return out


PROBE_MAX_AGE_DAYS = 30  # a cached probe older than this is measured again
PROBE_MAX_OTHER_CORES = 0.25  # ... and so is one taken while other processes kept more cores busy


def stale_reason(value: dict[str, Any], now: datetime) -> str | None:
    """Why a cached probe must be measured again, or ``None`` when it can be reused.

    A probe is reused only when it carries the date it was measured (``measured_at``, ISO 8601
    UTC), less than :data:`PROBE_MAX_AGE_DAYS` days ago, and was not taken on a busy machine:
    ``others_cores``, the mean number of cores other processes kept busy meanwhile
    (:class:`bench.core.timing.Contention`), at most :data:`PROBE_MAX_OTHER_CORES`. ``others_cores``
    is ``None`` where it cannot be known (off Linux): such a probe is reused. A probe written
    before these fields existed has no date and is measured again: its rates may carry another
    job's load.
    """
    try:
        age = now - datetime.fromisoformat(str(value["measured_at"]))
    except (KeyError, TypeError, ValueError):
        return "the cached rates carry no date or load (an older cache)"
    others = value.get("others_cores")
    if isinstance(others, (int, float)) and others > PROBE_MAX_OTHER_CORES:
        return f"the cached rates were taken while other processes kept {others:.2f} cores busy"
    if age.days >= PROBE_MAX_AGE_DAYS:
        return f"the cached rates are {age.days} days old"
    return None


class ProbeCache:
    """Probe results as JSON under ``<data root>/cache/plan/``, keyed by what they depend on and the device.

    A cached probe is reused only when :func:`stale_reason` finds nothing: probes taken while
    other processes kept the CPU busy (a 2-core machine shared with another job runs everything
    about half as fast) or older than 30 days are measured again, and the plan says why.
    Probes measured now under load are kept (for the record) but flagged in ``contended``.
    """

    def __init__(self, folder: Path, device: torch.device, progress=None):
        self.folder, self.progress = folder, progress
        info = env.device_info(device)
        self.device_key = {"device": info.get("name"), "type": device.type, "torch": torch.__version__,
                           "cost_model": COST_MODEL}
        self.hits = self.misses = 0
        self.seconds = 0.0
        self.remeasured: dict[str, str] = {}  # label -> why the cached probe was not reused
        self.contended: dict[str, float] = {}  # label -> cores other processes kept busy while it ran
        self._memo: dict[str, dict] = {}

    def get(self, kind: str, key: Any, compute, label: str = "") -> dict:
        """The cached probe for ``key`` on this device, or ``compute()``'s result, cached (``label`` is shown)."""
        # the thread count at the call: the plan probes at 1 thread and at all the cores
        name = f"{kind}_{_json_key({'key': key, **self.device_key, 'threads': torch.get_num_threads()})}.json"
        if name in self._memo:
            return self._memo[name]
        path, label = self.folder / name, label or kind
        value, why = None, None
        try:
            value = json.loads(path.read_text())
            why = stale_reason(value, datetime.now(timezone.utc)) if isinstance(value, dict) else "unreadable"
        except (OSError, ValueError):
            pass
        if value is not None and why is None:
            self.hits += 1
        else:
            if why is not None:
                self.remeasured[label] = why
            if self.progress is not None:
                self.progress(f"measuring {label}" + (f" again ({why})" if why else ""))
            with Contention() as load:
                value = compute()
            self.misses += 1
            self.seconds += value.get("probe_seconds", 0.0)
            value["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            value["others_cores"] = load.others_cores
            value["load_average"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
            if load.others_cores is not None and load.others_cores > PROBE_MAX_OTHER_CORES:
                self.contended[label] = load.others_cores
            try:
                write_json(path, value)
            except OSError:
                pass  # a read-only data root: the plan still works, it is only not cached
        self._memo[name] = value
        return value


# --------------------------------------------------------------------------- estimates
def train_seconds(train: Any, t_step: float) -> float:
    """Training time: ``steps`` steps, or the ``max_seconds`` budget plus the step that crosses it."""
    steps = train.steps if train.max_seconds is None else min(train.steps, train.max_seconds / t_step + 1)
    return steps * t_step


def monitor_seconds(ev: EvalConfig, samplers: dict[str, int], probe: dict[str, Any], exact: bool,
                    draws: bool = True) -> float:
    """The training monitor (2D: :func:`bench.evaluation.vector.training_monitor`; images:
    :func:`bench.evaluation.image.training_monitor`): about ``monitor_points`` of the ~50 history entries plus
    the last step, each drawing ``monitor_n`` samples from the sampler of fewest NFE when ``draws`` (the image
    monitor draws only where the dataset's classifier is used), and, for an exact density, as many
    log-densities (the image monitor's small classifier is not counted)."""
    if not ev.monitor_points or not samplers:
        return 0.0
    checks = len(range(0, 50, max(1, 50 // ev.monitor_points))) + 1
    per = Linear(*probe["samplers"][min(samplers, key=samplers.get)])(ev.monitor_n) if draws else 0.0
    if exact and probe.get("density"):
        per += Linear(*probe["density"])(ev.monitor_n)
    return checks * per


def sample_seconds(ev: EvalConfig, nfe: int, t: Linear, sweep: bool = False) -> float:
    """One sampler's sample stage: the throughput timing's calls (plus the untimed ones that fill
    ``n_samples``) at ``t(throughput_batch)`` and the latency timing's at ``t(latency_batch)``; with
    ``sweep`` (the cell's default sampler) also the ``batch_sweep`` timings, warm-up + at most 3 calls per
    batch (:func:`bench.execution.cell.sample_stage`)."""
    reps = ev.sampler_repeats(nfe)
    calls = ev.timing_warmup + reps
    extra = max(0, math.ceil((ev.n_samples - calls * ev.throughput_batch) / ev.throughput_batch))
    seconds = (calls + extra) * t(ev.throughput_batch) + calls * t(ev.latency_batch)
    if sweep:
        seconds += (ev.timing_warmup + ev.sweep_repeats(nfe)) * sum(t(b) for b in ev.batch_sweep)
    return seconds


def ode_seconds(ev: EvalConfig, t: Linear, closed_form: bool) -> float:
    """The probability-flow ODE likelihood (:func:`bench.evaluation.ode.ode_likelihood`): ``bound_n`` test
    points in chunks of ``density_batch``, and in 2D its quadrature grid of n² points, n = ``quadrature_grid //
    4`` (even, at least 8), in chunks of ``8 * density_batch``, at the probed ``log_prob`` cost ``t``."""
    seconds = math.ceil(ev.bound_n / max(ev.density_batch, 1)) * t.a + ev.bound_n * t.s
    if closed_form:
        n = quadrature_side(ev) ** 2
        seconds += math.ceil(n / (8 * max(ev.density_batch, 1))) * t.a + n * t.s
    return seconds


def _density_seconds(suite: Suite, spec: FamilySpec, lay: datasets.Layout, t: Linear | None) -> float:
    if t is None:
        return 0.0
    ev = suite.eval
    n_test = min(lay.n_test, ev.density_n or lay.n_test)
    b = ev.density_batch
    if spec.density_call == "log_prob_bounds":
        n_eval, b_time = min(ev.bound_n, n_test), min(b, ev.bound_n)
    else:
        n_eval, b_time = n_test, b
    seconds = math.ceil(n_eval / b) * t.a + n_eval * t.s
    seconds += (ev.timing_warmup + ev.sampler_repeats(spec.density_nfe)) * t(b_time)
    if get_modality(suite.modality).closed_form_density:  # vector.model_extras: quadrature, normalization, grid
        def points(n: int, chunk: int) -> float:
            return math.ceil(n / chunk) * t.a + n * t.s

        q, g = ev.quadrature_grid, ev.density_grid
        if spec.density_call == "log_prob":
            seconds += points((q // 2) ** 2 + (q // 4) ** 2, 65_536) + points(g * g, ev.throughput_batch)
        elif spec.density_call == "log_prob_bounds":
            seconds += points((g // 2) ** 2 + (g // 4) ** 2, 65_536)
        else:
            seconds += points(q * q + (q // 2) ** 2, 65_536) + points(lay.n_test, ev.throughput_batch)
            seconds += points(g * g, ev.throughput_batch)
    return seconds


def _image_metric_seconds(ev: EvalConfig, lay: datasets.Layout, rates: dict, n_ref: int) -> float:
    """Evaluate-stage seconds of one image sampler's N samples (features, FID, KID, PRDC, novelty)."""
    n, F = ev.n_samples, FEATURE_DIM
    g32, g64, np64 = rates["gflops32"] * 1e9, rates["gflops64"] * 1e9, rates["numpy_gflops64"] * 1e9
    eig = lambda m: rates["eigh_1024_s"] * (m / 1024) ** 3  # noqa: E731
    seconds = n / rates["inception_img_per_s"]
    seconds += 2 * n * lay.n_train * lay.dims / g32  # novelty: distances to every training image
    for i, _ in enumerate(ev.fid_reference):
        seconds += (2 * n * F * F + 2 * min(n, F) ** 2 * F) / g64 + eig(min(n, F))  # FID against the reference
        m = ev.kid_subset_size_for(n_ref, n)
        seconds += ev.kid_subsets * 3 * 2 * m * m * F / np64  # KID: three kernel matrices per subset
        if i == 0:
            m = min(n, n_ref)
            seconds += 4 * 2 * m * m * F / g64  # PRDC: k-NN radii of both sets and the cross distances
    return seconds


@dataclass
class CellPlan:
    """One cell of the plan: what it runs, its estimate, the bytes it writes, and where and when the schedule
    runs it (``slot``: worker, start, end; ``None`` for a cell done before)."""

    cell: str
    dataset: str
    family: str
    seed: int
    spec: FamilySpec
    estimate: CellEstimate
    disk_bytes: int
    done: bool = False
    slot: Slot | None = None


@dataclass
class Plan:
    """The plan of a run (see the module docstring)."""

    suite: str
    profile: str
    profile_reason: str
    device: str
    cells: list[CellPlan]
    cache_bytes: int = 0
    cache_items: list[str] = field(default_factory=list)
    one_off: dict[str, float] = field(default_factory=dict)
    probe_seconds: float = 0.0
    probes_run: int = 0
    probes_cached: int = 0
    preflight_seconds: float = 0.0
    results_dir: str = ""
    data_dir: str = ""
    probe_failures: dict[str, str] = field(default_factory=dict)
    probe_lower_bounds: dict[str, str] = field(default_factory=dict)  # "dataset/family" -> the stopped calls
    probes_remeasured: dict[str, str] = field(default_factory=dict)
    probes_contended: dict[str, float] = field(default_factory=dict)
    cores: int = 1
    choice: Choice | None = None
    threads_probed: list[int] = field(default_factory=list)
    estimated: bool = True  # False: made with ``--no-estimate`` (no probes, no times; :func:`unestimated_plan`)

    @property
    def jobs(self) -> int:
        """Cells that run at once."""
        return self.choice.jobs if self.choice is not None else 1

    @property
    def threads(self) -> int | None:
        """torch threads per cell (``None``: a plan made without a choice, e.g. by hand in a test)."""
        return self.choice.threads if self.choice is not None else None

    @property
    def total_seconds(self) -> float:
        """The cells' estimates summed (cell-seconds; the wall time with one job)."""
        return sum(c.estimate.est_total_seconds or 0.0 for c in self.cells)

    @property
    def wall_seconds(self) -> float:
        """The estimated wall time of the cells: the schedule's makespan on :attr:`jobs` workers."""
        ends = [c.slot.end for c in self.cells if c.slot is not None]
        return max(ends) if ends else self.total_seconds

    def order(self) -> list[str]:
        """Pending cell ids in the order the launcher hands them out (the schedule's start times)."""
        if not self.estimated:  # no schedule: the order of ``cells`` (:func:`unestimated_plan`)
            return [c.cell for c in self.cells if not c.done]
        timed = [c for c in self.cells if c.slot is not None]
        return [c.cell for c in sorted(timed, key=lambda c: (c.slot.start, c.slot.worker))]

    @property
    def results_bytes(self) -> int:
        return sum(c.disk_bytes for c in self.cells if not c.done)

    def estimate_for(self, cell: str) -> CellEstimate | None:
        return next((c.estimate for c in self.cells if c.cell == cell), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``plan.json``."""
        return {"cost_model": COST_MODEL, "suite": self.suite, "profile": self.profile,
                "profile_reason": self.profile_reason, "device": self.device, "estimated": self.estimated,
                "total_seconds": self.total_seconds if self.estimated else None,
                "wall_seconds": self.wall_seconds if self.estimated else None, "cores": self.cores,
                "jobs": self.jobs, "threads": self.threads, "threads_probed": self.threads_probed,
                "candidates": self.choice.candidates if self.choice else [],
                "given": list(self.choice.given) if self.choice else [], "results_bytes": self.results_bytes,
                "cache_bytes": self.cache_bytes, "cache_items": self.cache_items, "one_off": self.one_off,
                "probe_seconds": self.probe_seconds, "probes_run": self.probes_run,
                "probes_cached": self.probes_cached, "preflight_seconds": self.preflight_seconds,
                "probe_failures": self.probe_failures, "probe_lower_bounds": self.probe_lower_bounds,
                "probes_remeasured": self.probes_remeasured,
                "probes_contended": self.probes_contended,
                "cells": [{"cell": c.cell, "done": c.done, "params": c.spec.params, "samplers": c.spec.samplers,
                           "disk_bytes": c.disk_bytes, **dataclasses.asdict(c.estimate),
                           **({"worker": c.slot.worker, "est_start_seconds": c.slot.start,
                               "est_end_seconds": c.slot.end} if c.slot else {})} for c in self.cells]}

    def lines(self) -> list[str]:
        """The plan as printed before the first cell (and by ``--dry-run``)."""
        out = [f"genbench: plan of suite {self.suite!r}, profile {self.profile!r} ({self.profile_reason}), "
               f"{len(self.cells)} cells on {self.device}"]
        if not self.estimated:
            pending = sum(1 for c in self.cells if not c.done)
            out.append(f"  {pending} cell{'s' if pending != 1 else ''} to run, {len(self.cells) - pending} done "
                       "before; no time estimate (--no-estimate: the cost model's probes were skipped)")
            if self.choice is not None:
                out.append("  " + self.parallelism_line())
            return out + [self._disk_line()]
        many = self.jobs > 1  # then each cell's worker and start in the schedule
        head = f"  {'cell':<34}{'train':>9}{'sample':>9}{'density':>9}{'evaluate':>9}{'one-off':>9}{'total':>10}"
        out.append(head + (f"{'worker':>8}{'start':>9}" if many else ""))
        for c in self.cells:
            e = c.estimate
            if c.done:
                out.append(f"  {c.cell:<34}{'done before, skipped':>55}")
                continue
            parts = [e.est_train_seconds, e.est_sample_seconds, e.est_density_seconds, e.est_evaluate_seconds,
                     e.est_one_off_seconds]
            out.append(f"  {c.cell:<34}" + "".join(f"{duration(v):>9}" for v in parts)
                       + f"{duration(e.est_total_seconds):>10}"
                       + (f"{c.slot.worker:>8}{duration(c.slot.start):>9}" if many and c.slot else ""))
        unknown = (" + cells without an estimate" if self.probe_failures else "") + (
            " (at least: some probe calls were stopped)" if self.probe_lower_bounds else "")
        if self.jobs > 1:
            out.append(f"  {'sum over cells':<79}{duration(self.total_seconds):>10}")
            out.append(f"  {f'total (estimated wall time, {self.jobs} cells at a time)':<79}"
                       f"{duration(self.wall_seconds):>10}{unknown}")
        else:
            out.append(f"  {'total (estimated wall time)':<79}{duration(self.wall_seconds):>10}{unknown}")
        if self.choice is not None:
            out.append("  " + self.parallelism_line())
        for what, why in self.probe_failures.items():
            out.append(f"  no estimate for {what}: its probe failed ({why}); the cell will run and record the error")
        for what, calls in self.probe_lower_bounds.items():
            out.append(f"  lower bound for {what}: a probe call of its {calls} took over {PROBE_CALL_MAX_S:g} s and "
                       f"was stopped; its estimate counts at least {PROBE_CALL_MAX_S:g} s for a call that large")
        if self.one_off:
            out.append("  one-off builds and loads included: "
                       + ", ".join(f"{k} {duration(v)}" for k, v in self.one_off.items()))
        out.append(self._disk_line())
        out.append(f"  cost model {COST_MODEL}: probes {self.probe_seconds:.1f} s ({self.probes_run} measured, "
                   f"{self.probes_cached} cached), preflight {self.preflight_seconds:.1f} s; the report stage is "
                   "not estimated")
        if self.probes_remeasured:
            out.append(f"  measured again: {len(self.probes_remeasured)} cached probe(s), e.g. "
                       f"{next(iter(self.probes_remeasured))}: {next(iter(self.probes_remeasured.values()))}")
        if self.probes_contended:
            worst = max(self.probes_contended.values())
            n = len(self.probes_contended)
            out.append(f"  warning: other processes kept up to {worst:.2f} cores busy during {n} "
                       "probe(s); the estimate assumes that load goes on, and those probes will be measured again")
        return out


    def _disk_line(self) -> str:
        return (f"  disk: {size(self.results_bytes)} of results under {self.results_dir}"
                + (f", {size(self.cache_bytes)} under {self.data_dir} ({', '.join(self.cache_items)})"
                   if self.cache_bytes else ""))

    def parallelism_line(self) -> str:
        """One line: the chosen split, why, and the others' estimates."""
        c = self.choice
        split = (f"{c.jobs} cell{'s' if c.jobs > 1 else ''} at a time x {c.threads} torch "
                 f"thread{'s' if c.threads > 1 else ''} each")
        if len(c.candidates) == 1:
            why = f"as given ({' and '.join(c.given)})" if c.given else "the only split"
        else:
            others = ", ".join(f"{o['jobs']} x {o['threads']}: {duration(o['wall_seconds'])}" for o in c.candidates[1:])
            fixed = f" with {' and '.join(c.given)} as given" if c.given else ""
            why = f"the shortest estimate{fixed} (others: {others})"
        probed = "/".join(str(t) for t in self.threads_probed)
        return (f"parallelism: {split} on {self.cores} cores; {why}"
                + (f"; probes at {probed} thread(s)" if self.estimated else ""))


def duration(seconds: float | None) -> str:
    """``"1h02m"``, ``"3m05s"``, ``"12.3s"``, or ``"–"``."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    if seconds < 100 * 3600:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{seconds / 86400:.0f} days"


def size(n: float) -> str:
    """Bytes as ``"12.3 MB"`` (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _cell_disk_bytes(suite: Suite, spec: FamilySpec, lay: datasets.Layout, stages: tuple[str, ...]) -> int:
    ev = suite.eval
    total = 4 * spec.params + CKPT_OVERHEAD_BYTES + JSON_BYTES
    if "sample" in stages:
        total += len(spec.samplers) * ev.n_samples * lay.dims * lay.itemsize
        if get_modality(suite.modality).closed_form_density and spec.density_call is not None:
            total += 4 * ev.density_grid**2  # the density grid of the figures
    if "evaluate" in stages:
        total += get_modality(suite.modality).evaluate_disk_bytes(ev, len(spec.samplers))
    return total


def _image_one_offs(suite: Suite, names: list[str], loaded: dict, rates: dict,
                    device: torch.device) -> tuple[list[OneOff], int, list[str]]:
    """What an image run still has to build or load, as :class:`~bench.execution.parallel.OneOff` items (the
    dataset or "*", label, seconds, whether every worker process pays it), with the bytes those builds write
    and their names."""
    ev = suite.eval
    pending: list[OneOff] = [OneOff("*", INCEPTION_LOAD, rates["inception_load_s"], per_process=True,
                                    paid=evalimg.inception_loaded(device))]  # the probe, when it ran, loaded it
    cache_bytes, cache_items = 0, []
    cdir = evalimg.cache_dir(suite.data)
    for name in names:
        ds, lay = loaded[name], datasets.layout(name, suite.data)
        for split in ev.fid_reference:
            # FID's reference side: the covariance's square root, an F x F eigendecomposition per split and
            # process (bench.evaluation.metrics.fid.FIDReference), whether or not the statistics are cached
            pending.append(OneOff(name, f"{name} {split} FID reference square root",
                                  rates["eigh_1024_s"] * (FEATURE_DIM / 1024) ** 3
                                  + 2 * FEATURE_DIM**3 / (rates["numpy_gflops64"] * 1e9), per_process=True))
            n_ref, hit = evalimg.reference_cached(ds, split, ev, cdir, device)
            if not hit:
                pending.append(OneOff(name, f"{name} {split} reference statistics (N = {n_ref})",
                                      n_ref / rates["inception_img_per_s"], per_process=False))
                cache_bytes += 4 * n_ref * FEATURE_DIM + 8 * FEATURE_DIM * (FEATURE_DIM + 1)
                cache_items.append(f"{split} reference statistics")
        n_nov = evalimg.novelty_test_n(ds, ev)
        if not evalimg.novelty_cache_path(ds, cdir, n_nov).exists():
            pending.append(OneOff(name, f"{name} novelty distances of {n_nov} test images",
                                  2 * n_nov * lay.n_train * lay.dims / (rates["gflops32"] * 1e9), per_process=False))
            cache_bytes += 8 * n_nov
        if clf.available(name) and ev.fd_classifier and not clf.cache_path(ds, cdir).exists():
            steps = clf.training_steps(name, lay.n_train)
            rate = rates.get("classifier_step_s" if name == "mnist" else f"classifier_step_s_{name}", 0.0)
            pending.append(OneOff(name, f"{name} classifier ({clf.SPECS[name].epochs} epochs)", steps * rate,
                                  per_process=False))
            cache_bytes += 2 * 1024**2
            cache_items.append(f"{name} classifier")
    return pending, cache_bytes, cache_items


@dataclass
class _Estimates:
    """The cells' estimates at one thread count, before the schedule charges the one-off costs."""

    cells: list[CellPlan]
    one_offs: list[OneOff]
    failed: dict[str, str]
    cache_bytes: int = 0
    cache_items: list[str] = field(default_factory=list)
    stopped: dict[str, str] = field(default_factory=dict)  # "dataset/family" -> calls its probe stopped


def _estimate_cells(suite: Suite, specs: dict[tuple[str, str], FamilySpec], loaded: dict[str, datasets.Dataset],
                    device: torch.device, stages: tuple[str, ...], done: set[str], cache: ProbeCache) -> _Estimates:
    """Every cell's train, sample, density and evaluate seconds on this process's current thread count (the
    probes run, or are read from the cache, at that count), and the one-off costs."""
    ev = suite.eval
    run_model = bool({"train", "sample"} & set(stages))
    evaluate = "evaluate" in stages
    names = list(dict.fromkeys(d for d, _ in specs))
    images = get_modality(suite.modality).inception  # the evaluation's cost follows Inception's measured rate
    rates = {}
    if evaluate and images and any(c not in done for c in _all_cells(suite, specs)):
        want_classifier = tuple(n for n in names if clf.available(n)) if ev.fd_classifier else ()
        rates = cache.get("evaluate", {"inception": True, "classifier": list(want_classifier)},
                          lambda: probe_evaluation(device, inception=True, classifier=want_classifier),
                          "the evaluation (matmul rates, Inception images/s)")
    one_offs, cache_bytes, cache_items = (_image_one_offs(suite, names, loaded, rates, device)
                                          if evaluate and images and rates else ([], 0, []))
    files, items = _dataset_files(suite, names)
    cache_bytes, cache_items = cache_bytes + files, cache_items + items
    cells = []
    failed: dict[str, str] = {}  # probes that raised: no estimate for their cells
    stopped: dict[str, str] = {}  # probes with a call stopped at PROBE_CALL_MAX_S: lower bounds
    for (name, family), spec in specs.items():
        lay = datasets.layout(name, suite.data)
        entry = suite.family(name, family)
        probe = None
        if run_model and any(cell_id(name, family, s) not in done for s in suite.seeds):
            try:
                probe = cache.get("family", {"config": spec.config_key, "eval": dataclasses.asdict(ev)},
                                  lambda spec=spec: probe_family(spec, suite, device),
                                  f"{name}/{family} at {torch.get_num_threads()} thread(s)")
            except Exception as e:  # the family's own code failed on synthetic data: its cell will say why
                probe, failed[f"{name}/{family}"] = None, f"{type(e).__name__}: {e}".splitlines()[0]
            if probe is not None and probe.get("stopped"):
                stopped[f"{name}/{family}"] = ", ".join(probe["stopped"])
        per_2d = None
        if evaluate and not images:
            per_2d = cache.get("metric2d", {"dataset": name, "data": dataclasses.asdict(suite.data),
                                            "eval": dataclasses.asdict(ev)},
                               lambda ds=loaded[name]: _metric2d_probe(suite, ds),
                               f"{name} sample metrics at {torch.get_num_threads()} thread(s)")["seconds"]
            label = f"{name} reference metrics and T30 rows"  # once per process (bench.evaluation.vector)
            if not any(o.label == label for o in one_offs):
                rows = cache.get("reference2d", {"dataset": name, "data": dataclasses.asdict(suite.data),
                                                 "eval": dataclasses.asdict(ev)},
                                 lambda ds=loaded[name]: _reference_rows_seconds(suite, ds),
                                 f"{name} T30 reference rows at {torch.get_num_threads()} thread(s)")
                # the rows are on disk once the probe (or an earlier run) computed them: every worker reads them;
                # the reference sample metrics once a run stored them (a conditional cell's are keyed by its
                # labels too: charged as stored once the unconditional ones are, at most one per_2d too little)
                where = evalimg.cache_dir(suite.data)
                stored = eval2d.reference_cache_path(loaded[name], ev, where).exists()
                metrics_stored = eval2d.reference_metrics_path(loaded[name], ev, None, where).exists()
                one_offs.append(OneOff(name, label, (0.0 if metrics_stored else per_2d)
                                       + (0.0 if stored else rows["seconds"]), per_process=True))
        for seed in suite.seeds:
            cid = cell_id(name, family, seed)
            disk = _cell_disk_bytes(suite, spec, lay, stages)
            if cid in done:
                cells.append(CellPlan(cid, name, family, seed, spec, CellEstimate(cost_model=COST_MODEL,
                                                                                 est_total_seconds=0.0), 0, True))
                continue
            if f"{name}/{family}" in failed:
                cells.append(CellPlan(cid, name, family, seed, spec, CellEstimate(cost_model=COST_MODEL), disk))
                continue
            est = dict(train=0.0, sample=0.0, density=0.0, evaluate=0.0)
            if probe is not None:
                est["train"] = train_seconds(entry.train, probe["train_step_s"])
                if get_modality(suite.modality).closed_form_density:  # the 2D training monitor
                    est["train"] += monitor_seconds(ev, spec.samplers, probe, spec.density_call == "log_prob")
                else:  # the image monitor: samples in the classifier's features, bits/dim of exact densities
                    est["train"] += monitor_seconds(ev, spec.samplers, probe, spec.density_call == "log_prob",
                                                    draws=ev.fd_classifier and clf.available(name))
                if "sample" in stages:
                    est["sample"] = sum(sample_seconds(ev, spec.samplers[k], Linear(*probe["samplers"][k]),
                                                       sweep=i == 0)
                                        for i, k in enumerate(spec.samplers))
                    dens = Linear(*probe["density"]) if probe["density"] else None
                    est["density"] = _density_seconds(suite, spec, lay, dens)
                    if probe.get("ode"):
                        est["density"] += ode_seconds(ev, Linear(*probe["ode"]),
                                                      get_modality(suite.modality).closed_form_density)
            if evaluate:
                if images and rates:
                    n_ref = min(lay.n_test if ev.fid_reference[0] == "test" else lay.n_train,
                                ev.fid_reference_n or 10**12)
                    est["evaluate"] = len(spec.samplers) * _image_metric_seconds(ev, lay, rates, n_ref)
                elif per_2d is not None:
                    est["evaluate"] = len(spec.samplers) * per_2d
            estimate = CellEstimate(cost_model=COST_MODEL, est_train_seconds=est["train"],
                                    est_sample_seconds=est["sample"], est_density_seconds=est["density"],
                                    est_evaluate_seconds=est["evaluate"], est_one_off_seconds=0.0,
                                    est_total_seconds=sum(est.values()), one_off={})
            cells.append(CellPlan(cid, name, family, seed, spec, estimate, disk))
    return _Estimates(cells, one_offs, failed, cache_bytes, cache_items, stopped)


_PARTS = ("est_train_seconds", "est_sample_seconds", "est_density_seconds", "est_evaluate_seconds",
          "est_total_seconds")


def _interpolate(one: _Estimates, all_: _Estimates, cores: int, t: int) -> _Estimates:
    """Estimates at ``t`` threads from those at 1 and at ``cores`` threads (:func:`parallel.at_threads`, per part)."""
    cells = []
    for a, b in zip(one.cells, all_.cells):
        if a.done or a.estimate.est_total_seconds is None:
            cells.append(a)
            continue
        parts = {k: at_threads(getattr(a.estimate, k) or 0.0, getattr(b.estimate, k) or 0.0, cores, t)
                 for k in _PARTS}
        cells.append(dataclasses.replace(a, estimate=dataclasses.replace(a.estimate, **parts)))
    offs = [dataclasses.replace(o, seconds=at_threads(o.seconds, p.seconds, cores, t))
            for o, p in zip(one.one_offs, all_.one_offs)]
    return _Estimates(cells, offs, one.failed, one.cache_bytes, one.cache_items, one.stopped)


def _tasks(est: _Estimates) -> list[Task]:
    return [Task(c.cell, c.dataset, c.estimate.est_total_seconds, c.estimate.est_evaluate_seconds or 0.0)
            for c in est.cells if not c.done]


def make_plan(suite: Suite, specs: dict[tuple[str, str], FamilySpec], loaded: dict[str, datasets.Dataset],
              device: torch.device, *, stages: tuple[str, ...], done: set[str] = frozenset(),
              results_dir: Path | str = "", progress=None, jobs: int | None = None, threads: int | None = None,
              cores: int | None = None, max_jobs: int | None = None) -> Plan:
    """Probe (or read the cached probes of) every family and the evaluation, estimate every cell, and choose
    how many cells run at once on how many threads (:mod:`bench.execution.parallel`).

    On a CPU every probe runs at 1 thread and at all ``cores`` threads (unless ``threads`` fixes the count),
    and each (jobs, threads) split with jobs x threads <= cores is scheduled on paper; the one with the
    shortest estimated wall time is chosen. On CUDA, ``jobs`` (default 1) cells share the GPU, at this
    process's thread count.

    Args:
        specs: from :func:`describe`.
        loaded: the datasets, loaded by the preflight (fingerprints tell what is cached).
        stages: the stages that will run.
        done: cell ids whose record already says ok (cost nothing).
        progress: ``callable(str)`` told what is being probed, or ``None``.
        jobs, threads: fixed by the command line (``--jobs``, ``--threads``), else chosen here.
        cores: the cores to share (default :func:`parallel.usable_cores`).
        max_jobs: at most this many jobs when ``jobs`` is not given (memory, the modality's default).
    """
    droot = data_root(suite.data.root)
    cache = ProbeCache(droot / "cache" / "plan", device, progress)
    cores = cores or usable_cores()
    cpu = device.type == "cpu"
    counts = [threads] if threads else sorted({1, cores}) if cpu else [torch.get_num_threads()]
    by_threads: dict[int, _Estimates] = {}
    for t in counts:
        with thread_limit(t):
            by_threads[t] = _estimate_cells(suite, specs, loaded, device, stages, done, cache)
    first = by_threads[counts[0]]
    n_pending = sum(1 for c in first.cells if not c.done)
    options = (splits(cores, jobs=jobs, threads=threads, max_jobs=max_jobs, cells=n_pending) if cpu
               else [(jobs or 1, counts[0])])
    walls: dict[tuple[int, int], float] = {}
    for j, t in options:
        est = by_threads.get(t) or _interpolate(by_threads[1], by_threads[cores], cores, t)
        walls[(j, t)] = simulate(_tasks(est), j, est.one_offs)[1]
    given = tuple(k for k, v in (("--jobs", jobs), ("--threads", threads)) if v)
    choice = choose(walls, given)
    est = by_threads.get(choice.threads) or _interpolate(by_threads[1], by_threads[cores], cores, choice.threads)
    slots, _ = simulate(_tasks(est), choice.jobs, est.one_offs)
    cells, one_off = [], {}
    for c in est.cells:
        slot = slots.get(c.cell)
        if slot is not None and c.estimate.est_total_seconds is None:  # its probe failed: no estimate
            c = dataclasses.replace(c, slot=slot)
        elif slot is not None:
            e = c.estimate
            c = dataclasses.replace(c, estimate=dataclasses.replace(
                e, est_one_off_seconds=sum(slot.one_off.values()), one_off=dict(slot.one_off),
                est_total_seconds=(e.est_total_seconds or 0.0) + sum(slot.one_off.values())), slot=slot)
            for k, v in slot.one_off.items():
                one_off[k] = one_off.get(k, 0.0) + v
        cells.append(c)
    return Plan(suite.name, suite.profile or "default", suite.profile_reason, str(device), cells,
                cache_bytes=first.cache_bytes, cache_items=first.cache_items, one_off=one_off,
                probe_seconds=cache.seconds, probes_run=cache.misses, probes_cached=cache.hits,
                results_dir=str(results_dir), data_dir=str(droot), probe_failures=first.failed,
                probe_lower_bounds={k: v for e in by_threads.values() for k, v in e.stopped.items()},
                probes_remeasured=cache.remeasured, probes_contended=cache.contended, cores=cores, choice=choice,
                threads_probed=counts)


def unestimated_plan(suite: Suite, specs: dict[tuple[str, str], FamilySpec], device: torch.device, *,
                     stages: tuple[str, ...], jobs: int, threads: int, done: set[str] = frozenset(),
                     results_dir: Path | str = "", cores: int | None = None) -> Plan:
    """The plan without the cost model (``--no-estimate``): the cells, the disk they need and the given split,
    no probe run or read and no time estimated (every :class:`~bench.store.schema.CellEstimate` time is
    ``None``). For runs whose parallelism is fixed and whose wall time nobody reads before it starts, e.g. the
    CI gate (``--jobs 2 --threads 1``), where the probes of a fresh data root cost ~10 s of the ~70 s run (2D ci
    profile, 2 cores).

    Order: the suite's for one job; for several, the datasets taken in turn (:func:`interleave_datasets`), so
    that the first cell of each dataset, which builds its disk caches (the 2D reference rows), is not run
    beside a second cell of the same dataset building the same cache.

    Disk: the results and the dataset files still to prepare; the image caches the cost model would list (reference
    statistics, classifier) are not counted.
    """
    cells = []
    cache_bytes, cache_items = _dataset_files(suite, list(dict.fromkeys(d for d, _ in specs)))
    for (name, family), spec in specs.items():
        lay = datasets.layout(name, suite.data)
        for seed in suite.seeds:
            cid = cell_id(name, family, seed)
            cells.append(CellPlan(cid, name, family, seed, spec, CellEstimate(cost_model=COST_MODEL),
                                  0 if cid in done else _cell_disk_bytes(suite, spec, lay, stages), cid in done))
    if jobs > 1:
        cells = interleave_datasets(cells)
    given = ("--jobs", "--threads")
    choice = Choice(jobs, threads, None, [{"jobs": jobs, "threads": threads, "wall_seconds": None}], given)
    return Plan(suite.name, suite.profile or "default", suite.profile_reason, str(device), cells,
                cache_bytes=cache_bytes, cache_items=cache_items, results_dir=str(results_dir),
                data_dir=str(data_root(suite.data.root)), cores=cores or usable_cores(), choice=choice,
                estimated=False)


def interleave_datasets(cells: list[CellPlan]) -> list[CellPlan]:
    """``cells`` with their datasets taken in turn, each dataset's cells in their given order.

    Example: a1 a2 a3 b1 b2 -> a1 b1 a2 b2 a3.
    """
    by: dict[str, list[CellPlan]] = {}
    for c in cells:
        by.setdefault(c.dataset, []).append(c)
    queues = list(by.values())
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


def _dataset_files(suite: Suite, names: list[str]) -> tuple[int, list[str]]:
    """The bytes the first load of each dataset of ``names`` still has to write under the data root, and what."""
    lays = {name: datasets.layout(name, suite.data) for name in names}
    todo = [name for name, lay in lays.items() if not lay.prepared]
    return sum(lays[n].prepare_bytes for n in todo), [f"{n} files" for n in todo]


def _all_cells(suite: Suite, specs) -> list[str]:
    return [cell_id(d, f, s) for d, f in specs for s in suite.seeds]


def _metric2d_seconds(suite: Suite, ds: datasets.Dataset) -> float:
    """Seconds of :func:`bench.evaluation.vector.sample_metrics` at ``n_samples``: timed at n <= 1000, scaled as n²."""
    ev = suite.eval
    n = min(ev.n_samples, 1000)
    x, _ = ds.true.sample(n, 0)
    small = dataclasses.replace(ev, n_samples=n)
    t = measure(lambda: eval2d.sample_metrics(ds, x, small), warmup=0, repeats=1).median_s
    return t * (ev.n_samples / n) ** 2


def _metric2d_probe(suite: Suite, ds: datasets.Dataset) -> dict[str, float]:
    """:func:`_metric2d_seconds` as a probe (cached like the others): ``seconds`` and ``probe_seconds``."""
    with Stopwatch("cpu") as clock:
        seconds = _metric2d_seconds(suite, ds)
    return {"seconds": seconds, "probe_seconds": clock.seconds}


def _reference_rows_seconds(suite: Suite, ds: datasets.Dataset) -> dict[str, float]:
    """Seconds of claim T30's reference rows on ``ds`` (:func:`bench.evaluation.vector.compute_reference_estimates`:
    a Gaussian and a KDE fitted, scored on the test split and sampled, at one thread), timed once (the probe
    cache keeps it); the rows computed are written to the data root's cache
    (:func:`bench.evaluation.vector.store_reference_estimates`), where the run's workers read them."""
    _, seconds = eval2d.store_reference_estimates(ds, suite.eval, evalimg.cache_dir(suite.data))
    return {"seconds": seconds, "probe_seconds": seconds}


def free_bytes(path: Path) -> tuple[Path, int, int]:
    """(the nearest existing ancestor of ``path``, its free bytes, its filesystem id)."""
    p = Path(path).resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p, shutil.disk_usage(p).free, p.stat().st_dev


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
