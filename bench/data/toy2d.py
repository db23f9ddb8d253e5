"""2D Gaussian mixtures with a closed-form density.

Three mixtures, each a :class:`GaussianMixture`:

* ``8gaussians``: FFJORD's recipe (Grathwohl et al. 2019, arXiv:1810.01367): centres
  at 4 * (the 8 unit directions at multiples of 45 degrees), std 0.5, everything
  then divided by sqrt(2). So centres at radius 2*sqrt(2), std 0.5/sqrt(2).
* ``25gaussians``: WGAN-GP's recipe (Gulrajani et al. 2017, arXiv:1704.00028):
  centres on the grid {-4, -2, 0, 2, 4}^2, std 0.05, everything divided by 2.828.
* ``imbalanced``: five components with weights 0.40/0.25/0.15/0.12/0.08 and
  anisotropic, rotated covariances (defined here).

Train, validation and test sets are drawn from fixed seeds (:data:`SPLIT_SEEDS`),
the same for every model and every run.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2, "entropy": 3}


@dataclass(frozen=True)
class GaussianMixture:
    """A mixture of K Gaussians in D dimensions with exact density.

    Attributes:
        weights: (K,) mixture weights, summing to 1.
        means: (K, D) component means.
        covs: (K, D, D) component covariances (symmetric positive definite).
    """

    weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray

    @property
    def k(self) -> int:
        return len(self.weights)

    def _chol(self) -> np.ndarray:
        return np.linalg.cholesky(self.covs)

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` samples (n, D) float64 and their component labels (n,) int, from ``seed``."""
        rng = np.random.default_rng(seed)
        labels = rng.choice(self.k, size=n, p=self.weights)
        z = rng.standard_normal((n, self.means.shape[1]))
        x = self.means[labels] + np.einsum("nij,nj->ni", self._chol()[labels], z)
        return x, labels

    def sample_given(self, labels: np.ndarray, seed: int) -> np.ndarray:
        """One draw from each requested component: x_i ~ N(mu_{c_i}, Sigma_{c_i}) for labels c (n,) ints, (n, D)
        float64, from ``seed`` (the class-conditional p(x|c))."""
        labels = np.asarray(labels).astype(int)
        z = np.random.default_rng(seed).standard_normal((len(labels), self.means.shape[1]))
        return self.means[labels] + np.einsum("nij,nj->ni", self._chol()[labels], z)

    def mahalanobis(self, x: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each point (N, D) to each component: (N, K)."""
        L = self._chol()  # (K, D, D) lower triangular
        # forward substitution L s = x - mu_k, one coordinate at a time over contiguous (N, K) arrays: about 4x
        # faster than a LAPACK solve per component, bit-identical to it for diagonal covariances (the isotropic
        # mixtures) and within 1e-13 otherwise
        sol: list[np.ndarray] = []
        for i in range(self.means.shape[1]):
            acc = x[:, i, None] - self.means[None, :, i]
            for j, s in enumerate(sol):
                acc = acc - L[None, :, i, j] * s
            sol.append(acc * (1 / L[None, :, i, i]))
        return np.sqrt(sum(s**2 for s in sol))

    def component_log_prob(self, x: np.ndarray) -> np.ndarray:
        """log w_k + log N(x; mu_k, Sigma_k) in nats: (N, K)."""
        D = self.means.shape[1]
        logdet = 2 * np.log(np.diagonal(self._chol(), axis1=1, axis2=2)).sum(-1)  # (K,)
        m2 = self.mahalanobis(x) ** 2
        return np.log(self.weights)[None] - 0.5 * (D * math.log(2 * math.pi) + logdet[None] + m2)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Exact log p(x) in nats, (N,), for x of shape (N, D)."""
        from scipy.special import logsumexp  # lazy: the GPU stage of image suites runs without scipy

        return logsumexp(self.component_log_prob(x), axis=1)

    def entropy(self, n: int = 1_000_000, seed: int = SPLIT_SEEDS["entropy"]) -> tuple[float, float]:
        """Monte Carlo estimate of H(p) = -E log p(x), in nats, and its standard error.

        Uses ``n`` samples (in chunks of 10^5); the standard error is std/sqrt(n).
        """
        x, _ = self.sample(n, seed)
        lp = np.concatenate([self.log_prob(c) for c in np.array_split(x, max(1, n // 100_000))])
        return float(-lp.mean()), float(lp.std(ddof=1) / math.sqrt(n))


def _isotropic(centres: np.ndarray, std: float) -> GaussianMixture:
    k = len(centres)
    return GaussianMixture(np.full(k, 1.0 / k), centres, np.tile(np.eye(2) * std**2, (k, 1, 1)))


def eight_gaussians() -> GaussianMixture:
    """FFJORD's 8 Gaussians: centres 4*(cos, sin)(k*45deg)/sqrt(2), std 0.5/sqrt(2)."""
    angles = np.arange(8) * np.pi / 4
    centres = 4 * np.stack([np.cos(angles), np.sin(angles)], 1) / math.sqrt(2)
    return _isotropic(centres, 0.5 / math.sqrt(2))


def twentyfive_gaussians() -> GaussianMixture:
    """WGAN-GP's 25 Gaussians: centres 2*{-2..2}^2 / 2.828, std 0.05 / 2.828."""
    g = np.arange(-2, 3) * 2.0
    centres = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2) / 2.828
    return _isotropic(centres, 0.05 / 2.828)


def imbalanced() -> GaussianMixture:
    """Five components, weights 0.40/0.25/0.15/0.12/0.08, anisotropic rotated covariances."""
    weights = np.array([0.40, 0.25, 0.15, 0.12, 0.08])
    means = np.array([[-1.5, -1.0], [1.8, 1.2], [0.0, 2.4], [2.2, -1.8], [-2.4, 1.8]])
    stds = np.array([[0.6, 0.15], [0.4, 0.2], [0.5, 0.1], [0.25, 0.25], [0.3, 0.08]])
    angles = np.array([30.0, -45.0, 0.0, 0.0, 60.0]) * np.pi / 180
    covs = []
    for (s1, s2), a in zip(stds, angles):
        R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        covs.append(R @ np.diag([s1**2, s2**2]) @ R.T)
    return GaussianMixture(weights, means, np.array(covs))


@functools.cache
def source_digest() -> str:
    """SHA-256 of this file, which defines the mixtures and computes their densities: part of the key of every
    value cached from them (the true entropy, the reference sample metrics). Read once per process."""
    from bench.core.files import sha256_file

    return sha256_file(__file__)


MIXTURES = {"8gaussians": eight_gaussians, "25gaussians": twentyfive_gaussians, "imbalanced": imbalanced}
