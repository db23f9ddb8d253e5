"""Compare two runs, or a run and a baseline: did any metric get worse, and is the difference real?

    python run_bench.py compare results/toy2d/before results/toy2d/after
    python run_bench.py compare --baseline results/toy2d/after     # against results/baselines/<suite>-<profile>.json

Metrics are aligned by (dataset, family, sampler, metric). Each metric's direction,
unit, standard error and whether it is a timing come from its declaration in
:mod:`bench.store.schema`; metrics without a direction (facts such as NFE) are not
compared. The verdict per metric is *regressed*, *improved*, *unchanged* or *not
comparable*, and the output names the rule that decided it:

* **not comparable** when the metric is missing on one side, when its protocol
  differs (:func:`bench.evaluation.protocol.record_fingerprint`: sample count, reference set,
  extractor, bound and quadrature settings, split sizes; the differing keys are
  named), or, for a timing, when device type, device name or torch version differ.
* **≥ 2 seeds on each side**: a two-sample t-test of the per-seed values
  (``scipy.stats.ttest_ind_from_stats``), one-sided in each direction. By default
  Student's t with the pooled variance: a gate's null hypothesis is "the change did
  nothing", under which both sides are draws from one distribution, equal variances
  included, so the pooled test is exact for normal data, with n_A + n_B − 2 degrees of
  freedom. Welch's t (``--test welch``) drops that assumption and, with 3 seeds a side,
  can fall to 2 degrees of freedom when one side is noisy, which is typical of a broken
  model: its critical t at the Holm level of ~200 metrics is then about 45 instead of
  about 10, and even a flow trained for 5 steps passes the gate (see the README).
  Where neither side varies across seeds (a mode count), the exact permutation
  p-value, 1 / C(n_A + n_B, n_B).
* **one seed on a side**: the metric's own standard error where both sides have one
  (NLL, KL, bounds, KID's subset std), a z-test on √(SE_A² + SE_B²); else the seed
  spread of the side that has ≥ 2 seeds (usually the baseline), a t-test of a new
  observation, t = Δ / (s √(1/n_A + 1/n_B)) with n − 1 degrees of freedom; else the
  relative tolerance :data:`TOLERANCE_REL` (no test). One seed cannot tell training
  noise from a change; the own SE covers only evaluation noise.
* Identical per-seed values on both sides are *unchanged*: the change did not touch
  that metric, so it is not counted among the tests below.
* **Multiple comparisons**: the one-sided p-values of the tested metrics are
  adjusted by Holm–Bonferroni (quality metrics and timings apart), so that the chance of any false regression in a
  comparison is at most :data:`ALPHA` (family-wise); improvements are adjusted the
  same way, separately.
* **Minimum effect**: a significant change counts only when it is at least
  max(:data:`MIN_EFFECT_REL` × |mean of A|, :data:`MIN_EFFECT_ABS` of the unit), so a
  significant but negligible change is *unchanged*.
* **Timings** are compared as ratios B/A (the tests run on log values, the spread by
  the delta method, s/mean) with a minimum effect of :data:`TIMING_MIN_RATIO`, and
  only on the same device; they are reported but not gated unless ``--gate-timings``.

A cell present on one side only is listed as missing. A cell that failed in B but
not in A is a regression. Exit codes: 0 no regression; 1 at least one regression
(each named on one line); 2 bad input (missing run, unknown baseline, incompatible
suites, or quality metrics under different protocols, unless
``--allow-protocol-mismatch``: a gate must not pass because it compared nothing).
Output: a terminal table (worst first), ``compare.md`` and ``compare.html``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from bench.analysis import baselines
from bench.analysis.aggregate import Key, Side, Stat, side_from_records
from bench.evaluation import protocol
from bench.store import schema

ALPHA = 0.05  # family-wise level of the gate (Holm-Bonferroni over the gated metrics)
MIN_EFFECT_REL = 0.05  # a change smaller than 5% of A's mean is negligible...
MIN_EFFECT_ABS = {"nats": 0.01, "bits/dim": 0.001, "fraction": 0.01, "modes": 1.0}  # ...or than this, per unit
TOLERANCE_REL = 0.10  # one seed, no standard error, no seed spread: a 10% change toward worse regresses
TIMING_MIN_RATIO = 1.10  # timings: a ratio below 1.10 either way is negligible (asv's default factor)
IDENTICAL_REL = 1e-6  # values equal to this relative precision (a baseline stores 7 digits) are identical

REGRESSED, IMPROVED, UNCHANGED, NOT_COMPARABLE = "regressed", "improved", "unchanged", "not comparable"
IDENTICAL = "identical values"
_ORDER = {REGRESSED: 0, NOT_COMPARABLE: 1, IMPROVED: 2, UNCHANGED: 3}


class InputError(ValueError):
    """Bad input to compare or baseline (exit 2): the message names the path or the mismatch."""

@dataclass
class Row:
    """The verdict on one (dataset, family, sampler, metric).

    Attributes:
        key: (dataset, family, sampler, metric); sampler ``""`` for cell-level metrics.
        info: the metric's declaration (unit, direction, timing, SE column).
        a, b: the two sides' statistics (``None`` where missing).
        verdict: regressed, improved, unchanged or not comparable.
        rule: the rule that decided (e.g. ``"Student t"``), or why it is not comparable.
        worse: the change toward worse: B − A (or A − B when higher is better), in the
            metric's unit; for timings the log of the ratio toward worse.
        min_effect: the smallest change toward either side that counts (same scale as ``worse``).
        p_worse, p_better: one-sided p-values, before adjustment.
        p_adj: the Holm-adjusted p-value of the direction the change went.
        gated: whether a regression of this metric fails the comparison.
    """

    key: Key
    info: schema.MetricInfo
    a: Stat | None
    b: Stat | None
    verdict: str = UNCHANGED
    rule: str = ""
    worse: float | None = None
    min_effect: float | None = None
    p_worse: float | None = None
    p_better: float | None = None
    p_adj: float | None = None
    gated: bool = False

    @property
    def ratio(self) -> float | None:
        """B's mean / A's mean, or ``None``."""
        if self.a is None or self.b is None or self.a.mean == 0:
            return None
        return self.b.mean / self.a.mean

    def name(self) -> str:
        ds, fam, sampler, metric = self.key
        return f"{ds}/{fam}{'/' + sampler if sampler else ''} {metric}"


@dataclass
class Comparison:
    """Everything a comparison found: per-metric rows (worst first) and the cells on one side only."""

    a: Side
    b: Side
    rows: list[Row]
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    failed_b: list[str] = field(default_factory=list)
    failed_a: list[str] = field(default_factory=list)
    alpha: float = ALPHA
    gate_timings: bool = False
    pooled: bool = True

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == REGRESSED and r.gated]

    @property
    def failed(self) -> bool:
        """At least one gated regression, or a cell that failed in B and not in A."""
        return bool(self.regressions or self.failed_b)

    def tested(self, timing: bool) -> list[Row]:
        """The comparable rows of quality metrics (``timing`` False) or timings."""
        return [r for r in self.rows if r.info.timing == timing and r.verdict != NOT_COMPARABLE]

    def refused(self) -> list[Row]:
        """Quality metrics refused because their protocols differ."""
        return [r for r in self.rows if not r.info.timing and r.verdict == NOT_COMPARABLE
                and r.rule.startswith("protocol")]

    def family(self, timing: bool) -> list[Row]:
        """The rows whose p-values are adjusted together: tested, with a p-value (not identical, not tolerance)."""
        return [r for r in self.tested(timing) if r.p_worse is not None]


# --------------------------------------------------------------------------- loading
def load_run(path: str | Path) -> Side:
    """A run folder (``results/<suite>/<run_id>``) reduced to seed statistics.

    Raises:
        InputError: not a folder, no cell record in it, or an unreadable record.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such run folder")
    info = {}
    if (path / "run.json").exists():
        try:
            info = json.loads((path / "run.json").read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"{path / 'run.json'}: not valid JSON ({e})") from None
    records = []
    for p in sorted(path.glob("*/record.json")):
        try:
            records.append(schema.record_from_dict(json.loads(p.read_text()), f"{p}: "))
        except (json.JSONDecodeError, schema.SchemaError) as e:
            raise InputError(f"{p}: unreadable record ({e})") from None
    if not records:
        raise InputError(f"{path}: not a run folder (no <cell>/record.json under it)")
    profile = info.get("profile", records[0].config.profile)
    return side_from_records(records, str(path), profile)


def load_side(path: str | Path) -> Side:
    """A run folder or a baseline file (``*.json``), as a :class:`~bench.analysis.aggregate.Side`.

    Raises:
        InputError: neither a readable run folder nor a readable baseline.
    """
    path = Path(path)
    if path.suffix == ".json" and not path.is_dir():
        try:
            return baselines.load(path)
        except baselines.BaselineError as e:
            raise InputError(str(e)) from None
    return load_run(path)


# --------------------------------------------------------------------------- statistics
def _sign(info: schema.MetricInfo) -> float:
    """+1 when higher values are worse (lower is better), -1 when lower values are worse."""
    return 1.0 if info.better == "lower" else -1.0


def _log_scale(s: Stat) -> Stat:
    """A positive timing on the log scale: mean -> log(mean), spread and SE -> s / mean (delta method)."""
    rel = lambda x: None if x is None else x / s.mean
    return Stat(mean=math.log(s.mean), std=rel(s.std), n=s.n, se=rel(s.se),
                values=[math.log(v) for v in s.values if v > 0], protocol=s.protocol, device=s.device)


def _identical(a: Stat, b: Stat) -> bool:
    close = lambda x, y: abs(x - y) <= IDENTICAL_REL * max(abs(x), abs(y), 1e-300)
    if a.values and b.values and len(a.values) == len(b.values):
        return all(close(x, y) for x, y in zip(a.values, b.values))
    return a.n == b.n and close(a.mean, b.mean) and close(a.std or 0.0, b.std or 0.0)


def _one_sided(stat: float, dist) -> tuple[float, float]:
    """(p that the change is toward worse, p toward better) for a statistic signed toward worse."""
    return float(dist.sf(stat)), float(dist.cdf(stat))


def _zero_spread(d: float, n_a: int, n_b: int) -> tuple[float, float]:
    """Both sides without spread (e.g. a mode count equal across seeds): the exact permutation p-value.

    The observed split of the n_A + n_B values is the most extreme of the C(n_A + n_B, n_B)
    equally likely ones under the null, so p = 1 / C(n_A + n_B, n_B) toward the side the
    change went (0.05 for 3 seeds a side; 0.25 for 3 against 1) and 1 the other way.
    """
    p = 1.0 / math.comb(n_a + n_b, n_b)
    return (p, 1.0) if d > 0 else (1.0, p) if d < 0 else (1.0, 1.0)


def test(a: Stat, b: Stat, sign: float, pooled: bool = True) -> tuple[str, float | None, float | None]:
    """The test of the module docstring's rules for two sides of one metric.

    Args:
        a, b: the statistics of A (reference) and B (new), on the scale to test.
        sign: +1 when an increase is worse, -1 when a decrease is worse.
        pooled: with ≥ 2 seeds a side, Student's t (pooled variance) rather than Welch's.

    Returns:
        (rule, p_worse, p_better): the rule's name and the one-sided p-values that B is
        worse / better than A; both ``None`` for the tolerance rule.
    """
    from scipy import stats

    d = sign * (b.mean - a.mean)  # > 0: B is worse
    if a.n >= 2 and b.n >= 2:
        name = "Student t" if pooled else "Welch t"
        if (a.std or 0.0) == 0 and (b.std or 0.0) == 0:
            return "permutation (no spread on either side)", *_zero_spread(d, a.n, b.n)
        p = {alt: float(stats.ttest_ind_from_stats(b.mean, b.std, b.n, a.mean, a.std, a.n, equal_var=pooled,
                                                   alternative=alt).pvalue) for alt in ("greater", "less")}
        return (name, p["greater"], p["less"]) if sign > 0 else (name, p["less"], p["greater"])
    if a.se is not None and b.se is not None and (a.se > 0 or b.se > 0):
        return "own SE (z)", *_one_sided(d / math.hypot(a.se, b.se), stats.norm)
    ref = a if a.n >= 2 else b if b.n >= 2 else None
    if ref is not None:
        label = "A" if ref is a else "B"
        if not ref.std:
            return f"permutation (no spread in {label})", *_zero_spread(d, a.n, b.n)
        t = d / (ref.std * math.sqrt(1 / a.n + 1 / b.n))
        return f"seed spread of {label} (t, {ref.n - 1} df)", *_one_sided(t, stats.t(ref.n - 1))
    return f"tolerance {TOLERANCE_REL:.0%}", None, None


def holm(pvalues: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (Holm 1979), in the input order.

    p_adj of the i-th smallest = max over j ≤ i of min(1, (m − j + 1) p_(j)); rejecting
    where p_adj ≤ α keeps the family-wise error rate at α for any dependence.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


# --------------------------------------------------------------------------- comparing
def _min_effect(info: schema.MetricInfo, a: Stat) -> float:
    if info.timing:
        return math.log(TIMING_MIN_RATIO)
    return max(MIN_EFFECT_REL * abs(a.mean), MIN_EFFECT_ABS.get(info.unit, 0.0))


def _not_comparable(row: Row, a_side: Side, b_side: Side) -> str | None:
    """Why ``row`` cannot be compared, or ``None``."""
    a, b = row.a, row.b
    if a is None or b is None:
        return f"missing in {'A' if a is None else 'B'}"
    for label, s in (("A", a), ("B", b)):
        if len(s.protocol) > 1:
            return f"protocol varies across the seeds of {label}"
    if a.protocol != b.protocol:
        fa, fb = a_side.protocols.get(a.protocol[0] if a.protocol else ""), b_side.protocols.get(
            b.protocol[0] if b.protocol else "")
        if fa is None or fb is None:
            return "protocol unknown on one side"
        diff = protocol.diff(fa, fb)
        if diff:
            return "protocol differs: " + "; ".join(diff)
    if row.info.timing:
        if len(set(a.device) | set(b.device)) > 1:
            return f"device differs: {' / '.join(sorted(set(a.device)))} vs {' / '.join(sorted(set(b.device)))}"
        if a.mean <= 0 or b.mean <= 0:
            return "not positive"
    return None


def compare(a_side: Side, b_side: Side, alpha: float = ALPHA, gate_timings: bool = False,
            pooled: bool = True) -> Comparison:
    """Compare B (new) against A (reference) metric by metric (rules in the module docstring).

    Args:
        a_side, b_side: A (the reference: a baseline or the earlier run) and B (the new run).
        alpha: the family-wise level of the Holm–Bonferroni adjustment.
        gate_timings: timing regressions fail the comparison too.
        pooled: Student's t (pooled variance; the default) or Welch's t with ≥ 2 seeds a side.

    Raises:
        InputError: the sides come from different suites or modalities.
    """
    if a_side.suite != b_side.suite or a_side.modality != b_side.modality:
        raise InputError(f"incompatible suites: A ({a_side.label}) is {a_side.suite!r} ({a_side.modality}), "
                         f"B ({b_side.label}) is {b_side.suite!r} ({b_side.modality})")
    cmp = Comparison(a_side, b_side, [], alpha=alpha, gate_timings=gate_timings, pooled=pooled)
    cells_a, cells_b = set(a_side.cells), set(b_side.cells)
    cmp.only_a = [f"{ds}/{fam}" for ds, fam in sorted(cells_a - cells_b)]
    cmp.only_b = [f"{ds}/{fam}" for ds, fam in sorted(cells_b - cells_a)]
    for cell in sorted(cells_a & cells_b):
        fa, fb = a_side.cells[cell]["failed"], b_side.cells[cell]["failed"]
        cmp.failed_b += [f"{cell[0]}/{cell[1]} seed {s}: {why}" for s, why in sorted(fb.items()) if s not in fa]
        cmp.failed_a += [f"{cell[0]}/{cell[1]} seed {s}: {why}" for s, why in sorted(fa.items())]
    shared = cells_a & cells_b
    keys = sorted(k for k in set(a_side.stats) | set(b_side.stats) if k[:2] in shared)
    for key in keys:
        info = schema.metric_info(key[3])
        if info is None or info.better is None:
            continue
        row = Row(key, info, a_side.stats.get(key), b_side.stats.get(key),
                  gated=not info.timing or gate_timings)
        why = _not_comparable(row, a_side, b_side)
        if why is not None:
            row.verdict, row.rule, row.gated = NOT_COMPARABLE, why, False
        else:
            a, b = (_log_scale(row.a), _log_scale(row.b)) if info.timing else (row.a, row.b)
            sign = _sign(info)
            row.worse, row.min_effect = sign * (b.mean - a.mean), _min_effect(info, row.a)
            if _identical(row.a, row.b):
                row.rule = IDENTICAL
            else:
                row.rule, row.p_worse, row.p_better = test(a, b, sign, pooled)
        cmp.rows.append(row)
    _decide(cmp, alpha)
    cmp.rows.sort(key=_worst_first)
    return cmp


def _decide(cmp: Comparison, alpha: float) -> None:
    """Holm-adjust each family (quality; timings) per direction and set the verdicts."""
    for timing in (False, True):
        rows = cmp.family(timing)
        adj_w = holm([r.p_worse for r in rows])
        adj_b = holm([r.p_better for r in rows])
        for r, pw, pb in zip(rows, adj_w, adj_b):
            if pw <= alpha and r.worse >= r.min_effect:
                r.verdict, r.p_adj = REGRESSED, pw
            elif pb <= alpha and -r.worse >= r.min_effect:
                r.verdict, r.p_adj = IMPROVED, pb
            else:
                r.verdict, r.p_adj = UNCHANGED, min(pw, pb)
        for r in cmp.tested(timing):
            if r.p_worse is None and r.rule != IDENTICAL:  # the tolerance rule
                tol = r.min_effect if r.info.timing else max(TOLERANCE_REL * abs(r.a.mean), r.min_effect)
                r.verdict = REGRESSED if r.worse >= tol else IMPROVED if -r.worse >= tol else UNCHANGED


def _worst_first(r: Row) -> tuple:
    rel = (r.worse or 0.0) / max(abs(r.a.mean), 1e-12) if r.a is not None and not r.info.timing else (r.worse or 0.0)
    return (_ORDER[r.verdict], r.info.timing, -rel if r.verdict != IMPROVED else rel, r.key)
