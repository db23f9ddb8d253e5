"""Ctrl-C during a cell: the run stops, keeps its finished cells, and prints the command that resumes it."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import run_bench
from tests.helpers import default_sigint

SUITE = """\
name: tiny
datasets: [8gaussians]
data: {n_train: 2000, n_val: 200, n_test: 500, root: %s}
eval: {n_samples: 300, bound_n: 100, throughput_batch: 300, quadrature_grid: 64, density_grid: 16}
families:
  autoregressive: {model: {hidden: 16, components: 4}, train: {steps: 30}}
  gan: {model: {hidden: 16}, train: {steps: 100000000, max_seconds: 600}}
"""


def _wait_for(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_sigint_during_a_cell_leaves_a_resumable_run_and_prints_the_resume_command(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE % (tmp_path / "data"))
    run = tmp_path / "res" / "tiny" / "r"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(run_bench.ROOT / "run_bench.py"), str(suite), "--results", str(tmp_path / "res"),
           "--run-id", "r", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=run_bench.ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=default_sigint)
    try:
        # the first cell finishes; the GAN's (600 s budget) is training when Ctrl-C arrives
        started = _wait_for(lambda: (run / "8gaussians__autoregressive__s0" / "record.json").exists()
                            and (run / "8gaussians__gan__s0").is_dir(), timeout=300)
        assert started, proc.stderr.read() if proc.poll() is not None else "the run did not reach the second cell"
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)  # a liveness bound, not a speed claim
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    first = json.loads((run / "8gaussians__autoregressive__s0" / "record.json").read_text())
    cut = json.loads((run / "8gaussians__gan__s0" / "record.json").read_text())
    assert first["status"] == "ok"
    assert cut["status"] == "interrupted" and cut["stages_done"] == [] and "Ctrl-C" in cut["reason"]
    assert not (run / "8gaussians__gan__s0" / "model.pt").exists()  # no half-trained checkpoint
    resume = err.strip().splitlines()[-1].strip()
    assert resume.startswith("python ") and "--run-id r" in resume and "--profile default" in resume
    # the printed command finishes the run (here with a shorter GAN budget) and keeps the finished cell
    args = shlex.split(resume)[2:] + ["--set", "families.gan.train.max_seconds=1"]
    done = subprocess.run([sys.executable, str(run_bench.ROOT / "run_bench.py"), *args], cwd=run_bench.ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "8gaussians__autoregressive__s0: done before, skipped" in done.stderr
    assert json.loads((run / "8gaussians__autoregressive__s0" / "record.json").read_text()) == first
    assert json.loads((run / "8gaussians__gan__s0" / "record.json").read_text())["status"] == "ok"
