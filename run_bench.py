#!/usr/bin/env python
"""genbench: train, sample, evaluate, time and report generative families on a suite.

    python run_bench.py                              # the default suite, suites/toy2d.yaml
    python run_bench.py suites/toy2d.yaml --profile smoke
    python run_bench.py suites/toy2d.yaml --families flow,gan --set families.gan.train.steps=500
    python run_bench.py suites/toy2d.yaml --resume   # finish the latest run of the suite
    python run_bench.py suites/toy2d.yaml --dry-run  # print the resolved config and the plan
    python run_bench.py suites/toy2d.yaml --jobs 1 --threads 2   # one cell at a time, on 2 threads
    python run_bench.py suites/cifar.yaml --launcher ray                     # cells in parallel (local Ray)
    python run_bench.py suites/cifar.yaml --launcher ray --ray-address auto  # on an existing Ray cluster

Before the first cell the command checks the run (device, memory, datasets, packages, disk;
bench/execution/preflight.py) and prints the plan: cells, estimated wall time and disk, and how many
cells run at once on how many threads (bench/execution/plan.py; docs/parallel-runs.md).
Without --profile it runs the suite's default profile, or its fallback where the default's
needs (e.g. CUDA) are not met here (bench/profiles.py).

Exit codes: 0 all cells ok; 1 some cell failed (see its record); 2 bad input (suite file,
key, type, value, family, option, run id) or a run that cannot start (preflight) or be
resumed as asked (locked by another process, settings changed without --force), nothing
written; 3 the results cannot be written (disk full, read-only folder), the run stopped
there; 130 interrupted (Ctrl-C), with the command that resumes the run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# OpenMP threads that spin while they wait make small ops ~100x slower when another process holds a
# core (a shared 2-core machine); waiting passively costs nothing measurable otherwise. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.cli.args import DEFAULT_SUITE  # noqa: E402  (no torch: after the environment above)
from bench.cli.args import positive as _positive  # noqa: E402

# Subcommands: ``python run_bench.py <name> ...`` calls ``main(argv) -> exit code`` of the module.
# Anything else is a suite run (``python run_bench.py [SUITE] [options]``).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "compare": ("bench.cli.compare", "compare two runs, or a run and its baseline; exit 1 on a regression"),
    "baseline": ("bench.cli.baseline", "store a run as its suite+profile baseline (results/baselines/)"),
    "gate": ("bench.cli.gate", "run profiles and compare each with its stored baseline in one process (CI's "
                               "regression gate); exit 1 on a regression"),
    "history": ("bench.cli.history", "a metric over runs in commit order, steps flagged, and a plot"),
    "report": ("bench.cli.report", "rebuild a run's report.md/report.html, or compare several runs (--out DIR)"),
}


def error(message: str, code: int = 2) -> int:
    """Print ``message`` as one line (``run_bench.py: error: ...``) on stderr; return the exit ``code``."""
    from bench.config.suite import one_line

    print(f"run_bench.py: error: {one_line(message)}", file=sys.stderr)
    return code


def _csv(text: str) -> list[str]:
    """Comma-separated names (``--families``, ``--datasets``): at least one, none twice.

    Raises:
        argparse.ArgumentTypeError: no name (``,`` or ``""``: an empty selection is not "all"), or a name
            given twice; argparse reports it as one line and exits 2.
    """
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"{text!r} names nothing (give one or more names, comma-separated; "
                                         "leave the option out to run all)")
    for i, x in enumerate(items):
        if x in items[:i]:
            raise argparse.ArgumentTypeError(f"{text!r} names {x!r} twice")
    return items


def _count(text: str) -> int:
    if not text.isdigit() or int(text) > 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed (must be an integer in [0, 100])")
    return int(text)




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
    p.add_argument("--profile", help="a profile of the suite file, e.g. smoke, cpu or default (the top level); "
                                     "without it: the default profile where this machine meets its needs, "
                                     "else its fallback")
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
    p.add_argument("--launcher", choices=["local", "ray"], default="local",
                   help="where the cells run: local (this machine, --jobs cells at a time) or ray (each cell a Ray "
                        "task, in parallel, with the suite's resources; needs pip install -e \".[ray]\")")
    p.add_argument("--jobs", type=_positive, metavar="N",
                   help="local launcher: cells at a time, each in a worker process (default: $GENBENCH_JOBS, else "
                        "the plan's choice from probes at 1 thread and at all cores, within the available memory)")
    p.add_argument("--threads", type=_positive, metavar="N",
                   help="local launcher: torch threads per cell (default: $GENBENCH_THREADS, else the plan's "
                        "choice); results are bitwise reproducible only at the same thread count")
    p.add_argument("--ray-address", metavar="ADDRESS",
                   help="with --launcher ray: the cluster to use (auto: the one `ray start` made on this node); "
                        "default: a new local Ray on this machine's CPUs and GPUs")
    p.add_argument("--ray-retries", type=_count, default=1, metavar="N",
                   help="with --launcher ray: retries of a cell whose worker died or whose node was lost (default 1)")
    p.add_argument("--no-estimate", action="store_true",
                   help="skip the cost model's probes: the plan lists the cells and the disk, with no time estimate "
                        "(the cells run in the suite's order, the datasets in turn when several run at once); "
                        "needs --jobs and --threads (e.g. CI, where the split is pinned and the probes of a fresh "
                        "data root cost ~10 s)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the run and print the resolved suite and the plan (cells, estimated time, disk); "
                        "run nothing")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS and not Path(argv[0]).is_file():
        module, _ = SUBCOMMANDS[argv[0]]
        if argv[0] == "gate":  # it runs suites: this function, handed down (bench/ does not import run_bench)
            return importlib.import_module(module).main(argv[1:], run=main)
        return importlib.import_module(module).main(argv[1:])
    args = parse_args(argv)
    if args.ray_address and args.launcher != "ray":
        return error("--ray-address needs --launcher ray")
    for flag, value in (("--jobs", args.jobs), ("--threads", args.threads)):
        if value and args.launcher == "ray":
            return error(f"{flag} is for the local launcher; with --launcher ray each cell is a task with the "
                         "suite's resources (num_cpus: its threads)")
    if args.launcher == "local":  # the environment's defaults (e.g. GENBENCH_JOBS=1 on a shared machine or in tests)
        for name, attr in (("GENBENCH_JOBS", "jobs"), ("GENBENCH_THREADS", "threads")):
            if getattr(args, attr) is None and os.environ.get(name):
                try:
                    setattr(args, attr, _positive(os.environ[name]))
                except argparse.ArgumentTypeError as e:
                    return error(f"${name}: {e}")
    if args.launcher == "ray":
        from bench.execution.ray_launcher import ray_missing

        if ray_missing():
            return error(ray_missing())
    import torch
    import yaml

    from bench.config import profiles
    from bench.config.suite import ConfigError
    from bench.core.files import check_name as check_run_id
    from bench.execution import preflight
    from bench.execution.suite import RunOptions, log
    from bench.store.runs import RunDir, RunRefused, cell_id

    overrides = list(args.overrides) + ([f"device={args.device}"] if args.device else [])
    try:
        choice = profiles.choose(args.suite, args.profile, overrides, cuda_available=torch.cuda.is_available())
        suite = choice.suite
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
    names = [d for d in suite.datasets if not args.datasets or d in args.datasets]
    families = [f for f in suite.families if not args.families or f in args.families]
    cells = [cell_id(d, f, s) for d in names for f in families for s in suite.seeds]
    try:  # a resumed run's cells: refused here (one line, nothing printed before) when made with other settings
        done = _done_cells(RunDir(args.results, suite.name, run_id), suite, names, families,
                           args.force) if run_id and args.stage != "report" else set()
    except RunRefused as e:
        return error(str(e))
    try:
        preflight.check_device(suite)  # before the profile notice, which would otherwise promise a run
        if choice.notice:
            log(choice.notice)
        ready = preflight.run(suite, dataset_names=names, families=families, stages=stages,
                              results_root=Path(args.results), done=done,
                              # Ray's cells take their threads from the suite's resources: nothing to choose
                              jobs=1 if args.launcher == "ray" else args.jobs,
                              threads=torch.get_num_threads() if args.launcher == "ray" else args.threads,
                              estimate=not args.no_estimate,
                              progress=lambda what: log(f"genbench: cost model: {what} (cached afterwards)"))
    except preflight.PreflightError as e:
        print(f"run_bench.py: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        log("genbench: interrupted before the first cell; nothing was written to the results")
        return 130
    if args.launcher == "ray":
        ready.plan.choice = None  # the plan's parallelism line is the local launcher's
    if args.dry_run:
        print(yaml.safe_dump(suite.resolved(), sort_keys=False), end="")
        print(f"# {len(cells)} cells: " + ", ".join(cells))
        print("\n".join(f"# {line}" for line in ready.plan.lines()))
        return 0
    if args.launcher == "ray" and args.stage != "report":  # reach Ray now: a task no node can run is refused here
        from bench.execution import ray_launcher as launch

        try:
            launch.connect(args.ray_address)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where, why = f" at {args.ray_address}" if args.ray_address else "", str(e).strip().splitlines() or [""]
            return error(f"--launcher ray: cannot start or reach Ray{where}: {why[0]}")
        problem = launch.resource_problem(suite, families, names, ready.device.type == "cuda")
        if problem:
            return error(problem)
    if args.stage != "report":
        for line in ready.plan.lines():
            log(line)
    if run_id is None:  # a fresh folder, claimed now (two starts in one second get -2, -3...)
        from bench.core.files import StorageError

        try:
            run_id = RunDir.create(args.results, suite.name).run_id
        except StorageError as e:
            return error(f"the results cannot be written: {e}", code=3)
    opts = RunOptions(root=Path(args.results), run_id=run_id, families=args.families, datasets=args.datasets,
                      force=args.force, progress=not args.no_progress, stages=stages, launcher=args.launcher,
                      ray_address=args.ray_address, ray_retries=args.ray_retries,
                      jobs=ready.plan.jobs if args.launcher == "local" else None,
                      threads=ready.plan.threads if args.launcher == "local" else None)
    return run_and_report(suite, opts, ready, resume=lambda: resume_command(args, suite, run_id))


def run_and_report(suite, opts, ready=None, resume=None) -> int:
    """Run the suite; the exit code, with one line on stderr when the run is refused (2) or cannot be
    written (3), and the resume command when interrupted (130)."""
    from bench.core.files import StorageError
    from bench.execution.suite import log, run_suite
    from bench.report.run_report import finish_run
    from bench.store.runs import RunRefused
    from bench.store.schema import SchemaError

    try:
        run = run_suite(suite, opts, ready, finish=lambda run, stages: finish_run(run, stages, log))
        failed = [r for r in run.records() if r.status == "failed"]
    except (RunRefused, SchemaError) as e:
        return error(str(e))
    except StorageError as e:
        return error(f"the results cannot be written: {e}; the run stopped (finished cells are kept; a later run "
                     "resumes)", code=3)
    except KeyboardInterrupt:
        where = Path(opts.root) / suite.name / opts.run_id
        log(f"genbench: interrupted; the finished cells of run {opts.run_id} are kept in {where}."
            + (f" Resume it with:\n  {resume()}" if resume else ""))
        return 130
    return 1 if failed else 0


def _done_cells(run, suite, names: list[str], families: list[str], force: bool) -> set[str]:
    """Cells of an existing run that are finished (skipped, and free in the plan); none under ``force``.

    Raises:
        RunConflict: without ``force``, a cell was made with other settings or has an unreadable
            record (:func:`bench.execution.resume.check_cells`, which the runner repeats under the run lock).
    """
    from bench.execution.resume import check_cells

    if not run.path.is_dir():
        return set()
    checks = check_cells(run, suite, [(d, f, s) for d in names for f in families for s in suite.seeds], force)
    return set() if force else {cid for cid, c in checks.items() if c.done}


def resume_command(args: argparse.Namespace, suite, run_id: str) -> str:
    """The command line that finishes run ``run_id``: the same suite, profile and options, by run id."""
    script = os.path.relpath(ROOT / "run_bench.py")
    parts = ["python", script, args.suite, "--profile", suite.profile or "default", "--run-id", run_id]
    if Path(args.results).resolve() != (ROOT / "results").resolve():
        parts += ["--results", args.results]
    for o in args.overrides:
        parts += ["--set", o]
    for flag, value in (("--device", args.device), ("--families", ",".join(args.families or [])),
                        ("--datasets", ",".join(args.datasets or [])),
                        ("--stage", args.stage if args.stage != "all" else None),
                        ("--launcher", args.launcher if args.launcher != "local" else None),
                        ("--jobs", str(args.jobs) if args.jobs else None),
                        ("--threads", str(args.threads) if args.threads else None),
                        ("--ray-address", args.ray_address),
                        ("--ray-retries", str(args.ray_retries) if args.launcher == "ray" and args.ray_retries != 1
                         else None)):
        if value:
            parts += [flag, value]
    if args.no_progress:
        parts.append("--no-progress")
    if args.no_estimate:
        parts.append("--no-estimate")
    return shlex.join(parts)


if __name__ == "__main__":
    sys.exit(main())
