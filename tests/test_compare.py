"""compare's rules on hand-built statistics: each p-value, adjustment and verdict can be checked by hand."""

from __future__ import annotations

import math

import pytest

from bench.analysis import compare
from bench.analysis.aggregate import Side, Stat
from bench.analysis.compare import IMPROVED, NOT_COMPARABLE, REGRESSED, UNCHANGED
from bench.report import compare as report_compare
from bench.report.document import Bullets, Document, Figure, Heading, Paragraph, Table, to_html

CPU = "cpu|CPU (x86_64, 2 cores)|torch 2.15"


def stat(*values, se=None, protocol="p", device=CPU) -> Stat:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return Stat(mean=mean, std=std, n=n, se=se, values=list(values), protocol=[protocol], device=[device])


def side(stats: dict, label="A", protocols=None) -> Side:
    cells = {(k[0], k[1]): {"seeds": [0], "failed": {}} for k in stats}
    return Side(label=label, suite="toy2d", profile="ci", modality="vector", stats=stats,
                protocols=protocols or {"p": {"eval.n_samples": 1000}}, cells=cells)


def only(cmp, metric):
    (row,) = [r for r in cmp.rows if r.key[3] == metric]
    return row


def test_t_test_p_values_match_the_textbook_formulas():
    # A = 1, 2, 3 and B = 4, 5, 6 (NLL, lower is better): difference 3, SE = sqrt(1/3 + 1/3) = 0.8165,
    # t = 3.674 with 4 degrees of freedom (equal spreads): one-sided p = 0.01066 that B is worse.
    rule, p_worse, p_better = compare.test(stat(1, 2, 3), stat(4, 5, 6), +1.0)
    assert rule == "Student t"
    assert p_worse == pytest.approx(0.01066, abs=1e-5) and p_better == pytest.approx(1 - 0.01066, abs=1e-5)
    # unequal spreads: A = 1, 2, 3 (s = 1), B = 10, 20, 30 (s = 10), difference 18, SE = sqrt(1/3 + 100/3) = 5.802,
    # t = 3.102 either way; pooled: 4 df, p = 0.0181; Welch: 2.04 df (Welch-Satterthwaite), p = 0.0439
    _, p_student, _ = compare.test(stat(1, 2, 3), stat(10, 20, 30), +1.0)
    rule, p_welch, _ = compare.test(stat(1, 2, 3), stat(10, 20, 30), +1.0, pooled=False)
    assert rule == "Welch t" and p_student == pytest.approx(0.0181, abs=2e-4) and p_welch == pytest.approx(0.0439,
                                                                                                       abs=2e-4)
    # for higher-is-better metrics the worse direction is a decrease
    rule, p_worse, p_better = compare.test(stat(4, 5, 6), stat(1, 2, 3), -1.0)
    assert p_worse == pytest.approx(0.01066, abs=1e-5) and p_better == pytest.approx(1 - 0.01066, abs=1e-5)


def test_one_seed_uses_the_own_standard_error_then_the_seed_spread():
    # own SE: z = (1.5 - 1.0) / sqrt(0.1² + 0.1²) = 3.536, one-sided p = 2.03e-4
    rule, p_worse, _ = compare.test(stat(1.0, se=0.1), stat(1.5, se=0.1), +1.0)
    assert rule == "own SE (z)" and p_worse == pytest.approx(2.03e-4, rel=1e-2)
    # seed spread of A (1.0, 1.2, 1.4: s = 0.2): t = 0.8 / (0.2 sqrt(1/3 + 1)) = 3.464, 2 df, p = 0.0371
    rule, p_worse, _ = compare.test(stat(1.0, 1.2, 1.4), stat(2.0), +1.0)
    assert rule == "seed spread of A (t, 2 df)" and p_worse == pytest.approx(0.0371, abs=2e-4)
    # neither: the tolerance rule, no p-value
    assert compare.test(stat(1.0), stat(2.0), +1.0) == ("tolerance 10%", None, None)


def test_holm_adjustment_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, max(0.06, 1 x 0.04) = 0.06
    assert compare.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert compare.holm([]) == []


def test_verdicts_follow_direction_significance_and_minimum_effect():
    a = side({
        ("d", "flow", "", "kl_nats"): stat(0.10, 0.11, 0.12),
        ("d", "flow", "default", "precision"): stat(0.90, 0.91, 0.92),
        ("d", "flow", "default", "recall"): stat(0.80, 0.81, 0.82),
        ("d", "flow", "", "test_nll_nats"): stat(3.000, 3.001, 3.002),
    })
    b = side({
        ("d", "flow", "", "kl_nats"): stat(1.10, 1.11, 1.12),  # 1 nat worse: regressed
        ("d", "flow", "default", "precision"): stat(0.60, 0.61, 0.62),  # 0.3 lower, higher is better: regressed
        ("d", "flow", "default", "recall"): stat(0.95, 0.96, 0.97),  # 0.15 higher: improved
        # 0.01 nats worse, t = 12.2 (p ~ 1e-4) but below the minimum effect of 5% x 3 nats = 0.15 nats
        ("d", "flow", "", "test_nll_nats"): stat(3.010, 3.011, 3.012),
    }, "B")
    cmp = compare.compare(a, b)
    kl, precision, nll = only(cmp, "kl_nats"), only(cmp, "precision"), only(cmp, "test_nll_nats")
    assert kl.verdict == REGRESSED and precision.verdict == REGRESSED and only(cmp, "recall").verdict == IMPROVED
    assert nll.p_worse < 1e-3 and nll.min_effect == pytest.approx(0.15, rel=1e-3) and nll.verdict == UNCHANGED
    # Holm over the four tests: the smallest p (KL, t = 122) is multiplied by 4, the next (precision, t = 37) by 3
    assert kl.p_adj == pytest.approx(4 * kl.p_worse, rel=1e-9)
    assert precision.p_adj == pytest.approx(max(4 * kl.p_worse, 3 * precision.p_worse), rel=1e-9)
    # worst first: KL rose by 909% of A's mean, precision fell by 33%
    assert cmp.failed and [r.key[3] for r in cmp.regressions] == ["kl_nats", "precision"]


def test_timings_are_ratios_on_one_device_and_not_gated():
    slow = {("d", "flow", "default", "sample_throughput_per_s"): stat(1000.0, 1010.0, 990.0)}
    fast = {("d", "flow", "default", "sample_throughput_per_s"): stat(500.0, 505.0, 495.0)}
    cmp = compare.compare(side(slow), side(fast, "B"))
    row = only(cmp, "sample_throughput_per_s")
    assert row.verdict == REGRESSED and row.ratio == pytest.approx(0.5) and not row.gated and not cmp.failed
    assert compare.compare(side(slow), side(fast, "B"), gate_timings=True).failed
    other = {k: stat(*v.values, device="cuda|NVIDIA H100|torch 2.15") for k, v in fast.items()}
    row = only(compare.compare(side(slow), side(other, "B")), "sample_throughput_per_s")
    assert row.verdict == NOT_COMPARABLE and row.rule.startswith("device differs")


def test_a_protocol_mismatch_is_refused_naming_the_key():
    key = ("d", "gan", "default", "mmd2")
    a = side({key: stat(0.1, 0.2, 0.3, protocol="p1")}, protocols={"p1": {"eval.n_samples": 500, "eval.pr_k": 3}})
    b = side({key: stat(0.1, 0.2, 0.3, protocol="p2")}, "B", protocols={"p2": {"eval.n_samples": 10000,
                                                                             "eval.pr_k": 3}})
    row = only(compare.compare(a, b), "mmd2")
    assert row.verdict == NOT_COMPARABLE and row.rule == "protocol differs: eval.n_samples: 500 vs 10000"


def test_missing_metrics_and_cells_are_listed_and_failed_cells_regress():
    a = side({("d", "gan", "default", "mmd2"): stat(0.1, 0.2), ("d", "vae", "default", "mmd2"): stat(0.1, 0.2)})
    b = side({("d", "gan", "default", "recall"): stat(0.5, 0.6), ("e", "vae", "default", "mmd2"): stat(0.1, 0.2)},
             "B")
    b.cells[("d", "gan")] = {"seeds": [0], "failed": {1: "DivergenceError: loss became nan"}}
    cmp = compare.compare(a, b)
    assert cmp.only_a == ["d/vae"] and cmp.only_b == ["e/vae"]
    assert {r.key[3]: r.rule for r in cmp.rows} == {"mmd2": "missing in B", "recall": "missing in A"}
    assert cmp.failed_b == ["d/gan seed 1: DivergenceError: loss became nan"] and cmp.failed
    assert report_compare.regression_lines(cmp) == [
        "REGRESSION d/gan seed 1: DivergenceError: loss became nan: failed in B"]


def test_different_suites_are_bad_input():
    a, b = side({}), side({}, "B")
    b.suite = "mnist"
    with pytest.raises(compare.InputError, match="incompatible suites: A .* 'toy2d' .* B .* 'mnist'"):
        compare.compare(a, b)


def test_html_is_escaped_self_contained_and_embeds_figures(tmp_path):
    png = bytes.fromhex("89504e470d0a1a0a")  # a PNG signature is enough to check the embedding
    (tmp_path / "f.png").write_bytes(png)
    doc = Document("T <x>").add(Heading("H"), Paragraph("a <script>alert(1)</script> **b** `c<d`"),
                                Bullets(["*e*"]), Table([{"x": "1 & 2"}]), Figure("f.png", "fig"))
    html = to_html(doc, tmp_path)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<strong>b</strong>" in html and "<code>c&lt;d</code>" in html and "<li><em>e</em></li>" in html
    assert "<td>1 &amp; 2</td>" in html and 'src="data:image/png;base64,iVBORw0KGgo=" alt="fig"' in html
    assert "http" not in html.lower().replace('<html lang="en">', "")


def test_image_metrics_are_refused_across_fid_sample_counts():
    from bench.analysis.aggregate import side_from_records
    from bench.store.schema import CellConfig, CellRecord, DensityResult, SamplerResult

    def rec(seed, n, fid):
        fp = {"extractor": {"name": "inception-v3-tf"}, "n": n, "seed": 0, "references": {}, "versions": {"torch": "x"}}
        return CellRecord(suite="cifar", run_id="r", dataset="cifar10", family="gan", seed=seed, status="ok",
                          modality="image", config=CellConfig(eval={"n_samples": n}, data={"n_test": 10000}),
                          density=DensityResult(test_bpd=3.0 + seed / 100),
                          samplers={"default": SamplerResult(fid={"test": fid + seed}, metric_protocol=fp)})

    a = side_from_records([rec(s, 500, 40.0) for s in range(3)], "A")
    b = side_from_records([rec(s, 10000, 30.0) for s in range(3)], "B")
    cmp = compare.compare(a, b)
    fid = only(cmp, "fid_test")
    assert fid.verdict == NOT_COMPARABLE
    assert "eval.n_samples: 500 vs 10000" in fid.rule and "metric_protocol.n: 500 vs 10000" in fid.rule
    assert only(cmp, "test_bpd").rule == "identical values"  # bits/dim does not depend on the FID's N


def test_no_spread_on_either_side_gives_the_permutation_p_value():
    # modes covered 8, 8, 8 vs 7, 7, 7: the most extreme of C(6, 3) = 20 splits, p = 0.05 one-sided
    rule, p_worse, p_better = compare.test(stat(8.0, 8.0, 8.0), stat(7.0, 7.0, 7.0), -1.0)
    assert rule == "permutation (no spread on either side)" and (p_worse, p_better) == (0.05, 1.0)
    # against one seed: C(4, 1) = 4 splits, p = 0.25
    assert compare.test(stat(8.0, 8.0, 8.0), stat(7.0), -1.0)[1] == 0.25
