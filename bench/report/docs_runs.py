"""The documentation's measured pages, generated from run folders through committed snapshots.

A run folder (``results/<suite>/<run_id>/``) is git-ignored and large; the site needs a few numbers of it. So
``python scripts/build_docs.py --add-run results/toy2d/<run_id>`` reads the run's records once and writes a
small JSON snapshot, ``docs/data/runs/<suite>__<profile>__<date>.json`` (:func:`snapshot`, format
:data:`FORMAT`): when and where it ran (CPU or GPU model, threads, torch), the wall time of the run and of
each stage summed over cells, the plan's estimate, every claim verdict the judges gave
(:func:`bench.analysis.judges.verdicts_for`) and the measured taxonomy rows. The pages are then pure functions
of the snapshots and the code, so ``tests/test_docs.py`` can regenerate them and fail when a committed page is
stale:

* :func:`claims_page`: each claim T1-T30 in our words, the texts that make it, its rule and the latest verdict;
* :func:`results_page`: wall times per suite, profile and device, with dates;
* :func:`readme_taxonomy`: the README's measured taxonomy table.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.analysis import judges
from bench.analysis.claims import CLAIMS, METHOD, NOT_MEASURED
from bench.report import tables
from bench.report.docs import GENERATED, table
from bench.report.run_report import order_records
from bench.store.runs import RunDir

__all__ = ["FORMAT", "TEXTS", "snapshot", "snapshot_name", "load_snapshots", "claims_page", "results_page",
           "readme_taxonomy", "figure_block", "cpu_model", "latest"]

FORMAT = "genbench.docs-run/1"

#: the five texts the claims come from (``shared/seeds/``, by the first three digits of the file name)
TEXTS = {
    "000": "a textbook chapter, §14.1 \"What is generative modelling?\" (the four operations; the families' "
           "trade-offs)",
    "001": "lecture notes, \"Generative Modeling Overview\" (families, conditioning, guidance, evaluation "
           "metrics)",
    "002": "an introduction to density estimation and sampling (p_data, explicit and implicit models)",
    "003": "a course chapter, \"The Generative Modeling Problem\" (density estimation, sampling, evaluation; the "
           "curse of dimensionality)",
    "004": "a taxonomy of generative models by how they handle p_model(x) (explicit, approximate, implicit "
           "densities)",
}


def cpu_model() -> str:
    """This machine's CPU model (``/proc/cpuinfo``'s ``model name``), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


def snapshot(run_path: str | Path, cpu: str | None = None, note: str = "") -> dict[str, Any]:
    """The numbers the documentation shows of one run folder, as plain data (format :data:`FORMAT`).

    Args:
        run_path: ``results/<suite>/<run_id>``, a folder with ``run.json`` and cell records.
        cpu: the CPU model to record (default: :func:`cpu_model` of this machine, for a run made here);
            a CUDA run records its GPU's name from the records instead.
        note: how it was measured, e.g. ``"exclusive CPU lock; load 1.05 before, 0.98 after"`` (shown with it).

    Raises:
        FileNotFoundError: no ``run.json`` in ``run_path``.
        ValueError: the run has no cell record.
    """
    path = Path(run_path)
    info = json.loads((path / "run.json").read_text(encoding="utf-8"))
    run = RunDir(path.parent.parent, path.parent.name, path.name)
    records = run.records()
    if not records:
        raise ValueError(f"{path}: no cell record")
    by_ds, families = order_records(records, info)
    device = dict(info.get("device") or {})
    if device.get("type") != "cuda":
        device["name"] = cpu or cpu_model()
    started = _when(info.get("started_at"))
    ends = [t for t in (_when(r.finished_at) for r in records) if t is not None]
    stages: dict[str, float] = {}
    for r in records:
        for k, v in (r.stage_seconds or {}).items():
            stages[k] = stages.get(k, 0.0) + float(v)
    estimate = sum(r.estimate.est_total_seconds or 0.0 for r in records if r.estimate is not None)
    per_family = {}
    for f in families:
        rs = [r for r in records if r.family == f and r.wall_seconds is not None]
        per_family[f] = {"cells": len(rs), "wall_seconds": round(sum(r.wall_seconds for r in rs), 1)}
    taxonomy = {}
    for ds, rs in by_ds.items():
        first = min(r.seed for r in rs)
        rows, _ = tables.taxonomy_rows([r for r in rs if r.seed == first])
        taxonomy[ds] = {"seed": first, "rows": rows}
    return {
        "format": FORMAT,
        "suite": info.get("suite"), "profile": info.get("profile"), "run_id": info.get("run_id"),
        "git_sha": info.get("git_sha"), "launcher": (info.get("launcher") or {}).get("name", "local"),
        "started_at": info.get("started_at"),
        "finished_at": max(ends).strftime("%Y-%m-%dT%H:%M:%S%z") if ends else None,
        "wall_seconds": round((max(ends) - started).total_seconds(), 1) if ends and started else None,
        "device": {k: device.get(k) for k in ("type", "name", "cpu_count", "torch_threads")},
        "torch": (info.get("versions") or {}).get("torch"),
        "datasets": list(by_ds), "seeds": sorted({r.seed for r in records}),
        "families": families,
        "cells": {"total": len(records), "ok": sum(r.ok for r in records),
                  "failed": sum(r.status == "failed" for r in records)},
        "cell_seconds": round(sum(r.wall_seconds or 0.0 for r in records), 1),
        "stage_seconds": {k: round(v, 1) for k, v in stages.items()},
        "estimate_seconds": round(estimate, 1) if estimate else None,
        "per_family": per_family,
        "verdicts": [dataclasses.asdict(v) for v in judges.verdicts_for(by_ds)],
        "taxonomy": taxonomy,
        "note": note,
    }


def snapshot_name(snap: dict[str, Any]) -> str:
    """``<suite>__<profile>__<YYYY-MM-DD>__<run_id>.json``: the snapshot's file name under ``docs/data/runs/``."""
    day = (snap.get("started_at") or "unknown")[:10]
    return f"{snap['suite']}__{snap['profile']}__{day}__{snap['run_id']}.json"


def load_snapshots(folder: str | Path) -> list[dict[str, Any]]:
    """Every snapshot in ``folder``, oldest first (by start time, then file name).

    Raises:
        ValueError: a file that is not a snapshot of format :data:`FORMAT` (named).
    """
    out = []
    for f in sorted(Path(folder).glob("*.json")):
        data = json.loads(f.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"{f}: not a {FORMAT} snapshot")
        out.append(data)
    return sorted(out, key=lambda s: (s.get("started_at") or "", s.get("run_id") or ""))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else (
        f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{seconds:.1f} s")


def _device(snap: dict[str, Any]) -> str:
    d = snap.get("device") or {}
    cores = f", {d['cpu_count']} cores" if d.get("type") != "cuda" and d.get("cpu_count") else ""
    threads = f", {d['torch_threads']} torch threads" if d.get("torch_threads") else ""
    return f"{d.get('name') or d.get('type') or '?'}{cores}{threads}"


def latest(snaps: list[dict[str, Any]], suite: str = "toy2d", profile: str = "default") -> dict[str, Any] | None:
    """The latest snapshot (by start time: :func:`load_snapshots` sorts them) of ``suite`` and ``profile``; the
    latest of any suite where there is none of those; ``None`` without snapshots."""
    chosen = [s for s in snaps if s.get("suite") == suite and s.get("profile") == profile]
    return chosen[-1] if chosen else (snaps[-1] if snaps else None)


def _run_line(snap: dict[str, Any]) -> str:
    seeds = snap.get("seeds") or []
    return (f"`{snap['suite']}` suite, profile `{snap['profile']}`, run `{snap['run_id']}` of "
            f"{(snap.get('started_at') or '?')[:10]} at commit `{(snap.get('git_sha') or '?')[:7]}`: "
            f"{snap['cells']['ok']}/{snap['cells']['total']} cells ok, {len(seeds)} seed"
            f"{'s' if len(seeds) != 1 else ''}, on {_device(snap)}")


def claims_page(snaps: list[dict[str, Any]]) -> str:
    """Claims and verdicts: each claim T1-T30 in our words, its source texts, and the rule and verdict of the
    latest snapshot of the 2D default suite (else the latest snapshot) (Markdown)."""
    snap = latest(snaps)
    given = (snap or {}).get("verdicts") or []
    out = [GENERATED, "", "# Claims and verdicts", "",
           "genbench judges the textbook's claims, numbered T1–T30 (`shared/claims.md`; the wording here is ours). "
           "A verdict is *agrees*, *disagrees* or *inconclusive*, by a rule stated in one sentence with the numbers "
           "that decided it: N, seeds, the margin or p-value. A claim that no rule judges yet says *not measured*; "
           "T26–T29 are methods, implemented and checked against reference implementations in the tests "
           "([Metric conformance](design/conformance.md)). The rules live in `bench/analysis/` and are listed in "
           "`bench/analysis/judges.py`; every run's report carries the same table for its own records.", ""]
    out += ([f"Verdicts below: the {_run_line(snap)}. Other runs: [Measured results](results.md).", ""] if snap else
            ["No run snapshot yet: `python scripts/build_docs.py --add-run results/toy2d/<run_id>` adds one.", ""])
    out += ["## The texts", "", "The claims come from five texts (`shared/seeds/`, by the first three digits of the "
            "file name):", "", table([{"text": f"`{k}`", "what it is": v} for k, v in TEXTS.items()])]
    topic = None
    for c in CLAIMS.values():
        if c.topic != topic:
            topic = c.topic
            out += [f"## {topic}", ""]
        mine = [v for v in given if v.get("claim") == c.id]
        out += [f"### {c.id}", "", f"> {c.text}", "", f"Texts: {', '.join(f'`{t}`' for t in c.sources)}.", ""]
        if not mine:
            out += [f"Verdict: *{METHOD if c.method else NOT_MEASURED}*.", ""]
            continue
        rules = list(dict.fromkeys(v["rule"] for v in mine))
        out += ["Rule" + ("s" if len(rules) > 1 else "") + ": " + " ".join(rules), ""]
        out.append(table([{"scope": v.get("scope") or "–", "family": v.get("family") or "–",
                           "verdict": f"**{v['verdict']}**", "evidence": v.get("evidence") or "–"} for v in mine]))
    return "\n".join(out).rstrip() + "\n"


def results_page(snaps: list[dict[str, Any]], reports: tuple[str, ...] = ()) -> str:
    """Measured results: wall time per suite, profile and device, with dates, from the snapshots (Markdown).

    ``reports``: the ``<suite>-<profile>`` stems of the reports copied into ``docs/reports/`` (the latest run of
    each); the newest row of each links its report."""
    out = [GENERATED, "", "# Measured results", "",
           "Wall times of whole runs, from their records (`python scripts/build_docs.py --add-run RUN` snapshots a "
           "run folder into `docs/data/runs/`; this page is generated from those snapshots). *Wall* is the run "
           "from its start (`run.json`, written after the preflight and the plan's probes) to its last cell's end, "
           "not the report; *cells* is the sum of the cells' own wall times; *estimate* the plan's "
           "estimate of the cells ([the cost model](design/cost-model.md)). Numbers date: each row says when, on "
           "which machine and how (*note*) it was measured; compare rows of one machine.", ""]
    if not snaps:
        return "\n".join(out + ["No snapshot yet."]).rstrip() + "\n"
    rows, linked = [], set()
    for s in reversed(snaps):
        stem = f"{s['suite']}-{s['profile']}"
        report = f"[report](reports/{stem}.md)" if stem in reports and stem not in linked else "–"
        linked.add(stem)
        st = s.get("stage_seconds") or {}
        est, cells = s.get("estimate_seconds"), s.get("cell_seconds")
        err = f" ({(cells - est) / est:+.0%})" if est and cells else ""
        rows.append({"date": (s.get("started_at") or "?")[:10], "suite": f"`{s['suite']}`",
                     "profile": f"`{s['profile']}`", "cells": f"{s['cells']['ok']}/{s['cells']['total']}",
                     "seeds": len(s.get("seeds") or []), "device": _device(s), "launcher": s.get("launcher", "local"),
                     "torch": s.get("torch") or "–", "wall": _duration(s.get("wall_seconds")),
                     "cells Σ": _duration(cells), "estimate": _duration(est) + err,
                     "train / sample / density / evaluate Σ": " / ".join(
                         _duration(st.get(k)) for k in ("train", "sample", "density", "evaluate")),
                     "commit": f"`{(s.get('git_sha') or '?')[:7]}`", "note": s.get("note") or "–",
                     "report": report})
    out += [table(rows), "## Per family", "", "Σ of the cells' wall times per family (all datasets and seeds).", ""]
    for s in reversed(snaps):
        fam = s.get("per_family") or {}
        out += [f"**{s['suite']} / {s['profile']} / {(s.get('started_at') or '?')[:10]}** ({_device(s)}):", "",
                table([{"family": f"`{f}`", "cells": v["cells"], "Σ wall": _duration(v["wall_seconds"])}
                       for f, v in fam.items()])]
    return "\n".join(out).rstrip() + "\n"


def figure_block(snaps: list[dict[str, Any]], prefix: str = "", figure: bool = True, report: bool = True) -> str:
    """The trade-off figure of the latest 2D default snapshot with its caption (Markdown), for the README
    (``prefix="docs/"``) and the home page; a sentence saying how to add one where there is none.

    Args:
        snaps: the snapshots (:func:`load_snapshots`).
        prefix: the path from the page to ``docs/``.
        figure: ``docs/assets/tradeoff-2d.png`` exists.
        report: ``docs/reports/toy2d-default.md`` exists.
    """
    snap = latest(snaps)
    if not figure or not snap or (snap["suite"], snap["profile"]) != ("toy2d", "default"):
        return ("The trade-off figure of the 2D default suite appears here once a run is snapshotted: "
                "`python scripts/build_docs.py --add-run results/toy2d/<run_id>`.\n")
    seeds = len(snap.get("seeds") or [])
    full = f" [The full report]({prefix}reports/toy2d-default.md)." if report else ""
    return (f"![Which family gives the best samples for the time? Sample quality against the cost per sample, 2D "
            f"default suite]({prefix}assets/tradeoff-2d.png)\n\n"
            f"*Which family gives the best samples for the time? Sample quality (MMD² to the true mixture, lower is "
            f"better) against the cost per sample, one point per family and sampler labelled with its NFE, ±1 std "
            f"over {seeds} seed{'s' if seeds != 1 else ''}, the Pareto front dashed; the {_run_line(snap)}.*{full}\n")


_README_COLUMNS = ["family", "textbook likelihood", "measured likelihood", "likelihood claim", "textbook sampling",
                   "NFE", "cost per sample", "sampling claim"]


def readme_taxonomy(snaps: list[dict[str, Any]]) -> str:
    """The README's measured taxonomy table: the first dataset of the latest 2D default snapshot (Markdown)."""
    snap = latest(snaps)
    if not snap or not snap.get("taxonomy"):
        return "No measured run yet: `python scripts/build_docs.py --add-run results/toy2d/<run_id>`.\n"
    ds, tax = next(iter(snap["taxonomy"].items()))
    rows = [{c: re.sub(r"\s+", " ", str(r.get(c, "–"))) for c in _README_COLUMNS} for r in tax["rows"]]
    return (f"Measured on `{ds}`, seed {tax['seed']}: the {_run_line(snap)}.\n\n" + table(rows))
