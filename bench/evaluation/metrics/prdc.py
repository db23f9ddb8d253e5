"""k-NN precision/recall and density/coverage between a real and a fake set.

Precision and recall: Kynkäänniemi et al., "Improved Precision and Recall Metric for
Assessing Generative Models", 2019, arXiv:1904.06991. Density and coverage: Naeem et
al., "Reliable Fidelity and Diversity Metrics for Generative Models", 2020,
arXiv:2002.09797. The definitions follow the reference ``prdc`` package: radii are
distances to the k-th nearest neighbour within a set (self excluded), comparisons
are strict (<), distances are Euclidean in float64.
"""

from __future__ import annotations

import numpy as np
import torch


def _as64(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


def kth_nn_distance(x: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance from each row of ``x`` (N, F) to its k-th nearest other row: (N,) float64."""
    out = []
    for c in x.split(chunk):
        d = torch.cdist(c, x)
        # the smallest distance is the point to itself (0), so the k-th neighbour is the (k+1)-th smallest
        out.append(torch.topk(d, k + 1, dim=1, largest=False).values[:, -1])
    return torch.cat(out)


def prdc(real, fake, *, k_pr: int = 3, k_dc: int = 5, chunk: int = 2048) -> dict[str, float]:
    """Precision, recall (k = ``k_pr``), density and coverage (k = ``k_dc``).

    Args:
        real: (N, F) real features (array-like).
        fake: (M, F) generated features.

    Returns:
        ``{"precision", "recall", "density", "coverage"}``: precision, recall and
        coverage in [0, 1]; density >= 0 (1 on average for identical distributions).

    Raises:
        ValueError: a set has no more than ``max(k_pr, k_dc)`` rows, or shapes differ.
    """
    real, fake = _as64(real), _as64(fake)
    k_max = max(k_pr, k_dc)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"need (N, F) and (M, F) arrays, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if min(len(real), len(fake)) <= k_max:
        raise ValueError(f"need more than k={k_max} rows per set, got {len(real)} and {len(fake)}")
    r_pr, f_pr = kth_nn_distance(real, k_pr, chunk), kth_nn_distance(fake, k_pr, chunk)
    r_dc = kth_nn_distance(real, k_dc, chunk) if k_dc != k_pr else r_pr
    fake_in_real = torch.zeros(len(fake), dtype=torch.bool)       # precision
    density_count = torch.zeros(len(fake), dtype=torch.float64)   # density
    real_in_fake = torch.zeros(len(real), dtype=torch.bool)       # recall
    nearest_fake = torch.full((len(real),), float("inf"), dtype=torch.float64)  # coverage
    for i0 in range(0, len(real), chunk):
        d = torch.cdist(real[i0 : i0 + chunk], fake)  # (chunk, M)
        fake_in_real |= (d < r_pr[i0 : i0 + chunk, None]).any(0)
        density_count += (d < r_dc[i0 : i0 + chunk, None]).sum(0)
        real_in_fake[i0 : i0 + chunk] = (d < f_pr[None, :]).any(1)
        nearest_fake[i0 : i0 + chunk] = d.min(1).values
    return {
        "precision": float(fake_in_real.double().mean()),
        "recall": float(real_in_fake.double().mean()),
        "density": float(density_count.mean() / k_dc),
        "coverage": float((nearest_fake < r_dc).double().mean()),
    }
