"""Fréchet distance between Gaussians fitted to two feature sets (FID on Inception features).

Reference: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to
a Local Nash Equilibrium", NeurIPS 2017, arXiv:1706.08500.

    d^2 = ||mu_1 - mu_2||^2 + Tr(S_1) + Tr(S_2) - 2 Tr((S_1 S_2)^(1/2))

Method (always real and finite, also for singular covariances, e.g. N < F):
everything is float64; S_1 and S_2 are symmetrized; S_1^(1/2) = V diag(sqrt(l)) V^T
from ``eigh(S_1)``; the eigenvalues of the symmetric PSD matrix
M = S_1^(1/2) S_2 S_1^(1/2) are the eigenvalues of S_1 S_2, so
Tr((S_1 S_2)^(1/2)) = sum_i sqrt(eig_i(M)) with ``eigvalsh(M)``. In both
eigendecompositions, eigenvalues below the rounding level ``F * eps * max|l|``
(negative ones included) are set to 0 before the square root: for a singular
covariance the zero eigenvalues come out as +-1e-16-sized noise, whose square roots
(~1e-8 each) would otherwise add up to a relative error of ~1e-7. Unlike
``scipy.linalg.sqrtm(S_1 S_2)`` (pytorch-fid) this never yields a complex or NaN
result. The value is not clipped: for two identical sets it is 0 up to rounding
(|d^2| ~ 1e-10 for 2048-d features) and may be a tiny negative number.
"""

from __future__ import annotations

import numpy as np


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature set, in float64.

    Args:
        features: (N, F) array-like, N >= 2.

    Returns:
        ``(mu, sigma)``: (F,) mean and (F, F) unbiased covariance (divides by N - 1,
        as pytorch-fid's ``np.cov(rowvar=False)``).

    Raises:
        ValueError: not 2-D, fewer than 2 rows, or non-finite values.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need an (N, F) array with N >= 2, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinity")
    mu = x.mean(0)
    xc = x - mu
    sigma = xc.T @ xc / (len(x) - 1)
    return mu, sigma


def _sym(a: np.ndarray) -> np.ndarray:
    return (a + a.T) / 2


def _clip_eigenvalues(lam: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with rounding noise removed: those below
    ``n * eps * max|lam|`` (the numerical rank cut of ``np.linalg.matrix_rank``) become 0."""
    tol = lam.size * np.finfo(np.float64).eps * (np.abs(lam).max() if lam.size else 0.0)
    return np.where(lam > tol, lam, 0.0)


def sqrtm_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric PSD square root of a symmetric PSD matrix, float64 (eigenvalues below rounding level -> 0)."""
    lam, v = np.linalg.eigh(_sym(np.asarray(sigma, dtype=np.float64)))
    return (v * np.sqrt(_clip_eigenvalues(lam))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((S_1 S_2)^(1/2)) for symmetric PSD S_1, S_2, via eig(S_1^(1/2) S_2 S_1^(1/2)); float."""
    r = sqrtm_psd(sigma1)
    m = _sym(r @ _sym(np.asarray(sigma2, dtype=np.float64)) @ r)
    return float(np.sqrt(_clip_eigenvalues(np.linalg.eigvalsh(m))).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet distance d^2 between N(mu1, sigma1) and N(mu2, sigma2) (the FID's value).

    Args:
        mu1, mu2: (F,) means.
        sigma1, sigma2: (F, F) symmetric PSD covariances (any rank).

    Returns:
        d^2 as a Python float, in squared feature units (see the module docstring).

    Raises:
        ValueError: shapes disagree or values are not finite.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    f = mu1.shape[0]
    if mu1.shape != (f,) or mu2.shape != (f,) or s1.shape != (f, f) or s2.shape != (f, f):
        raise ValueError(f"shapes disagree: mu {mu1.shape}, {mu2.shape}; sigma {s1.shape}, {s2.shape}")
    for a in (mu1, mu2, s1, s2):
        if not np.isfinite(a).all():
            raise ValueError("statistics contain NaN or infinity")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))


def fid_from_features(features1, features2) -> float:
    """FID between two (N, F) and (M, F) feature sets: :func:`frechet_distance` of their statistics."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


class FIDReference:
    """A reference set's statistics with its covariance square root computed once.

    Every FID of a run is taken against the same one or two reference sets, and the
    (F, F) eigendecomposition of the reference covariance is the expensive part
    (seconds for F = 2048 on a CPU). This class does it once; :meth:`fid` then needs
    one symmetric eigenvalue problem of size ``min(N, F)`` per sample set, using
    Tr((S_r S_g)^(1/2)) = sum sqrt(eig(B B^T)) with B = X_c S_r^(1/2) / sqrt(N - 1),
    X_c the centred sample features: B B^T (N x N) and S_r^(1/2) S_g S_r^(1/2) = B^T B
    (F x F) share their nonzero eigenvalues. The value equals :func:`frechet_distance`
    up to rounding (tested to 1e-9 relative).

    Args:
        mu: (F,) reference mean; sigma: (F, F) reference covariance (any rank).

    Raises:
        ValueError: shapes disagree or values are not finite.
    """

    def __init__(self, mu, sigma):
        self.mu = np.atleast_1d(np.asarray(mu, np.float64))
        self.sigma = _sym(np.atleast_2d(np.asarray(sigma, np.float64)))
        f = self.mu.shape[0]
        if self.sigma.shape != (f, f):
            raise ValueError(f"shapes disagree: mu {self.mu.shape}, sigma {self.sigma.shape}")
        if not (np.isfinite(self.mu).all() and np.isfinite(self.sigma).all()):
            raise ValueError("statistics contain NaN or infinity")
        self.sqrt_sigma = sqrtm_psd(self.sigma)
        self.trace = float(np.trace(self.sigma))

    def fid(self, features) -> float:
        """FID (d^2) between the (N, F) features, N >= 2, and this reference; float."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise ValueError(f"need an (N, F) array with N >= 2, got shape {x.shape}")
        if x.shape[1] != self.mu.shape[0]:
            raise ValueError(f"features have {x.shape[1]} dimensions, the reference {self.mu.shape[0]}")
        if not np.isfinite(x).all():
            raise ValueError("features contain NaN or infinity")
        mu = x.mean(0)
        xc = (x - mu) / np.sqrt(len(x) - 1)  # S_g = xc^T xc
        b = xc @ self.sqrt_sigma
        gram = b @ b.T if len(x) < x.shape[1] else b.T @ b
        tr_sqrt = float(np.sqrt(_clip_eigenvalues(np.linalg.eigvalsh(_sym(gram)))).sum())
        diff = mu - self.mu
        return float(diff @ diff + (xc**2).sum() + self.trace - 2.0 * tr_sqrt)
