"""``python run_bench.py gate [SUITE] --profile P [--profile Q ...]``: the regression gate in one command.

For each profile: run it (to the evaluate stage, the profile's name as run id) into a results root, then compare
the run with its stored suite+profile baseline (``results/baselines/<suite>-<profile>.json``), as

    python run_bench.py SUITE --profile P --results ROOT --run-id P --stage evaluate --no-progress \\
        [--jobs J --threads T --no-estimate]
    python run_bench.py compare --baseline ROOT/<suite name>/P

would, but in one process: CI's gate (``.ci/run``) pays one interpreter and one torch import instead of one per
command, and, with the split pinned (``--jobs``, ``--threads``), no cost-model probes (``--no-estimate``).
The numbers are those of the two commands: the same cells, seeds and thread counts, the same statistics
(:mod:`bench.analysis.compare`).

Exit codes: 0 every profile ran clean and nothing regressed; 1 a quality metric regressed or a cell failed; 2 bad
input (suite, profile, option, a missing baseline: all checked before the first run); 3 the results cannot be
written; 130 interrupted. Every profile runs even when an earlier one regressed, so one CI log shows them all.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.cli.args import DEFAULT_SUITE, positive


def _error(message: str) -> int:
    print(f"run_bench.py gate: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None, run: Callable[[list[str]], int] | None = None) -> int:
    """``python run_bench.py gate``: run each ``--profile`` of SUITE with ``run`` (``run_bench.main``, which passes
    itself: a suite run is the layer above this one) and compare it with its baseline (see the module docstring for
    the exit codes)."""
    p = argparse.ArgumentParser(prog="run_bench.py gate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="exit codes: 0 clean, 1 a regression or a failed cell, 2 bad input, 3 the "
                                       "results cannot be written, 130 interrupted")
    p.add_argument("suite", nargs="?", default=str(DEFAULT_SUITE),
                   help="suite YAML (default: suites/toy2d.yaml)")
    p.add_argument("--profile", dest="profiles", action="append", required=True, metavar="PROFILE",
                   help="a profile with a stored baseline, e.g. ci (repeatable; run in the order given)")
    p.add_argument("--results", metavar="DIR",
                   help="results root for the gate's runs (default: a temporary folder, removed afterwards)")
    p.add_argument("--baselines", default=None, metavar="DIR",
                   help="baselines folder (default: results/baselines)")
    p.add_argument("--jobs", type=positive, metavar="N", help="cells at a time (as run_bench.py)")
    p.add_argument("--threads", type=positive, metavar="N",
                   help="torch threads per cell (as run_bench.py); with --jobs the plan's probes are skipped "
                        "(--no-estimate)")
    args = p.parse_args(argv)
    if run is None:
        raise TypeError("gate needs the suite runner: run_bench.main passes it")
    for i, name in enumerate(args.profiles):
        if name in args.profiles[:i]:
            return _error(f"--profile {name} is given twice")

    import torch

    from bench.analysis import baselines
    from bench.cli import compare
    from bench.config import profiles
    from bench.config.suite import ConfigError, one_line
    from bench.core.files import check_name

    names = {}
    # every profile resolves, and has its baseline, before any runs: a typo in the second is not found after the
    # first's minutes
    for name in args.profiles:
        if check_name(name):  # the run id, a folder under the results root
            return _error(f"--profile {name!r}: {check_name(name)}")
        try:
            suite = profiles.choose(args.suite, name, [], cuda_available=torch.cuda.is_available()).suite
        except ConfigError as e:
            return _error(one_line(str(e)))
        stored = baselines.path_for(args.baselines or baselines.DEFAULT_DIR, suite.name, suite.profile)
        if not stored.is_file():
            return _error(f"--profile {name}: no baseline for suite {suite.name!r}, profile "
                          f"{suite.profile or 'default'!r}: {stored} does not exist (write one with: python "
                          f"run_bench.py {args.suite} --profile {name} --run-id {name} --stage evaluate, then python "
                          f"run_bench.py baseline results/{suite.name}/{name})")
        names[name] = suite.name
    root = Path(args.results) if args.results else Path(tempfile.mkdtemp(prefix="genbench-gate-"))
    split = ([f"--jobs={args.jobs}"] if args.jobs else []) + ([f"--threads={args.threads}"] if args.threads else [])
    fixed = bool(args.jobs and args.threads)
    worst = 0
    try:
        for name in args.profiles:
            start = time.monotonic()
            print(f"gate: {args.suite} --profile {name}", file=sys.stderr, flush=True)
            code = run([args.suite, "--profile", name, "--results", str(root), "--run-id", name, "--stage",
                        "evaluate", "--no-progress", *split, *(["--no-estimate"] if fixed else [])])
            if code in (2, 3, 130):
                return code
            cmp = compare.main(["--baseline", str(root / names[name] / name)]
                               + (["--baselines", args.baselines] if args.baselines else []))
            if cmp == 2:
                return 2
            worst = max(worst, code, cmp)
            verdict = "regressed" if cmp else "failed cells" if code else "clean"
            print(f"gate: --profile {name}: {verdict} ({time.monotonic() - start:.1f} s)", file=sys.stderr,
                  flush=True)
    finally:
        if not args.results:
            shutil.rmtree(root, ignore_errors=True)
    return worst
