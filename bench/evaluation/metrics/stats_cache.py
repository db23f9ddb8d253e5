"""Cache of feature statistics (mu, sigma, n), keyed by dataset and extractor fingerprints.

A reference set's FID statistics cost minutes of Inception forwards on a CPU, so they
are computed once and reused. The key is the SHA-256 of the canonical JSON of
``{"dataset": <dataset fingerprint>, "extractor": <extractor fingerprint>}``: a
change in the data's content hash, the weights' hash, the resize, the input range or
the torch version gives a new entry. Entries are ``<cache_dir>/<key>.npz`` holding
``mu`` (F,) float64, ``sigma`` (F, F) float64, ``n`` and the two fingerprints as
JSON, written atomically (temporary file in the same folder, fsync, rename). Loading
returns the SHA-256 of the file so that a result can record exactly which statistics
it used.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.core.files import atomic_write, sha256_file
from bench.evaluation.metrics.fid import feature_statistics


@dataclass
class FeatureStats:
    """Mean (F,) and covariance (F, F) in float64 of ``n`` feature vectors, and where they came from."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    path: Path | None = None
    sha256: str | None = None
    key: str | None = None


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def stats_key(dataset_fingerprint: dict | str, extractor_fingerprint: dict) -> str:
    """Hex SHA-256 of the canonical JSON of both fingerprints (64 characters)."""
    payload = {"dataset": dataset_fingerprint, "extractor": extractor_fingerprint}
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()


def stats_path(cache_dir: str | os.PathLike, dataset_fingerprint: dict | str, extractor_fingerprint: dict) -> Path:
    """Where the entry for these fingerprints lives: ``<cache_dir>/<key>.npz``."""
    return Path(cache_dir) / f"{stats_key(dataset_fingerprint, extractor_fingerprint)}.npz"


def save_stats(cache_dir: str | os.PathLike, dataset_fingerprint: dict | str, extractor_fingerprint: dict,
               mu, sigma, n: int) -> FeatureStats:
    """Write (mu, sigma, n) atomically; returns them with the file's path, SHA-256 and key.

    Raises:
        ValueError: shapes disagree or values are not finite.
    """
    mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
        raise ValueError(f"need mu (F,) and sigma (F, F), got {mu.shape} and {sigma.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError("statistics contain NaN or infinity")
    key = stats_key(dataset_fingerprint, extractor_fingerprint)
    path = Path(cache_dir) / f"{key}.npz"
    meta = _canonical({"dataset": dataset_fingerprint, "extractor": extractor_fingerprint})
    atomic_write(path, lambda f: np.savez(f, mu=mu, sigma=sigma, n=np.int64(n), meta=np.array(meta)))
    return FeatureStats(mu, sigma, int(n), path, sha256_file(path), key)


def load_stats(cache_dir: str | os.PathLike, dataset_fingerprint: dict | str,
               extractor_fingerprint: dict) -> FeatureStats | None:
    """The cached entry for these fingerprints, or ``None`` if there is none.

    Raises:
        ValueError: the file exists but its stored fingerprints differ from the ones
            asked for (a corrupt or foreign file).
    """
    key = stats_key(dataset_fingerprint, extractor_fingerprint)
    path = Path(cache_dir) / f"{key}.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        meta = str(z["meta"])
        expected = _canonical({"dataset": dataset_fingerprint, "extractor": extractor_fingerprint})
        if meta != expected:
            raise ValueError(f"{path}: stored fingerprints do not match its key; delete the file")
        return FeatureStats(z["mu"].copy(), z["sigma"].copy(), int(z["n"]), path, sha256_file(path), key)


def load_or_compute(cache_dir: str | os.PathLike, dataset_fingerprint: dict | str, extractor_fingerprint: dict,
                    features_fn) -> FeatureStats:
    """The cached statistics, or compute them from ``features_fn() -> (N, F)`` features and cache them."""
    hit = load_stats(cache_dir, dataset_fingerprint, extractor_fingerprint)
    if hit is not None:
        return hit
    features = np.asarray(features_fn())
    mu, sigma = feature_statistics(features)
    return save_stats(cache_dir, dataset_fingerprint, extractor_fingerprint, mu, sigma, len(features))
