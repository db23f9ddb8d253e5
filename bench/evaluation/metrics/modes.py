"""Mode coverage of a sample set: its histogram over the data's modes against the data's own, calibrated by
real samples of the same size.

The modes are a 2D mixture's components (each sample goes to its most probable component, with no σ gate, so
blur between modes is not counted as a missing mode) or an image classifier's classes (each sample goes to
its predicted class). With q̂ the samples' histogram and π the data's (the mixture weights; the classifier's
predictions on the test set):

* **mode KL** = KL(q̂ ‖ π) = Σ_k q̂_k log(q̂_k / π_k), in nats (0 log 0 = 0). 0 for a perfect histogram; a
  collapse onto m of K equally weighted modes gives log(K / m), e.g. log 8 = 2.08 nats for one mode of 8.
* **modes hit**: modes whose share q̂_k is at least ``tolerance`` × π_k (tolerance 0.5: half their share).
* **calibration**: both statistics for ``draws`` sets of N real samples (the true mixture, or the test set's
  predicted classes drawn with replacement): the mean and 99th percentile of the mode KL, and the number of
  modes hit that 99% of real sets reach. A sample set that hits fewer modes than that has **collapsed**
  (:func:`bench.analysis.training_verdicts.collapsed`): a real set of the same N does so at most 1% of the time.

Mode counting as in Srivastava et al. 2017 (VEEGAN, arXiv:1705.07761) and Metz et al. 2017 (unrolled GANs,
arXiv:1611.02163), without their 3σ gate; the class histogram of a classifier as in Santurkar et al. 2018
(arXiv:1711.00970).
"""

from __future__ import annotations

import numpy as np

CALIBRATION_DRAWS = 200  # real sample sets of the same N behind each calibration
CALIBRATION_SEED = 5  # their seed (the 2D splits use 0-3 and the reference draw 4)


def shares(labels: np.ndarray, k: int) -> np.ndarray:
    """The histogram of ``labels`` (N,) int in [0, k): (k,) float64 fractions summing to 1 (zeros for N = 0)."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    return counts / max(len(labels), 1)


def mode_kl(q: np.ndarray, weights: np.ndarray) -> float:
    """KL(q ‖ weights) in nats, for histograms (..., K) over the same K modes (0 log 0 = 0; ``weights`` > 0).

    Returns a float for one histogram, an array for a stack of them.
    """
    q, w = np.asarray(q, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * np.log(q / w), 0.0)
    out = terms.sum(-1)
    return float(out) if np.ndim(out) == 0 else out


def modes_hit(q: np.ndarray, weights: np.ndarray, tolerance: float = 0.5) -> int | np.ndarray:
    """Modes whose share in ``q`` (..., K) is at least ``tolerance`` × their weight: an int, or one per row."""
    hit = (np.asarray(q) >= tolerance * np.asarray(weights)).sum(-1)
    return int(hit) if np.ndim(hit) == 0 else hit


def calibration(real_labels: np.ndarray, weights: np.ndarray, tolerance: float = 0.5) -> dict[str, float | int]:
    """Mode KL and modes hit of real sample sets: ``real_labels`` (B, N) int, one row per set of N real samples.

    Returns:
        ``mode_kl_real_mean_nats`` and ``mode_kl_real_q99_nats`` (mean and 99th percentile of the B mode KLs),
        ``modes_hit_real_q01`` (the largest count that at least 99% of the sets reach: the 1st percentile by the
        inverted CDF) and ``mode_calibration_draws`` (B).
    """
    real_labels = np.asarray(real_labels)
    k = len(weights)
    q = np.stack([shares(row, k) for row in real_labels])
    kl, hit = mode_kl(q, weights), modes_hit(q, weights, tolerance)
    return {"mode_kl_real_mean_nats": float(np.mean(kl)), "mode_kl_real_q99_nats": float(np.quantile(kl, 0.99)),
            "modes_hit_real_q01": int(np.quantile(hit, 0.01, method="inverted_cdf")),
            "mode_calibration_draws": len(real_labels)}


def coverage(labels: np.ndarray, weights: np.ndarray, tolerance: float = 0.5) -> dict[str, float | int]:
    """``mode_kl_nats``, ``modes_hit`` and ``n_modes`` of one sample set's mode labels (N,) against ``weights`` (K,)."""
    q = shares(labels, len(weights))
    return {"mode_kl_nats": mode_kl(q, weights), "modes_hit": modes_hit(q, weights, tolerance),
            "n_modes": len(weights)}


def bootstrap_labels(pool: np.ndarray, n: int, draws: int = CALIBRATION_DRAWS,
                     seed: int = CALIBRATION_SEED) -> np.ndarray:
    """``draws`` sets of ``n`` labels drawn with replacement from ``pool`` (the real data's labels): (draws, n)."""
    rng = np.random.default_rng(seed)
    return np.asarray(pool)[rng.integers(0, len(pool), size=(draws, n))]
