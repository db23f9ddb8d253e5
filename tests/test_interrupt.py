"""Ctrl-C during a cell: the run stops, keeps its finished cells, and prints the command that resumes it."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

import run_bench
from tests.helpers import MARKER_ENV, interrupt_at_marker, start_run_bench

pytestmark = pytest.mark.slow  # run_bench.py in a child process

AR = {"model": {"hidden": 16, "components": 4}, "train": {"steps": 30}}
GAN_600S = {"model": {"hidden": 16}, "train": {"steps": 100000000, "max_seconds": 600}}


def test_sigint_during_a_cell_leaves_a_resumable_run_and_prints_the_resume_command(tmp_path, tiny_suite,
                                                                                   signalling_families):
    # the second cell, trains_on (the GAN, 600 s budget), creates a marker file at its 6th training step: Ctrl-C
    # then reaches a cell that is training
    suite = tiny_suite({"autoregressive": AR, "trains_on": GAN_600S})
    run, marker = tmp_path / "res" / "tiny" / "r", tmp_path / "training"
    families = {"GENBENCH_FAMILIES": str(signalling_families)}
    proc = start_run_bench(suite, tmp_path / "res", "r", stdout=subprocess.PIPE,
                           env={**families, MARKER_ENV: str(marker)})
    try:
        err = interrupt_at_marker(proc, marker, timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    first = json.loads((run / "8gaussians__autoregressive__s0" / "record.json").read_text())
    cut = json.loads((run / "8gaussians__trains_on__s0" / "record.json").read_text())
    assert first["status"] == "ok"
    assert cut["status"] == "interrupted" and cut["stages_done"] == [] and "Ctrl-C" in cut["reason"]
    assert not (run / "8gaussians__trains_on__s0" / "model.pt").exists()  # no half-trained checkpoint
    resume = err.strip().splitlines()[-1].strip()
    assert resume.startswith("python ") and "--run-id r" in resume and "--profile default" in resume
    # the printed command finishes the run (here with a shorter GAN budget) and keeps the finished cell
    args = shlex.split(resume)[2:] + ["--set", "families.trains_on.train.max_seconds=1"]
    done = subprocess.run([sys.executable, str(run_bench.ROOT / "run_bench.py"), *args], cwd=run_bench.ROOT,
                          env={**os.environ, **families}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "8gaussians__autoregressive__s0: done before, skipped" in done.stderr
    assert json.loads((run / "8gaussians__autoregressive__s0" / "record.json").read_text()) == first
    assert json.loads((run / "8gaussians__trains_on__s0" / "record.json").read_text())["status"] == "ok"
