#!/usr/bin/env python
"""genbench: train, sample, evaluate, time and report generative families on a suite.

    python run_bench.py                              # the default suite, suites/toy2d.yaml
    python run_bench.py suites/toy2d.yaml --profile smoke
    python run_bench.py suites/toy2d.yaml --families flow,gan --set families.gan.train.steps=500
    python run_bench.py suites/toy2d.yaml --resume   # finish the latest run of the suite
    python run_bench.py suites/toy2d.yaml --dry-run  # print the resolved config and the cells

Exit codes: 0 all cells ok; 1 some cell failed (see its record); 2 bad input
(suite file, key, type, value, family, option, run id) or a run that cannot be
resumed as asked (locked by another process, settings changed without --force),
nothing written; 3 the results cannot be written (disk full, read-only folder),
the run stopped there.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_SUITE = ROOT / "suites" / "toy2d.yaml"

# Subcommands: ``python run_bench.py <name> ...`` calls ``main(argv) -> exit code`` of the module.
# Anything else is a suite run (``python run_bench.py [SUITE] [options]``).
SUBCOMMANDS: dict[str, tuple[str, str]] = {}


def error(message: str, code: int = 2) -> int:
    """Print ``message`` as one line (``run_bench.py: error: ...``) on stderr; return the exit ``code``."""
    from bench.config import one_line

    print(f"run_bench.py: error: {one_line(message)}", file=sys.stderr)
    return code


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (``run_bench.py: error: ...``) and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    epilog = "\n".join(["subcommands (python run_bench.py <name> --help):"]
                       + [f"  {name:<10} {text}" for name, (_, text) in SUBCOMMANDS.items()]) if SUBCOMMANDS else None
    p = _Parser(prog="run_bench.py", description=__doc__.split("\n\n")[0], epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", nargs="?", default=str(DEFAULT_SUITE), help="suite YAML (default: suites/toy2d.yaml)")
    p.add_argument("--profile", help="a profile of the suite file, e.g. smoke")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a suite key, e.g. families.gan.train.steps=500 (repeatable)")
    p.add_argument("--families", type=_csv, help="comma-separated families to run (default: all in the suite)")
    p.add_argument("--datasets", type=_csv, help="comma-separated datasets to run (default: all in the suite)")
    p.add_argument("--results", default=str(ROOT / "results"), help="results root (default: ./results)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--run-id", help="name of the run; an existing run is resumed")
    g.add_argument("--resume", action="store_true", help="resume the latest run of this suite")
    p.add_argument("--stage", choices=["all", "train", "sample", "evaluate", "report"], default="all",
                   help="run up to this stage (report: rebuild report.md of --run-id/--resume only)")
    p.add_argument("--force", action="store_true", help="redo cells whose record says ok")
    p.add_argument("--device", help="override the suite's device (auto, cpu, cuda)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--dry-run", action="store_true", help="print the resolved suite and the cells, run nothing")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS and not Path(argv[0]).is_file():
        module, _ = SUBCOMMANDS[argv[0]]
        return importlib.import_module(module).main(argv[1:])
    args = parse_args(argv)
    import yaml

    from bench.config import ConfigError, load_suite
    from bench.results import RunDir, cell_id
    from bench.results import check_name as check_run_id
    from bench.runner import RunOptions

    overrides = list(args.overrides) + ([f"device={args.device}"] if args.device else [])
    try:
        suite = load_suite(args.suite, profile=args.profile, overrides=overrides)
        chosen_lists = (("family", args.families, list(suite.families)), ("dataset", args.datasets, suite.datasets))
        for what, chosen, known in chosen_lists:
            for c in chosen or []:
                if c not in known:
                    raise ConfigError(f"{args.suite}: --{what if what == 'dataset' else 'familie'}s: {what} {c!r} "
                                      f"is not in the suite (it has: {', '.join(known)})")
    except ConfigError as e:
        return error(str(e))
    run_id = args.run_id
    if run_id is not None and check_run_id(run_id):
        return error(f"--run-id {check_run_id(run_id)}")
    if args.resume:
        latest = RunDir.latest(args.results, suite.name)
        if latest is None:
            return error(f"--resume: no earlier run of suite {suite.name!r} under {args.results}")
        run_id = latest.run_id
    if args.stage == "report" and run_id is None:
        return error("--stage report needs --run-id or --resume")
    if args.stage == "report" and not (Path(args.results) / suite.name / run_id / "run.json").is_file():
        return error(f"--stage report: no run {run_id!r} of suite {suite.name!r} under {args.results}")
    stages = {"all": ("train", "sample", "evaluate", "report"), "train": ("train",), "sample": ("train", "sample"),
              "evaluate": ("train", "sample", "evaluate"), "report": ("report",)}[args.stage]
    if args.dry_run:
        print(yaml.safe_dump(suite.resolved(), sort_keys=False), end="")
        cells = [cell_id(d, f, s) for d in suite.datasets if not args.datasets or d in args.datasets
                 for f in suite.families if not args.families or f in args.families for s in suite.seeds]
        print(f"# {len(cells)} cells: " + ", ".join(cells))
        return 0
    opts = RunOptions(root=Path(args.results), run_id=run_id, families=args.families, datasets=args.datasets,
                      force=args.force, progress=not args.no_progress, stages=stages)
    return run_and_report(suite, opts)


def run_and_report(suite, opts) -> int:
    """Run the suite; the exit code, with one line on stderr when the run is refused (2) or cannot be
    written (3)."""
    from bench.results import RunRefused, StorageError
    from bench.runner import run_suite
    from bench.schema import SchemaError

    try:
        run = run_suite(suite, opts)
        failed = [r for r in run.records() if r.status == "failed"]
    except (RunRefused, SchemaError) as e:
        return error(str(e))
    except StorageError as e:
        return error(f"the results cannot be written: {e}; the run stopped (finished cells are kept; a later run "
                     "resumes)", code=3)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
