"""Novelty: how close generated images lie to their nearest training image.

For each generated sample, d_gen is the Euclidean pixel distance (pixels scaled to
[0, 1]) to its nearest training image. The reference is the same distance for the
test images, d_test, which are real but unseen. A model that memorizes has many
samples closer to the training set than real unseen images are.

Reported:

* ``novelty_ratio``: median(d_gen) / median(d_test). Near 1: as far from the
  training set as new real data. Much below 1: memorization. Above 1: off the
  data manifold.
* ``copy_fraction``: the fraction of samples with d_gen below the 1st percentile
  of d_test. About 0.01 for a model whose samples are as novel as the test set.
"""

from __future__ import annotations

import numpy as np
import torch


def nearest_distances(queries, bank, chunk: int = 512, bank_chunk: int = 20_000) -> np.ndarray:
    """Distance from each query (N, ...) to its nearest row of ``bank`` (M, ...): (N,) float64.

    Images are flattened and scaled from uint8 to [0, 1]. Distances are computed in
    float32 via ||a||^2 + ||b||^2 - 2 a.b, then clamped at 0.
    """
    q = torch.as_tensor(np.asarray(queries)).flatten(1).float() / 255.0
    b = torch.as_tensor(np.asarray(bank)).flatten(1).float() / 255.0
    b_sq = (b**2).sum(1)
    out = torch.empty(len(q), dtype=torch.float64)
    for i in range(0, len(q), chunk):
        qc = q[i : i + chunk]
        q_sq = (qc**2).sum(1, keepdim=True)
        best = torch.full((len(qc),), float("inf"))
        for j in range(0, len(b), bank_chunk):
            d2 = q_sq + b_sq[None, j : j + bank_chunk] - 2 * qc @ b[j : j + bank_chunk].T
            best = torch.minimum(best, d2.min(1).values)
        out[i : i + chunk] = best.clamp_min(0).sqrt().double()
    return out.numpy()


def novelty(d_gen: np.ndarray, d_test: np.ndarray) -> dict[str, float]:
    """``novelty_ratio``, ``copy_fraction`` and the medians, from nearest-training distances.

    Args:
        d_gen: (N,) distances of generated samples to their nearest training image.
        d_test: (M,) the same for real test images.
    """
    threshold = float(np.percentile(d_test, 1))
    return {
        "novelty_ratio": float(np.median(d_gen) / np.median(d_test)),
        "copy_fraction": float((d_gen < threshold).mean()),
        "nn_train_distance_median": float(np.median(d_gen)),
        "nn_train_distance_median_test": float(np.median(d_test)),
    }
