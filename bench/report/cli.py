"""``python run_bench.py report RUN [RUN ...] [--out DIR]``: reports from records alone (no model is loaded).

* One run, no ``--out``: rebuild that run's ``report.md``, ``report.html`` and ``figures/`` in place.
* Several runs (or ``--out``): one comparison report, ``DIR/report.md`` and ``DIR/report.html``: the
  runs' provenance side by side, each textbook claim's verdict per suite and dataset, and each run's
  headline tables and trade-off figures in its own section. Runs are never merged: their protocols
  (sample counts, reference sets, devices, budgets) may differ, so each keeps its own columns, tables
  and figures, and the runs table says what each one measured under.

Exit codes: 0 written; 2 bad input (no such run folder, no record in it, an unreadable record, a run
given twice, ``--out`` a file, several runs without ``--out``), said on one line before anything is
written.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from bench import verdicts
from bench.report.document import Bullets, Document, Figure, Heading, Note, Paragraph, Table, to_html, to_markdown
from bench.report.fmt import fmt
from bench.schema import CellRecord


class InputError(ValueError):
    """Bad input to ``report`` (exit 2); the message names the path."""


def _load(path: Path):
    """The :class:`bench.results.RunDir` of a run folder and its records.

    Raises:
        InputError: not a folder, no record, or an unreadable record.
    """
    from bench.results import RunDir, UnsafePath
    from bench.schema import SchemaError

    if not path.is_dir():
        raise InputError(f"{path}: no such run folder")
    if not any(path.glob("*/record.json")):
        raise InputError(f"{path}: not a run folder (no <cell>/record.json under it)")
    resolved = path.resolve()
    try:
        run = RunDir(resolved.parent.parent, resolved.parent.name, resolved.name)
        records = run.records()
    except (UnsafePath, SchemaError, ValueError) as e:
        raise InputError(f"{path}: unreadable record ({e})") from None
    return run, records


def _labels(runs) -> list[str]:
    """``suite/run_id`` per run, suffixed ``#2``... where two runs share it."""
    out: list[str] = []
    for run, _ in runs:
        base = f"{run.suite}/{run.run_id}"
        out.append(base if base not in out else f"{base}#{sum(x.split('#')[0] == base for x in out) + 1}")
    return out


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label)


def _claims(label: str, by_ds: dict[str, list[CellRecord]]) -> dict[str, dict[str, str]]:
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
    from bench.aggregate import seed_stats
    from bench.report import _order, caption, headline_blocks, run_info, seeds_text
    from bench.report import figures as trade_offs
    from bench.report.figures import n_samples_of

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
        by_ds, fams = _order(records, info)
        ok = [r for rs in by_ds.values() for r in rs]
        families += [f for f in fams if f not in families]
        dev = info.get("device") or {}
        rows.append({"run": f"`{label}`", "folder": f"`{run.path}`", "profile": info.get("profile") or "default",
                     "datasets": ", ".join(by_ds), "modality": ok[0].modality if ok else "–",
                     "N samples": str(n_samples_of(ok) or "–"), "seeds": seeds_text(ok),
                     "device": f"{dev.get('type', '?')} ({dev.get('name', '?')})",
                     "cells": f"{len(ok)} ok, {len(records) - len(ok)} failed",
                     "git SHA": f"`{info['git_sha'][:10]}`" if info.get("git_sha") else "–"})
        for fam, cols in _claims(label, by_ds).items():
            claims.setdefault(fam, {}).update(cols)
        if not ok:
            sections.append([Heading(f"Run `{label}`"), Paragraph("No ok cell.")])
            continue
        stats = seed_stats(ok)
        fig_dir = out / "figures" / _slug(label)
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


def main(argv: list[str] | None = None) -> int:
    """``python run_bench.py report RUN [RUN ...] [--out DIR]``: exit 0 written, 2 bad input."""
    from bench.report.document import write_text

    p = argparse.ArgumentParser(prog="run_bench.py report", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="exit codes: 0 written, 2 bad input")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (results/<suite>/<run_id>)")
    p.add_argument("--out", help="folder for the comparison report.md / report.html (required for several runs)")
    args = p.parse_args(argv)
    try:
        paths = [Path(r) for r in args.runs]
        if len({q.resolve() for q in paths}) < len(paths):
            raise InputError("a run is given twice")
        if len(paths) > 1 and not args.out:
            raise InputError("several runs need --out DIR (the comparison report's folder)")
        out = Path(args.out) if args.out else None
        if out is not None and out.exists() and not out.is_dir():
            raise InputError(f"--out {out}: exists and is not a folder")
        runs = [_load(q) for q in paths]
    except InputError as e:
        print(f"run_bench.py report: error: {e}", file=sys.stderr)
        return 2
    if out is None:
        from bench import report

        path = report.write_report(runs[0][0])
        print(f"wrote {path} and {path.with_suffix('.html')}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    doc = comparison(runs, _labels(runs), out)
    md = write_text(out / "report.md", to_markdown(doc))
    html = write_text(out / "report.html", to_html(doc, out))
    print(f"wrote {md} and {html}")
    return 0
