"""Timing, done once and in one place.

Every measurement warms up, then repeats; on CUDA it synchronizes before reading
the clock on both sides of the timed call. Medians and interquartile ranges are
reported, never means of a single run. Model code never times itself.
"""

from __future__ import annotations

import os
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
        iqr_s: interquartile range (75th - 25th percentile), seconds: the spread of the calls, not an error.
        q25_s, q75_s: the quartiles, seconds.
        repeats: timed calls.
        warmup: untimed calls made first.
        times_s: every timed call, seconds.
        median_se_s: standard error of the median, seconds, by bootstrap (:func:`median_se`); ``None`` for
            fewer than 3 timed calls.
    """

    median_s: float
    iqr_s: float
    q25_s: float
    q75_s: float
    repeats: int
    warmup: int
    times_s: list[float]
    median_se_s: float | None = None

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
    return Timing(float(med), float(q75 - q25), float(q25), float(q75), repeats, warmup, times, median_se(times))


BOOTSTRAP_RESAMPLES = 2000


def median_se(times: list[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> float | None:
    """Standard error of the median of ``times`` (seconds in, seconds out), by the bootstrap: the sample standard
    deviation of the medians of ``resamples`` resamples with replacement (Efron & Tibshirani 1993, ch. 6), from a
    fixed ``seed`` so that a record's value is reproducible. ``None`` for fewer than 3 values, where a
    resampled median says nothing. For n normal draws of standard deviation s it approaches
    sqrt(pi / 2) s / sqrt(n) = 1.2533 s / sqrt(n)."""
    x = np.asarray(times, dtype=np.float64)
    if len(x) < 3:
        return None
    idx = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    return float(np.median(x[idx], axis=1).std(ddof=1))


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


def cpu_busy_seconds(stat_line: str | None = None) -> float | None:
    """CPU-seconds all cores have spent busy since boot, from the first line of ``/proc/stat``.

    Busy is user + nice + system + irq + softirq (guest time is already inside user; idle,
    iowait and steal are not busy here). ``stat_line`` is that line (for tests); ``None``
    reads the file. Returns ``None`` off Linux or when the line cannot be parsed.
    """
    if stat_line is None:
        try:
            with open("/proc/stat") as f:
                stat_line = f.readline()
        except OSError:
            return None
    fields = stat_line.split()
    if len(fields) < 8 or fields[0] != "cpu":
        return None
    try:
        user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    except ValueError:
        return None
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def other_cores(busy_s: float, own_s: float, wall_s: float) -> float:
    """Mean number of cores other processes kept busy over ``wall_s`` seconds (>= 0).

    ``busy_s``: CPU-seconds all cores were busy in that interval (:func:`cpu_busy_seconds`
    differences); ``own_s``: CPU-seconds this process used (``time.process_time`` differences,
    all its threads). Example: 3.0 s busy, 1.0 s own over 2.0 s of wall time -> 1.0 core.

    Raises:
        ValueError: ``wall_s <= 0``.
    """
    if wall_s <= 0:
        raise ValueError(f"need wall_s > 0, got {wall_s}")
    return max(0.0, busy_s - own_s) / wall_s


class Contention:
    """How much CPU other processes took while a ``with`` block ran.

    ``others_cores`` (set when the block ends) is the mean number of cores that other
    processes kept busy (:func:`other_cores`): about 0 on a quiet machine, about 1 when
    another single-threaded job shared it. ``None`` off Linux (no ``/proc/stat``) or for a
    block shorter than 50 ms (``/proc/stat`` counts in 10 ms ticks). Child processes of this
    one count as others.
    """

    def __init__(self):
        self.others_cores: float | None = None
        self.wall_s = 0.0

    def __enter__(self) -> Contention:
        self._busy0, self._own0, self._t0 = cpu_busy_seconds(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        busy1, own1 = cpu_busy_seconds(), time.process_time()
        self.wall_s = time.perf_counter() - self._t0
        if self._busy0 is None or busy1 is None or self.wall_s < 0.05:
            return
        self.others_cores = other_cores(busy1 - self._busy0, own1 - self._own0, self.wall_s)
