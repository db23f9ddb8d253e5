"""``python run_bench.py compare A B`` or ``compare --baseline RUN``: the regression gate on the command line.

The statistics are :mod:`bench.analysis.compare`'s (its docstring states every rule); the output is
:mod:`bench.report.compare`'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.analysis import baselines
from bench.analysis import compare as gate
from bench.analysis.compare import (
    ALPHA,
    IMPROVED,
    NOT_COMPARABLE,
    REGRESSED,
    UNCHANGED,
    InputError,
    compare,
    load_run,
    load_side,
)
from bench.core.files import write_text
from bench.report.compare import (
    regression_lines,
    rules_text,
    summary_counts,
    table_rows,
    terminal_table,
    to_document,
    volcano,
)
from bench.report.document import to_html, to_markdown


def main(argv: list[str] | None = None) -> int:
    """``python run_bench.py compare A B`` or ``compare --baseline RUN``: exit 0 no regression, 1 a regression,
    2 bad input."""
    p = argparse.ArgumentParser(prog="run_bench.py compare", description=gate.__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="exit codes: 0 no regression, 1 a regression, 2 bad input")
    p.add_argument("sides", nargs="*", metavar="RUN", help="A (reference) and B (new): run folders or baseline files")
    p.add_argument("--baseline", metavar="RUN", help="compare RUN against its suite+profile baseline")
    p.add_argument("--baselines", default=str(baselines.DEFAULT_DIR), help="baselines folder (default: "
                                                                           "results/baselines)")
    p.add_argument("--alpha", type=float, default=ALPHA, help=f"family-wise level (default {ALPHA})")
    p.add_argument("--gate-timings", action="store_true", help="timings regressions fail too (same device only)")
    p.add_argument("--test", choices=["student", "welch"], default="student",
                   help="two-sample t-test with >= 2 seeds a side (default: student, pooled variance)")
    p.add_argument("--all", action="store_true", help="print every metric, not only the changed quality metrics "
                                                      "(compare.md lists everything)")
    p.add_argument("--out", help="folder for compare.md / compare.html (default: B's run folder)")
    p.add_argument("--allow-protocol-mismatch", action="store_true",
                   help="compare what is comparable when some quality metrics' protocols differ (else exit 2)")
    args = p.parse_args(argv)
    try:
        if args.baseline is not None:
            if args.sides:
                raise InputError("give either two runs or --baseline RUN, not both")
            b = load_run(args.baseline)
            path = baselines.path_for(args.baselines, b.suite, b.profile)
            if not path.exists():
                raise InputError(f"no baseline for suite {b.suite!r}, profile {b.profile or 'default'!r}: {path} "
                                 "does not exist (write one with: python run_bench.py baseline RUN)")
            a = load_side(path)
            out = Path(args.out or args.baseline)
        elif len(args.sides) == 2:
            a, b = (load_side(s) for s in args.sides)
            out = Path(args.out) if args.out else next((Path(s) for s in args.sides[::-1] if Path(s).is_dir()),
                                                       Path("."))
        else:
            raise InputError("expected two runs (A B) or --baseline RUN")
        if not 0 < args.alpha < 1:
            raise InputError(f"--alpha must be in (0, 1), got {args.alpha}")
        cmp = compare(a, b, args.alpha, args.gate_timings, pooled=args.test == "student")
        refused = cmp.refused()
        if refused and not args.allow_protocol_mismatch:
            reasons = sorted({r.rule.removeprefix("protocol differs: ") for r in refused})
            raise InputError(f"{len(refused)} quality metrics were computed under different protocols "
                             f"({' | '.join(reasons[:3])}{' | ...' if len(reasons) > 3 else ''}); "
                             "compare runs of one protocol, or pass --allow-protocol-mismatch")
    except InputError as e:
        print(f"run_bench.py compare: error: {e}", file=sys.stderr)
        return 2
    print(f"A: {a.label} (git {a.git_sha})\nB: {b.label} (git {b.git_sha})")
    for line in rules_text(cmp):
        print("  " + line)
    shown = cmp.rows if args.all else [r for r in cmp.rows if r.verdict != UNCHANGED
                                       and (not r.info.timing or cmp.gate_timings)]
    cols = ["verdict", "dataset", "family", "sampler", "metric", "A", "B", "change", "p (Holm)", "rule"]
    if shown:
        print(terminal_table(table_rows(shown), cols))
    for c in summary_counts(cmp):
        gated = "gated" if c["gated"] == "yes" else "not gated"
        print(f"{c['metrics']}: {c['compared']} compared, {c[REGRESSED]} regressed, {c[IMPROVED]} improved, "
              f"{c[UNCHANGED]} unchanged, {c[NOT_COMPARABLE]} not comparable ({gated})")
    for cell in cmp.only_a + cmp.only_b:
        print(f"missing: {cell} only in {'A' if cell in cmp.only_a else 'B'}")
    out.mkdir(parents=True, exist_ok=True)
    fig = volcano(cmp, out / "compare_volcano.png")
    doc = to_document(cmp, fig.name if fig else None)
    md = write_text(out / "compare.md", to_markdown(doc))
    html = write_text(out / "compare.html", to_html(doc, out))
    print(f"wrote {md} and {html}")
    for line in regression_lines(cmp):
        print(line)
    print("compare: " + (f"{len(cmp.regressions) + len(cmp.failed_b)} regression(s)" if cmp.failed
                         else "no regression"))
    return 1 if cmp.failed else 0
