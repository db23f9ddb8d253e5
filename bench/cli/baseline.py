"""``python run_bench.py baseline RUN``: store a run's seed statistics as its suite+profile baseline
(:mod:`bench.analysis.baselines`)."""

from __future__ import annotations

import argparse
import sys

from bench.analysis.baselines import DEFAULT_DIR, path_for, write
from bench.analysis.compare import InputError, load_run


def main(argv: list[str] | None = None) -> int:
    """``python run_bench.py baseline RUN``: store RUN's seed statistics as its suite+profile baseline.

    Exit codes: 0 written; 2 bad input (no such run, a failed or unevaluated cell).
    """
    p = argparse.ArgumentParser(prog="run_bench.py baseline", description=main.__doc__.splitlines()[0])
    p.add_argument("run", help="a run folder, results/<suite>/<run_id>")
    p.add_argument("--dir", default=str(DEFAULT_DIR), help="baselines folder (default: results/baselines)")
    p.add_argument("--allow-failed", action="store_true", help="store a run with failed cells (listed in the file)")
    args = p.parse_args(argv)
    try:
        side = load_run(args.run)
        failed = [f"{ds}/{fam}/s{seed}" for (ds, fam), c in side.cells.items() for seed in c["failed"]]
        if failed and not args.allow_failed:
            raise InputError(f"{args.run}: failed or unevaluated cells {', '.join(failed)}; a baseline needs a clean "
                             "run (or --allow-failed)")
    except InputError as e:
        print(f"run_bench.py baseline: error: {e}", file=sys.stderr)
        return 2
    path = write(side, path_for(args.dir, side.suite, side.profile), source=str(args.run))
    print(f"baseline: {len(side.stats)} metrics of {len(side.cells)} cells "
          f"({', '.join(sorted({str(s.n) for s in side.stats.values()}))} seeds) -> {path} "
          f"({path.stat().st_size / 1024:.0f} kB)")
    return 0
