"""Evaluation of a 2D cell against the closed-form data density.

Returns the parts of the record it computes (the runner assembles them):

* KL(p_data || p_model) = NLL - H(p_data) with its standard error (exact models);
  an upper bound on it for bound models; for energies, log Z by quadrature first;
* per sampler: MMD^2 (RBF, median bandwidth), the multi-scale MMD^2 (KID's subset estimator with RBF
  kernels from the mode scale to the data scale, :mod:`bench.evaluation.metrics.mmd_multiscale`), k-NN
  precision/recall, the high-quality fraction and mode coverage (3 sigma gate); and the one yardstick every
  family is judged by: **fidelity**, the mean -log p_data of the samples under the true
  mixture (nats; real samples give H(p_data)), and **coverage**, the mode KL of the samples'
  most-probable-component histogram against the mixture weights with the modes hit
  (:mod:`bench.evaluation.metrics.modes`), each beside real-vs-real values of the same N;
  for a class-conditional cell also the class-conditional metrics (:func:`conditional_metrics`: label
  agreement under the true mixture's Bayes classifier, class-conditional precision/recall/density/coverage
  and MMD², per-class diversity) and the tilted-target measure of guidance (:mod:`bench.evaluation.metrics.tilted`);
* the probability-flow ODE's KL where the density stage measured its NLL (diffusion, score);
* the reference rows of claim T30: one Gaussian and a KDE fitted to the training split
  (:mod:`bench.evaluation.simple_estimators`), with their NLL, KL and sample metrics;
* a density grid for the figures (``density_grid.npz``);
* the measured normalization: log of the integral of p(x) (exact), exp(bound) (bounds)
  or exp(-E) (energies) over a box holding the data, by the midpoint rule. Exact
  densities give 0 (integral 1), bounds give < 0, energies give log Z.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.config.suite import EvalConfig
from bench.core.env import thread_limit
from bench.core.files import StorageError, read_json_dict, save_npz, write_json
from bench.core.timing import Stopwatch
from bench.evaluation import simple_estimators as simple
from bench.evaluation.metrics import conditional as cond
from bench.evaluation.metrics import modes
from bench.evaluation.metrics.mmd import mmd2_rbf
from bench.evaluation.metrics.mmd_multiscale import bandwidths, mmd2_multiscale
from bench.evaluation.metrics.prdc import prdc
from bench.evaluation.metrics.tilted import tilted_measure
from bench.evaluation.metrics.toy2d import sample_quality
from bench.evaluation.quadrature import grid, log_partition
from bench.store.runs import load_sample_labels, load_samples
from bench.store.schema import (
    CellRecord,
    DensityResult,
    ReferenceEstimate,
    SamplerResult,
    SchemaError,
    part_from_dict,
    part_to_dict,
    reference_from_dict,
    reference_to_dict,
)
from models.samplers import Sampler

REFERENCE_SEED = 4  # a fresh draw from the true mixture, for the metrics' noise floor


def figure_box(ds) -> tuple[float, float]:
    """Square box [lo, hi] around the test data, used for figures and quadrature of unbounded energies."""
    m = float(ds.test.abs().max()) * 1.15
    return -m, m


def nll_and_modes(mix, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(-log p_data(x) in nats (N,), the most probable component of each point (N,) int) for finite ``x`` (N, 2)."""
    from scipy.special import logsumexp

    x = np.asarray(x, dtype=np.float64)
    nll, labels = [], []
    for chunk in np.array_split(x, max(1, len(x) // 100_000)):  # (chunk, K, 2) blocks of at most ~40 MB
        lp = mix.component_log_prob(chunk)
        nll.append(-logsumexp(lp, axis=1))
        labels.append(lp.argmax(1))
    return np.concatenate(nll), np.concatenate(labels)


def fidelity_coverage(mix, x: np.ndarray, tolerance: float) -> dict[str, Any]:
    """Fidelity and coverage of finite points ``x`` (N, 2) under the mixture ``mix``: ``sample_nll_data_nats``
    (mean -log p_data) with its standard error (std / sqrt(N)), ``mode_kl_nats``, ``modes_hit`` and ``n_modes``
    (:func:`bench.evaluation.metrics.modes.coverage`)."""
    nll, labels = nll_and_modes(mix, x)
    return {"sample_nll_data_nats": float(nll.mean()),
            "sample_nll_data_se_nats": float(nll.std(ddof=1) / math.sqrt(len(nll))) if len(nll) > 1 else None,
            **modes.coverage(labels, mix.weights, tolerance)}


_CALIBRATION: dict[tuple, dict[str, Any]] = {}


def real_calibration(ds, n: int, tolerance: float) -> dict[str, Any]:
    """Fidelity and coverage of :data:`~bench.evaluation.metrics.modes.CALIBRATION_DRAWS` sets of ``n`` fresh
    samples of the true mixture (seeded): the mean and 99th percentile of their mean -log p_data
    (``sample_nll_data_real_nats``, ``sample_nll_data_real_q99_nats``) and the mode calibration
    (:func:`bench.evaluation.metrics.modes.calibration`). Computed once per (dataset, n, tolerance) in a process."""
    key = (ds.name, n, tolerance)
    if key not in _CALIBRATION:
        b = modes.CALIBRATION_DRAWS
        x, _ = ds.true.sample(b * n, modes.CALIBRATION_SEED)
        nll, labels = nll_and_modes(ds.true, x)
        per_set = nll.reshape(b, n).mean(1)
        _CALIBRATION[key] = {"sample_nll_data_real_nats": float(per_set.mean()),
                             "sample_nll_data_real_q99_nats": float(np.quantile(per_set, 0.99)),
                             **modes.calibration(labels.reshape(b, n), ds.true.weights, tolerance)}
    return _CALIBRATION[key]


def sample_metrics(ds, samples: np.ndarray, ev: EvalConfig) -> dict[str, Any]:
    """MMD^2, precision/recall (k = ``ev.pr_k``) against the test set, mixture quality, and fidelity and
    coverage under the true mixture with their real-vs-real calibration at the same N (finite samples).

    Returns the :class:`~bench.store.schema.SamplerResult` fields it computes, by name.
    """
    x = np.asarray(samples, dtype=np.float64)
    finite = np.isfinite(x).all(1)
    out = {"nonfinite_fraction": float(1 - finite.mean())}
    x = x[finite]
    real = ds.test[: ev.n_samples].double().numpy()
    if len(x) <= max(ev.pr_k, 5):
        return out
    out["mmd2"], out["mmd_bandwidth"] = mmd2_rbf(real, x)
    ms = mmd2_multiscale(real, x, h=_bandwidths(real), subsets=ev.kid_subsets,
                         subset_size=ev.kid_subset_size_for(len(real), len(x)), seed=ev.seed)
    out.update(mmd2_multiscale=ms["mmd2_multiscale"], mmd2_multiscale_std=ms["mmd2_multiscale_std"])
    pr = prdc(real, x, k_pr=ev.pr_k, k_dc=ev.dc_k)
    out.update(precision=pr["precision"], recall=pr["recall"])
    q = sample_quality(ds.true, np.asarray(samples, dtype=np.float64), tolerance=ev.mode_tolerance)
    out.update(q)
    out.update(fidelity_coverage(ds.true, x, ev.mode_tolerance), **real_calibration(ds, len(x), ev.mode_tolerance))
    return out


def bayes_labels(ds, x: np.ndarray) -> np.ndarray:
    """The true mixture's Bayes classifier: argmax_c P(c | x) of points (N, 2), (N,) ints; -1 for non-finite rows."""
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x).all(1)
    out = np.full(len(x), -1)
    if ok.any():
        out[ok] = ds.true.component_log_prob(x[ok]).argmax(1)
    return out


def conditional_metrics(ds, samples: np.ndarray, labels: np.ndarray, ev: EvalConfig, w: float) -> dict[str, Any]:
    """A conditional 2D cell's metrics of one sampler: samples (N, 2) drawn with ``labels`` (N,) (those of the first N
    test points, their reference) at guidance scale ``w``.

    Returns the :class:`~bench.store.schema.SamplerResult` fields: ``label_agreement`` (the true mixture's Bayes
    classifier assigns a sample to its requested component; a non-finite sample disagrees) with its binomial SE
    and ``label_agreement_real`` (the same on the reference points: the Bayes accuracy, the ceiling);
    ``cond_precision/recall/density/coverage`` and ``cond_mmd2`` per class; ``class_diversity``; and the
    tilted-target measure (``tilted_*``, :func:`bench.evaluation.metrics.tilted.tilted_measure`).
    """
    x = np.asarray(samples, np.float64)
    y = np.asarray(labels).astype(int)
    real = ds.test[: len(x)].double().numpy()
    real_y = ds.test_labels[: len(x)].numpy()
    out: dict[str, Any] = {}
    out["label_agreement"], out["label_agreement_se"] = cond.agreement(bayes_labels(ds, x), y)
    out["label_agreement_real"] = cond.agreement(bayes_labels(ds, real), real_y)[0]
    ok = np.isfinite(x).all(1)
    pr, _ = cond.conditional_prdc(real, real_y, x[ok], y[ok], k_pr=ev.pr_k, k_dc=ev.dc_k)
    out.update(pr)
    out["cond_mmd2"] = cond.conditional_mmd2(real, real_y, x[ok], y[ok])
    out["class_diversity"] = cond.class_diversity(real, real_y, x[ok], y[ok])
    out["class_diversity_error"] = cond.diversity_error(out["class_diversity"])
    out.update(tilted_measure(ds.true, x, y, w))
    return out


_REFERENCE: dict[tuple, SamplerResult] = {}
_BANDWIDTHS: dict[bytes, np.ndarray] = {}
_ESTIMATES: dict[tuple, dict[str, ReferenceEstimate]] = {}


def _bandwidths(real: np.ndarray) -> np.ndarray:
    """The multi-scale kernel's bandwidths of a reference set, computed once per set in a process."""
    key = real.tobytes()[:4096] + str(real.shape).encode()
    if key not in _BANDWIDTHS:
        _BANDWIDTHS[key] = bandwidths(real)
    return _BANDWIDTHS[key]


def reference_estimates(ds, ev: EvalConfig, cache: Path | None = None) -> dict[str, ReferenceEstimate]:
    """Claim T30's reference rows: one Gaussian and a KDE (:mod:`bench.evaluation.simple_estimators`) fitted
    to the training split, with their test NLL, KL and the sample metrics of ``ev.n_samples`` of their
    samples. Computed once per dataset and evaluation settings in a process; with ``cache`` (the data root's
    cache folder) read from and written to disk (:func:`cached_reference_estimates`), so that the cells
    running in other worker processes, and later runs, do not fit the KDE again."""
    key = (ds.name, len(ds.train), len(ds.test), json.dumps(dataclasses.asdict(ev), sort_keys=True, default=str),
           None if cache is None else str(cache))
    if key not in _ESTIMATES:
        _ESTIMATES[key] = (compute_reference_estimates(ds, ev) if cache is None
                           else cached_reference_estimates(ds, ev, cache)[0])
    return _ESTIMATES[key]


REFERENCE_CACHE_FOLDER = "reference2d"
# the code the reference rows depend on: a change to any of these files is a new cache key
_REFERENCE_SOURCES = ("vector.py", "simple_estimators.py", "metrics")


@functools.cache
def _source_digest() -> str:
    """SHA-256 of the source files that compute the reference rows (:data:`_REFERENCE_SOURCES`, under
    ``bench/evaluation/``), so that a cached row never outlives the code that computed it. Read once per process."""
    here, h = Path(__file__).parent, hashlib.sha256()
    for name in _REFERENCE_SOURCES:
        for path in sorted((here / name).rglob("*.py")) if (here / name).is_dir() else [here / name]:
            h.update(path.relative_to(here).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def reference_cache_path(ds, ev: EvalConfig, cache: Path) -> Path:
    """Where :func:`cached_reference_estimates` keeps ``ds``'s reference rows: ``<cache>/reference2d/<key>.json``,
    the key a SHA-256 of the dataset's points (train, validation and test splits), every evaluation setting, the
    estimators' sizes, the source files that compute the rows, and the torch and NumPy versions."""
    h = hashlib.sha256()
    for split in (ds.train, ds.val, ds.test):
        h.update(np.ascontiguousarray(np.asarray(split)).tobytes())
    key = {"dataset": ds.name, "points": h.hexdigest(), "eval": dataclasses.asdict(ev), "fit_n": simple.FIT_N,
           "val_n": simple.VAL_N, "bandwidths": list(simple.BANDWIDTHS), "code": _source_digest(),
           "torch": torch.__version__, "numpy": np.__version__}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    return Path(cache) / REFERENCE_CACHE_FOLDER / f"{ds.name}_{digest[:20]}.json"


def cached_reference_estimates(ds, ev: EvalConfig, cache: Path) -> tuple[dict[str, ReferenceEstimate], float]:
    """:func:`compute_reference_estimates` through a disk cache (:func:`reference_cache_path`).

    Returns ``(rows, seconds)``: ``seconds`` is the wall time spent computing them now, 0.0 when they were read
    from the cache. The rows are computed at one torch/BLAS thread whatever the caller's count, so that the
    stored values do not depend on which process (the plan's probe, a worker of any thread count) computed
    them first. A damaged or unreadable cache file is computed again and replaced; a data root that cannot be
    written only loses the cache. The rows' own ``seconds`` are those of the computation that wrote them.
    """
    path = reference_cache_path(ds, ev, cache)
    data = read_json_dict(path)
    if data:
        try:
            return {name: reference_from_dict(v, f"{path}: ") for name, v in data["rows"].items()}, 0.0
        except (KeyError, TypeError, AttributeError, SchemaError):
            pass  # damaged: computed again below
    return store_reference_estimates(ds, ev, cache)


def store_reference_estimates(ds, ev: EvalConfig, cache: Path) -> tuple[dict[str, ReferenceEstimate], float]:
    """Compute the reference rows now (at one thread) and write them to the disk cache, replacing what it held.

    Returns ``(rows, seconds)``, ``seconds`` the wall time of the computation (not of the write)."""
    with Stopwatch("cpu") as clock, thread_limit(1):
        rows = compute_reference_estimates(ds, ev)
    try:
        write_json(reference_cache_path(ds, ev, cache), {"dataset": ds.name, "rows": {
            name: reference_to_dict(e) for name, e in rows.items()}})
    except (StorageError, OSError):
        pass  # a read-only data root: the rows are only not cached
    return rows, clock.seconds


def compute_reference_estimates(ds, ev: EvalConfig) -> dict[str, ReferenceEstimate]:
    """:func:`reference_estimates` without its per-process cache (the run's plan times it: a KDE on the
    training split scored on the test split is most of a 2D dataset's one-off cost)."""
    h, h_se = ds.info["true_entropy_nats"], ds.info["true_entropy_se_nats"]
    out = {}
    for name in ("gaussian", "kde"):
        with Stopwatch("cpu") as clock:
            fit = simple.fit_gaussian(ds.train) if name == "gaussian" else simple.fit_kde(ds.train, ds.val)
            lp = fit.log_prob(ds.test.double())
            nll, se = float(-lp.mean()), float(lp.std() / len(lp) ** 0.5)
            density = DensityResult(likelihood_kind="exact", test_n=len(lp), test_nll_nats=nll, test_nll_se_nats=se,
                                    kl_nats=nll - h, kl_se_nats=math.hypot(se, h_se), true_entropy_nats=h,
                                    true_entropy_se_nats=h_se)
            samples = SamplerResult(**sample_metrics(ds, fit.sample(ev.n_samples, ev.seed), ev))
        out[name] = ReferenceEstimate(name, fit.bandwidth, fit.fit_n, clock.seconds, density, samples)
    return out


def reference_metrics_path(ds, ev: EvalConfig, labels: np.ndarray | None, cache: Path) -> Path:
    """Where :func:`reference_metrics` keeps ``ds``'s reference sample metrics:
    ``<cache>/reference2d/metrics_<dataset>_<key>.json``, the key a SHA-256 of the test points, the evaluation
    settings, the labels (a conditional cell's), the reference seed, the source files that compute the metrics
    (:data:`_REFERENCE_SOURCES` and ``bench/data/toy2d.py``, which draws the points) and the torch and NumPy
    versions."""
    from bench.data import toy2d

    h = hashlib.sha256(np.ascontiguousarray(np.asarray(ds.test)).tobytes())
    key = {"dataset": ds.name, "test": h.hexdigest(), "eval": dataclasses.asdict(ev), "seed": REFERENCE_SEED,
           "labels": None if labels is None else hashlib.sha256(np.asarray(labels).tobytes()).hexdigest(),
           "code": _source_digest(), "mixture": toy2d.source_digest(),
           "torch": torch.__version__, "numpy": np.__version__}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    return Path(cache) / REFERENCE_CACHE_FOLDER / f"metrics_{ds.name}_{digest[:20]}.json"


def reference_metrics(ds, ev: EvalConfig, labels: np.ndarray | None = None, cache: Path | None = None) -> SamplerResult:
    """Sample metrics of fresh samples from the true mixture: the floor a perfect model reaches. With ``labels`` (a
    conditional cell's) the draws are from p(x|c) per label, and the class-conditional metrics are added (at
    w = 0, where the tilted target is p(x|c) itself and its gap is 0 up to Monte Carlo error).

    Computed at one torch/BLAS thread, once per dataset and evaluation settings in a process and, with ``cache``
    (the data root's cache folder), once per data root (:func:`reference_metrics_path`): every worker process
    of a run reads what the first one stored. A damaged cache file is computed again and replaced; a data root
    that cannot be written only loses the cache.
    """
    key = (ds.name, len(ds.test), ev.n_samples, ev.pr_k, ev.dc_k, ev.mode_tolerance,
           None if labels is None else np.asarray(labels).tobytes(), None if cache is None else str(cache))
    if key in _REFERENCE:
        return _REFERENCE[key]
    path = None if cache is None else reference_metrics_path(ds, ev, labels, cache)
    stored = read_json_dict(path) if path is not None else {}
    try:
        _REFERENCE[key] = part_from_dict(SamplerResult, stored["metrics"], f"{path}: ")
        return _REFERENCE[key]
    except (KeyError, TypeError, AttributeError, SchemaError):
        pass  # absent or damaged: computed below
    with thread_limit(1):
        if labels is None:
            x, _ = ds.true.sample(ev.n_samples, REFERENCE_SEED)
            result = SamplerResult(**sample_metrics(ds, x, ev))
        else:
            x = ds.true.sample_given(labels, REFERENCE_SEED)
            result = SamplerResult(**sample_metrics(ds, x, ev), **conditional_metrics(ds, x, labels, ev, 0.0),
                                   guidance=0.0)
    if path is not None:
        try:
            write_json(path, {"dataset": ds.name, "metrics": part_to_dict(result)})
        except (OSError, StorageError):
            pass
    _REFERENCE[key] = result
    return result


def training_monitor(ds, ev: EvalConfig, device: torch.device, samplers: dict[str, Sampler] | None = None):
    """The 2D training monitor (:func:`bench.execution.train.train`): validation quality of a model during training.

    Returns ``monitor(model) -> {"val_mmd2": ..., "val_kl_nats": ..., ...}``: unbiased MMD² (RBF,
    median bandwidth) between ``ev.monitor_n`` samples of the cheapest of ``samplers`` (fewest
    NFE, the first on a tie; default: the family's; one fixed seed at every checkpoint) and the
    first ``ev.monitor_n`` validation points, for every family; the samples' fidelity and coverage
    (:func:`fidelity_coverage`: ``val_sample_nll_nats`` with ``val_sample_nll_se_nats``,
    ``val_mode_kl_nats``, ``val_modes_hit``, and ``val_mode_kl_real_nats``, the mean mode KL of real sample
    sets of the same size, its noise level; infinite fidelity and no coverage when a sample is not
    finite); and, for exact densities, KL = mean validation NLL − H(p_data) in nats on the same points.
    Non-finite samples make ``val_mmd2`` infinite.
    """
    val = ds.val[: ev.monitor_n]
    val_np = val.double().numpy()
    h = ds.info["true_entropy_nats"]
    real_kl = real_calibration(ds, ev.monitor_n, ev.mode_tolerance)["mode_kl_real_mean_nats"]

    @torch.no_grad()
    def monitor(model) -> dict[str, float]:
        cheapest = min((samplers or model.default_samplers()).values(), key=lambda s: s.nfe(model))
        x = model.sample(ev.monitor_n, generator=torch.Generator(device).manual_seed(ev.seed), sampler=cheapest)
        x = x.double().cpu().numpy()
        finite = bool(np.isfinite(x).all())
        out = {"val_mmd2": mmd2_rbf(val_np, x)[0] if finite else math.inf}
        if finite:
            fc = fidelity_coverage(ds.true, x, ev.mode_tolerance)
            out.update(val_sample_nll_nats=fc["sample_nll_data_nats"], val_sample_nll_se_nats=fc[
                "sample_nll_data_se_nats"], val_mode_kl_nats=fc["mode_kl_nats"], val_modes_hit=fc["modes_hit"],
                val_mode_kl_real_nats=real_kl)
        else:
            out["val_sample_nll_nats"] = math.inf
        if model.capabilities.log_prob:
            out["val_kl_nats"] = float(-model.log_prob(val.to(device)).double().mean()) - h
        return out

    return monitor


@torch.no_grad()
def model_extras(model, ds, ev: EvalConfig, density: DensityResult, cell_dir: Path,
                 device: torch.device) -> DensityResult:
    """Model-dependent 2D work: log Z by quadrature for energies, the measured normalization
    of every density, and the density grid for the figures (``density_grid.npz``).

    Returns ``density`` with the quadrature and normalization fields added.
    """
    caps = model.capabilities
    d: dict[str, Any] = {}
    lo, hi = figure_box(ds)
    log_z = 0.0
    if caps.energy and not caps.log_prob:
        box = model.support() or (lo, hi)
        with Stopwatch(device) as clock:
            q = log_partition(model.energy, box[0], box[1], ev.quadrature_grid, device=device)
        log_z = q.log_z
        e = torch.cat([model.energy(c) for c in ds.test.to(device).split(ev.throughput_batch)]).double().cpu()
        inside = ((ds.test >= box[0]) & (ds.test <= box[1])).all(1)
        nll = torch.where(inside, e + q.log_z, torch.full_like(e, math.inf))
        d.update(
            nll_method="quadrature",
            test_nll_nats=float(nll.mean()),
            test_nll_se_nats=float(nll.std() / len(nll) ** 0.5),
            log_z_nats=q.log_z,
            log_z_quadrature_error_nats=q.error,
            quadrature_grid=q.n,
            quadrature_box=[q.lo, q.hi],
            quadrature_evaluations=q.evaluations,
            quadrature_seconds=clock.seconds,
            test_outside_box_fraction=float(1 - inside.double().mean()),
        )
    # Measured normalization: log of the integral of p(x), exp(bound) or exp(-E) over a box holding the data.
    # Bounds cost many network passes per point, so their check reuses the figure's grid (half resolution).
    # It integrates the family's standard bound (the ELBO), not the tightest: exp of an IWAE estimate is an
    # unbiased estimate of p(x) itself, so it integrates to about 1 whatever the bound's gap.
    L = float(ds.test.abs().max()) * 1.5 + 1.0
    norm, figure = None, None
    if caps.log_prob:
        norm = log_partition(lambda p: -model.log_prob(p), -L, L, ev.quadrature_grid // 2, device=device)
        figure = ("exact", model.log_prob, ev.density_grid)
    elif caps.bound:
        gen = torch.Generator(device).manual_seed(ev.seed)
        name = density.standard_bound
        norm = log_partition(lambda p: -model.log_prob_bounds(p, generator=gen)[name], lo, hi,
                             ev.density_grid // 2, device=device, keep_values=True)
        figure = (f"bound ({name}; one draw per point)", None, norm.n)
    elif caps.energy:
        figure = ("quadrature", lambda p: -model.energy(p) - log_z, ev.density_grid)
    if norm is not None:
        d.update(log_integral_nats=norm.log_z, log_integral_error_nats=norm.error,
                 integral_box=[norm.lo, norm.hi], integral_grid=norm.n,
                 integral_of=density.standard_bound or "density")
    elif caps.energy:
        d.update(log_integral_nats=d.get("log_z_nats"), log_integral_error_nats=d.get("log_z_quadrature_error_nats"),
                 integral_box=d.get("quadrature_box"), integral_grid=d.get("quadrature_grid"))
    if figure is not None:
        kind, fn, n = figure
        if fn is None:
            logp = norm.neg_energy.astype(np.float32)
        else:
            pts, _ = grid(lo, hi, n, device)
            logp = torch.cat([fn(c) for c in pts.split(ev.throughput_batch)]).float().cpu().numpy().reshape(n, n)
        save_npz(cell_dir / "density_grid.npz", log_density=logp, box=np.array([lo, hi]), kind=np.array(kind))
    return dataclasses.replace(density, **d)


def evaluate(ds, ev: EvalConfig, record: CellRecord, cell_dir: Path, cache: Path | None = None) -> dict[str, Any]:
    """Sample-only 2D evaluation: KL from the NLL, and each sampler's sample metrics; ``cache``, the data root's
    cache folder, keeps claim T30's reference rows between processes (:func:`reference_estimates`).

    Returns the record fields it fills: ``density``, ``samplers``,
    ``reference_sample_metrics``, ``figure_box`` and ``protocol``.
    """
    d = record.density
    h, h_se = ds.info["true_entropy_nats"], ds.info["true_entropy_se_nats"]
    kl = {"true_entropy_nats": h, "true_entropy_se_nats": h_se, "dims": int(np.prod(ds.shape))}
    if d.ode_test_nll_nats is not None:
        kl.update(ode_kl_nats=d.ode_test_nll_nats - h,
                  ode_kl_se_nats=math.hypot(d.ode_test_nll_se_nats or 0.0, h_se))
    if d.test_nll_nats is not None:
        kl.update(kl_nats=d.test_nll_nats - h, kl_se_nats=math.hypot(d.test_nll_se_nats, h_se))
    if d.test_nll_bound_nats is not None:
        kl.update(kl_bound_nats=d.test_nll_bound_nats - h, kl_bound_se_nats=math.hypot(d.test_nll_bound_se_nats, h_se))
    samplers, labels = {}, None
    for name, m in record.samplers.items():
        x = load_samples(cell_dir, name)
        extra = sample_metrics(ds, x, ev)
        y = load_sample_labels(cell_dir, name)
        if y is not None:  # a conditional cell
            extra.update(conditional_metrics(ds, x, y, ev, m.guidance or 0.0))
            labels = y
        samplers[name] = dataclasses.replace(m, **extra)
    protocol = {
        "nll": "mean over the test set, nats; SE = std/sqrt(n)",
        "kl": "KL(p_data||p_model) = NLL - H(p_data); SE = sqrt(SE_NLL^2 + SE_H^2)",
        "entropy": f"Monte Carlo, {ds.info['entropy_mc_samples']} samples, seed {ds.info['split_seeds']['entropy']}",
        "bounds": f"on the first {ev.bound_n} test points; reported as upper bounds on the NLL (<=)",
        "energy_nll": f"log Z by the midpoint rule on a {ev.quadrature_grid}^2 grid over the EBM's box; "
                      "error = |log Z(n) - log Z(n/2)|",
        "mmd": "unbiased MMD^2, RBF kernel, bandwidth = median pairwise distance of the pooled samples",
        "mmd_multiscale": f"unbiased MMD^2, RBF kernels at 6 bandwidths geometric from the test set's median "
                          f"nearest-neighbour distance to its median pairwise distance, weighted by 1/bandwidth; "
                          f"{ev.kid_subsets} random subsets as KID (mean, std)",
        "ode": "probability-flow ODE likelihood on the first bound_n test points (the cell's first pf_ode sampler: "
               "steps, Euler/Heun, exact trace in 2D); its integral on a (quadrature_grid/4)^2 grid",
        "reference_estimates": f"one Gaussian (ML) and a Gaussian KDE on the first {simple.FIT_N} training points, "
                               f"bandwidth by validation likelihood on {simple.VAL_N} points; scored as the families",
        "precision_recall": f"k-NN manifolds, k = {ev.pr_k}, Euclidean on coordinates, vs {ev.n_samples} test points",
        "high_quality": "Mahalanobis distance <= 3 to some component",
        "mode_coverage": f"component covered if its share of samples (within 3 sigma) >= {ev.mode_tolerance} "
                         "x its weight",
        "fidelity": "mean -log p_data of the finite samples under the true mixture, nats, SE = std/sqrt(N); "
                    f"real-vs-real: {modes.CALIBRATION_DRAWS} sets of N fresh mixture samples (mean, 99th percentile)",
        "mode_kl": "KL(histogram of each finite sample's most probable component || mixture weights), nats, no sigma "
                   f"gate; modes hit: share >= {ev.mode_tolerance} x weight; real-vs-real: "
                   f"{modes.CALIBRATION_DRAWS} sets of N fresh mixture samples (mean and 99th percentile of the KL, "
                   "the modes hit by 99% of them)",
        "normalization": "log of the integral of p(x), exp(bound) or exp(-E) over a box holding the data "
                         "(midpoint rule; grid and error recorded): 0 for a normalized density",
        "timing": ev.timing_protocol(),
    }
    if labels is not None:
        protocol.update(CONDITIONAL_PROTOCOL)
    return {"density": dataclasses.replace(d, **kl), "samplers": samplers,
            "reference_sample_metrics": reference_metrics(ds, ev, labels, cache),
            "reference_estimates": reference_estimates(ds, ev, cache), "figure_box": list(figure_box(ds)),
            "protocol": protocol}


CONDITIONAL_PROTOCOL = {
    "conditional": "class-conditional model (labels: the mixture component that drew each point); samples drawn "
                   "with the labels of the first N test points, which are each class's reference; densities "
                   "(NLL, bounds, KL) are of the marginal p(x) = sum_c pi_c p(x|c), pi the training labels' "
                   "frequencies (an EBM's marginal energy is -log sum_c exp(-E(x, c)))",
    "label_agreement": "fraction of samples the true mixture's Bayes classifier (argmax_c P(c|x)) assigns to "
                       "the requested component; SE = sqrt(a(1-a)/N); label_agreement_real: the same on the N "
                       "reference points",
    "conditional_metrics": "per class: k-NN precision/recall and density/coverage, unbiased MMD^2 (RBF, median "
                           "bandwidth of the class) and per-class diversity (mean pairwise distance of the "
                           "samples / of the reference points), averaged over classes weighted by their counts",
    "tilted": "samples' mean -log p_w(x|c), p_w ∝ p(x|c)^(1+w) p(x)^(-w) normalized by the midpoint rule on a "
              "256^2 grid over mean ± 8 sd of each component, against H(p_w); SE = std/sqrt(N)",
}
