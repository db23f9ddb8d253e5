"""Kernel Inception Distance: unbiased MMD^2 with a cubic polynomial kernel, averaged over subsets.

Reference: Bińkowski, Sutherland, Arbel and Gretton, "Demystifying MMD GANs", ICLR
2018, arXiv:1801.01401.

Kernel k(x, y) = (x·y / F + 1)^3 for F-dimensional features. For each of ``subsets``
draws, ``m`` rows are taken without replacement from each set and the unbiased
estimator

    MMD^2_u = [sum_{i!=j} k(x_i, x_j) + sum_{i!=j} k(y_i, y_j)] / (m (m - 1)) - 2 sum_{i,j} k(x_i, y_j) / m^2

is computed; KID is the mean over subsets, reported with the standard deviation
over subsets (``np.std``, ddof = 0). Defaults and the draw order follow
torch-fidelity: 100 subsets of 1000 rows (capped here at the smaller set's size),
``np.random.RandomState(seed)``, and per subset first
``rng.choice(N1, m, replace=False)`` for set 1, then the same for set 2; seed 2020.
So on the same features it reproduces torch-fidelity's numbers.
"""

from __future__ import annotations

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray, *, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> np.ndarray:
    """(x y^T * gamma + coef0)^degree for (n, F) and (m, F) arrays; gamma defaults to 1/F. (n, m) float64."""
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    """Unbiased MMD^2 from (m, m) kernel matrices (diagonals of k_xx and k_yy dropped)."""
    m = k_xx.shape[0]
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def kid(features1, features2, *, subsets: int = 100, subset_size: int = 1000, degree: int = 3,
        gamma: float | None = None, coef0: float = 1.0, seed: int = 2020) -> dict:
    """KID between two feature sets (see the module docstring).

    Args:
        features1: (N1, F) features, e.g. of real images.
        features2: (N2, F) features, e.g. of generated images.
        subsets: number of subset pairs.
        subset_size: rows per subset; capped at ``min(N1, N2)``.
        seed: seed of the ``np.random.RandomState`` that draws the subsets.

    Returns:
        ``{"kid_mean", "kid_std", "subsets", "subset_size", "seed"}``; KID in squared
        kernel units (unitless), can be slightly negative (unbiased estimator);
        ``subset_size`` is the size actually used.

    Raises:
        ValueError: shapes disagree, fewer than 2 rows in a set, or ``subsets < 1``.
    """
    x = np.asarray(features1, dtype=np.float64)
    y = np.asarray(features2, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need (N1, F) and (N2, F) arrays, got {x.shape} and {y.shape}")
    m = min(int(subset_size), len(x), len(y))
    if m < 2 or subsets < 1:
        raise ValueError(f"need at least 2 rows per set and subsets >= 1, got {len(x)}, {len(y)}, {subsets=}")
    rng = np.random.RandomState(seed)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        xs = x[rng.choice(len(x), m, replace=False)]
        ys = y[rng.choice(len(y), m, replace=False)]
        kern = lambda a, b: polynomial_kernel(a, b, degree=degree, gamma=gamma, coef0=coef0)  # noqa: E731
        mmds[i] = mmd2_unbiased(kern(xs, xs), kern(xs, ys), kern(ys, ys))
    return {"kid_mean": float(mmds.mean()), "kid_std": float(mmds.std()), "subsets": int(subsets),
            "subset_size": m, "seed": int(seed)}
