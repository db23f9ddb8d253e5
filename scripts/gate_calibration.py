#!/usr/bin/env python
"""Calibrate the regression gate (bench/compare.py): its false-alarm rate and its detection power.

False alarms: runs of unchanged code with many seeds are cut into disjoint groups of
``--group`` consecutive seeds; groups 0 and 1 form the first pair, 2 and 3 the next,
and so on; each pair is compared as A and B. Every flagged metric is a false alarm.

    python run_bench.py suites/toy2d.yaml --profile ci --set "seeds=[0,1,...,29]" --run-id fa --stage evaluate
    python scripts/gate_calibration.py false-alarms results/toy2d/fa

Detection power: B is the reference run with one family's cells on one dataset
replaced by those of a degraded run (same seeds, e.g. the flow trained for fewer
steps), so that the comparison has the whole suite's metrics, as in CI.

    python run_bench.py suites/toy2d.yaml --profile ci --families flow --datasets 8gaussians \\
        --set families.flow.train.steps=50 --run-id flow50 --stage evaluate
    python scripts/gate_calibration.py power results/toy2d/ci results/toy2d/flow50 [more degraded runs]
    python scripts/gate_calibration.py power results/toy2d/ci results/toy2d/flow50 --background results/toy2d/fa \
        --background-seeds 3 4 5       # B's other cells from other seeds: no metric identical, ~200 tests

Both report Student's t (the default) and Welch's t.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.analysis.aggregate import side_from_records  # noqa: E402
from bench.analysis.compare import IMPROVED, REGRESSED, compare  # noqa: E402
from bench.store import schema  # noqa: E402


def records(folder: Path) -> list[schema.CellRecord]:
    return [schema.record_from_dict(json.loads(p.read_text()), f"{p}: ") for p in sorted(folder.glob("*/record.json"))]


def false_alarms(folders: list[Path], group: int) -> int:
    recs = [r for f in folders for r in records(f)]
    seeds = sorted({r.seed for r in recs})
    groups = [seeds[i:i + group] for i in range(0, len(seeds) - group + 1, group)]
    print(f"{len(recs)} records, seeds {seeds[0]}..{seeds[-1]}: {len(groups)} groups of {group}, "
          f"{len(groups) // 2} disjoint pairs")
    for pooled in (True, False):
        name = "Student" if pooled else "Welch"
        flagged = tested = uncorrected = 0
        for k in range(len(groups) // 2):
            ga, gb = groups[2 * k], groups[2 * k + 1]
            a = side_from_records([r for r in recs if r.seed in ga], f"seeds {ga}")
            b = side_from_records([r for r in recs if r.seed in gb], f"seeds {gb}")
            cmp = compare(a, b, pooled=pooled)
            reg = [r for r in cmp.rows if r.verdict == REGRESSED and not r.info.timing]
            imp = [r for r in cmp.rows if r.verdict == IMPROVED and not r.info.timing]
            fam = cmp.family(False)
            m = len(fam)
            smallest = min((r.p_adj for r in fam), default=None)
            raw = sum((r.p_worse <= 0.05 and r.worse >= r.min_effect)
                      or (r.p_better <= 0.05 and -r.worse >= r.min_effect) for r in fam)
            tested += m
            flagged += len(reg) + len(imp)
            uncorrected += raw
            print(f"  {name}: seeds {ga} vs {gb}: {m} quality metrics tested, {len(reg)} regressed, {len(imp)} "
                  f"improved; smallest Holm-adjusted p {smallest:.3g}; without the correction {raw} would be flagged "
                  "(one-sided p <= 0.05 either way, minimum effect reached)")
            for r in reg + imp:
                print(f"      {r.verdict}: {r.name()} {r.a.mean:.4g} -> {r.b.mean:.4g} (p_adj {r.p_adj:.3g})")
        print(f"  {name}: {flagged} metrics flagged in {len(groups) // 2} pairs ({tested} tests; {uncorrected} "
              "without the correction)")
    return 0


def power(base: Path, degraded: list[Path], dataset: str | None, metric: str, background: Path | None,
          background_seeds: list[int] | None) -> int:
    ref = records(base)
    ref_seeds = sorted({r.seed for r in ref})
    rest = ref
    if background is not None:
        rest = [r for r in records(background) if r.seed in (background_seeds or ref_seeds)]
    print(f"reference: {base} ({len(ref)} records, seeds {ref_seeds}); other cells of B from "
          f"{background or base} (seeds {sorted({r.seed for r in rest})})")
    for folder in degraded:
        bad = records(folder)
        swapped = {(r.dataset, r.family) for r in bad}
        b_recs = [r for r in rest if (r.dataset, r.family) not in swapped] + bad
        steps = sorted({r.config.train.get("steps") for r in bad})
        a, b = side_from_records(ref, str(base)), side_from_records(b_recs, str(folder))
        for pooled in (True, False):
            cmp = compare(a, b, pooled=pooled)
            for r in cmp.rows:
                ds, fam, sampler, m = r.key
                if m == metric and (ds, fam) in swapped and (dataset is None or ds == dataset):
                    print(f"  {folder.name} (steps {steps}) {'Student' if pooled else 'Welch'}: {r.name()} "
                          f"{r.a.mean:.4f} ± {r.a.std:.4f} -> {r.b.mean:.4f} ± {r.b.std:.4f} "
                          f"(Δ {r.b.mean - r.a.mean:+.4f}): {r.verdict}, Holm p {r.p_adj:.3g}, "
                          f"m = {len(cmp.family(False))}, gate {'FAILS' if cmp.failed else 'passes'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    fa = sub.add_parser("false-alarms", help="compare disjoint seed groups of unchanged code")
    fa.add_argument("runs", nargs="+", type=Path)
    fa.add_argument("--group", type=int, default=3)
    pw = sub.add_parser("power", help="compare a reference run with degraded cells swapped in")
    pw.add_argument("base", type=Path)
    pw.add_argument("degraded", nargs="+", type=Path)
    pw.add_argument("--dataset")
    pw.add_argument("--metric", default="kl_nats")
    pw.add_argument("--background", type=Path, help="take B's other cells from this run (other seeds: every "
                                                    "metric of B then differs from A, as on another machine)")
    pw.add_argument("--background-seeds", type=int, nargs="+", help="the background run's seeds to use")
    args = p.parse_args(argv)
    if args.what == "false-alarms":
        return false_alarms(args.runs, args.group)
    return power(args.base, args.degraded, args.dataset, args.metric, args.background, args.background_seeds)


if __name__ == "__main__":
    sys.exit(main())
