"""Ctrl-C during a cell: the run stops, keeps its finished cells, and prints the command that resumes it."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import run_bench
from tests.helpers import interrupt_second_cell, start_run_bench

SUITE = """\
name: tiny
datasets: [8gaussians]
data: {n_train: 2000, n_val: 200, n_test: 500, root: %s}
eval: {n_samples: 300, bound_n: 100, throughput_batch: 300, quadrature_grid: 64, density_grid: 16}
families:
  autoregressive: {model: {hidden: 16, components: 4}, train: {steps: 30}}
  gan: {model: {hidden: 16}, train: {steps: 100000000, max_seconds: 600}}
"""


def test_sigint_during_a_cell_leaves_a_resumable_run_and_prints_the_resume_command(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE % (tmp_path / "data"))
    run = tmp_path / "res" / "tiny" / "r"
    proc = start_run_bench(suite, tmp_path / "res", "r", stdout=subprocess.PIPE)
    try:  # the first cell finishes; the GAN's (600 s budget) is training when Ctrl-C arrives
        err = interrupt_second_cell(proc, run, timeout=60)
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
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "8gaussians__autoregressive__s0: done before, skipped" in done.stderr
    assert json.loads((run / "8gaussians__autoregressive__s0" / "record.json").read_text()) == first
    assert json.loads((run / "8gaussians__gan__s0" / "record.json").read_text())["status"] == "ok"
