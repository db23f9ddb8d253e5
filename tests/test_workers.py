"""The local launcher with --jobs 2 (worker processes): the same numbers as one job at the same thread count, a
dying cell recorded failed while the others finish, Ctrl-C recording every running cell interrupted, and a killed
driver resumed with every cell once in summary.csv. Each test starts processes: the slow tier."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pandas as pd
import pytest
import torch

import models
import run_bench
from bench.store.schema import metric_info
from tests.helpers import start_run_bench, wait_for, write_tiny_suite

pytestmark = pytest.mark.slow

# Test-only families that fail at their 6th training step, beyond the plan's 4 probe steps: one raises in its
# loss (the cell records the exception), one ends its worker process (the driver records it).
FAILING = '''\
import errno
import os
from dataclasses import dataclass

import torch
from torch import nn

from models import register
from models.base import Capabilities, GenerativeModel


@dataclass
class Cfg:
    scale: float = 1.0


class _Base(GenerativeModel):
    reference = "test-only"
    Config = Cfg
    capabilities = Capabilities(sample=True)
    tiny = {}

    def __init__(self, config, data_shape):
        super().__init__(config, data_shape)
        self.w = nn.Parameter(torch.zeros(data_shape))
        self.calls = 0

    def generate(self, n, generator=None):
        return self.w + torch.randn(n, *self.data_shape, generator=generator)

    def loss(self, x):
        self.calls += 1
        if self.calls == 6:
            self.fail()
        return ((x - self.w) ** 2).mean()


@register("raises_in_worker", modality="vector")
class Raises(_Base):
    def fail(self):
        raise ValueError("boom at step 6")


@register("dies_in_worker", modality="vector")
class Dies(_Base):
    def fail(self):
        os._exit(3)


@register("disk_full_in_worker", modality="vector")
class DiskFull(_Base):
    def fail(self):
        raise OSError(errno.ENOSPC, "No space left on device")
'''

AR = {"autoregressive": {"model": {"hidden": 16, "components": 4}, "train": {"steps": 30}}}
LONG = {"model": {"hidden": 16}, "train": {"steps": 100000000, "max_seconds": 600}}  # runs until stopped
SHORT = {"train": {"steps": 10}}


def _suite(tmp_path, **families) -> str:
    """The tiny 2D suite (tests/helpers.write_tiny_suite): a 30-step autoregressive cell, then ``families``."""
    return str(write_tiny_suite(tmp_path, {**AR, **families}, eval={"monitor_points": 0}))


@pytest.fixture
def failing_families(tmp_path, monkeypatch):
    """The test-only families, registered here and (through GENBENCH_FAMILIES) in the worker processes."""
    folder = tmp_path / "families"
    folder.mkdir()
    (folder / "failing_families.py").write_text(FAILING)
    monkeypatch.setenv("GENBENCH_FAMILIES", str(folder))
    models.discover(folder)
    yield
    for name in ("raises_in_worker", "dies_in_worker", "disk_full_in_worker"):
        models.unregister(name, modality="vector")


def _main(*args: str) -> int:
    return run_bench.main([*args, "--no-progress"])


def _non_timing(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary without the run id and the wall-clock columns (``timing`` in the schema)."""
    keep = [c for c in summary.columns if c != "run_id" and not (metric_info(c) and metric_info(c).timing)]
    return summary[keep]


def _records(run) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in run.glob("*/record.json")}


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _group_processes(pgid: int) -> list[str]:
    ps = subprocess.run(["ps", "-o", "pid=,args=", "-g", str(pgid)], capture_output=True, text=True)
    return ps.stdout.splitlines()


def test_two_jobs_give_one_jobs_summary_at_the_same_thread_count(tmp_path):
    # the 2D smoke profile's 8 cells of 8gaussians (12 summary rows: one per sampler), one at a time
    # in this process and two at a time in worker
    # processes, all on one torch thread (CPU kernels reduce in another order on another thread count)
    common = ["--profile", "smoke", "--datasets", "8gaussians", "--results", str(tmp_path), "--threads", "1"]
    assert _main(*common, "--run-id", "one", "--jobs", "1") == 0
    assert _main(*common, "--run-id", "two", "--jobs", "2") == 0
    one = pd.read_csv(tmp_path / "toy2d" / "one" / "summary.csv")
    two = pd.read_csv(tmp_path / "toy2d" / "two" / "summary.csv")
    assert len(one) == len(two) == 12 and set(two["status"]) == {"ok"}
    a, b = _non_timing(one), _non_timing(two)
    assert list(a.columns) == list(b.columns) and len(a.columns) > 40
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    info = json.loads((tmp_path / "toy2d" / "two" / "run.json").read_text())
    assert info["launcher"] == {"name": "local", "jobs": 2, "threads": 1} and info["device"]["torch_threads"] == 1
    rec = json.loads((tmp_path / "toy2d" / "two" / "8gaussians__flow__s0" / "record.json").read_text())
    assert rec["device"]["torch_threads"] == 1
    assert torch.get_num_threads() == 2  # the one-job run restored this process's threads


def test_a_cell_whose_process_dies_is_recorded_failed_and_the_others_finish(tmp_path, failing_families):
    suite = _suite(tmp_path, raises_in_worker=SHORT, dies_in_worker=SHORT)
    code = _main(suite, "--results", str(tmp_path / "res"), "--run-id", "r", "--jobs", "2",
                 "--threads", "1")
    assert code == 1
    run = tmp_path / "res" / "tiny" / "r"
    recs = _records(run)
    ok, raised, died = (recs[f"8gaussians__{f}__s0"] for f in ("autoregressive", "raises_in_worker", "dies_in_worker"))
    assert ok["status"] == "ok" and ok["device"]["torch_threads"] == 1
    assert raised["status"] == "failed" and raised["reason"] == "ValueError: boom at step 6"
    assert died["status"] == "failed" and died["stages_done"] == []
    assert died["reason"] == "its worker process exited with code 3 before the cell finished"
    summary = pd.read_csv(run / "summary.csv")
    assert sorted(summary["status"]) == ["failed", "failed", "ok"]
    assert "Failed cells" in (run / "report.md").read_text()


def test_ctrl_c_records_every_running_cell_interrupted_and_prints_the_resume_command(tmp_path):
    suite = _suite(tmp_path, gan=LONG, energy=LONG)
    run = tmp_path / "res" / "tiny" / "c"
    proc = start_run_bench(suite, tmp_path / "res", "c", "--jobs", "2", "--threads", "1", new_session=True)
    try:  # the two long cells go first (longest first) and are both training when Ctrl-C arrives
        started = wait_for(lambda: (run / "8gaussians__gan__s0").is_dir() and (run / "8gaussians__energy__s0").is_dir(),
                           timeout=300)
        assert started, proc.stderr.read() if proc.poll() is not None else "the two long cells did not start"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        if not _group_gone(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    recs = _records(run)
    for family in ("gan", "energy"):
        cut = recs[f"8gaussians__{family}__s0"]
        assert cut["status"] == "interrupted" and cut["stages_done"] == [] and "Ctrl-C" in cut["reason"]
        assert not (run / f"8gaussians__{family}__s0" / "model.pt").exists()  # no half-trained checkpoint
    assert "8gaussians__autoregressive__s0" not in recs  # never started
    resume = err.strip().splitlines()[-1].strip()
    assert resume.startswith("python ") and "--run-id c" in resume and "--jobs 2" in resume


def test_a_killed_driver_takes_its_workers_with_it_and_resumes_with_every_cell_once(tmp_path):
    suite = _suite(tmp_path, gan=LONG, flow={"train": {"steps": 30}})
    run = tmp_path / "res" / "tiny" / "k"
    proc = start_run_bench(suite, tmp_path / "res", "k", "--jobs", "2", "--threads", "1", new_session=True)
    try:  # the GAN (600 s budget) trains on one worker while the other finishes the two short cells
        done = lambda: sum(1 for r in _records(run).values() if r["status"] == "ok")  # noqa: E731
        started = wait_for(lambda: done() >= 2 and (run / "8gaussians__gan__s0").is_dir(), timeout=300)
        assert started, proc.stderr.read() if proc.poll() is not None else "the short cells did not finish"
        os.kill(proc.pid, signal.SIGKILL)  # the driver only
        proc.wait(timeout=60)
        # the workers die with it (the kernel's parent-death signal): none is left to write into the run
        assert wait_for(lambda: not _group_processes(proc.pid), timeout=30), _group_processes(proc.pid)
    finally:
        proc.kill()
        if not _group_gone(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    before = _records(run)
    assert before.get("8gaussians__gan__s0", {}).get("status") != "ok"
    code = _main(suite, "--results", str(tmp_path / "res"), "--run-id", "k", "--jobs", "2", "--threads", "1",
                 "--set", "families.gan.train.max_seconds=1")
    assert code == 0
    summary = pd.read_csv(run / "summary.csv")
    assert sorted(summary["family"]) == ["autoregressive", "flow", "gan"]  # one row each: none twice, none missing
    assert set(summary["status"]) == {"ok"}
    for cid, rec in before.items():  # the cells finished before the kill were kept, not redone
        if rec["status"] == "ok":
            assert json.loads((run / cid / "record.json").read_text()) == rec


def test_a_full_disk_stops_the_run_with_exit_3_and_the_other_running_cell_is_recorded_interrupted(
        tmp_path, failing_families, capsys):
    # the GAN (600 s budget) goes first, longest first; the cell that finds the disk full runs beside it
    suite = _suite(tmp_path, gan=LONG, disk_full_in_worker=SHORT)
    code = _main(suite, "--results", str(tmp_path / "res"), "--run-id", "d", "--jobs", "2",
                 "--threads", "1", "--families", "gan,disk_full_in_worker")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert err[-1].startswith("run_bench.py: error: the results cannot be written: no space left on device")
    recs = _records(tmp_path / "res" / "tiny" / "d")
    assert recs["8gaussians__disk_full_in_worker__s0"]["status"] == "failed"
    assert recs["8gaussians__gan__s0"]["status"] == "interrupted"
    assert not (tmp_path / "res" / "tiny" / "d" / "summary.csv").exists()  # the run stopped before its summary
