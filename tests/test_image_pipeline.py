"""The image pipeline end to end on a tiny synthetic CIFAR-shaped dataset, in stages.

Train and sample on "machine A", move the run folder, evaluate and report on
"machine B", then re-evaluate the stored samples without retraining. Checks that
sample files are compact uint8, that features are computed once per sample set and
reused, that every FID carries its N and fingerprint, and that a dataset variant
that is not comparable with published numbers is labelled in the report.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import run_bench
from bench import data as datasets

SUITE = """\
name: tinyimg
datasets: [cifar10]
device: cpu
data: {root: "%s"}
eval: {n_samples: 12, fid_reference: [train, test], fid_reference_n: 16, bound_n: 8, density_n: 16,
       throughput_batch: 6, density_batch: 8}
train: {steps: 2, batch_size: 8}
families:
  gan: {model: {latent: 8, channels: 8}}
  vae: {model: {latent: 4, channels: [8, 8], iwae_k: 100, iwae_chunk: 50}}
  diffusion: {model: {T: 8, channels: [8, 8, 8], layers_per_block: 1, attention: false, norm_groups: 4},
              samplers: {ddim: {steps: [2, 4]}}}
"""


@pytest.fixture
def tiny_cifar(monkeypatch):
    g = torch.Generator().manual_seed(0)
    x_train = torch.randint(0, 256, (48, 3, 32, 32), generator=g, dtype=torch.uint8)
    x_test = torch.randint(0, 256, (24, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.zeros(48, dtype=torch.int64)

    def fake(root):
        return ({"train": (x_train, y), "test": (x_test, y[:24])},
                {"variant": "tiny-synthetic", "comparable_to_published": False,
                 "note": "synthetic noise images for a test"})

    monkeypatch.setattr(datasets, "load_cifar10", fake)


def _run(suite_path, results, *args) -> int:
    return run_bench.main([str(suite_path), "--results", str(results), "--no-progress", "--run-id", "r", *args])


def _cells(results):
    return {p.parent.name: json.loads(p.read_text()) for p in (results / "tinyimg" / "r").glob("*/record.json")}


@pytest.mark.slow  # a whole image suite: 3 families trained, ~90 Inception forwards, the ONNX export (~1 min)
def test_image_suite_runs_in_stages_across_machines(tmp_path, tiny_cifar, monkeypatch):
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE % (tmp_path / "data"))  # the data root and its caches go under tmp_path
    a, b = tmp_path / "machine_a", tmp_path / "machine_b"

    # machine A: train + sample only
    assert _run(suite, a, "--stage", "sample") == 0
    cells = _cells(a)
    assert {r["status"] for r in cells.values()} == {"partial"}
    diff_dir = a / "tinyimg" / "r" / "cifar10__diffusion__s0"
    with np.load(diff_dir / "samples_ancestral.npz") as f:
        s = f["samples"]
    assert s.dtype == np.uint8 and s.shape == (12, 3, 32, 32)
    assert not list(diff_dir.glob("features_*.npz"))  # no metric ran on A
    assert set(cells["cifar10__diffusion__s0"]["samplers"]) == {"ancestral", "ddim2", "ddim4"}
    assert [cells["cifar10__diffusion__s0"]["samplers"][k]["sample_nfe"] for k in ("ancestral", "ddim2", "ddim4")] \
        == [8, 2, 4]

    # machine B: only the run folder moves; the checkpoints are not needed to evaluate
    shutil.copytree(a, b)
    for ckpt in b.glob("tinyimg/r/*/model.pt"):
        ckpt.unlink()
    assert _run(suite, b) == 0
    cells = _cells(b)
    assert {r["status"] for r in cells.values()} == {"ok"}
    m = cells["cifar10__gan__s0"]["samplers"]["default"]
    for split in ("train", "test"):
        assert np.isfinite(m[f"fid_{split}"]) and m[f"fid_{split}"] > 0
        assert np.isfinite(m[f"kid_{split}_mean"])
    assert 0.0 <= m["precision"] <= 1.0 and 0.0 <= m["coverage"] <= 1.0
    fp = m["metric_protocol"]
    assert fp["n"] == 12 and fp["references"]["test"]["n"] == 16 and fp["references"]["train"]["n"] == 16
    assert fp["references"]["test"]["whole_split"] is False
    assert fp["kid_subset_size"] == 6 and m["kid_subset_size"] == 6  # half of min(16 reference, 12 samples)
    assert fp["extractor"]["weights_sha256"] == cells["cifar10__gan__s0"]["protocol"]["extractor"]["weights_sha256"]
    vae = cells["cifar10__vae__s0"]["density"]
    assert "test_bpd" not in vae and vae["test_bpd_bound"] > 0  # a bound stays a bound
    assert not (b / "tinyimg" / "r" / "cifar10__gan__s0" / "model.pt").exists()  # nothing retrained

    report = (b / "tinyimg" / "r" / "report.md").read_text()
    assert "**Not comparable with published numbers.**" in report
    assert "FID_12 (train)" in report and "FID_12 (test)" in report
    assert "Metric fingerprint" in report and "protocol mismatch" not in report
    assert (b / "tinyimg" / "r" / "figures" / "fid_vs_nfe.png").exists()

    # re-evaluating the stored samples reuses their features: same numbers, no new Inception pass
    feats = b / "tinyimg" / "r" / "cifar10__gan__s0" / "features_default.npz"
    mtime = feats.stat().st_mtime_ns
    assert _run(suite, b, "--force") == 0
    assert feats.stat().st_mtime_ns == mtime
    again = _cells(b)["cifar10__gan__s0"]["samplers"]["default"]
    assert again["fid_test"] == m["fid_test"] and again["kid_train_mean"] == m["kid_train_mean"]
