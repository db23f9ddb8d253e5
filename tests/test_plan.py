"""The plan's cost model: arithmetic a reader can redo, probes fitted on a fake clock, and the probe cache."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from bench.config.suite import EvalConfig, load_suite
from bench.execution import plan
from bench.execution.plan import Linear
from models.base import TrainConfig

FAMILIES = {"autoregressive": {"model": {"hidden": 16, "components": 4}, "train": {"steps": 50}},
            "gan": {"model": {"hidden": 16}, "train": {"steps": 1000000, "max_seconds": 3}}}


def _suite(tiny_suite):
    """The tiny suite of an autoregressive family (50 steps) and a GAN (a 3 s budget); density batches of 100."""
    return load_suite(tiny_suite(FAMILIES, eval={"density_batch": 100}))


def _fake_clock(monkeypatch, seconds_of_n):
    """``plan._time_call`` on a fake clock: a call at n examples takes ``seconds_of_n(n)``; returns the n's seen."""
    seen = []

    def time_call(fn, device):
        fn()
        return seconds_of_n(seen[-1])

    monkeypatch.setattr(plan, "_time_call", time_call)
    return seen


def test_fit_times_the_real_batch_at_once_when_it_is_cheap(monkeypatch):
    seen = _fake_clock(monkeypatch, lambda n: 0.002 + 0.001 * n)
    fit = plan._fit(seen.append, 100, "cpu")
    assert seen == [1, 100]  # 100 * t(1) = 0.3 s <= 60 s: the real batch is timed, not extrapolated
    assert fit.s == pytest.approx(0.001) and fit(100) == pytest.approx(0.102) and fit(1) == pytest.approx(0.003)


def test_fit_grows_4x_while_the_real_batch_would_cost_too_much_then_times_it(monkeypatch):
    # concave, like a CPU: 2 s at n = 1, 4.4 s at 4, 7.6 at 16, then 0.2 s per sample
    cost = {1: 2.0, 4: 4.4, 16: 7.6, 200: 7.6 + 0.2 * 184}
    seen = _fake_clock(monkeypatch, cost.__getitem__)
    fit = plan._fit(seen.append, 200, "cpu")
    # after n = 1 the line through the origin predicts 400 s; through (1, 4): 2 + 0.8 * 199 = 161 s; through
    # (4, 16): 4.4 + 0.267 * 196 = 56.7 s <= 60 s, so n = 200 is timed itself
    assert seen == [1, 4, 16, 200]
    assert fit(200) == pytest.approx(44.4) and fit.s == pytest.approx(0.2)


def test_fit_stops_growing_when_the_next_call_would_take_over_a_minute(monkeypatch):
    seen = _fake_clock(monkeypatch, lambda n: 1.0 + 5.0 * n)
    fit = plan._fit(seen.append, 1000, "cpu")
    assert seen == [1, 4]  # t(4) = 21 s: the next (n = 16) would take about 81 s > 60 s
    assert fit(1000) == pytest.approx(1.0 + 5.0 * 1000)  # extrapolated from (1, 4)


def test_a_single_slow_first_call_is_a_lower_bound(monkeypatch):
    seen = _fake_clock(monkeypatch, lambda n: 18.0 + 3.3 * n)  # 18 s at n = 1: n = 4 might take over a minute
    fit = plan._fit(seen.append, 20, "cpu")
    assert seen == [1] and fit == Linear(21.3, 0.0, stopped=True)  # said to be at least 21.3 s (84 s at 20 here)


def _busy(seconds: float) -> None:
    """Python-level work for ``seconds`` (a sampler's loop: the probe's alarm can stop it between steps)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        pass


def test_a_first_call_over_the_limit_is_stopped_and_counted_at_the_limit(monkeypatch):
    monkeypatch.setattr(plan, "PROBE_CALL_MAX_S", 0.3)
    seen = []
    fit = plan._fit(lambda n: (seen.append(n), _busy(30.0)), 1000, "cpu")
    # one example would take 30 s; the alarm stops it at 0.3 s and no larger batch is tried: a lower bound
    assert seen == [1] and fit == Linear(0.3, 0.0, stopped=True) and fit(1000) == 0.3


def test_a_later_call_over_the_limit_gives_a_lower_bound_through_the_earlier_ones(monkeypatch):
    seen = []

    def time_call(fn, device):  # a fake clock: 2 s at n = 1; the call at n = 4 runs over the limit
        fn()
        if seen[-1] > 1:
            raise plan.ProbeStopped("over 60 s")
        return 2.0

    monkeypatch.setattr(plan, "_time_call", time_call)
    fit = plan._fit(seen.append, 1000, "cpu")
    # 4 x 2 s <= 60 s: n = 4 is tried and stopped, so t(4) >= 60 s: the line through t(1) = 2 s, its slope
    # raised to (60 - 2) / 4 = 14.5 s per example, a lower bound
    assert seen == [1, 4] and fit == Linear(2.0, 14.5, stopped=True) and fit(4) == 60.0


def test_the_deadline_restores_the_previous_alarm_handler():
    import signal

    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(plan.ProbeStopped):
        with plan.deadline(0.05):
            _busy(5.0)
    with plan.deadline(5.0):
        _busy(0.01)  # ends before its alarm, which is then cancelled
    assert signal.getsignal(signal.SIGALRM) is before and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_plan_says_which_estimates_are_lower_bounds(tmp_path, tiny_suite, monkeypatch):
    suite = _suite(tiny_suite)
    specs = plan.describe(suite, ["8gaussians"], ["gan"])
    monkeypatch.setattr(plan, "probe_family", lambda spec, suite, device: {
        "train_step_s": 0.01, "samplers": {k: [60.0, 0.0] for k in spec.samplers}, "density": None,
        "stopped": ["sampler 'default'"], "probe_seconds": 60.0})
    p = plan.make_plan(suite, specs, {}, torch.device("cpu"), stages=("train", "sample"), results_dir=tmp_path,
                       jobs=1, threads=1)
    assert p.probe_lower_bounds == {"8gaussians/gan": "sampler 'default'"}
    text = "\n".join(p.lines())
    assert "lower bound for 8gaussians/gan: a probe call of its sampler 'default' took over 60 s" in text
    assert "(at least: some probe calls were stopped)" in text and p.to_dict()["probe_lower_bounds"] == {
        "8gaussians/gan": "sampler 'default'"}


def test_train_seconds_take_the_binding_budget():
    assert plan.train_seconds(TrainConfig(steps=10, max_seconds=None), 0.5) == 5.0
    # 60 s budget at 0.5 s/step: 120 steps fit, plus the one that crosses the budget
    assert plan.train_seconds(TrainConfig(steps=100_000, max_seconds=60), 0.5) == pytest.approx(60.5)
    assert plan.train_seconds(TrainConfig(steps=10, max_seconds=60), 0.5) == 5.0


def test_monitor_seconds_use_the_cheapest_sampler_at_each_checkpoint():
    probe = {"samplers": {"ancestral": [1.0, 0.01], "ddim10": [0.1, 0.001]}, "density": [0.0, 0.0002]}
    samplers = {"ancestral": 1000, "ddim10": 10}
    ev = EvalConfig(monitor_points=10, monitor_n=500)  # history entries 0, 5, ..., 45 and the last step: 11
    assert plan.monitor_seconds(ev, samplers, probe, exact=False) == pytest.approx(11 * (0.1 + 0.5))
    assert plan.monitor_seconds(ev, samplers, probe, exact=True) == pytest.approx(11 * (0.1 + 0.5 + 0.1))
    # 5 points: entries 0, 10, 20, 30, 40 and the last step
    assert plan.monitor_seconds(EvalConfig(monitor_points=5, monitor_n=500), samplers, probe, False) == \
        pytest.approx(6 * 0.6)
    assert plan.monitor_seconds(EvalConfig(monitor_points=0), samplers, probe, exact=True) == 0.0
    # an image monitor without the classifier (smoke): no draws, only the bits/dim of an exact density
    assert plan.monitor_seconds(ev, samplers, probe, exact=True, draws=False) == pytest.approx(11 * 0.1)
    assert plan.monitor_seconds(ev, samplers, probe, exact=False, draws=False) == 0.0


def test_sample_seconds_count_the_timed_calls_and_the_ones_that_fill_n_samples():
    t = Linear(a=0.1, s=0.01)  # t(200) = 2.1 s, t(1) = 0.11 s
    ev = EvalConfig(n_samples=1000, throughput_batch=200, latency_batch=1, timing_warmup=1, timing_repeats=5)
    # 6 calls of 200 cover the 1000 samples: 6 * 2.1 + 6 * 0.11
    assert plan.sample_seconds(ev, nfe=784, t=t) == pytest.approx(13.26)
    slow = dataclasses.replace(ev, timing_repeats_slow=1, slow_sampler_nfe=100)
    # 784 NFE >= 100: 1 + 1 timed calls (400 samples), then 3 more calls of 200 to reach 1000
    assert plan.sample_seconds(slow, nfe=784, t=t) == pytest.approx(5 * 2.1 + 2 * 0.11)
    assert plan.sample_seconds(slow, nfe=1, t=t) == pytest.approx(13.26)  # a fast sampler keeps 5 repeats


def test_a_plan_charges_the_probes_to_each_cell_and_caches_them(tmp_path, tiny_suite, monkeypatch):
    suite = _suite(tiny_suite)
    specs = plan.describe(suite, ["8gaussians"], ["autoregressive", "gan"])
    calls = []

    def fake_probe(spec, suite, device):
        calls.append(spec.family)
        return {"train_step_s": 0.01, "samplers": {k: [0.001, 1e-5] for k in spec.samplers},
                "density": [0.002, 2e-5] if spec.density_call else None, "probe_seconds": 0.5}

    monkeypatch.setattr(plan, "probe_family", fake_probe)
    monkeypatch.setattr(plan, "_metric2d_seconds", lambda suite, ds: 0.25)
    monkeypatch.setattr(plan, "_reference_rows_seconds", lambda suite, ds: {"seconds": 0.75, "probe_seconds": 0.75})
    from bench import data as datasets

    loaded = {"8gaussians": datasets.load("8gaussians", suite.data, 10**6)}
    p = plan.make_plan(suite, specs, loaded, torch.device("cpu"), stages=("train", "sample", "evaluate", "report"),
                       results_dir=tmp_path / "res", jobs=1, threads=1)
    # two families, the dataset's T30 reference rows and its sample metrics' time, each a cached probe
    assert calls == ["autoregressive", "gan"] and p.probes_run == 4 and p.probe_seconds == pytest.approx(1.75, abs=0.05)
    ar, gan = (c.estimate for c in p.cells)
    # the training monitor: 5 of ~50 history entries + the last step = 6 checkpoints of 250 samples each,
    # plus 250 log-densities for the exact AR: 6 * (t_sample(250) + t_density(250))
    ar_monitor, gan_monitor = 6 * ((0.001 + 1e-5 * 250) + (0.002 + 2e-5 * 250)), 6 * (0.001 + 1e-5 * 250)
    assert ar.est_train_seconds == pytest.approx(50 * 0.01 + ar_monitor)
    assert gan.est_train_seconds == pytest.approx((3 / 0.01 + 1) * 0.01 + gan_monitor)  # the 3 s budget binds
    t300, t1 = 0.001 + 1e-5 * 300, 0.001 + 1e-5
    assert gan.est_sample_seconds == pytest.approx(6 * t300 + 6 * t1)  # 6 calls of 300 >= 300 samples
    assert gan.est_density_seconds == 0.0  # a GAN has no density
    # the first cell of a 2D dataset also scores the true mixture (the noise floor row, 0.25 s) and fits and
    # scores the T30 reference rows (0.75 s) once per process
    assert ar.one_off == {"8gaussians reference metrics and T30 rows": 1.0} and gan.one_off == {}
    assert ar.est_total_seconds == pytest.approx(ar.est_train_seconds + ar.est_sample_seconds
                                                 + ar.est_density_seconds + 0.25 + 1.0)
    # a second plan (another process) reads the probes from <data root>/cache/plan
    cached = plan.make_plan(suite, specs, loaded, torch.device("cpu"), stages=("train", "sample", "evaluate"),
                            done={"8gaussians__gan__s0"}, jobs=1, threads=1)
    assert calls == ["autoregressive", "gan"] and cached.probes_cached == 3 and cached.probes_run == 0
    assert cached.cells[1].done and cached.cells[1].estimate.est_total_seconds == 0.0
    assert cached.cells[0].estimate.est_train_seconds == pytest.approx(0.5 + ar_monitor)


def test_reference_rows_already_on_disk_cost_the_workers_nothing(tmp_path, tiny_suite, monkeypatch):
    suite = _suite(tiny_suite)
    specs = plan.describe(suite, ["8gaussians"], ["gan"])
    monkeypatch.setattr(plan, "probe_family", lambda spec, suite, device: {
        "train_step_s": 0.01, "samplers": {k: [0.001, 1e-5] for k in spec.samplers}, "density": None,
        "probe_seconds": 0.5})
    monkeypatch.setattr(plan, "_metric2d_seconds", lambda suite, ds: 0.25)
    monkeypatch.setattr(plan, "_reference_rows_seconds", lambda suite, ds: {"seconds": 0.75, "probe_seconds": 0.75})
    stored = tmp_path / "rows.json"
    stored.write_text("{}")  # bench.evaluation.vector.cached_reference_estimates will read the rows from here
    monkeypatch.setattr(plan.eval2d, "reference_cache_path", lambda ds, ev, cache: stored)
    from bench import data as datasets

    loaded = {"8gaussians": datasets.load("8gaussians", suite.data, 1000)}
    p = plan.make_plan(suite, specs, loaded, torch.device("cpu"), stages=("train", "sample", "evaluate"),
                       results_dir=tmp_path / "res", jobs=1, threads=1)
    # the noise-floor row (0.25 s) is still scored once per process; the T30 rows' 0.75 s is not charged
    assert p.cells[0].estimate.one_off == {"8gaussians reference metrics and T30 rows": 0.25}


def test_the_default_sampler_adds_its_batch_sweep_and_a_pf_ode_cell_its_likelihood():
    ev = EvalConfig(n_samples=1000, throughput_batch=340, latency_batch=1, timing_warmup=1, timing_repeats=5,
                    timing_repeats_slow=2, batch_sweep=[1, 8, 64, 512], bound_n=120, density_batch=120,
                    quadrature_grid=256)
    t = plan.Linear(0.01, 0.001)  # 10 ms a call plus 1 ms a sample
    reps = ev.sampler_repeats(1000)  # a 1000-NFE sampler: 2 timed calls (timing_repeats_slow)
    plain = plan.sample_seconds(ev, 1000, t)
    # 3 calls (1 warm-up + 2) of 340, 1020 >= 1000 samples (no untimed call), and 3 calls at batch 1
    assert reps == 2 and plain == pytest.approx(3 * (0.01 + 0.34) + 3 * 0.011)
    # the sweep: 1 warm-up + min(3, 2) timed calls at each of batches 1, 8, 64 and 512
    sweep = 3 * (4 * 0.01 + 0.001 * (1 + 8 + 64 + 512))
    assert plan.sample_seconds(ev, 1000, t, sweep=True) == pytest.approx(plain + sweep)
    # the ODE likelihood: 120 test points in one chunk; in 2D also a 64 x 64 quadrature grid in chunks of 960
    assert plan.ode_seconds(ev, t, closed_form=False) == pytest.approx(0.01 + 0.12)
    assert plan.ode_seconds(ev, t, closed_form=True) == pytest.approx(0.01 + 0.12 + 5 * 0.01 + 4096 * 0.001)


def test_disk_per_cell_is_checkpoint_samples_grid_and_json(tiny_suite):
    suite = _suite(tiny_suite)
    spec = plan.describe(suite, ["8gaussians"], ["autoregressive"])[("8gaussians", "autoregressive")]
    from bench import data as datasets

    lay = datasets.layout("8gaussians", suite.data)
    got = plan._cell_disk_bytes(suite, spec, lay, ("train", "sample", "evaluate"))
    # float32 weights; 300 samples x 2 coordinates x 4 bytes; a 16 x 16 float32 density grid
    assert got == 4 * spec.params + plan.CKPT_OVERHEAD_BYTES + plan.JSON_BYTES + 300 * 2 * 4 + 4 * 16 * 16


def test_durations_and_sizes_read_as_a_person_would_write_them():
    assert [plan.duration(s) for s in (12.34, 185, 3725, 400 * 3600)] == ["12.3s", "3m05s", "1h02m", "17 days"]
    assert plan.size(1_500_000) == "1.5 MB" and plan.size(999) == "999 B"


def test_other_cores_is_busy_time_minus_our_own_over_the_wall_time():
    # 3 CPU-seconds busy over 2 s of wall time, 1 of them ours: another process kept 1 core busy
    from bench.core.timing import cpu_busy_seconds, other_cores

    assert other_cores(3.0, 1.0, 2.0) == 1.0
    assert other_cores(1.0, 1.2, 2.0) == 0.0  # tick rounding can make ours exceed the total: clipped at 0
    with pytest.raises(ValueError):
        other_cores(1.0, 0.0, 0.0)
    import os

    tck = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal: busy = 100 + 20 + 30 + 5 + 5 ticks (idle, iowait, steal not)
    assert cpu_busy_seconds("cpu  100 20 30 1000 50 5 5 7 0 0") == pytest.approx(160 / tck)
    assert cpu_busy_seconds("cpu0 1 2 3 4 5 6 7 8") is None and cpu_busy_seconds("intr 1 2") is None


def test_a_cached_probe_is_reused_only_when_quiet_dated_and_younger_than_30_days():
    from datetime import datetime, timedelta, timezone

    now = datetime(2026, 11, 21, 12, tzinfo=timezone.utc)
    at = (now - timedelta(days=2)).isoformat()
    assert plan.stale_reason({"measured_at": at, "others_cores": 0.1}, now) is None
    assert plan.stale_reason({"measured_at": at, "others_cores": None}, now) is None  # unknown (off Linux)
    assert "1.30 cores busy" in plan.stale_reason({"measured_at": at, "others_cores": 1.3}, now)
    old = (now - timedelta(days=31)).isoformat()
    assert "31 days old" in plan.stale_reason({"measured_at": old, "others_cores": 0.0}, now)
    assert "older cache" in plan.stale_reason({"train_step_s": 0.01, "load_average": [1.9, 1.5, 1.2]}, now)


def test_probes_taken_under_load_are_flagged_and_measured_again_next_time(tiny_suite, monkeypatch):
    suite = _suite(tiny_suite)
    specs = plan.describe(suite, ["8gaussians"], ["gan"])
    calls, load = [], [1.0]  # other processes' cores while the next probe runs

    class FakeContention:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.others_cores = load[0]

    def fake_probe(spec, suite, device):
        calls.append(spec.family)
        return {"train_step_s": 0.02 if load[0] > 0.25 else 0.01, "samplers": {k: [0.001, 1e-5] for k in spec.samplers},
                "density": None, "probe_seconds": 0.5}

    monkeypatch.setattr(plan, "Contention", FakeContention)
    monkeypatch.setattr(plan, "probe_family", fake_probe)
    monkeypatch.setattr(plan, "_metric2d_seconds", lambda suite, ds: 0.25)
    from bench import data as datasets

    loaded = {"8gaussians": datasets.load("8gaussians", suite.data, 10**6)}

    def make():  # no evaluate stage: the family's probe is the only one
        return plan.make_plan(suite, specs, loaded, torch.device("cpu"), stages=("train", "sample"),
                              jobs=1, threads=1)

    busy = make()
    assert calls == ["gan"] and list(busy.probes_contended.values()) == [1.0]
    assert any("warning: other processes kept up to 1.00 cores busy during 1 probe" in ln for ln in busy.lines())
    load[0] = 0.0
    quiet = make()  # the busy probe is not reused
    assert calls == ["gan", "gan"] and quiet.probes_run == 1 and quiet.probes_cached == 0
    assert "1.00 cores busy" in next(iter(quiet.probes_remeasured.values())) and not quiet.probes_contended
    # 3 s budget / 0.01 s per step: half the busy probe's estimate of training steps' time
    assert busy.cells[0].estimate.est_train_seconds > quiet.cells[0].estimate.est_train_seconds
    again = make()  # a quiet, dated probe is reused
    assert calls == ["gan", "gan"] and again.probes_cached == 1 and not again.probes_remeasured
    assert again.to_dict()["cells"][0]["est_train_seconds"] == quiet.to_dict()["cells"][0]["est_train_seconds"]
