"""Timing measures what it claims: known sleeps, warm-up counts, CUDA synchronization."""

from __future__ import annotations

import time

import pytest
import torch

from bench import timing
from bench.timing import Stopwatch, measure


def test_median_of_a_known_sleep():
    t = measure(lambda: time.sleep(0.02), warmup=1, repeats=5)
    assert 0.02 <= t.median_s < 0.03
    assert t.repeats == 5 and len(t.times_s) == 5
    assert t.q25_s <= t.median_s <= t.q75_s and t.iqr_s == pytest.approx(t.q75_s - t.q25_s)


def test_warmup_calls_are_made_and_not_timed():
    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.05 if len(calls) <= 2 else 0.001)  # two slow warm-up calls

    t = measure(fn, warmup=2, repeats=5)
    assert len(calls) == 7
    assert t.median_s < 0.01 and max(t.times_s) < 0.04


def test_cuda_is_synchronized_around_every_timed_call(monkeypatch):
    events = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append("sync"))
    measure(lambda: events.append("call"), device="cuda", warmup=1, repeats=3)
    # warm-up call, sync; then for each repeat: sync, call, sync
    assert events == ["call", "sync"] + ["sync", "call", "sync"] * 3


def test_cpu_timing_does_not_touch_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: pytest.fail("synchronized on CPU"))
    measure(lambda: None, device="cpu", repeats=5)


def test_stopwatch_measures_a_block():
    with Stopwatch() as sw:
        time.sleep(0.03)
    assert 0.03 <= sw.seconds < 0.05


def test_bad_repeats_raise():
    with pytest.raises(ValueError):
        timing.measure(lambda: None, repeats=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_kernel_time_is_counted():
    a = torch.randn(4096, 4096, device="cuda")
    t = measure(lambda: a @ a, device="cuda", warmup=2, repeats=5)
    # 2 * 4096^3 flops take well over 10 microseconds on any GPU; an unsynchronized clock reads launch time only
    assert t.median_s > 1e-5
