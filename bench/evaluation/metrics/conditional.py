"""Class-conditional sample metrics: each class's samples against that class's real points, then averaged.

A conditional cell draws its samples with the labels of its reference points (the first N test points), so
class c has as many samples as reference points. Per class, the usual two-set metrics compare the samples
requested with label c to the real points of class c; the average over classes weights each class by its
number of samples (:func:`per_class`). Classes with too few points for a metric (at most k for the k-NN ones,
fewer than 2 for MMD² and diversity) are left out and counted.

* class-conditional precision, recall, density and coverage (:func:`bench.evaluation.metrics.prdc.prdc`);
* class-conditional MMD² (RBF, median bandwidth per class; :func:`bench.evaluation.metrics.mmd.mmd2_rbf`);
* per-class diversity (:func:`class_diversity`): the mean pairwise distance of a class's samples over that of
  its real points, 1 when the samples spread like the data, below 1 when they concentrate;
* label agreement (:func:`agreement`): the fraction of samples a classifier assigns to the requested label,
  with its binomial standard error.

Guidance (Ho & Salimans 2021, arXiv:2207.12598) is said to raise the first kind of fidelity (precision,
agreement) and lower diversity (recall, coverage, per-class diversity): these are the numbers
:mod:`bench.analysis.guidance` judges T25 on.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from bench.evaluation.metrics.mmd import mmd2_rbf
from bench.evaluation.metrics.prdc import prdc


def per_class(real: np.ndarray, real_y: np.ndarray, fake: np.ndarray, fake_y: np.ndarray,
              metric: Callable[[np.ndarray, np.ndarray], dict[str, float]], min_points: int) -> tuple[dict, int]:
    """``metric(real_c, fake_c)`` for every class c with more than ``min_points`` points on both sides, averaged
    over those classes weighted by their number of samples.

    Args:
        real, fake: (N, F) and (M, F) points (features or coordinates).
        real_y, fake_y: their labels, (N,) and (M,) ints.
        metric: ``metric(real_c, fake_c) -> {name: value}``.
        min_points: a class needs more than this many points in each set.

    Returns:
        (``{name: weighted mean}`` (empty when no class qualifies), the number of classes left out).
    """
    real_y, fake_y = np.asarray(real_y), np.asarray(fake_y)
    sums: dict[str, float] = {}
    total, skipped = 0, 0
    for c in np.unique(np.concatenate([real_y, fake_y])):
        r, f = real[real_y == c], fake[fake_y == c]
        if min(len(r), len(f)) <= min_points:
            skipped += 1
            continue
        for k, v in metric(r, f).items():
            sums[k] = sums.get(k, 0.0) + len(f) * v
        total += len(f)
    return ({k: v / total for k, v in sums.items()} if total else {}), skipped


def conditional_prdc(real, real_y, fake, fake_y, *, k_pr: int = 3, k_dc: int = 5) -> tuple[dict[str, float], int]:
    """``cond_precision``, ``cond_recall``, ``cond_density``, ``cond_coverage``: k-NN precision/recall
    (Kynkäänniemi et al. 2019, arXiv:1904.06991) and density/coverage (Naeem et al. 2020, arXiv:2002.09797) of
    each class's samples against the class's real points, weighted by class; and the classes left out (at most
    ``max(k_pr, k_dc)`` points)."""
    out, skipped = per_class(np.asarray(real, np.float64), real_y, np.asarray(fake, np.float64), fake_y,
                             lambda r, f: prdc(r, f, k_pr=k_pr, k_dc=k_dc), max(k_pr, k_dc))
    return {f"cond_{k}": v for k, v in out.items()}, skipped


def conditional_mmd2(real, real_y, fake, fake_y) -> float | None:
    """Unbiased MMD² (RBF, median bandwidth of the class's pooled points) of each class's samples against its real
    points, weighted by class; ``None`` when no class has 2 points on both sides."""
    out, _ = per_class(np.asarray(real, np.float64), real_y, np.asarray(fake, np.float64), fake_y,
                       lambda r, f: {"mmd2": mmd2_rbf(r, f)[0]}, 1)
    return out.get("mmd2")


def mean_pairwise_distance(x: np.ndarray) -> float:
    """Mean Euclidean distance over the distinct pairs of rows of ``x`` (N, F), N >= 2 (float64)."""
    t = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    n = len(t)
    return float(torch.cdist(t, t).sum() / (n * (n - 1)))


def class_diversity(real, real_y, fake, fake_y) -> float | None:
    """Per-class diversity: mean pairwise distance of a class's samples / that of its real points, weighted by
    class (1: as spread as the data; < 1: concentrated). ``None`` when no class has 2 points on both sides or a
    class's real points all coincide."""
    def ratio(r: np.ndarray, f: np.ndarray) -> dict[str, float]:
        d_real = mean_pairwise_distance(r)
        return {"ratio": mean_pairwise_distance(f) / d_real if d_real > 0 else math.nan}

    out, _ = per_class(np.asarray(real, np.float64), real_y, np.asarray(fake, np.float64), fake_y, ratio, 1)
    v = out.get("ratio")
    return None if v is None or not math.isfinite(v) else v


def diversity_error(ratio: float | None) -> float | None:
    """|ln r| of a per-class diversity ratio r (:func:`class_diversity`): 0 when the samples are as spread as the
    data, the same for r and 1/r (twice or half as spread: ln 2 = 0.693); ``None`` without a positive ratio.
    The regression gate reads it (lower is better), as the ratio itself has no better direction."""
    return abs(math.log(ratio)) if ratio is not None and ratio > 0 else None


def agreement(predicted, requested) -> tuple[float, float]:
    """(a, se): the fraction a of ``predicted`` labels equal to the ``requested`` ones (both (N,) ints), and its
    binomial standard error sqrt(a (1 - a) / N).

    Raises:
        ValueError: empty or different lengths.
    """
    p, r = np.asarray(predicted), np.asarray(requested)
    if len(p) == 0 or p.shape != r.shape:
        raise ValueError(f"need two label arrays of one length > 0, got {p.shape} and {r.shape}")
    a = float((p == r).mean())
    return a, math.sqrt(a * (1 - a) / len(p))


__all__ = ["per_class", "conditional_prdc", "conditional_mmd2", "class_diversity", "diversity_error",
           "mean_pairwise_distance", "agreement"]
