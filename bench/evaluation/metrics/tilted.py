"""The tilted target of classifier-free guidance on a 2D Gaussian mixture, normalized by quadrature.

Classifier-free guidance with scale w follows the score (1 + w) grad log p(x|c) - w grad log p(x) (Ho & Salimans
2021, arXiv:2207.12598), the score of the "tilted" density

    p_w(x|c) = p(x|c)^(1+w) p(x)^(-w) / Z_w(c),

which guided sampling is often said to sample. It does not (Chidambaram et al. 2024, arXiv:2409.13074; Moufad
et al. 2025, arXiv:2505.21101): the guided score at noise level t is the tilt of the noisy densities, not the
noisy version of the tilt. On a mixture with a closed-form density p_w is known up to Z_w, so genbench measures
how far guided samples are from it (:func:`tilted_measure`): the samples' mean -log p_w (a cross-entropy, in
nats) against the target's own entropy H(p_w). For samples drawn from p_w the two agree up to the Monte Carlo
error; a positive gap means the samples lie where p_w is lower than it typically is, a negative one that they
crowd its modes.

Z_w(c) and H(p_w(.|c)) come from the midpoint rule (:func:`bench.evaluation.quadrature.grid`) on a box around
component c, mean ± 8 standard deviations (its largest): p_w(x|c) = p(x|c) (P(c|x) / pi_c)^w is at most
pi_c^(-w) p(x|c), so no more mass than p(x|c)'s lies outside it (e^-32). The error is estimated like the
quadrature module's, |log Z(n) - log Z(n/2)|.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from bench.data.toy2d import GaussianMixture
from bench.evaluation.quadrature import grid

BOX_SIGMAS = 8.0


def log_parts(mix: GaussianMixture, x: np.ndarray, c: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log p(x|c), log p(x)) in nats, each (N,), of points x (N, 2) and labels c (one int or (N,) ints)."""
    comp = mix.component_log_prob(np.asarray(x, np.float64))  # log w_k + log N_k, (N, K)
    c = np.broadcast_to(np.asarray(c), (len(comp),))
    return comp[np.arange(len(comp)), c] - np.log(mix.weights[c]), logsumexp(comp, axis=1)


@dataclass(frozen=True)
class TiltedClass:
    """The tilted target p_w(.|c) of one class, by quadrature.

    Attributes:
        c, w: the class and the guidance scale.
        log_z: log Z_w(c), nats. entropy: H(p_w(.|c)), nats. error: |log Z(n) - log Z(n/2)|, nats.
        box: (lo_x, hi_x, lo_y, hi_y) of the grid. n: points per axis.
    """

    c: int
    w: float
    log_z: float
    entropy: float
    error: float
    box: tuple[float, float, float, float]
    n: int


def _box(mix: GaussianMixture, c: int) -> tuple[float, float, float, float]:
    r = BOX_SIGMAS * math.sqrt(float(np.linalg.eigvalsh(mix.covs[c]).max()))
    (mx, my) = mix.means[c]
    return mx - r, mx + r, my - r, my + r


def _grid(box: tuple[float, float, float, float], n: int) -> tuple[np.ndarray, float]:
    """Cell midpoints of an n x n grid on a rectangle (N, 2) float64 and the cell area (from the square grid of
    :func:`bench.evaluation.quadrature.grid` on [0, 1]^2, scaled)."""
    unit, _ = grid(0.0, 1.0, n)
    lo = np.array([box[0], box[2]])
    size = np.array([box[1] - box[0], box[3] - box[2]])
    return lo + unit.double().numpy() * size, float(size.prod()) / n**2


def tilted_class(mix: GaussianMixture, c: int, w: float, n: int = 256) -> TiltedClass:
    """log Z_w(c) and H(p_w(.|c)) of the tilted target by the midpoint rule on an n x n grid (n even).

    Raises:
        ValueError: odd n or n < 4.
    """
    if n % 2 or n < 4:
        raise ValueError(f"need an even n >= 4, got {n}")
    box = _box(mix, c)

    def integrate(m: int) -> tuple[float, float]:
        pts, area = _grid(box, m)
        lc, lp = log_parts(mix, pts, c)
        log_tilde = (1 + w) * lc - w * lp
        log_z = float(logsumexp(log_tilde)) + math.log(area)
        p = np.exp(log_tilde - log_z) * area  # cell masses, summing to 1
        return log_z, float(log_z - (p * log_tilde).sum())

    log_z, entropy = integrate(n)
    coarse, _ = integrate(n // 2)
    return TiltedClass(int(c), float(w), log_z, entropy, abs(log_z - coarse), box, n)


def log_tilted(mix: GaussianMixture, x: np.ndarray, c: np.ndarray, w: float, log_z: np.ndarray) -> np.ndarray:
    """log p_w(x|c) in nats, (N,), of points x (N, 2) with labels c (N,), given log Z_w per class (K,)."""
    lc, lp = log_parts(mix, x, c)
    return (1 + w) * lc - w * lp - np.asarray(log_z)[np.asarray(c)]


def tilted_measure(mix: GaussianMixture, samples: np.ndarray, labels: np.ndarray, w: float,
                   n: int = 256) -> dict[str, float]:
    """How far guided samples are from the tilted target, in nats.

    Args:
        mix: the true mixture (its component is the class).
        samples: (N, 2) samples; non-finite rows are left out.
        labels: (N,) their requested classes.
        w: the guidance scale they were drawn with.
        n: quadrature points per axis (each class's own box).

    Returns:
        ``tilted_ce_nats``: mean -log p_w(x|c) of the samples; ``tilted_ce_se_nats``: its standard error (std /
        sqrt(N)); ``tilted_entropy_nats``: H(p_w(.|c)) averaged over the samples' labels; ``tilted_gap_nats``:
        the difference, and ``tilted_gap_abs_nats`` its absolute value (the regression gate's reading: lower
        is closer to typical samples of p_w, from either side); ``tilted_quadrature_error_nats``: the largest
        |log Z(n) - log Z(n/2)| over the classes.
        Empty when fewer than 2 samples are finite.
    """
    x = np.asarray(samples, np.float64)
    y = np.asarray(labels).astype(int)
    ok = np.isfinite(x).all(1)
    x, y = x[ok], y[ok]
    if len(x) < 2:
        return {}
    per = {c: tilted_class(mix, c, w, n) for c in np.unique(y)}
    log_z = np.zeros(mix.k)
    for c, t in per.items():
        log_z[c] = t.log_z
    nll = -log_tilted(mix, x, y, w, log_z)
    entropy = float(np.mean([per[c].entropy for c in y]))
    ce = float(nll.mean())
    return {"tilted_ce_nats": ce, "tilted_ce_se_nats": float(nll.std(ddof=1) / math.sqrt(len(nll))),
            "tilted_entropy_nats": entropy, "tilted_gap_nats": ce - entropy, "tilted_gap_abs_nats": abs(ce - entropy),
            "tilted_quadrature_error_nats": max(t.error for t in per.values())}


def tilted_mixture_log_density(mix: GaussianMixture, pts: np.ndarray, w: float, weights: np.ndarray | None = None,
                               n: int = 256) -> np.ndarray:
    """log sum_c q_c p_w(x|c) at points (N, 2), q the class weights (default: the mixture's): the density the
    samples of a guided sampler would have if guidance sampled the tilted target (what the figures contour)."""
    q = mix.weights if weights is None else np.asarray(weights, np.float64)
    log_z = np.array([tilted_class(mix, c, w, n).log_z for c in range(mix.k)])
    parts = np.stack([np.log(np.maximum(q[c], 1e-300)) + log_tilted(mix, pts, np.full(len(pts), c), w, log_z)
                      for c in range(mix.k)], 1)
    return logsumexp(parts, axis=1)


__all__ = ["TiltedClass", "tilted_class", "log_tilted", "tilted_measure", "tilted_mixture_log_density", "log_parts",
           "BOX_SIGMAS"]
