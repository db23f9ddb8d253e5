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
import sys
from pathlib import Path

from bench.core.files import write_text
from bench.report.comparison import comparison, labels
from bench.report.document import to_html, to_markdown
from bench.report.run_report import write_report
from bench.store.runs import RunDir, UnsafePath
from bench.store.schema import SchemaError


class InputError(ValueError):
    """Bad input to ``report`` (exit 2); the message names the path."""


def _load(path: Path):
    """The :class:`bench.store.runs.RunDir` of a run folder and its records.

    Raises:
        InputError: not a folder, no record, or an unreadable record.
    """
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


def main(argv: list[str] | None = None) -> int:
    """``python run_bench.py report RUN [RUN ...] [--out DIR]``: exit 0 written, 2 bad input."""
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
        path = write_report(runs[0][0])
        print(f"wrote {path} and {path.with_suffix('.html')}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    doc = comparison(runs, labels(runs), out)
    md = write_text(out / "report.md", to_markdown(doc))
    html = write_text(out / "report.html", to_html(doc, out))
    print(f"wrote {md} and {html}")
    return 0
