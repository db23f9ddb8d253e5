"""Parallel cells on paper: Amdahl's interpolation, the schedule (makespan, one-off costs), the (jobs, threads)
choice from probes at 1 thread and at all cores, the memory check of --jobs, and the command line's checks.
Every number here can be redone by hand; nothing starts a process."""

from __future__ import annotations

import pytest
import torch

import models
import run_bench
from bench import data as datasets
from bench.config.suite import load_suite
from bench.execution import plan, preflight
from bench.execution.parallel import OneOff, Task, at_threads, choose, dispatch_order, simulate, splits

SUITE = """\
name: tiny
datasets: [8gaussians]
seeds: [0, 1]
data: {n_train: 2000, n_val: 200, n_test: 500, root: %s}
eval: {n_samples: 300, bound_n: 100, throughput_batch: 300, density_batch: 100, quadrature_grid: 64,
       density_grid: 16, monitor_points: 0}
families:
  autoregressive: {model: {hidden: 16, components: 4}, train: {steps: 1000}}
  gan: {model: {hidden: 16}, train: {steps: 1000}}
"""


def test_amdahl_goes_through_both_measured_points():
    # t1 = 10 s, t4 = 6 s: p = (1 - 0.6) / (1 - 1/4) = 0.5333; T(2) = 10 (0.4667 + 0.2667) = 7.333 s
    assert at_threads(10.0, 6.0, 4, 1) == 10.0 and at_threads(10.0, 6.0, 4, 4) == 6.0
    assert at_threads(10.0, 6.0, 4, 2) == pytest.approx(22 / 3)
    # a small network, slower on more threads: p < 0, T grows with t (t1 = 1, t4 = 1.5 -> p = -2/3, T(2) = 4/3)
    assert at_threads(1.0, 1.5, 4, 2) == pytest.approx(4 / 3)
    # superlinear measurements are capped at a perfect speedup (p = 1): T(2) = t1 / 2
    assert at_threads(10.0, 1.0, 4, 2) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        at_threads(1.0, 1.0, 2, 3)


def test_two_workers_take_the_longest_cells_first():
    tasks = [Task("a", "d", 2.0), Task("b", "d", 4.0), Task("c", "d", 3.0)]
    assert [t.cell for t in dispatch_order(tasks, 1)] == ["a", "b", "c"]  # one job: the suite's order
    assert [t.cell for t in dispatch_order(tasks, 2)] == ["b", "c", "a"]  # longest first
    slots, makespan = simulate(tasks, 2)
    # b (4 s) on worker 0, c (3 s) on worker 1, a (2 s) on worker 1 when it frees at 3 s: ends at 5 s
    assert makespan == 5.0
    assert (slots["b"].worker, slots["c"].worker, slots["a"].worker) == (0, 1, 1)
    assert (slots["a"].start, slots["a"].end) == (3.0, 5.0)
    assert simulate(tasks, 1)[1] == 9.0
    # an unknown estimate (a failed probe) is handed out first and counts as 0 s
    slots, makespan = simulate(tasks + [Task("x", "d", None)], 2)
    assert slots["x"].start == 0.0 and slots["x"].end == 0.0 and makespan == 5.0


def test_every_worker_pays_a_per_process_load_once_and_a_disk_cache_is_built_by_whoever_needs_it_first():
    tasks = [Task(c, "mnist", 10.0, evaluate_seconds=2.0) for c in "abcd"]
    load = OneOff("*", "Inception load", 1.0, per_process=True, paid=True)
    ref = OneOff("mnist", "reference statistics", 5.0, per_process=False)
    slots, makespan = simulate(tasks, 2, [load, ref])
    # a and b start at 0 on two workers and reach their evaluation at 8 s, before anyone built the reference:
    # both build it (a: 0 -> 16 s, b: 0 -> 16 s); c and d start at 16 s, after it exists, and pay nothing
    assert slots["a"].one_off == slots["b"].one_off == {"Inception load": 1.0, "reference statistics": 5.0}
    assert slots["c"].one_off == slots["d"].one_off == {}
    assert makespan == 26.0
    # one job runs in the driver, which already loaded Inception (paid): only the reference, once
    slots, makespan = simulate(tasks, 1, [load, ref])
    assert slots["a"].one_off == {"reference statistics": 5.0} and makespan == 45.0
    # a one-off of another dataset is never charged
    assert simulate(tasks, 1, [OneOff("cifar10", "x", 99.0, per_process=False)])[1] == 40.0


def test_the_splits_considered_fit_the_cores_and_what_was_given():
    assert splits(2) == [(1, 1), (1, 2), (2, 1)]
    assert splits(4, jobs=2) == [(2, 1), (2, 2)]
    assert splits(2, jobs=3) == [(3, 1)]  # oversubscribed on purpose: honoured at one thread each
    assert splits(2, threads=1) == [(1, 1), (2, 1)]
    assert splits(2, max_jobs=1) == [(1, 1), (1, 2)]
    assert splits(4, cells=1) == [(1, 1), (1, 2), (1, 3), (1, 4)]
    assert splits(2, jobs=1, threads=2) == [(1, 2)]
    c = choose({(1, 2): 10.0, (2, 1): 6.0, (1, 1): 12.0})
    assert (c.jobs, c.threads, c.wall_seconds) == (2, 1, 6.0)
    assert [(x["jobs"], x["threads"]) for x in c.candidates] == [(2, 1), (1, 2), (1, 1)]
    assert (choose({(2, 1): 5.0, (1, 2): 5.0}).jobs) == 1  # a tie: fewer processes


def _plan(tmp_path, monkeypatch, step_s: dict[int, float], **kw):
    """A plan of SUITE on a fake clock: a training step takes ``step_s[threads]``; sampling, density and
    the 2D metrics cost nothing."""
    (tmp_path / "s.yaml").write_text(SUITE % (tmp_path / "data"))
    suite = load_suite(tmp_path / "s.yaml")
    specs = plan.describe(suite, ["8gaussians"], ["autoregressive", "gan"])
    seen = []

    def fake_probe(spec, suite, device):
        seen.append((spec.family, torch.get_num_threads()))
        return {"train_step_s": step_s[torch.get_num_threads()], "samplers": {k: [0.0, 0.0] for k in spec.samplers},
                "density": [0.0, 0.0] if spec.density_call else None, "probe_seconds": 0.0}

    monkeypatch.setattr(plan, "probe_family", fake_probe)
    monkeypatch.setattr(plan, "_metric2d_seconds", lambda suite, ds: 0.0)
    monkeypatch.setattr(plan, "_reference_rows_seconds", lambda suite, ds: {"seconds": 0.0, "probe_seconds": 0.0})
    loaded = {"8gaussians": datasets.load("8gaussians", suite.data, 1000)}  # a small entropy MC: not used here
    p = plan.make_plan(suite, specs, loaded, torch.device("cpu"), stages=("train", "sample", "evaluate"), cores=2,
                       **kw)
    return p, seen


def test_the_plan_probes_at_one_thread_and_at_all_cores_and_runs_two_one_thread_cells_when_that_is_faster(
        tmp_path, monkeypatch):
    # 4 cells of 1000 steps; 10 ms a step on 1 thread, 8 ms on 2: one at a time on 2 threads takes 4 x 8 = 32 s,
    # two at a time on 1 thread 2 x 10 = 20 s
    p, seen = _plan(tmp_path, monkeypatch, {1: 0.010, 2: 0.008})
    assert sorted(seen) == [("autoregressive", 1), ("autoregressive", 2), ("gan", 1), ("gan", 2)]
    assert (p.jobs, p.threads) == (2, 1)
    assert p.wall_seconds == pytest.approx(20.0) and p.total_seconds == pytest.approx(40.0)
    assert [(c["jobs"], c["threads"], round(c["wall_seconds"], 6)) for c in p.choice.candidates] == \
        [(2, 1, 20.0), (1, 2, 32.0), (1, 1, 40.0)]
    lines = p.lines()
    assert any(ln.strip().startswith("total (estimated wall time, 2 cells at a time)") and ln.endswith("20.0s")
               for ln in lines)
    assert ("  parallelism: 2 cells at a time x 1 torch thread each on 2 cores; the shortest estimate (others: "
            "1 x 2: 32.0s, 1 x 1: 40.0s); probes at 1/2 thread(s)") in lines
    d = p.to_dict()
    assert (d["jobs"], d["threads"], d["wall_seconds"]) == (2, 1, pytest.approx(20.0))
    assert {c["worker"] for c in d["cells"]} == {0, 1}


def test_a_network_that_uses_both_cores_well_runs_one_cell_at_a_time_on_two_threads(tmp_path, monkeypatch):
    # 4 ms a step on 2 threads: 4 x 4 = 16 s one at a time, against 20 s two at a time on one thread each
    p, _ = _plan(tmp_path, monkeypatch, {1: 0.010, 2: 0.004})
    assert (p.jobs, p.threads) == (1, 2) and p.wall_seconds == pytest.approx(16.0)


def test_jobs_and_threads_from_the_command_line_are_kept_and_fix_what_is_probed(tmp_path, monkeypatch):
    p, seen = _plan(tmp_path, monkeypatch, {1: 0.010, 2: 0.004}, jobs=2, threads=1)
    assert (p.jobs, p.threads) == (2, 1) and sorted(seen) == [("autoregressive", 1), ("gan", 1)]
    assert any("parallelism: 2 cells at a time x 1 torch thread each on 2 cores; as given (--jobs and --threads)"
               in ln for ln in p.lines())
    # four cells of 10 s: equal estimates keep the suite's order, two at a time
    assert p.order() == ["8gaussians__autoregressive__s0", "8gaussians__autoregressive__s1",
                         "8gaussians__gan__s0", "8gaussians__gan__s1"]
    assert [c.slot.start for c in p.cells] == [0.0, 0.0, 10.0, 10.0] and p.wall_seconds == pytest.approx(20.0)


def test_without_estimates_several_jobs_take_the_datasets_in_turn_and_one_job_the_suite_order(tmp_path):
    (tmp_path / "s.yaml").write_text(SUITE.replace("[8gaussians]", "[8gaussians, 25gaussians]") % (tmp_path / "d"))
    suite = load_suite(tmp_path / "s.yaml")
    specs = plan.describe(suite, ["8gaussians", "25gaussians"], ["autoregressive", "gan"])
    kw = dict(stages=("train", "sample", "evaluate"), threads=1, cores=2)
    one = plan.unestimated_plan(suite, specs, torch.device("cpu"), jobs=1, **kw)
    assert one.order()[:5] == ["8gaussians__autoregressive__s0", "8gaussians__autoregressive__s1",
                               "8gaussians__gan__s0", "8gaussians__gan__s1", "25gaussians__autoregressive__s0"]
    # two workers: the first cell of each dataset (which builds its reference rows) starts beside the other's
    two = plan.unestimated_plan(suite, specs, torch.device("cpu"), jobs=2, done={"8gaussians__autoregressive__s0"},
                                **kw)
    assert two.order() == ["25gaussians__autoregressive__s0", "8gaussians__autoregressive__s1",
                           "25gaussians__autoregressive__s1", "8gaussians__gan__s0", "25gaussians__gan__s0",
                           "8gaussians__gan__s1", "25gaussians__gan__s1"]
    assert plan.interleave_datasets([]) == []


def test_jobs_that_do_not_fit_in_memory_are_refused_in_one_line(tmp_path, monkeypatch):
    (tmp_path / "s.yaml").write_text(SUITE % (tmp_path / "data"))
    suite = load_suite(tmp_path / "s.yaml")
    parts = preflight.memory_needed(suite, ["8gaussians"])
    per = sum(parts.values()) + preflight.MEMORY_HEADROOM
    # 3 jobs: 3 worker processes and the driver (its datasets and its own interpreter)
    assert preflight.jobs_memory(parts, 3) == 3 * per + parts["dataset"] + preflight.MEMORY_HEADROOM
    assert preflight.jobs_memory(parts, 1) == per
    have = preflight.jobs_memory(parts, 2) + 1
    assert preflight.max_jobs_in_memory(parts, have) == 2
    monkeypatch.setattr(preflight, "available_memory", lambda: have)
    preflight.check_memory(suite, ["8gaussians"], jobs=2)
    with pytest.raises(preflight.PreflightError) as e:
        preflight.check_memory(suite, ["8gaussians"], jobs=3)
    msg = str(e.value)
    assert msg.startswith("--jobs 3: 3 cells at once need about ") and msg.endswith("use --jobs 2 or fewer")
    assert "\n" not in msg


@pytest.mark.parametrize("args, message", [
    (["--jobs", "0"], "argument --jobs: '0' is not allowed (must be an integer in [1, 1024]) (see --help)"),
    (["--threads", "two"], "argument --threads: 'two' is not allowed (must be an integer in [1, 1024]) (see --help)"),
])
def test_bad_jobs_or_threads_exit_2_in_one_line(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        run_bench.main(["--results", str(tmp_path / "res"), *args])
    assert e.value.code == 2
    assert capsys.readouterr().err == f"run_bench.py: error: {message}\n"
    assert not (tmp_path / "res").exists()


def test_jobs_are_for_the_local_launcher(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    assert run_bench.main(["--results", str(tmp_path / "res"), "--launcher", "ray", "--jobs", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("run_bench.py: error: --jobs is for the local launcher") and err.count("\n") == 1
    assert not (tmp_path / "res").exists()


def test_a_dead_workers_cell_is_recorded_with_how_the_process_ended():
    from bench.execution.workers import death_reason

    assert death_reason(3) == "its worker process exited with code 3 before the cell finished"
    assert death_reason(-9) == ("its worker process was killed by signal SIGKILL (the kernel's out-of-memory killer "
                                "sends it)")
    assert death_reason(-11) == "its worker process was killed by signal SIGSEGV"
    assert death_reason(None) == "its worker process stopped answering"


def test_a_stopped_cell_keeps_the_stages_its_own_record_finished_and_an_ok_record_stays(tmp_path):
    import dataclasses

    from bench.execution.cell import record_stopped
    from bench.store.runs import RunDir

    (tmp_path / "s.yaml").write_text(SUITE % (tmp_path / "data"))
    suite = load_suite(tmp_path / "s.yaml")
    ds = datasets.load("8gaussians", suite.data, 1000)  # a small entropy MC: not used here
    run = RunDir(tmp_path / "res", suite.name, "r")
    device = torch.device("cpu")
    r = record_stopped(suite, run, ds, "gan", 0, device, "its worker process was killed by signal SIGKILL", threads=1)
    assert (r.status, r.stages_done, r.device["torch_threads"]) == ("failed", [], 1)
    partial = dataclasses.replace(r, status="partial", stages_done=["train"], reason=None)
    run.write_record(partial)
    r = record_stopped(suite, run, ds, "gan", 0, device, "interrupted", status="interrupted")
    assert (r.status, r.stages_done, r.reason) == ("interrupted", ["train"], "interrupted")
    run.write_record(dataclasses.replace(r, status="ok", reason=None))
    assert record_stopped(suite, run, ds, "gan", 0, device, "late").status == "ok"  # it finished first: kept
    assert run.read_record("8gaussians__gan__s0").status == "ok"


def test_the_environment_gives_jobs_and_threads_their_defaults_and_a_bad_value_is_one_line(tmp_path, capsys,
                                                                                             monkeypatch):
    monkeypatch.setenv("GENBENCH_JOBS", "zero")
    assert run_bench.main(["--results", str(tmp_path / "res")]) == 2
    assert capsys.readouterr().err == ("run_bench.py: error: $GENBENCH_JOBS: 'zero' is not allowed (must be an "
                                       "integer in [1, 1024])\n")
    assert not (tmp_path / "res").exists()
    args = run_bench.parse_args(["--jobs", "3"])
    assert (args.jobs, args.threads) == (3, None)  # the command line's value; the environment fills only gaps


def test_a_folder_whose_families_are_all_unregistered_is_not_handed_to_workers(tmp_path):
    # a worker imports models.discovered_folders(); a stale folder would register its families a second time
    folder = tmp_path / "fams"
    folder.mkdir()
    (folder / "only_here.py").write_text(
        "from models import register\nfrom models.base import Capabilities, GenerativeModel\n\n\n"
        "@register('only_here_a', modality='vector')\nclass A(GenerativeModel):\n"
        "    capabilities = Capabilities(sample=True)\n\n    def loss(self, x):\n        return x.sum()\n\n"
        "    def generate(self, n, generator=None):\n        return None\n\n\n"
        "@register('only_here_b', modality='vector')\nclass B(A):\n    pass\n")
    models.discover(folder)
    assert folder.resolve() in models.discovered_folders()
    models.unregister("only_here_a", modality="vector")
    assert folder.resolve() in models.discovered_folders()  # B still comes from it
    models.unregister("only_here_b", modality="vector")
    assert folder.resolve() not in models.discovered_folders()
