"""Timing, done once and in one place.

Every measurement warms up, then repeats; on CUDA it synchronizes before reading
the clock on both sides of the timed call. Medians and interquartile ranges are
reported, never means of a single run. Model code never times itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch


def synchronize(device: torch.device | str) -> None:
    """Wait for all queued work on ``device`` (a no-op on CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Repeated wall-clock measurement of one call.

    Attributes:
        median_s: median seconds per call.
        iqr_s: interquartile range (75th - 25th percentile), seconds.
        q25_s, q75_s: the quartiles, seconds.
        repeats: timed calls.
        warmup: untimed calls made first.
        times_s: every timed call, seconds.
    """

    median_s: float
    iqr_s: float
    q25_s: float
    q75_s: float
    repeats: int
    warmup: int
    times_s: list[float]

    def as_dict(self) -> dict:
        return asdict(self)


def measure(fn: Callable[[], object], *, device: torch.device | str = "cpu", warmup: int = 1,
            repeats: int = 5) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed ones.

    On CUDA, ``torch.cuda.synchronize`` runs before starting and before stopping the
    clock, so queued kernels are counted in the call that launched them.

    Raises:
        ValueError: ``repeats < 1`` or ``warmup < 0``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats=} {warmup=}")
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    q25, med, q75 = np.percentile(times, [25, 50, 75])
    return Timing(float(med), float(q75 - q25), float(q25), float(q75), repeats, warmup, times)


class Stopwatch:
    """Wall-clock seconds of a ``with`` block, synchronizing ``device`` at both ends.

    ``seconds`` is set when the block ends. Inside the block, :attr:`elapsed` reads the
    clock without synchronizing: cheap enough for every training step, and meant for
    budgets (queued CUDA work is not yet counted), never for reported timings.
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = device
        self.seconds = 0.0
        self._t0: float | None = None

    def __enter__(self) -> Stopwatch:
        synchronize(self.device)
        self._t0 = time.perf_counter()
        return self

    @property
    def elapsed(self) -> float:
        """Seconds since the block started, unsynchronized (0 before it starts)."""
        return 0.0 if self._t0 is None else time.perf_counter() - self._t0

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._t0
