"""The textbook's "simple density estimators" (claim T30) as reference rows: one Gaussian and a kernel density
estimate, fitted to the training split and scored like the families.

* **Gaussian**: the maximum-likelihood mean and covariance of the training points (covariance with a ridge
  of 1e-6 times its mean variance, so that it is invertible on images, whose border pixels never vary).
* **KDE**: p(x) = (1/n) sum_i N(x; x_i, h² I) over ``fit_n`` training points (the first ones), isotropic
  Gaussian kernels; the bandwidth h is the one of :data:`BANDWIDTHS` (times the data's mean per-coordinate
  std) with the best mean log-likelihood on the validation split (at most :data:`VAL_N` points), the usual
  likelihood cross-validation (Silverman 1986, Sec. 3.4.4).

Vectors are scored on their coordinates (NLL in nats). Images are scored as the flows are: on uniformly
dequantized pixel levels k + u in [0, 256) (u from a seeded generator), whose density bounds the discrete
log P(x) from below (Theis et al. 2016, arXiv:1511.01844), so bits/dim = NLL / (D ln 2) are upper bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

LOG_2PI = math.log(2 * math.pi)
BANDWIDTHS = tuple(float(v) for v in np.geomspace(0.003, 1.0, 16))  # times the mean per-coordinate std
VAL_N = 2000
FIT_N = 10_000
CHUNK = 256


@dataclass
class Fit:
    """A fitted estimator: ``log_prob(x)`` in nats per example for (N, D) float64 points, and ``sample(n, seed)``."""

    method: str
    bandwidth: float | None
    fit_n: int
    mean: torch.Tensor | None = None
    chol: torch.Tensor | None = None
    centres: torch.Tensor | None = None

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) in nats, (N,) float64, for x (N, D)."""
        x = torch.as_tensor(x, dtype=torch.float64)
        if self.method == "gaussian":
            z = torch.linalg.solve_triangular(self.chol, (x - self.mean).T, upper=False).T
            logdet = 2 * torch.log(torch.diagonal(self.chol)).sum()
            return -0.5 * (x.shape[1] * LOG_2PI + logdet + (z**2).sum(1))
        return kde_log_prob(x, self.centres, self.bandwidth)

    def sample(self, n: int, seed: int) -> np.ndarray:
        """``n`` draws (n, D) float64 from the fitted density, seeded."""
        g = torch.Generator().manual_seed(seed)
        d = (self.mean if self.method == "gaussian" else self.centres).shape[-1]
        eps = torch.randn(n, d, generator=g, dtype=torch.float64)
        if self.method == "gaussian":
            return (self.mean + eps @ self.chol.T).numpy()
        idx = torch.randint(len(self.centres), (n,), generator=g)
        return (self.centres[idx] + self.bandwidth * eps).numpy()


def kde_log_prob(x: torch.Tensor, centres: torch.Tensor, h: float) -> torch.Tensor:
    """log of (1/n) sum_i N(x; c_i, h² I), nats, (N,) float64, for x (N, D) and centres (n, D)."""
    d = x.shape[1]
    norm = math.log(len(centres)) + 0.5 * d * (LOG_2PI + 2 * math.log(h))
    out = [torch.logsumexp(-torch.cdist(c, centres).square_() / (2 * h * h), 1) - norm for c in x.split(CHUNK)]
    return torch.cat(out)


def fit_gaussian(train: torch.Tensor) -> Fit:
    """Maximum-likelihood Gaussian of (N, D) points (a 1e-6 relative ridge on the covariance)."""
    x = torch.as_tensor(train, dtype=torch.float64)
    mean = x.mean(0)
    cov = torch.cov(x.T, correction=0).reshape(x.shape[1], x.shape[1])
    cov = cov + 1e-6 * float(torch.diagonal(cov).mean()) * torch.eye(x.shape[1], dtype=torch.float64)
    return Fit("gaussian", None, len(x), mean=mean, chol=torch.linalg.cholesky(cov))


def fit_kde(train: torch.Tensor, val: torch.Tensor, fit_n: int = FIT_N, val_n: int = VAL_N) -> Fit:
    """Gaussian KDE on the first ``fit_n`` training points, bandwidth by validation likelihood over
    :data:`BANDWIDTHS` x the mean per-coordinate std (the first ``val_n`` validation points; with an empty
    ``val``, the last training points, which the KDE then does not fit)."""
    if not len(val):
        held = min(val_n, len(train) // 2)
        train, val = train[: len(train) - held], train[len(train) - held:]
    centres = torch.as_tensor(train[:fit_n], dtype=torch.float64)
    v = torch.as_tensor(val[:val_n], dtype=torch.float64)
    scale = float(centres.std(0).mean())
    d2 = torch.cat([torch.cdist(c, centres).square_() for c in v.split(CHUNK)])
    d = centres.shape[1]
    best, best_ll = None, -math.inf
    for b in BANDWIDTHS:
        h = b * scale
        ll = float((torch.logsumexp(-d2 / (2 * h * h), 1) - math.log(len(centres))).mean()
                   - 0.5 * d * (LOG_2PI + 2 * math.log(h)))
        if ll > best_ll:
            best, best_ll = h, ll
    return Fit("kde", best, len(centres), centres=centres)


def dequantized(images, seed: int) -> torch.Tensor:
    """uint8 images (N, C, H, W) -> (N, C*H*W) float64 pixel levels k + u, u ~ U[0, 1) seeded."""
    x = torch.as_tensor(np.asarray(images))
    g = torch.Generator().manual_seed(seed)
    return x.flatten(1).double() + torch.rand(x.shape[0], x[0].numel(), generator=g, dtype=torch.float64)
