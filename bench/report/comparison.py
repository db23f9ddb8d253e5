"""The comparison report of several runs (``python run_bench.py report RUN RUN ... --out DIR``): each run's
provenance, each textbook claim's verdict per suite and dataset, and each run's headline tables and figures in
its own section. Runs are never merged into one column: their protocols may differ."""

from __future__ import annotations

import re
from pathlib import Path

from bench.analysis import verdicts
from bench.analysis.aggregate import seed_stats
from bench.report import figures as trade_offs
from bench.report.document import Bullets, Document, Figure, Heading, Note, Paragraph, Table
from bench.report.figures import n_samples_of
from bench.report.fmt import fmt
from bench.report.run_report import caption, headline_blocks, order_records, run_info, seeds_text
from bench.store.schema import CellRecord


def labels(runs) -> list[str]:
    """``suite/run_id`` per run, suffixed ``#2``... where two runs share it."""
    out: list[str] = []
    for run, _ in runs:
        base = f"{run.suite}/{run.run_id}"
        out.append(base if base not in out else f"{base}#{sum(x.split('#')[0] == base for x in out) + 1}")
    return out


def slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label)


def claims_columns(label: str, by_ds: dict[str, list[CellRecord]]) -> dict[str, dict[str, str]]:
    """Per family, per "label: dataset" column, the likelihood and sampling verdicts (first seed)."""
    out: dict[str, dict[str, str]] = {}
    for ds, rs in by_ds.items():
        seed = min(r.seed for r in rs)
        first = [r for r in rs if r.seed == seed]
        for r in first:
            lik, samp = verdicts.likelihood(r), verdicts.sampling(r, first)
            ratio = f", {fmt(samp.value)}× the fastest" if samp.value is not None else ""
            out.setdefault(r.family, {})[f"{label}: {ds}"] = (
                f"likelihood {lik.verdict} ({r.likelihood_kind}); sampling {samp.verdict} "
                f"({samp.measured}{ratio}, NFE {r.primary()[1].sample_nfe})")
    return out


def comparison(runs, labels: list[str], out: Path) -> Document:
    """The comparison report of ``runs`` (pairs of RunDir and records); draws figures under ``out/figures/``."""
    doc = Document(f"genbench comparison of {len(runs)} runs")
    doc.add(Note("**How to read this.** Each run keeps its own columns, tables and figures: runs are never "
                 "merged, because their protocols (sample counts N, reference sets, training budgets, devices) "
                 "may differ; the runs table says what each one measured under. Within a run, **bold** is the best "
                 "value of its column, ± the sample std over seeds (n ≥ 2) or the metric's own standard error, and "
                 "`≤ x` an upper bound. Numbers from CPU budgets and from the JPEG copy of CIFAR-10 are not "
                 "comparable with published numbers; timings hold only for the device they were measured on."))
    rows, claims, sections = [], {}, []
    families: list[str] = []
    for (run, records), label in zip(runs, labels):
        info = run_info(run.path)
        by_ds, fams = order_records(records, info)
        ok = [r for rs in by_ds.values() for r in rs]
        families += [f for f in fams if f not in families]
        dev = info.get("device") or {}
        rows.append({"run": f"`{label}`", "folder": f"`{run.path}`", "profile": info.get("profile") or "default",
                     "datasets": ", ".join(by_ds), "modality": ok[0].modality if ok else "–",
                     "N samples": str(n_samples_of(ok) or "–"), "seeds": seeds_text(ok),
                     "device": f"{dev.get('type', '?')} ({dev.get('name', '?')})",
                     "cells": f"{len(ok)} ok, {len(records) - len(ok)} failed",
                     "git SHA": f"`{info['git_sha'][:10]}`" if info.get("git_sha") else "–"})
        for fam, cols in claims_columns(label, by_ds).items():
            claims.setdefault(fam, {}).update(cols)
        if not ok:
            sections.append([Heading(f"Run `{label}`"), Paragraph("No ok cell.")])
            continue
        stats = seed_stats(ok)
        fig_dir = out / "figures" / slug(label)
        fig_dir.mkdir(parents=True, exist_ok=True)
        paths = trade_offs.all_figures(stats, ok, list(by_ds), fams, ok[0].modality, fig_dir)
        cap = f"`{label}`: " + caption(info, ok)
        blocks = [Heading(f"Run `{label}`")]
        for ds, rs in by_ds.items():
            blocks += headline_blocks(rs, ds, ok[0].modality, stats)
        blocks += [Figure(str(p.relative_to(out)), f"{label} {p.stem}", cap) for p in paths]
        sections.append(blocks)
    doc.add(Heading("Runs"), Table(rows))
    columns = list(dict.fromkeys(c for cols in claims.values() for c in cols))
    doc.add(Heading("Textbook claims, per suite and dataset"),
            Paragraph("Each cell: the likelihood verdict (and the kind of density the family exposes) and the "
                      f"sampling verdict (slow when ≥ {verdicts.SLOW_RATIO:g}× the fastest family of that dataset), "
                      "from the first seed of each run; `–` where the run has no such cell."),
            Table([{"family": f, **{c: claims.get(f, {}).get(c, "–") for c in columns}} for f in families]))
    for blocks in sections:
        doc.add(*blocks)
    doc.add(Heading("Sources"), Bullets([f"`{label}`: `{run.path / 'report.html'}`"
                                          for (run, _), label in zip(runs, labels)]))
    return doc
