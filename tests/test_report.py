"""The report's verdicts come from measured numbers: synthetic records with known values."""

from __future__ import annotations

from bench.report import _fmt, _likelihood_check, taxonomy_rows


def rec(family, kind, us_per_sample, nfe, log_integral=None, error=0.0, **density):
    d = {"log_integral_nats": log_integral, "log_integral_error_nats": error, "integral_grid": 256, **density}
    return {"family": family, "likelihood_kind": kind, "seed": 0, "density": d,
            "samplers": {"default": {"sample_us_per_sample": us_per_sample, "sample_nfe": nfe,
                                     "sample_throughput_per_s": 1e6 / us_per_sample, "sample_latency_ms": 1.0}}}


def test_likelihood_verdicts_follow_the_measured_integral():
    assert _likelihood_check(rec("flow", "exact", 1, 1, log_integral=-0.001))[1] == "agrees"
    assert _likelihood_check(rec("flow", "exact", 1, 1, log_integral=-0.5, error=0.01))[1] == "disagrees"
    assert _likelihood_check(rec("vae", "bound", 1, 1, log_integral=-0.3, error=0.01))[1] == "agrees"
    assert _likelihood_check(rec("diffusion", "bound", 1, 1, log_integral=0.1, error=0.3))[1] == "inconclusive"
    assert _likelihood_check(rec("energy", "unnormalized", 1, 1, log_integral=4.0, error=1e-6))[1] == "agrees"
    assert _likelihood_check(rec("gan", "none", 1, 1))[1] == "agrees"
    text, _ = _likelihood_check(rec("flow", "exact", 1, 1, log_integral=0.0))
    assert text == "∫p dx = 1.000 (256² grid)"


def test_sampling_verdicts_and_ratios():
    recs = [rec("gan", "none", 0.5, 1), rec("autoregressive", "exact", 1.5, 2, log_integral=0.0, test_nll_nats=2.8),
            rec("diffusion", "bound", 800.0, 1000, log_integral=-0.2, test_nll_bound_nats=4.1),
            rec("flow", "exact", 6.0, 2, log_integral=0.0, test_nll_nats=2.85)]
    rows, sentences = taxonomy_rows(recs)
    by = {r["family"]: r for r in rows}
    assert by["gan"]["cost per sample"] == "fastest"
    assert by["autoregressive"]["cost per sample"] == "3.00× gan"
    assert by["autoregressive"]["sampling claim"] == "disagrees (measured fast)"  # textbook: slow (sequential)
    assert by["diffusion"]["cost per sample"] == "1.60e+03× gan"
    assert by["diffusion"]["sampling claim"] == "agrees (measured slow)"
    assert by["flow"]["sampling claim"] == "disagrees (measured slow)"  # 12x the fastest
    assert any(s.startswith("- autoregressive sampling (default) is 3.00× slower per sample than gan") for s in sentences)


def test_number_format():
    assert _fmt(0.0032) == "0.00320" and _fmt(2.834, 4) == "2.834" and _fmt(1600.0) == "1.60e+03"
    assert _fmt(None) == "–" and _fmt(float("nan")) == "–" and _fmt(25) == "25"
