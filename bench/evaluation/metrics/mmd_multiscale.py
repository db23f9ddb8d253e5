"""A KID-like distance for 2D samples: unbiased MMD² with a multi-scale RBF kernel, averaged over subsets.

MMD² with one RBF kernel at the median pairwise distance (:func:`bench.evaluation.metrics.mmd.mmd2_rbf`) is
nearly blind to what happens inside the modes of a mixture: on ``25gaussians`` (component std 0.018, modes
2/2.828 apart) samples blurred to 3 mode widths score MMD² 0.0015 against the data's own 0.0009. This
kernel mixes RBF kernels at ``scales`` bandwidths spaced geometrically from the data's mode scale (the median
distance of a test point to its nearest test neighbour) up to its global scale (the median pairwise test
distance), each weighted by h_1 / h_s: k(x, y) = sum_s w_s exp(-||x - y||² / (2 h_s²)) / sum_s w_s. The
weights keep the fine scales, where blur within a mode shows, from drowning in the coarse scales' noise:
on 1000 vs 1000 points, blur to 3 mode widths moves it by 14 subset standard deviations on 25gaussians and 13 on
8gaussians (equal weights: 4 and 9), and dropping 1/8 of the modes by 4-5 (equal weights: 5). The bandwidths
come from the reference (test) points alone, so every family is scored with the same kernel.

The estimator is KID's (Bińkowski et al. 2018, arXiv:1801.01401): the unbiased MMD² U-statistic on
``subsets`` random pairs of subsets of ``subset_size`` points (drawn without replacement, seeded), reported as
the mean and the std over subsets; unbiased at any N, so small-N comparisons are fair.
"""

from __future__ import annotations

import numpy as np
import torch


def bandwidths(reference, scales: int = 6, max_points: int = 2000) -> np.ndarray:
    """``scales`` RBF bandwidths from the reference's median nearest-neighbour distance to its median pairwise
    distance, geometric (float64). ``reference``: (N, D), N >= 3."""
    r = torch.as_tensor(np.asarray(reference), dtype=torch.float64)
    r = r[:: max(1, len(r) // max_points)]
    if len(r) < 3:
        raise ValueError(f"need at least 3 reference points, got {len(r)}")
    d = torch.cdist(r, r)
    far = float(d[torch.triu_indices(len(r), len(r), 1).unbind()].median())
    near = float((d + torch.diag(torch.full((len(r),), torch.inf, dtype=torch.float64))).min(1).values.median())
    near = min(max(near, 1e-12), far)
    return np.geomspace(near, far, scales)


def _kernel(a: torch.Tensor, b: torch.Tensor, h: np.ndarray) -> torch.Tensor:
    """The multi-scale kernel matrix (len(a), len(b)), weights h_1 / h_s (see the module docstring)."""
    d2 = torch.cdist(a, b).square_()
    w = float(h[0]) / np.asarray(h, dtype=np.float64)
    return sum(float(wi) * torch.exp(-d2 / (2 * float(s) ** 2)) for wi, s in zip(w, h)) / float(w.sum())


def mmd2_multiscale(reference, samples, *, h: np.ndarray | None = None, subsets: int = 100,
                    subset_size: int = 1000, seed: int = 2020) -> dict:
    """Unbiased multi-scale MMD² between ``reference`` (N, D) and ``samples`` (M, D), over random subsets.

    Args:
        h: the bandwidths (default :func:`bandwidths` of ``reference``).
        subsets, subset_size, seed: as KID (:func:`bench.evaluation.metrics.kid.kid`); ``subset_size`` is capped
            at min(N, M).

    Returns:
        ``{"mmd2_multiscale", "mmd2_multiscale_std", "bandwidths", "subset_size"}``: the mean and std (ddof = 0)
        over subsets (unitless; can be slightly negative), the bandwidths and the subset size used.

    Raises:
        ValueError: fewer than 2 points in a set, or non-finite samples.
    """
    x = torch.as_tensor(np.asarray(reference), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(samples), dtype=torch.float64)
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"need at least 2 points per set, got {len(x)} and {len(y)}")
    if not torch.isfinite(y).all():
        raise ValueError("samples contain NaN or infinity")
    h = bandwidths(x) if h is None else np.asarray(h, dtype=np.float64)
    m = min(int(subset_size), len(x), len(y))
    kxx, kyy, kxy = _kernel(x, x, h), _kernel(y, y, h), _kernel(x, y, h)
    rng = np.random.RandomState(seed)
    wx, wy = torch.zeros(subsets, len(x), dtype=torch.float64), torch.zeros(subsets, len(y), dtype=torch.float64)
    for i in range(subsets):  # the draw order of KID: set 1, then set 2, per subset
        wx[i, rng.choice(len(x), m, replace=False)] = 1.0
        wy[i, rng.choice(len(y), m, replace=False)] = 1.0
    # sums over the subsets' kernel blocks as quadratic forms of their indicator vectors
    sxx = ((wx @ kxx) * wx).sum(1) - wx @ torch.diagonal(kxx)
    syy = ((wy @ kyy) * wy).sum(1) - wy @ torch.diagonal(kyy)
    sxy = ((wx @ kxy) * wy).sum(1)
    vals = ((sxx + syy) / (m * (m - 1)) - 2 * sxy / (m * m)).numpy()
    return {"mmd2_multiscale": float(vals.mean()), "mmd2_multiscale_std": float(vals.std()),
            "bandwidths": [float(v) for v in h], "subset_size": m}
