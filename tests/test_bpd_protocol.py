"""Bits/dim through the harness's own density stage, bound labelling, and metric fingerprints.

* A model whose every pixel is drawn from the test set's empirical pixel histogram h
  has test NLL per dimension equal to the entropy of h: bits/dim = -sum_k h_k log2 h_k.
* A bound is stored and reported as a bound (<=), never as an exact value.
* Two fingerprints that differ in N, seed or reference statistics are flagged by
  name; a different device or library version is only a note.
"""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch

from bench.config.suite import EvalConfig
from bench.data import Dataset
from bench.evaluation import image as evalimg
from bench.evaluation import protocol
from bench.execution.cell import density_stage
from bench.report import tables
from bench.store.schema import CellRecord, SamplerResult
from models.base import Capabilities, GenerativeModel


def _dataset(seed: int = 0) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    # skewed pixel values: mostly dark, a few bright, like MNIST
    test = (torch.rand(300, 1, 4, 4, generator=g) ** 3 * 256).floor().clamp(max=255).to(torch.uint8)
    return Dataset("tiny", "image", train=test.clone(), val=test[:0], test=test)


class HistogramModel(GenerativeModel):
    """log P(x) = sum over pixels of log h[x], h a fixed pmf over the 256 levels."""

    capabilities = Capabilities(log_prob=True)

    def __init__(self, h: torch.Tensor):
        super().__init__(None, (1, 4, 4))
        self.register_buffer("log_h", h.double().log())

    def log_prob(self, x, generator=None):
        return self.log_h[x.long()].flatten(1).sum(1)

    def loss(self, x):
        return -self.log_prob(x).mean()

    def generate(self, n, generator=None):
        return self.log_h.multinomial(n * 16, replacement=True, generator=generator).reshape(n, 1, 4, 4).to(torch.uint8)


class BoundModel(HistogramModel):
    """Reports the same value, but as a lower bound (an ELBO-like family)."""

    capabilities = Capabilities(bound=True)

    def log_prob_bounds(self, x, generator=None):
        return {"elbo": HistogramModel.log_prob(self, x)}


def _eval():
    return EvalConfig(bound_n=300, density_batch=64, timing_repeats=5)


def test_empirical_histogram_model_scores_the_closed_form_bits_per_dim():
    ds = _dataset()
    counts = torch.bincount(ds.test.flatten().long(), minlength=256).double()
    h = counts / counts.sum()
    nz = h[h > 0]
    closed_form = float(-(nz * nz.log2()).sum())  # entropy of h in bits
    out = density_stage(HistogramModel(h), ds, _eval(), torch.device("cpu"))
    dims = 16
    bpd = evalimg.bits_per_dim(out.test_nll_nats, dims)
    assert 0.5 < closed_form < 8.0  # skewed: well below 8 bits
    assert bpd == pytest.approx(closed_form, abs=1e-9)
    assert out.test_n == 300
    # a uniform pmf is exactly 8 bits/dim through the same stage
    out_u = density_stage(HistogramModel(torch.full((256,), 1 / 256)), ds, _eval(), torch.device("cpu"))
    assert evalimg.bits_per_dim(out_u.test_nll_nats, dims) == pytest.approx(8.0, abs=1e-12)


def test_a_bound_is_never_labelled_exact():
    ds = _dataset()
    counts = torch.bincount(ds.test.flatten().long(), minlength=256).double()
    out = density_stage(BoundModel(counts / counts.sum()), ds, _eval(), torch.device("cpu"))
    assert out.test_nll_nats is None and out.test_nll_bound_nats > 0
    assert out.bound_name == "elbo" and out.likelihood_kind == "bound"
    # the evaluate stage's conversion keeps the label, and the report prints "≤"
    d = evalimg.add_bits_per_dim(out, 16)
    assert d.test_bpd_bound == pytest.approx(out.test_nll_bound_nats / (16 * math.log(2)), rel=1e-12)
    assert d.bounds_bpd["elbo"] == d.test_bpd_bound and d.test_bpd is None
    rec = CellRecord(suite="s", run_id="r", dataset="tiny", family="vae", seed=0, density=d,
                     samplers={"default": SamplerResult(n_samples=10)}, likelihood_kind="bound")
    row = tables.image_metrics_rows([rec])[0]
    assert row["bits/dim"].startswith("≤ ")


def _fp(**over):
    fp = {"extractor": {"name": "tf-inception", "weights": "default_1.pt", "weights_sha256": "ab" * 32,
                        "resize": "tf1", "input_range": "uint8"},
          "n": 1000, "seed": 1, "references": {"test": {"dataset": {"sha256": "cd" * 32, "n_used": 1000},
                                                         "n": 1000, "whole_split": False, "stats_sha256": "ef" * 32}},
          "kid_subset_size": 1000, "pr_k": 3, "versions": {"torch": "2.15.0"}, "device": "CPU"}
    out = copy.deepcopy(fp)
    for k, v in over.items():
        out[k] = v
    return out


def test_fingerprint_differences_are_named():
    a = _fp()
    assert protocol.compare(a, _fp()) == ([], [])
    b = _fp(n=10000)
    b["references"]["test"]["stats_sha256"] = "00" * 32
    mismatches, notes = protocol.compare(a, b)
    assert mismatches == ["n: 1000 vs 10000", f"references.test.stats_sha256: {'ef' * 32!r} vs {'00' * 32!r}"]
    assert notes == []
    with pytest.warns(protocol.ProtocolMismatchWarning, match=r"FID of gan vs vae .*n: 1000 vs 10000"):
        protocol.warn_if_incomparable(a, b, "FID of gan vs vae")
    # a different device or torch version is recorded as a note, not a mismatch
    c = _fp(device="NVIDIA H100", versions={"torch": "2.11.0"})
    mismatches, notes = protocol.compare(a, c)
    assert mismatches == [] and notes == ["versions.torch: '2.15.0' vs '2.11.0'", "device: 'CPU' vs 'NVIDIA H100'"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert protocol.warn_if_incomparable(a, c) == []


def test_report_shows_the_fingerprint_and_flags_a_mismatch():
    recs = [CellRecord(suite="s", run_id="r", dataset="d", family=f, seed=0,
                       samplers={"default": SamplerResult(metric_protocol=fp)})
            for f, fp in (("gan", _fp()), ("vae", _fp(seed=2)))]
    with pytest.warns(protocol.ProtocolMismatchWarning):
        lines = tables.protocol_lines(recs)
    text = "\n".join(lines)
    assert "N = 1000 samples, seed 1" in text and "first 1000 images" in text
    assert "protocol mismatch**, vae/default vs gan/default: seed: 1 vs 2" in text
