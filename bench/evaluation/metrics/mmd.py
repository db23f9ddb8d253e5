"""Maximum mean discrepancy with an RBF kernel and the median bandwidth heuristic.

MMD^2 (Gretton et al., "A Kernel Two-Sample Test", JMLR 2012) with the unbiased
U-statistic estimator. Kernel k(x, y) = exp(-||x - y||^2 / (2 h^2)), with h the
median of the pairwise distances of the pooled sample (Gretton et al. 2012, Sec. 8).
"""

from __future__ import annotations

import numpy as np
import torch


def mmd2_rbf(x, y, *, bandwidth: float | None = None, max_median_points: int = 2000) -> tuple[float, float]:
    """Unbiased MMD^2 between samples x (N, F) and y (M, F), and the bandwidth h used.

    Args:
        bandwidth: kernel width h; ``None`` uses the median heuristic on (up to
            ``max_median_points`` of) the pooled points.

    Returns:
        ``(mmd2, h)``: MMD^2 (can be slightly negative, being unbiased), and h.

    Raises:
        ValueError: fewer than 2 points in a set.
    """
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(y), dtype=torch.float64)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"need at least 2 points per set, got {n} and {m}")
    if bandwidth is None:
        pooled = torch.cat([x, y])
        step = max(1, len(pooled) // max_median_points)
        sub = pooled[::step]
        d = torch.cdist(sub, sub)
        bandwidth = float(d[torch.triu_indices(len(sub), len(sub), 1).unbind()].median())
    gamma = 1.0 / (2 * bandwidth**2)

    def mean_kernel(a, b, same: bool) -> float:
        total = 0.0
        for a_c in a.split(2048):
            total += float(torch.cdist(a_c, b).square_().mul_(-gamma).exp_().sum())
        if same:  # drop the diagonal k(a_i, a_i) = 1
            return (total - len(a)) / (len(a) * (len(a) - 1))
        return total / (len(a) * len(b))

    mmd2 = mean_kernel(x, x, True) + mean_kernel(y, y, True) - 2 * mean_kernel(x, y, False)
    return mmd2, bandwidth
