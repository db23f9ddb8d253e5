"""Sample metrics against a known 2D Gaussian mixture.

* high-quality fraction: samples within Mahalanobis distance 3 of some component.
* mode coverage: each sample within 3 sigma is assigned to its most probable
  component; a component is covered when its share of all samples is at least
  ``tolerance`` times its mixture weight (tolerance 0.5: at least half its share).
"""

from __future__ import annotations

import numpy as np

from bench.data.toy2d import GaussianMixture


def sample_quality(mix: GaussianMixture, samples: np.ndarray, *, tolerance: float = 0.5, radius: float = 3.0) -> dict:
    """High-quality fraction and mode coverage of ``samples`` (N, 2) under ``mix``.

    Returns:
        ``high_quality_fraction`` in [0, 1]; ``modes_covered`` (int) of ``n_modes``;
        ``mode_coverage`` = modes_covered / n_modes; ``mode_shares``: per-component
        fraction of samples assigned to it (list of K floats).
    """
    samples = np.asarray(samples, dtype=np.float64)
    finite = np.isfinite(samples).all(1)
    dist = np.full((len(samples), mix.k), np.inf)
    post = np.full((len(samples), mix.k), -np.inf)
    dist[finite] = mix.mahalanobis(samples[finite])
    post[finite] = mix.component_log_prob(samples[finite])
    good = dist.min(1) <= radius
    assigned = post.argmax(1)
    ok = good & (dist[np.arange(len(samples)), assigned] <= radius)
    shares = np.bincount(assigned[ok], minlength=mix.k) / len(samples)
    covered = shares >= tolerance * mix.weights
    return {
        "high_quality_fraction": float(good.mean()),
        "modes_covered": int(covered.sum()),
        "n_modes": int(mix.k),
        "mode_coverage": float(covered.mean()),
        "mode_shares": [float(s) for s in shares],
    }
