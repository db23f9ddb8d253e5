#!/usr/bin/env python
"""Claim T21 over model sizes: the autoregressive model (MADE) against the coupling flow at three matched sizes.

    python scripts/expressiveness.py                         # 3 runs of suites/toy2d.yaml --profile expressiveness
    python scripts/expressiveness.py --hidden 32 128 384     # the MADE widths (the flow's are matched to them)
    python scripts/expressiveness.py --judge-only            # judge runs made before

Each size is one run of the suite's ``expressiveness`` profile (``--families autoregressive,coupling_flow``,
run id ``expressiveness-h<width>``): MADE at hidden width H and the coupling flow at the width whose parameter
count is closest to MADE's. The profile trains both to their plateau (3000 steps, 10 monitor checkpoints; the
rule reads the monitor: a size where either had not settled by 80% of its steps is not judged). The records of
all runs are then judged together by :func:`bench.analysis.sample_verdicts.expressiveness_verdicts`, which pairs
sizes by parameter count, and the KL-against-parameters figure is drawn into ``<results>/toy2d/expressiveness.png``.

Exit codes: 0 judged; 1 a run failed; 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import run_bench  # noqa: E402
from bench.analysis import sample_verdicts  # noqa: E402
from bench.report.figures import expressiveness  # noqa: E402
from bench.store.runs import RunDir  # noqa: E402
from models.autoregressive import MADE, MADEConfig  # noqa: E402
from models.coupling_flow import CouplingNSFConfig, CouplingSplineFlow  # noqa: E402


def parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def matched_width(made_hidden: int, transforms: int = 4) -> tuple[int, int, int]:
    """(coupling-flow width, its parameters, MADE's parameters) with the flow's count closest to MADE's."""
    target = parameters(MADE(MADEConfig(hidden=made_hidden), (2,)))
    best = min(range(2, 4 * made_hidden), key=lambda h: abs(parameters(
        CouplingSplineFlow(CouplingNSFConfig(transforms=transforms, hidden=h), (2,))) - target))
    return best, parameters(CouplingSplineFlow(CouplingNSFConfig(transforms=transforms, hidden=best), (2,))), target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[32, 128, 384], help="MADE widths (default 32 128 384)")
    p.add_argument("--results", default=str(ROOT / "results"), help="results root (default results/)")
    p.add_argument("--judge-only", action="store_true", help="judge the runs already made, train nothing")
    args = p.parse_args(argv)
    if any(h < 2 for h in args.hidden):
        print("expressiveness.py: error: --hidden widths must be >= 2", file=sys.stderr)
        return 2
    runs = []
    for h in args.hidden:
        width, p_flow, p_made = matched_width(h)
        run_id = f"expressiveness-h{h}"
        print(f"size H = {h}: MADE {p_made:,} parameters, coupling flow hidden {width} with {p_flow:,}")
        if not args.judge_only:
            code = run_bench.main(["suites/toy2d.yaml", "--profile", "expressiveness", "--families",
                                   "autoregressive,coupling_flow", "--results", args.results, "--run-id", run_id,
                                   "--no-progress", "--stage", "evaluate",
                                   "--set", f"families.autoregressive.model.hidden={h}",
                                   "--set", f"families.coupling_flow.model.hidden={width}"])
            if code != 0:
                print(f"expressiveness.py: the run {run_id} exited {code}", file=sys.stderr)
                return 1
        runs.append(RunDir(Path(args.results), "toy2d", run_id))
    records = [r for run in runs if run.path.exists() for r in run.records() if r.ok]
    if not records:
        print("expressiveness.py: error: no records (run without --judge-only first)", file=sys.stderr)
        return 2
    by_ds: dict[str, list] = {}
    for r in records:
        by_ds.setdefault(r.dataset, []).append(r)
    for ds, recs in by_ds.items():
        for v in sample_verdicts.expressiveness_verdicts(ds, sample_verdicts.ok_groups(recs)):
            print(f"{v.claim} {ds} {v.family}: {v.verdict}\n  rule: {v.rule}\n  evidence: {v.evidence}")
    fig = expressiveness(records, list(by_ds), Path(args.results) / "toy2d")
    if fig is not None:
        print(f"figure: {fig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
