"""Numerical normalization of 2D energies on a square box.

For p(x) = exp(-E(x)) / Z on the box [lo, hi]^2, log Z is the log of the midpoint
rule over an n x n grid of cells. The midpoint rule's error falls as h^2, so
|log Z_n - log Z_{n/2}| bounds the error of log Z_n generously (Richardson: the
error of the fine grid is about a third of that difference); it is reported as
the quadrature error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Quadrature:
    """log Z of an energy on a box, with its error estimate.

    Attributes:
        log_z: log of the midpoint-rule integral of exp(-E) on the n x n grid, nats.
        error: |log_z(n) - log_z(n/2)|, nats.
        lo, hi: the box [lo, hi]^2.
        n: grid points per axis.
        evaluations: energy evaluations spent (n^2 + (n/2)^2).
        neg_energy: -E at the n x n cell midpoints, (n, n) float64 (x index first), if asked for.
    """

    log_z: float
    error: float
    lo: float
    hi: float
    n: int
    evaluations: int
    neg_energy: np.ndarray | None = None


def grid(lo: float, hi: float, n: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, float]:
    """Cell midpoints of an n x n grid on [lo, hi]^2, (n*n, 2) float32, and the cell area."""
    h = (hi - lo) / n
    c = lo + h * (torch.arange(n, device=device, dtype=torch.float64) + 0.5)
    xx, yy = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], 1).float(), h * h


@torch.no_grad()
def _log_z(energy: Callable[[torch.Tensor], torch.Tensor], lo: float, hi: float, n: int, device,
           chunk: int) -> tuple[float, torch.Tensor]:
    pts, area = grid(lo, hi, n, device)
    neg_e = torch.cat([-energy(p).double() for p in pts.split(chunk)])
    return float(torch.logsumexp(neg_e, 0)) + math.log(area), neg_e


def log_partition(
    energy: Callable[[torch.Tensor], torch.Tensor],
    lo: float,
    hi: float,
    n: int = 1024,
    *,
    device: torch.device | str = "cpu",
    chunk: int = 65_536,
    keep_values: bool = False,
) -> Quadrature:
    """log Z = log integral over [lo, hi]^2 of exp(-E(x)) dx, by the midpoint rule.

    Args:
        energy: maps (M, 2) float32 points to (M,) energies in nats.
        lo, hi: the box.
        n: grid points per axis (even).
        keep_values: also return -E on the fine grid (``Quadrature.neg_energy``), e.g. for a figure.

    Raises:
        ValueError: odd ``n`` or an empty box.
    """
    if n % 2 or n < 4 or not hi > lo:
        raise ValueError(f"need an even n >= 4 and hi > lo, got {n=} {lo=} {hi=}")
    fine, values = _log_z(energy, lo, hi, n, device, chunk)
    coarse, _ = _log_z(energy, lo, hi, n // 2, device, chunk)
    kept = values.cpu().numpy().reshape(n, n) if keep_values else None
    return Quadrature(fine, abs(fine - coarse), float(lo), float(hi), n, n * n + (n // 2) ** 2, kept)
