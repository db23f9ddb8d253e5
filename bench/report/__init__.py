"""``report.md`` and figures for a run, built from its records alone (no models needed).

The report reproduces the textbook taxonomy from measured numbers: for each family
the likelihood it exposes (with the measured value) and its sampling cost (NFE,
samples/s), and for each textbook claim whether the measurement agrees, with the
ratio behind the verdict. Three parts do the work:

* :mod:`bench.verdicts` decides each claim (pure functions of records);
* :mod:`bench.report.tables` and the figure modules (:mod:`~bench.report.figures2d`,
  :mod:`~bench.report.figuresimg`) format tables and draw figures;
* :mod:`bench.report.document` writes the blocks out (Markdown here).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench import verdicts
from bench.report import tables
from bench.report.document import Bullets, Document, Figure, Heading, Paragraph, Table, to_markdown, write_text
from bench.results import RunDir
from bench.schema import CellRecord

__all__ = ["build_report", "write_report"]


def _order(records: list[CellRecord], info: dict) -> tuple[dict[str, list[CellRecord]], list[str]]:
    """ok records by dataset (suite order), each list in the suite's family order, then seed; and the families."""
    resolved = info.get("resolved") or {}
    ds_order = resolved.get("datasets") or []
    fam_order = list(resolved.get("families") or {})

    def rank(order: list[str], name: str) -> tuple[int, str]:
        return (order.index(name) if name in order else len(order), name)

    ok = sorted((r for r in records if r.ok),
                key=lambda r: (rank(ds_order, r.dataset), rank(fam_order, r.family), r.seed))
    by_ds: dict[str, list[CellRecord]] = {}
    for r in ok:
        by_ds.setdefault(r.dataset, []).append(r)
    families = sorted({r.family for r in ok}, key=lambda f: rank(fam_order, f))
    return by_ds, families


def _taxonomy(by_ds: dict[str, list[CellRecord]]) -> list:
    blocks = []
    for ds, rs in by_ds.items():
        first_seed = min(r.seed for r in rs)
        rows, sentences = tables.taxonomy_rows([r for r in rs if r.seed == first_seed])
        batch = rs[0].primary()[1].sample_throughput_batch
        blocks += [Heading(f"Taxonomy reproduced from measurements: `{ds}`"),
                   Paragraph(f"Seed {first_seed}. *Sampling claim*: sampling is measured *slow* when its cost per "
                             f"sample at batch {batch} is at least {verdicts.SLOW_RATIO:g}× that of the fastest family "
                             "on this dataset. NFE counts sequential network evaluations per sampling call. "
                             "*Likelihood claim*: where the density can be integrated numerically (2D), the verdict "
                             "rests on that integral: an exact density integrates to 1, exp(bound) to less than 1, "
                             "and exp(−E) to Z ≠ 1. A family that declares no textbook claim says so."),
                   Table(rows)]
        if sentences:
            blocks.append(Bullets(sentences))
    return blocks


def _across_seeds(recs: list[CellRecord], dataset: str, modality: str | None) -> list:
    """The dataset's headline metrics as mean ± std over seeds, when some cell ran more than one seed."""
    from bench.aggregate import seed_stats

    if modality is None or len({r.seed for r in recs}) < 2:
        return []
    return [Paragraph(f"**Across seeds** (`{dataset}`): mean ± sample std (ddof = 1) over the seeds of each cell; "
                      "every metric's mean, std and n is in `seeds.csv`."),
            Table(tables.seed_rows(seed_stats(recs), dataset, modality))]


def build_report(run: RunDir) -> Document:
    """The report of ``run`` as a :class:`~bench.report.document.Document`; draws the figures into
    ``<run>/figures/``."""
    from bench.report import figures2d, figuresimg

    records = run.records()
    try:
        info = json.loads((run.path / "run.json").read_text())
    except (OSError, ValueError):  # absent or damaged: the report says less about the run, nothing else changes
        info = {}
    if not isinstance(info, dict):
        info = {}
    by_ds, families = _order(records, info)
    ok = [r for rs in by_ds.values() for r in rs]
    failed = [r for r in records if not r.ok]
    figures = run.path / "figures"
    figures.mkdir(exist_ok=True)
    dev, ver = info.get("device", {}), info.get("versions", {})
    doc = Document(f"genbench report: suite `{run.suite}`, run `{run.run_id}`")
    doc.add(Bullets([
        f"profile: {info.get('profile') or 'default'} ({info.get('profile_reason') or 'as asked'}); "
        f"suite file `{info.get('suite_file')}`",
        f"device: {dev.get('name')} ({dev.get('type')}, {dev.get('torch_threads')} torch threads)",
        "versions: " + ", ".join(f"{k} {v}" for k, v in ver.items()),
        f"git SHA: `{info.get('git_sha')}`",
        f"cells: {len(ok)} ok, {len(failed)} failed",
    ]))
    if failed:
        doc.add(Heading("Failed cells"), Table([{"cell": r.cell_id, "reason": r.reason or r.status} for r in failed]))
    modality = ok[0].modality if ok else None
    if modality == "vector":
        doc.add(Heading("Datasets"), Table(tables.dataset_rows_2d(by_ds)))
    doc.add(*_taxonomy(by_ds))
    doc.add(*_taxonomy_rest(by_ds, failed))
    for ds, rs in by_ds.items():
        doc.add(Heading(f"All metrics: `{ds}`"))
        if modality == "image":
            info_ds = rs[0].dataset_info
            if info_ds.get("comparable_to_published") is False:
                doc.add(Paragraph(f"**Not comparable with published numbers.** {info_ds.get('note', '')}"))
            doc.add(Paragraph(tables.fingerprint_text(rs[0])), Table(tables.image_metrics_rows(rs)))
            doc.add(*[Paragraph(line) for line in tables.protocol_lines(rs)])
        else:
            rows = tables.metrics_rows(rs)
            ref = tables.reference_row(rs)
            doc.add(Table(rows + ([ref] if ref else [])))
        doc.add(*_across_seeds(rs, ds, modality))
    if modality == "vector":
        paths = figures2d.samples_and_densities(run, by_ds, families, figures) + [
            figures2d.cost_vs_kl(by_ds, families, figures)]
        doc.add(Heading("Figures"), *[Figure(f"figures/{p.name}", p.stem) for p in paths])
    elif modality == "image":
        paths = [figuresimg.fid_vs_cost(ok, families, figures), figuresimg.bpd_by_kind(ok, figures),
                 figuresimg.fid_vs_nfe(ok, families, figures)]
        doc.add(Heading("Figures"), *[Figure(f"figures/{p.name}", p.stem) for p in paths if p is not None])
        doc.add(Heading("Samples"))
        for r in ok:
            for sampler in r.samplers:
                if (run.cell(r.cell_id) / f"samples_{sampler}.png").exists():
                    doc.add(Paragraph(f"**{r.dataset} / {r.family} / {sampler}**"),
                            Figure(f"{r.cell_id}/samples_{sampler}.png", f"{r.family} {sampler}"))
    plan = json.loads((run.path / "plan.json").read_text()) if (run.path / "plan.json").exists() else {}
    order = [c["cell"] for c in plan.get("cells", [])]
    estimates = tables.estimate_rows(sorted(records, key=lambda r: (r.cell_id not in order,
                                                                    order.index(r.cell_id) if r.cell_id in order
                                                                    else 0, r.cell_id)))
    if estimates:
        doc.add(Heading("Plan: estimated and measured wall time"),
                Paragraph(f"Cost model `{plan.get('cost_model', '?')}` (bench/plan.py): rates measured on this "
                          f"device by probes that took {plan.get('probe_seconds', 0):.1f} s "
                          f"({plan.get('probes_run', 0)} measured, {plan.get('probes_cached', 0)} cached), "
                          f"preflight {plan.get('preflight_seconds', 0):.1f} s. Seconds measured (estimated); "
                          "error = measured / estimated − 1. The report stage is not estimated."),
                Table(estimates))
    protocol = next((r.protocol for r in ok if r.protocol), None)
    if protocol:
        doc.add(Heading("Protocol"), Bullets([f"**{k}**: {v}" for k, v in protocol.items()]))
    return doc


def write_report(run: RunDir) -> Path:
    """Write ``report.md`` and ``figures/`` for ``run``; returns the report's path."""
    return write_text(run.path / "report.md", to_markdown(build_report(run)))


def _taxonomy_rest(by_ds: dict[str, list[CellRecord]], failed: list[CellRecord]) -> list:
    """Per dataset: training cost and stability over seeds (failed seeds count), latent inference, and the
    remaining claims' verdicts."""
    blocks = []
    for ds, rs in by_ds.items():
        rows, rules = tables.taxonomy_rest_rows(rs + [r for r in failed if r.dataset == ds])
        if rows:
            blocks += [Heading(f"Training, stability, latent inference and the remaining claims: `{ds}`"),
                       Table(rows), Bullets(rules)]
    return blocks
