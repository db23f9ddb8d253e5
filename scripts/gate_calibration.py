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

Sabotage battery: one plausible one-line bug per family (:data:`SABOTAGES`), each in a code path the default
profile runs, applied to a temporary copy of this checkout (never to the checkout itself). For each, the copy
runs the sabotaged family's cells in the ci profile; B is the reference ci run with those cells swapped in
(the other families' cells identical, as when one commit touches one family), and the gate's verdict and the
family's smallest Holm-adjusted p are reported. With ``--default-reference``, the copy also runs the family in
the default profile and the same comparison, restricted to that family's cells, says whether the default
profile shows the bug beyond its seed spread (some quality metric flagged at Holm p <= 0.05).

    python run_bench.py suites/toy2d.yaml --profile ci --run-id ci --stage evaluate --jobs 2 --threads 1
    python run_bench.py suites/toy2d.yaml --run-id default --stage evaluate
    python scripts/gate_calibration.py sabotage results/toy2d/ci --default-reference results/toy2d/default \
        --out /tmp/sabotage                # a markdown table on stdout, the runs and sabotage.json under --out
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.analysis.aggregate import side_from_records  # noqa: E402
from bench.analysis.compare import IMPROVED, REGRESSED, Comparison, compare  # noqa: E402
from bench.store import schema  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


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


@dataclass(frozen=True)
class Sabotage:
    """A plausible one-line bug: in ``path`` (relative to the checkout), the unique text ``old`` becomes ``new``.
    ``families``: the families whose cells it changes; ``what``: the bug in words."""

    name: str
    families: tuple[str, ...]
    path: str
    old: str
    new: str
    what: str


SABOTAGES = (
    Sabotage("ar-sample-scale", ("autoregressive",), "models/autoregressive.py",
             "x[:, d] = mean[rows, d, k] + torch.exp(log_scale[rows, d, k]) * eps",
             "x[:, d] = mean[rows, d, k] + torch.exp(0.5 * log_scale[rows, d, k]) * eps",
             "sampling reads the mixture's log-scale as a log-variance (samples too narrow; the density is right)"),
    Sabotage("vae-kl-unclamped", ("vae",), "models/vae.py",
             "w = min(1.0, (float(self.steps_seen) + 1) / max(1, self.config.kl_warmup_steps))\n"
             "            self.steps_seen += 1\n        return -self._log_weights",
             "w = (float(self.steps_seen) + 1) / max(1, self.config.kl_warmup_steps)\n"
             "            self.steps_seen += 1\n        return -self._log_weights",
             "the KL warm-up's weight is not clamped at 1: after the warm-up it keeps growing (a beta-VAE)"),
    Sabotage("gan-saturating", ("gan",), "models/gan.py",
             'return F.softplus(-d_fake).mean() if self.gan_loss == "ns" else -d_fake.mean()',
             'return -F.softplus(d_fake).mean() if self.gan_loss == "ns" else -d_fake.mean()',
             "the generator minimizes log(1 - D(G(z))) (the saturating minimax loss) instead of -log D(G(z))"),
    Sabotage("flow-one-layer", ("flow",), "models/flow.py",
             "hidden_features=[config.hidden] * config.layers",
             "hidden_features=[config.hidden]",
             "the spline hyper-networks ignore `layers`: one hidden layer instead of two"),
    Sabotage("coupling-one-layer", ("coupling_flow",), "models/coupling_flow.py",
             "hidden_features=[config.hidden] * config.layers",
             "hidden_features=[config.hidden]",
             "the coupling conditioners ignore `layers`: one hidden layer instead of two"),
    Sabotage("ddpm-mean-sqrt", ("diffusion",), "models/diffusion.py",
             "return (x_t - beta / (1 - ab).sqrt() * eps) / (1 - beta).sqrt()",
             "return (x_t - beta / (1 - ab) * eps) / (1 - beta).sqrt()",
             "the reverse mean drops a square root: beta_t / (1 - alpha_bar_t), not beta_t / sqrt(1 - alpha_bar_t)"),
    Sabotage("ebm-stale-buffer", ("energy",), "models/energy.py",
             "self.replay = torch.cat([x_neg, self.replay])[: c.buffer_size]",
             "self.replay = torch.cat([self.replay, x_neg])[: c.buffer_size]",
             "once full, the replay buffer keeps its oldest chains and drops the new ones"),
    Sabotage("score-unweighted", ("score",), "models/score.py",
             "sq = (sigma_x * score + noise) ** 2",
             "sq = (score + noise) ** 2",
             "the denoising score-matching loss loses its sigma weighting (sigma s + z becomes s + z)"),
    Sabotage("ema-no-warmup", ("diffusion", "score"), "bench/execution/train.py",
             "d = min(self.decay, (1 + self.updates) / (10 + self.updates))",
             "d = self.decay",
             "the EMA's decay has no warm-up: the average starts heavily weighted on the initial weights"),
)


def _copy_checkout(dest: Path) -> None:
    """The checkout's tracked files (as they are in the working tree) under ``dest``."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def apply(s: Sabotage, copy: Path) -> None:
    """Patch ``copy`` with ``s``.

    Raises:
        ValueError: ``s.old`` is not found exactly once (the code moved: update the battery).
    """
    path = copy / s.path
    text = path.read_text()
    if text.count(s.old) != 1:
        raise ValueError(f"{s.name}: {s.path}: the text to change occurs {text.count(s.old)} times, not once")
    path.write_text(text.replace(s.old, s.new))


def _run(copy: Path, profile: str, families: tuple[str, ...], results: Path, run_id: str, extra: list[str]) -> Path:
    cmd = [sys.executable, str(copy / "run_bench.py"), "suites/toy2d.yaml", "--profile", profile, "--families",
           ",".join(families), "--results", str(results), "--run-id", run_id, "--stage", "evaluate", "--no-progress",
           *extra]
    done = subprocess.run(cmd, cwd=copy, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)}: exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    return results / "toy2d" / run_id


def _smallest(cmp: Comparison, families: tuple[str, ...]) -> dict | None:
    """The family's quality row of smallest Holm-adjusted p (its metric, means, verdict, p), or ``None``."""
    rows = [r for r in cmp.family(False) if r.key[1] in families and r.p_adj is not None]
    if not rows:
        return None
    r = min(rows, key=lambda r: (r.p_adj, -(abs(r.worse or 0.0))))
    return {"metric": r.name(), "a": r.a.mean, "b": r.b.mean, "verdict": r.verdict, "p_adj": r.p_adj}


def sabotage(reference: Path, default_reference: Path | None, names: list[str] | None, out: Path | None,
             extra: list[str]) -> int:
    ref = records(reference)
    default_ref = records(default_reference) if default_reference else []
    chosen = [s for s in SABOTAGES if not names or s.name in names]
    out = out or Path(tempfile.mkdtemp(prefix="genbench-sabotage-"))
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in chosen:
        copy = out / "checkouts" / s.name
        shutil.rmtree(copy, ignore_errors=True)
        _copy_checkout(copy)
        apply(s, copy)
        bad = records(_run(copy, "ci", s.families, out / "runs", f"ci-{s.name}", extra))
        swapped = {(r.dataset, r.family) for r in bad}
        b_recs = [r for r in ref if (r.dataset, r.family) not in swapped] + bad
        gate = compare(side_from_records(ref, str(reference)), side_from_records(b_recs, s.name))
        row = {"name": s.name, "families": list(s.families), "change": f"{s.path}: {s.what}",
               "gate_fails": gate.failed, "gate_regressed": [r.name() for r in gate.regressions][:5],
               "gate_m": len(gate.family(False)), "gate_smallest": _smallest(gate, s.families)}
        if default_ref:
            worse = records(_run(copy, "default", s.families, out / "runs", f"default-{s.name}", extra))
            fam_ref = [r for r in default_ref if r.family in s.families]
            d = compare(side_from_records(fam_ref, "default"), side_from_records(worse, s.name))
            flagged = [r for r in d.rows if r.verdict in (REGRESSED, IMPROVED) and not r.info.timing]
            row.update(default_shows=bool(flagged), default_flagged=[f"{r.name()} ({r.verdict})" for r in flagged][:5],
                       default_m=len(d.family(False)), default_smallest=_smallest(d, s.families))
        rows.append(row)
        print(f"{s.name}: gate {'FAILS' if gate.failed else 'passes'}; {json.dumps(row, default=str)}",
              file=sys.stderr, flush=True)
    (out / "sabotage.json").write_text(json.dumps(rows, indent=2, default=str))
    print(_table(rows))
    return 0


def _table(rows: list[dict]) -> str:
    def cell(x: dict | None) -> str:
        if x is None:
            return "–"
        return f"{x['metric']} {x['a']:.4g} -> {x['b']:.4g}, {x['verdict']}, Holm p {x['p_adj']:.2g}"

    lines = ["| sabotage | families | change | default profile: shows it? (smallest Holm p) | gate (ci) | "
             "gate's smallest Holm p |", "|---|---|---|---|---|---|"]
    for r in rows:
        shows = ("–" if "default_shows" not in r else
                 f"{'yes' if r['default_shows'] else 'no'} ({cell(r['default_smallest'])}; m = {r['default_m']})")
        lines.append(f"| {r['name']} | {', '.join(r['families'])} | {r['change']} | {shows} | "
                     f"{'FAILS' if r['gate_fails'] else 'passes'} | {cell(r['gate_smallest'])}; m = {r['gate_m']} |")
    return "\n".join(lines)


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
    sb = sub.add_parser("sabotage", help="apply one-line bugs to a copy of the checkout and run the gate on them")
    sb.add_argument("reference", type=Path, help="the reference ci run (e.g. results/toy2d/ci)")
    sb.add_argument("--default-reference", type=Path, help="a default-profile run of the same code: also measure "
                                                          "each bug's effect in the default profile")
    sb.add_argument("--only", nargs="+", help="run only these sabotages (names)")
    sb.add_argument("--out", type=Path, help="folder for the copies, runs and sabotage.json (default: a new "
                                             "temporary folder)")
    sb.add_argument("--run-args", nargs=argparse.REMAINDER, default=[],
                    help="more arguments for run_bench.py (e.g. --jobs 2 --threads 1), last on the line")
    args = p.parse_args(argv)
    if args.what == "sabotage":
        return sabotage(args.reference, args.default_reference, args.only, args.out, args.run_args)
    if args.what == "false-alarms":
        return false_alarms(args.runs, args.group)
    return power(args.base, args.degraded, args.dataset, args.metric, args.background, args.background_seeds)


if __name__ == "__main__":
    sys.exit(main())
