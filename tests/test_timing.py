"""Timing measures what it claims: known sleeps, warm-up counts, CUDA synchronization."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from bench.core import timing
from bench.core.timing import Stopwatch, measure


class FakeClock:
    """A ``perf_counter`` that only moves when the timed function advances it: exact, load-independent."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", c)
    return c


def test_a_real_sleep_is_never_under_measured():
    # time.sleep guarantees at least the requested time; an upper bound would depend on the machine's load
    t = measure(lambda: time.sleep(0.02), warmup=1, repeats=5)
    assert min(t.times_s) >= 0.02 and t.median_s >= 0.02
    assert t.repeats == 5 and len(t.times_s) == 5


def test_median_and_quartiles_of_known_durations(clock):
    durations = iter([9.0, 0.010, 0.030, 0.020, 0.050, 0.040])  # the first is the warm-up

    def fn():
        clock.now += next(durations)

    t = measure(fn, warmup=1, repeats=5)
    assert t.times_s == pytest.approx([0.010, 0.030, 0.020, 0.050, 0.040])
    assert t.median_s == pytest.approx(0.030)
    assert t.q25_s == pytest.approx(0.020) and t.q75_s == pytest.approx(0.040)  # numpy's linear percentiles
    assert t.iqr_s == pytest.approx(0.020)


def test_warmup_calls_are_made_and_not_timed(clock):
    calls = []

    def fn():
        calls.append(1)
        clock.now += 5.0 if len(calls) <= 2 else 0.001  # two slow warm-up calls

    t = measure(fn, warmup=2, repeats=5)
    assert len(calls) == 7
    assert t.times_s == pytest.approx([0.001] * 5) and t.median_s == pytest.approx(0.001)


def test_cuda_is_synchronized_around_every_timed_call(monkeypatch):
    events = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append("sync"))
    measure(lambda: events.append("call"), device="cuda", warmup=1, repeats=3)
    # warm-up call, sync; then for each repeat: sync, call, sync
    assert events == ["call", "sync"] + ["sync", "call", "sync"] * 3


def test_cpu_timing_does_not_touch_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: pytest.fail("synchronized on CPU"))
    measure(lambda: None, device="cpu", repeats=5)


def test_stopwatch_measures_a_block(clock):
    with Stopwatch() as sw:
        clock.now += 0.25
        assert sw.elapsed == pytest.approx(0.25)  # readable inside the block
        clock.now += 0.5
    clock.now += 7.0  # after the block: not counted
    assert sw.seconds == pytest.approx(0.75)


def test_stopwatch_synchronizes_cuda_at_both_ends_only(monkeypatch):
    events = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append("sync"))
    with Stopwatch("cuda") as sw:
        events.append("work")
        _ = sw.elapsed  # a budget check does not synchronize
    assert events == ["sync", "work", "sync"]


def test_a_real_sleep_inside_a_stopwatch():
    with Stopwatch() as sw:
        time.sleep(0.03)
    assert sw.seconds >= 0.03


def test_bad_repeats_raise():
    with pytest.raises(ValueError):
        timing.measure(lambda: None, repeats=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_kernel_time_is_counted():
    a = torch.randn(4096, 4096, device="cuda")
    t = measure(lambda: a @ a, device="cuda", warmup=2, repeats=5)
    # 2 * 4096^3 flops take well over 10 microseconds on any GPU; an unsynchronized clock reads launch time only
    assert t.median_s > 1e-5


def test_the_median_standard_error_is_the_bootstrap_and_matches_the_normal_theory():
    """For n normal draws of std s the median's standard error is sqrt(pi/2) s / sqrt(n) = 0.1247 at n = 101, s = 1
    (the sampling std of the median over 20,000 such sets is 0.125); the bootstrap estimates it without bias
    on average over 100 sets (its own spread is 0.025 per set, so 3 standard errors of the average are 0.0075)."""
    rng = np.random.default_rng(2)
    estimates = [timing.median_se(list(rng.normal(0, 1, 101)), resamples=500) for _ in range(100)]
    assert abs(np.mean(estimates) - math.sqrt(math.pi / 2) / math.sqrt(101)) < 0.0075
    assert timing.median_se([0.1, 0.2]) is None  # too few calls to say anything
    assert timing.median_se([0.1, 0.1, 0.1]) == pytest.approx(0.0, abs=1e-15)


def test_measure_reports_the_median_standard_error_not_the_iqr_as_its_error(monkeypatch):
    t = timing.measure(lambda: None, warmup=0, repeats=7)
    assert t.median_se_s == timing.median_se(t.times_s) and t.median_se_s is not None
    assert timing.measure(lambda: None, warmup=0, repeats=2).median_se_s is None
