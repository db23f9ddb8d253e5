"""``python run_bench.py history --suite S --metric M``: a metric over runs in commit order, steps flagged, and a
plot (:mod:`bench.analysis.history`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.analysis.history import STEP_ALPHA, series
from bench.core import env
from bench.report.fmt import fmt
from bench.report.history import plot
from bench.store.schema import metric_info


def main(argv: list[str] | None = None) -> int:
    """``python run_bench.py history --suite S --metric M``: a metric over runs, steps flagged, and a PNG.

    Exit codes: 0 printed; 2 bad input (no database, unknown metric, no rows).
    """
    p = argparse.ArgumentParser(prog="run_bench.py history", description=main.__doc__.splitlines()[0])
    p.add_argument("--suite", required=True)
    p.add_argument("--metric", required=True, help="a metric column, e.g. kl_nats, fid_test, precision")
    p.add_argument("--family")
    p.add_argument("--dataset")
    p.add_argument("--sampler", help="a sampler; '' selects cell-level metrics (NLL, KL, training)")
    p.add_argument("--profile")
    p.add_argument("--results", default=str(env.ROOT / "results"),
                   help="results root holding history.sqlite (default: ./results)")
    p.add_argument("--db", help="the database file (default: <results>/history.sqlite)")
    p.add_argument("--out", help="PNG path (default: <results>/history_<suite>_<metric>.png)")
    args = p.parse_args(argv)
    db = Path(args.db or Path(args.results) / "history.sqlite")
    err = None
    if metric_info(args.metric) is None:
        err = f"--metric {args.metric}: not a metric of the schema (e.g. kl_nats, mmd2, precision, fid_test)"
    elif not db.is_file():
        err = f"{db}: no history database (runs append to it when they finish)"
    if err is None:
        data = series(db, args.suite, args.metric, family=args.family, dataset=args.dataset, sampler=args.sampler,
                      profile=args.profile)
        if not data:
            err = f"{db}: no rows for suite {args.suite!r}, metric {args.metric!r} with these filters"
    if err is not None:
        print(f"run_bench.py history: error: {err}", file=sys.stderr)
        return 2
    print(f"{args.metric} ({metric_info(args.metric).unit or 'no unit'}, better: "
          f"{metric_info(args.metric).better or '–'}), runs in commit order; step rule: "
          f"bench.analysis.compare's test vs the previous run at p ≤ {STEP_ALPHA:g} and at least the minimum effect")
    for key, points in data.items():
        print("/".join(k for k in key if k) + ":")
        for pt in points:
            s = pt.stat
            spread = f" ± {fmt(s.std, 2)}" if s.std is not None else ""
            flag = f"  <- step {pt.step} ({pt.rule})" if pt.step else ""
            print(f"  {pt.run_id:<20} {(pt.git_sha or '?')[:12]:<13} {fmt(s.mean, 4)}{spread} (n={s.n}){flag}")
    out = Path(args.out or Path(args.results) / f"history_{args.suite}_{args.metric}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"plot: {plot(data, args.metric, out)}")
    return 0
