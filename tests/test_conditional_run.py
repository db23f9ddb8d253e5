"""A conditional 2D run end to end (slow tier): the suite's conditional block trains labelled cells, draws each
sampler with the test labels, records the class-conditional metrics and the tilted measure, and the report shows
the guidance section with its T24/T25 verdicts."""

from __future__ import annotations

import json

import numpy as np
import pytest

import run_bench

pytestmark = pytest.mark.slow


def test_a_conditional_smoke_run_records_the_sweep_and_reports_the_verdicts(tmp_path):
    code = run_bench.main(["suites/toy2d.yaml", "--profile", "conditional-smoke", "--datasets", "8gaussians",
                           "--families", "diffusion,vae", "--results", str(tmp_path), "--run-id", "c",
                           "--no-progress", "--set", "conditional.guidance=[0, 1, 2]"])
    assert code == 0
    run = tmp_path / "toy2d-conditional" / "c"
    rec = json.loads((run / "8gaussians__diffusion__s0" / "record.json").read_text())
    assert rec["config"]["model"]["num_classes"] == 8
    assert list(rec["samplers"]) == ["ddim_w0", "ddim_w1", "ddim_w2"]
    guided = rec["samplers"]["ddim_w2"]
    assert guided["guidance"] == 2.0 and guided["sample_nfe"] == 2 * rec["samplers"]["ddim_w0"]["sample_nfe"]
    for key in ("label_agreement", "label_agreement_real", "cond_precision", "cond_recall", "cond_coverage",
                "class_diversity", "tilted_ce_nats", "tilted_entropy_nats", "tilted_gap_nats"):
        assert key in guided, key
    with np.load(run / "8gaussians__diffusion__s0" / "samples_ddim_w2.npz") as f:
        labels = f["labels"]
    assert labels.dtype == np.int64 and labels.shape == (1000,)
    report = (run / "report.md").read_text()
    assert "## Conditional generation and classifier-free guidance" in report
    assert "**T25, diffusion ddim (steps 10, eta 0): inconclusive**" in report  # one seed: no standard error
    assert (run / "figures" / "guidance_fidelity_diversity.png").exists()
    assert (run / "figures" / "guidance_samples_8gaussians.png").exists()
    assert "| T24 | Conditioning and evaluation |" in report and "T25" in report
