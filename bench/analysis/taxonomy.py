"""Training cost and stability from per-seed cell records: pure statistics, no verdicts, no formatting.

The taxonomy's last columns (issue 11) are measured here, per (dataset, family), over a
run's seeds:

* **final quality** of each seed (:func:`final_quality`): 2D: KL(p_data || p_model) in nats
  where the family has a normalized density (exact or by quadrature), else its upper bound
  from the NLL bound, else the default sampler's MMD²; images: bits/dim, its bound, else
  FID. One family uses one metric for all its seeds.
* **stability** (:func:`stability`): the coefficient of variation (CV = sample std / |mean|,
  ddof = 1) of the final quality over the seeds that did not diverge; the fraction of seeds
  that **diverged** (training raised on a NaN/inf loss, or the final quality is not
  finite); the fraction that **collapsed** (:func:`collapsed`: the default sampler hits fewer
  modes, 2D components or image classes, than 99% of real sample sets of the same N do).
* **time to quality** (:func:`time_to_quality`): from the training history's monitored
  validation quality (``val_kl_nats`` where present, else ``val_mmd2`` (2D), else
  ``val_fd_classifier`` (images); see :func:`bench.evaluation.vector.training_monitor` and
  :func:`bench.evaluation.image.training_monitor`), the first checkpoint from which every later one
  stays within a tolerance of the final value, tol = max(:data:`SETTLE_REL` × |final|,
  :data:`SETTLE_ABS` of the metric): steps and training seconds to get there, and the
  quality gain per training second, (first − final) / seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import mean, stdev

from bench.store.schema import CellRecord, DensityResult

SETTLE_REL = 0.1  # time to quality: within 10% of the final value ...
SETTLE_ABS = {"val_kl_nats": 0.02, "val_mmd2": 0.01}  # ... or this floor (MMD² of 200 vs 200 points: ~0.007 noise)
HISTORY_METRICS = ("val_kl_nats", "val_mmd2", "val_fd_classifier")  # the monitored quality, in order of preference
CONVERGED_BY = 0.8  # a run is converged when its quality settled by this fraction of its steps
QUALITY_LABELS = {"kl_nats": "KL (nats)", "kl_bound_nats": "KL bound (nats)", "mmd2": "MMD²",
                  "test_bpd": "bits/dim", "test_bpd_bound": "bits/dim bound", "fid": "FID"}
MONITOR_LABELS = {"val_kl_nats": "KL", "val_mmd2": "MMD²", "val_fd_classifier": "FD_classifier"}


def final_quality_metric(rec: CellRecord) -> str | None:
    """The quality metric a record's family is judged by (lower is better), or ``None`` if it has none.

    In order: ``kl_nats``, ``kl_bound_nats``, ``mmd2`` (2D); ``test_bpd``, ``test_bpd_bound``, ``fid`` (images).
    """
    d = rec.density or DensityResult()
    _, m = rec.primary()
    if d.kl_nats is not None:
        return "kl_nats"
    if d.kl_bound_nats is not None:
        return "kl_bound_nats"
    if m.mmd2 is not None:
        return "mmd2"
    if d.test_bpd is not None:
        return "test_bpd"
    if d.test_bpd_bound is not None:
        return "test_bpd_bound"
    if m.fid:
        return "fid"
    return None


def final_quality(rec: CellRecord, metric: str) -> float | None:
    """The value of quality ``metric`` (:func:`final_quality_metric`) in ``rec``; ``None`` where it is absent."""
    d = rec.density or DensityResult()
    _, m = rec.primary()
    if metric == "mmd2":
        return m.mmd2
    if metric == "fid":
        return next(iter(m.fid.values()), None)
    return getattr(d, metric, None)


def diverged(rec: CellRecord, metric: str | None) -> bool:
    """Whether a seed diverged: training raised on a non-finite loss (``DivergenceError``), or the record
    is ok but its final quality is NaN or infinite."""
    if rec.status == "failed":
        return "DivergenceError" in (rec.reason or "") or "became nan" in (rec.reason or "").lower() \
            or "became inf" in (rec.reason or "").lower()
    if not rec.ok or metric is None:
        return False
    v = final_quality(rec, metric)
    return v is not None and not math.isfinite(v)


def collapsed(rec: CellRecord) -> bool | None:
    """Whether an ok seed collapsed: its default sampler hits fewer modes (2D mixture components, image classes;
    at least half their share, no σ gate) than 99% of real sample sets of the same N reach
    (``modes_hit < modes_hit_real_q01``, :mod:`bench.evaluation.metrics.modes`). A real sample set counts as
    collapsed at most 1% of the time. ``None`` when not measured (records before ``genbench.cell/5``, image runs
    without the classifier)."""
    _, m = rec.primary()
    if m.modes_hit is None or m.modes_hit_real_q01 is None:
        return None
    return m.modes_hit < m.modes_hit_real_q01


@dataclass
class Stability:
    """Final quality of one (dataset, family) over its seeds.

    Attributes:
        dataset, family: the cell.
        metric: the quality metric (:func:`final_quality_metric`), lower is better.
        seeds: seeds with a record (ok, or failed by divergence), sorted.
        values: final quality of each non-diverged ok seed, in seed order.
        mean, std, cv: over ``values`` (std with ddof = 1; ``None`` below 2 values; cv = std / |mean|).
        diverged_fraction: diverged seeds / ``len(seeds)``.
        collapsed_fraction: collapsed seeds / seeds where collapse was measured (``None`` if none).
        n_failed_other: seeds that failed for another reason (not counted in ``seeds``).
    """

    dataset: str
    family: str
    metric: str | None
    seeds: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    mean: float | None = None
    std: float | None = None
    cv: float | None = None
    diverged_fraction: float = 0.0
    collapsed_fraction: float | None = None
    n_failed_other: int = 0


def stability(recs: list[CellRecord]) -> Stability:
    """Stability of one (dataset, family) from its per-seed records (every seed of one run).

    Raises:
        ValueError: no records, or records of more than one (dataset, family).
    """
    if not recs:
        raise ValueError("stability needs at least one record")
    cells = {(r.dataset, r.family) for r in recs}
    if len(cells) > 1:
        raise ValueError(f"stability of one (dataset, family) at a time, got {sorted(cells)}")
    recs = sorted(recs, key=lambda r: r.seed)
    ok = [r for r in recs if r.ok]
    metric = next((final_quality_metric(r) for r in ok if final_quality_metric(r)), None)
    div = [r for r in recs if diverged(r, metric)]
    counted = [r for r in recs if r.ok or r in div]
    values = [v for r in ok if r not in div and (v := final_quality(r, metric) if metric else None) is not None]
    col = [c for r in ok if r not in div and (c := collapsed(r)) is not None]
    (dataset, family), = cells
    out = Stability(dataset, family, metric, seeds=[r.seed for r in counted], values=values,
                    diverged_fraction=len(div) / len(counted) if counted else 0.0,
                    collapsed_fraction=sum(col) / len(col) if col else None,
                    n_failed_other=len(recs) - len(counted))
    if values:
        out.mean = mean(values)
    if len(values) > 1:
        out.std = stdev(values)
        out.cv = out.std / abs(out.mean) if out.mean else math.inf
    return out


@dataclass
class TimeToQuality:
    """When one training run's monitored quality settled (:func:`time_to_quality`).

    Attributes:
        metric: the history key (``val_kl_nats`` or ``val_mmd2``).
        first, final: its value at the first and the last checkpoint.
        tolerance: the settling tolerance used.
        steps, seconds: training steps and seconds at the settling checkpoint.
        total_steps, total_seconds: at the last checkpoint.
        gain_per_s: (first − final) / total_seconds, quality gained per training second.
        converged: settled by :data:`CONVERGED_BY` of the steps.
    """

    metric: str
    first: float
    final: float
    tolerance: float
    steps: int
    seconds: float
    total_steps: int
    total_seconds: float
    gain_per_s: float | None
    converged: bool


def history_metric(history: list[dict[str, float]]) -> str | None:
    """The monitored quality key of a training history: the first of :data:`HISTORY_METRICS` it holds
    (``val_kl_nats``, ``val_mmd2``, ``val_fd_classifier``)."""
    keys = {k for h in history for k in h}
    return next((k for k in HISTORY_METRICS if k in keys), None)


def time_to_quality(history: list[dict[str, float]], metric: str | None = None) -> TimeToQuality | None:
    """Steps and seconds until the monitored quality settles within tolerance of its final value.

    ``history`` is a training history (:class:`bench.execution.train.TrainStats`) whose checkpoints carry
    ``metric`` (default :func:`history_metric`); the last such checkpoint gives the final value.
    Settled at the first checkpoint k with |q_j − q_final| ≤ tol for every j ≥ k, where
    tol = max(:data:`SETTLE_REL` × |q_final|, :data:`SETTLE_ABS` [metric]).
    Returns ``None`` without two finite checkpoints.
    """
    metric = metric or history_metric(history)
    points = [h for h in history if metric in h and math.isfinite(h[metric])]
    if metric is None or len(points) < 2:
        return None
    first, final = points[0][metric], points[-1][metric]
    tol = max(SETTLE_REL * abs(final), SETTLE_ABS.get(metric, 0.0))
    k = len(points) - 1
    while k > 0 and abs(points[k - 1][metric] - final) <= tol:
        k -= 1
    total_steps, total_seconds = int(points[-1]["step"]), float(points[-1]["seconds"])
    return TimeToQuality(metric, first, final, tol, int(points[k]["step"]), float(points[k]["seconds"]),
                         total_steps, total_seconds,
                         (first - final) / total_seconds if total_seconds > 0 else None,
                         points[k]["step"] <= CONVERGED_BY * total_steps)


@dataclass
class TrainingCost:
    """Time to quality of one (dataset, family) over its ok seeds: mean and sample std (ddof = 1).

    Attributes:
        metric: the monitored history key.
        n: seeds with a time to quality.
        steps, steps_std, seconds, seconds_std: to settle (:func:`time_to_quality`).
        gain_per_s: mean quality gain per training second.
        train_seconds: mean training wall time (the record's ``train_seconds``).
        converged_fraction: seeds whose quality settled by :data:`CONVERGED_BY` of the run.
    """

    metric: str | None
    n: int
    steps: float | None = None
    steps_std: float | None = None
    seconds: float | None = None
    seconds_std: float | None = None
    gain_per_s: float | None = None
    train_seconds: float | None = None
    converged_fraction: float | None = None


def training_cost(recs: list[CellRecord]) -> TrainingCost:
    """Time to quality of one (dataset, family) over the ok seeds of ``recs``."""
    ok = [r for r in recs if r.ok and r.train is not None]
    ttq = [t for r in ok if (t := time_to_quality(r.train.train_history)) is not None]
    if not ttq:
        return TrainingCost(None, 0)

    def avg(xs: list[float]) -> tuple[float, float | None]:
        return mean(xs), (stdev(xs) if len(xs) > 1 else None)

    steps, steps_std = avg([t.steps for t in ttq])
    secs, secs_std = avg([t.seconds for t in ttq])
    gains = [t.gain_per_s for t in ttq if t.gain_per_s is not None]
    trains = [r.train.train_seconds for r in ok if r.train.train_seconds is not None]
    return TrainingCost(ttq[0].metric, len(ttq), steps, steps_std, secs, secs_std,
                        mean(gains) if gains else None, mean(trains) if trains else None,
                        sum(t.converged for t in ttq) / len(ttq))


def sample_scores(recs: list[CellRecord]) -> tuple[str | None, list[float]]:
    """The sample metric (lower is better) of one (dataset, family)'s ok seeds: 2D MMD², images FID,
    of the default sampler; (metric, per-seed values in seed order)."""
    vals_mmd, vals_fid = [], []
    for r in sorted((r for r in recs if r.ok), key=lambda r: r.seed):
        _, m = r.primary()
        if m.mmd2 is not None and math.isfinite(m.mmd2):
            vals_mmd.append(m.mmd2)
        elif m.fid:
            vals_fid.append(next(iter(m.fid.values())))
    if vals_mmd:
        return "mmd2", vals_mmd
    return ("fid", vals_fid) if vals_fid else (None, [])


def by_family(recs: list[CellRecord]) -> dict[str, list[CellRecord]]:
    """Records of one dataset grouped by family, in first-seen order."""
    out: dict[str, list[CellRecord]] = {}
    for r in recs:
        out.setdefault(r.family, []).append(r)
    return out
