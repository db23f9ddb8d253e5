"""A comparison (:func:`bench.analysis.compare.compare`) rendered: the terminal table, the regression lines,
the rules in words, ``compare.md``/``compare.html`` and the volcano plot."""

from __future__ import annotations

import math
from pathlib import Path

from bench.analysis.aggregate import Side, Stat
from bench.analysis.compare import (
    IDENTICAL,
    IMPROVED,
    MIN_EFFECT_ABS,
    MIN_EFFECT_REL,
    NOT_COMPARABLE,
    REGRESSED,
    TIMING_MIN_RATIO,
    TOLERANCE_REL,
    UNCHANGED,
    Comparison,
    Row,
)
from bench.report.document import Bullets, Document, Figure, Heading, Paragraph, Table
from bench.report.fmt import fmt
from bench.report.plotting import plt, save


def _fmt_stat(s: Stat | None) -> str:
    if s is None:
        return "–"
    return f"{fmt(s.mean, 4)} ± {fmt(s.std, 2)} (n={s.n})" if s.std is not None else f"{fmt(s.mean, 4)} (n=1)"


def _fmt_change(r: Row) -> str:
    if r.a is None or r.b is None:
        return "–"
    if r.info.timing:
        return f"×{fmt(r.ratio, 3)}" if r.ratio is not None else "–"
    d = r.b.mean - r.a.mean
    rel = f" ({d / abs(r.a.mean):+.1%})" if r.a.mean else ""
    return f"{'+' if d >= 0 else ''}{fmt(d, 3)}{rel}"


def table_rows(rows: list[Row]) -> list[dict[str, str]]:
    """Rows of the comparison table (formatted strings), in the given order."""
    out = []
    for r in rows:
        ds, fam, sampler, metric = r.key
        p = fmt(r.p_adj, 2) if r.p_adj is not None else "–"
        out.append({"verdict": r.verdict, "dataset": ds, "family": fam, "sampler": sampler or "–", "metric": metric,
                    "unit": r.info.unit or "–", "better": r.info.better or "–", "A": _fmt_stat(r.a),
                    "B": _fmt_stat(r.b), "change": _fmt_change(r), "p (Holm)": p, "rule": r.rule,
                    "gated": "yes" if r.gated else "no"})
    return out


def regression_lines(cmp: Comparison) -> list[str]:
    """One line per regression (and per cell that failed in B), for the terminal and CI logs."""
    lines = [f"REGRESSION {cell}: failed in B" for cell in cmp.failed_b]
    for r in cmp.regressions:
        unit = f" {r.info.unit}" if r.info.unit and not r.info.timing else ""
        p = f", Holm-adjusted p = {fmt(r.p_adj, 2)}" if r.p_adj is not None else ""
        lines.append(f"REGRESSION {r.name()}: {fmt(r.a.mean, 4)} -> {fmt(r.b.mean, 4)}{unit} "
                     f"({_fmt_change(r)}; {r.rule}{p}; better is {r.info.better})")
    return lines


def rules_text(cmp: Comparison) -> list[str]:
    """The rules this comparison applied, with its numbers, one sentence each."""
    m_q, m_t = (len(cmp.family(t)) for t in (False, True))
    same = sum(r.rule == IDENTICAL for r in cmp.tested(False))
    abs_floor = ", ".join(f"{v:g} {k}" for k, v in MIN_EFFECT_ABS.items())
    return [
        f"Regression family: {m_q} quality metrics with a test ({same} more had identical per-seed values); "
        f"one-sided p-values adjusted by Holm–Bonferroni, family-wise level α = {cmp.alpha:g} (improvements "
        "adjusted separately).",
        f"Test: {'Student' if cmp.pooled else 'Welch'}'s t"
        f"{' (pooled variance)' if cmp.pooled else ''} with ≥ 2 seeds on each side; with one seed, the metrics' "
        f"own standard errors (z), else the other side's seed spread (t), else a {TOLERANCE_REL:.0%} tolerance.",
        f"Minimum effect: max({MIN_EFFECT_REL:.0%} of A's mean, {abs_floor}); smaller changes are unchanged.",
        f"Timings ({m_t} tested): ratios B/A on the same device type, name and torch version, minimum ratio "
        f"{TIMING_MIN_RATIO:g}; " + ("gated." if cmp.gate_timings else "reported, not gated (--gate-timings gates "
                                                                       "them)."),
    ]


def _side_text(label: str, s: Side) -> str:
    seeds = sorted({st.n for st in s.stats.values()})
    return (f"**{label}**: `{s.label}`: suite `{s.suite}`, profile {s.profile or 'default'}, git `{s.git_sha}`, "
            f"torch {s.versions.get('torch')}, {s.device.get('name')}, seeds per cell: "
            f"{', '.join(map(str, seeds)) or '–'}")


def summary_counts(cmp: Comparison) -> list[dict[str, str]]:
    """Counts of verdicts, quality and timings apart."""
    out = []
    for timing, name in ((False, "quality"), (True, "timings")):
        rows = [r for r in cmp.rows if r.info.timing == timing]
        out.append({"metrics": name, "compared": str(len(rows)),
                    **{v: str(sum(r.verdict == v for r in rows)) for v in (REGRESSED, IMPROVED, UNCHANGED,
                                                                            NOT_COMPARABLE)},
                    "gated": "yes" if (not timing or cmp.gate_timings) else "no"})
    return out


def to_document(cmp: Comparison, figure: str | None = None):
    """The comparison as a :class:`bench.report.document.Document` (for ``compare.md`` and ``compare.html``)."""
    verdict = (f"**{len(cmp.regressions) + len(cmp.failed_b)} regression(s)**" if cmp.failed
               else "**no regression**")
    doc = Document(f"genbench compare: suite `{cmp.a.suite}`")
    doc.add(Bullets([_side_text("A (reference)", cmp.a), _side_text("B (new)", cmp.b)]),
            Paragraph(f"Verdict: {verdict} at family-wise α = {cmp.alpha:g}."), Table(summary_counts(cmp)),
            Heading("Rules"), Bullets(rules_text(cmp)))
    if cmp.failed:
        doc.add(Heading("Regressions"), Bullets(regression_lines(cmp)))
    cells = ([f"only in A: {c}" for c in cmp.only_a] + [f"only in B: {c}" for c in cmp.only_b]
             + [f"failed in B: {c}" for c in cmp.failed_b] + [f"failed in A: {c}" for c in cmp.failed_a])
    if cells:
        doc.add(Heading("Missing and failed cells"), Bullets(cells))
    if figure:
        doc.add(Heading("Every tested quality metric"),
                Paragraph("Change toward worse (relative to A's mean) against the Holm-adjusted evidence; "
                          "a regression needs both."), Figure(figure, "change vs adjusted p"))
    for timing, title in ((False, "Quality metrics (worst first)"), (True, "Timings (worst first)")):
        rows = [r for r in cmp.rows if r.info.timing == timing]
        if rows:
            doc.add(Heading(title), Table(table_rows(rows)))
    return doc


def volcano(cmp: Comparison, path: Path) -> Path | None:
    """Scatter of each tested quality metric: relative change toward worse vs −log10 of the adjusted p."""
    rows = [r for r in cmp.tested(False) if r.p_adj is not None and r.a is not None and r.a.mean != 0]
    if not rows:
        return None
    colours = {REGRESSED: "tab:red", IMPROVED: "tab:green", UNCHANGED: "0.6"}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for v, c in colours.items():
        pts = [(100 * r.worse / abs(r.a.mean), -math.log10(max(r.p_adj, 1e-16))) for r in rows if r.verdict == v]
        if pts:
            ax.scatter(*zip(*pts), s=14, color=c, label=f"{v} ({len(pts)})", alpha=0.8)
    ax.axhline(-math.log10(cmp.alpha), color="k", lw=0.8, ls="--", label=f"α = {cmp.alpha:g} (Holm)")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("change toward worse, % of A's mean")
    ax.set_ylabel("−log10 p (Holm-adjusted)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def terminal_table(rows: list[dict[str, str]], columns: list[str]) -> str:
    """Fixed-width text table of the given columns."""
    if not rows:
        return ""
    width = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(width[c]) for c in columns)]
    lines += ["  ".join(r[c].ljust(width[c]) for c in columns) for r in rows]
    return "\n".join(lines)
