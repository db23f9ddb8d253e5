"""The report's verdicts come from measured numbers: synthetic records with known values."""

from __future__ import annotations

from bench.analysis import verdicts
from bench.report.document import Bullets, Document, Figure, Heading, Paragraph, Table, to_markdown
from bench.report.fmt import fmt
from bench.report.tables import normalization_text, taxonomy_rows
from bench.store.schema import CellRecord, DensityResult, SamplerResult

BOOK = {  # the textbook rows as the seven families declare them (models/<family>.py)
    "flow": {"likelihood": "exact", "sampling": "fast", "likelihood_text": "exact", "sampling_text": "fast"},
    "autoregressive": {"likelihood": "exact", "sampling": "slow", "likelihood_text": "exact",
                       "sampling_text": "slow (sequential)"},
    "vae": {"likelihood": "bound", "sampling": "fast", "likelihood_text": "ELBO bound", "sampling_text": "fast"},
    "diffusion": {"likelihood": "bound", "sampling": "slow", "likelihood_text": "ELBO bound",
                  "sampling_text": "slow (iterative)"},
    "energy": {"likelihood": "unnormalized", "sampling": "slow", "likelihood_text": "unnormalized",
               "sampling_text": "slow (MCMC)"},
    "gan": {"likelihood": "none", "sampling": "fast", "likelihood_text": "none", "sampling_text": "fast"},
}


def rec(family, kind, us_per_sample, nfe, log_integral=None, error=0.0, textbook="book", **density):
    d = DensityResult(log_integral_nats=log_integral, log_integral_error_nats=error, integral_grid=256, **density)
    m = SamplerResult(sample_us_per_sample=us_per_sample, sample_nfe=nfe, sample_throughput_per_s=1e6 / us_per_sample,
                      sample_latency_ms=1.0)
    return CellRecord(suite="s", run_id="r", dataset="d", family=family, seed=0, status="ok", likelihood_kind=kind,
                      textbook=BOOK.get(family) if textbook == "book" else textbook, density=d,
                      samplers={"default": m})


def test_likelihood_verdicts_follow_the_measured_integral():
    assert verdicts.likelihood(rec("flow", "exact", 1, 1, log_integral=-0.001)).verdict == "agrees"
    assert verdicts.likelihood(rec("flow", "exact", 1, 1, log_integral=-0.5, error=0.01)).verdict == "disagrees"
    assert verdicts.likelihood(rec("vae", "bound", 1, 1, log_integral=-0.3, error=0.01)).verdict == "agrees"
    assert verdicts.likelihood(rec("diffusion", "bound", 1, 1, log_integral=0.1, error=0.3)).verdict == "inconclusive"
    assert verdicts.likelihood(rec("energy", "unnormalized", 1, 1, log_integral=4.0, error=1e-6)).verdict == "agrees"
    assert verdicts.likelihood(rec("gan", "none", 1, 1)).verdict == "agrees"
    assert verdicts.likelihood(rec("gan", "exact", 1, 1)).verdict == "disagrees"  # claims none, exposes exact
    assert normalization_text(rec("flow", "exact", 1, 1, log_integral=0.0)) == "∫p dx = 1.000 (256² grid)"


def test_a_family_without_a_claim_is_never_said_to_disagree():
    r = rec("newfam", "exact", 5.0, 1, log_integral=-0.5, error=0.01, textbook=None)
    assert verdicts.likelihood(r).verdict == "no textbook claim"
    assert verdicts.sampling(r, [r, rec("gan", "none", 0.1, 1)]).verdict == "no textbook claim"
    rows, sentences = taxonomy_rows([rec("gan", "none", 0.1, 1), r])
    by = {row["family"]: row for row in rows}
    assert by["newfam"]["likelihood claim"] == "no textbook claim"
    assert by["newfam"]["sampling claim"] == "no textbook claim"
    assert by["newfam"]["textbook likelihood"] == "–" and by["newfam"]["cost per sample"] == "50.0× gan"
    assert sentences == ["newfam sampling (default) is 50.0× slower per sample than gan (NFE 1 vs 1); "
                         "the family makes no textbook claim."]


def test_sampling_verdicts_and_ratios():
    recs = [rec("gan", "none", 0.5, 1), rec("autoregressive", "exact", 1.5, 2, log_integral=0.0, test_nll_nats=2.8),
            rec("diffusion", "bound", 800.0, 1000, log_integral=-0.2, test_nll_bound_nats=4.1),
            rec("flow", "exact", 6.0, 2, log_integral=0.0, test_nll_nats=2.85)]
    assert verdicts.sampling(recs[1], recs).value == 3.0  # 1.5 / 0.5
    rows, sentences = taxonomy_rows(recs)
    by = {r["family"]: r for r in rows}
    assert by["gan"]["cost per sample"] == "fastest"
    assert by["autoregressive"]["cost per sample"] == "3.00× gan"
    # T7-T10 are judged by sequential passes (bench.analysis.sample_verdicts), the wall clock stays beside
    assert by["autoregressive"]["sampling claim"] == "T7 disagrees (default: NFE 2, 2x the fewest (1: gan))"
    assert by["diffusion"]["cost per sample"] == "1.60e+03× gan"
    assert by["diffusion"]["sampling claim"].startswith("T10 inconclusive (default: NFE 1000, 1e+03x")  # no batch sweep
    assert by["flow"]["sampling claim"].startswith("T9 agrees (default: NFE 2")  # 12x the fastest by wall clock only
    assert any(s.startswith("autoregressive sampling (default) is 3.00× slower per sample than gan") and
               s.endswith("by sequential passes, T7 disagrees (default: NFE 2, 2x the fewest (1: gan)).")
               for s in sentences)


def test_number_format():
    assert fmt(0.0032) == "0.00320" and fmt(2.834, 4) == "2.834" and fmt(1600.0) == "1.60e+03"
    assert fmt(None) == "–" and fmt(float("nan")) == "–" and fmt(25) == "25"


def test_markdown_writer_renders_every_block():
    doc = Document("T").add(Heading("H"), Paragraph("p **b**"), Bullets(["a", "b"]),
                            Table([{"x": "1", "y": "2"}, {"x": "3", "y": "4"}]), Figure("figures/f.png", "f"))
    assert to_markdown(doc) == ("# T\n\n## H\n\np **b**\n\n- a\n- b\n\n| x | y |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\n"
                                "![f](figures/f.png)\n")


def test_the_estimate_table_shows_each_stage_and_the_error():
    from bench.report.tables import estimate_rows
    from bench.store.schema import CellEstimate

    r = rec("gan", "none", 1, 1)
    r.wall_seconds, r.stage_seconds = 12.0, {"train": 6.0, "sample": 2.0, "density": 0.0, "evaluate": 4.0}
    r.estimate = CellEstimate(est_train_seconds=5.0, est_sample_seconds=2.0, est_density_seconds=0.0,
                              est_evaluate_seconds=2.0, est_one_off_seconds=1.0, est_total_seconds=10.0)
    unplanned = rec("flow", "exact", 1, 1)  # a cell run without a plan has no row
    rows = estimate_rows([r, unplanned])
    assert [row["cell"] for row in rows] == ["d__gan__s0", "**all cells**"]
    assert rows[0]["train s (est.)"] == "6.0 (5.0)" and rows[0]["evaluate s (est.)"] == "4.0 (3.0)"
    assert rows[0]["error"] == "+20%" and rows[1]["total s"] == "12.0" and rows[1]["error"] == "+20%"
