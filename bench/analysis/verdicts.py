"""The taxonomy's claims tested against measurements: pure functions of cell records.

Each function takes typed records (:class:`bench.store.schema.CellRecord`) and returns a
:class:`Verdict`; nothing here formats a table or draws a figure. The textbook
claims come from the family (:class:`models.base.Textbook`), stored in each record;
a family without one gets ``"no textbook claim"``, never "disagrees".

Rules:

* **likelihood**: where the density could be integrated numerically (2D), the
  verdict rests on that integral: an exact density integrates to 1 (|log ∫p| ≤
  max(0.01, 3 × quadrature error)), exp(bound) to less than 1, exp(−E) to Z ≠ 1. A
  bound whose integral is not below 1 by more than its error is "inconclusive".
  Elsewhere (images) it rests on the kind of density the family exposes.
* **sampling**: a family samples *slow* when its cost per sample at the throughput
  batch is at least :data:`SLOW_RATIO` times that of the fastest family on the same
  dataset.
* **training** (T14, T15) and **mode collapse** (T20) are judged in :mod:`bench.analysis.training_verdicts`
  (failed runs against the family's best learning rate, calibrated collapse, oscillation, convergence).
* **sample quality** (:func:`sample_quality`): "excellent" agrees when the family's mean
  sample metric (2D MMD², images FID) is the best on the dataset by more than
  :data:`SEPARATION` combined standard errors of the seed means; it disagrees when another
  family is better by that margin; it is inconclusive when the spreads overlap, with fewer
  than 2 seeds, or when the family's quality had not settled by the end of training.
* **expressiveness** (:func:`expressiveness`): "restricted" (flows) agrees when the flow's
  mean KL exceeds the autoregressive family's by more than :data:`SEPARATION` combined
  standard errors at matched parameter count (within :data:`MATCH_TOLERANCE`), disagrees
  when it is lower by that margin, and is inconclusive otherwise or when the sizes differ.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import models
from bench.analysis import taxonomy
from bench.analysis.claims import ClaimVerdict
from bench.store.schema import CellRecord, DensityResult

SLOW_RATIO = 10.0  # a family samples "slow" when its cost per sample is >= 10x the fastest family's
SEPARATION = 2.0  # a difference of means counts when it exceeds 2 combined standard errors of the seed means
MATCH_TOLERANCE = 0.2  # parameter counts are "matched" when within 20% of each other
AGREES, DISAGREES, INCONCLUSIVE, NO_CLAIM = "agrees", "disagrees", "inconclusive", "no textbook claim"


@dataclass(frozen=True)
class Verdict:
    """One claim checked against one measurement.

    Attributes:
        verdict: ``"agrees"``, ``"disagrees"``, ``"inconclusive"`` or ``"no textbook claim"``.
        claim: the textbook's wording (empty without a claim).
        measured: what was measured, in words (``"slow"``, ``"exact"``...).
        value: the number that decided it (a ratio, a log-integral in nats), or ``None``.
    """

    verdict: str
    claim: str = ""
    measured: str = ""
    value: float | None = None


def textbook(rec: CellRecord) -> dict[str, str] | None:
    """The family's textbook claims: from the record, else from the registry (records older than
    ``genbench.cell/2``), else ``None``."""
    if rec.textbook is not None:
        return rec.textbook

    if rec.family in models.names():
        tb = models.textbook(rec.family)
        return None if tb is None else dataclasses.asdict(tb)
    return None


def _compare(claimed: str | None, holds: bool, text: str, measured: str, value: float | None = None) -> Verdict:
    if claimed is None:
        return Verdict(NO_CLAIM, "", measured, value)
    return Verdict(AGREES if holds else DISAGREES, text, measured, value)


def likelihood(rec: CellRecord) -> Verdict:
    """The textbook likelihood claim of a record against its measured normalization (2D) or kind.

    ``value`` is log ∫ (density, exp(bound) or exp(−E)) dx in nats where it was integrated.
    """
    d = rec.density or DensityResult()
    kind = rec.likelihood_kind
    tb = textbook(rec)
    claimed, text = (tb["likelihood"], tb["likelihood_text"]) if tb else (None, "")
    li, err = d.log_integral_nats, d.log_integral_error_nats or 0.0
    if li is None:
        return _compare(claimed, claimed == kind, text, kind)
    if kind == "exact":
        return _compare(claimed, abs(li) <= max(0.01, 3 * err) and claimed == "exact", text, "exact", li)
    if kind == "bound":
        if li + err >= 0:
            return Verdict(INCONCLUSIVE if claimed else NO_CLAIM, text, "bound (integral not below 1 within error)", li)
        return _compare(claimed, claimed == "bound", text, "bound", li)
    if kind == "unnormalized":
        return _compare(claimed, abs(li) > err and claimed == "unnormalized", text, "unnormalized", li)
    return _compare(claimed, claimed == kind, text, kind, li)


def fastest(recs: list[CellRecord]) -> CellRecord | None:
    """The record whose default sampler costs least per sample (µs/sample at the throughput batch)."""
    timed = [r for r in recs if r.primary()[1].sample_us_per_sample]
    return min(timed, key=lambda r: r.primary()[1].sample_us_per_sample) if timed else None


def sampling(rec: CellRecord, recs: list[CellRecord]) -> Verdict:
    """The textbook sampling claim of ``rec`` against the fastest family among ``recs`` (one dataset, one seed).

    ``value`` is the cost-per-sample ratio to the fastest family; slow when ≥ :data:`SLOW_RATIO`.
    """
    best = fastest(recs)
    cost = rec.primary()[1].sample_us_per_sample
    tb = textbook(rec)
    claimed, text = (tb["sampling"], tb["sampling_text"]) if tb else (None, "")
    if best is None or not cost:
        return Verdict(INCONCLUSIVE if claimed else NO_CLAIM, text, "not timed")
    ratio = cost / best.primary()[1].sample_us_per_sample
    slow = ratio >= SLOW_RATIO
    measured = "slow" if slow else "fast"
    return _compare(claimed, (claimed == "slow") == slow, text, measured, ratio)


# --------------------------------------------------------------------------- issue 11: the rest of the taxonomy
def _claim_of(rec: CellRecord, key: str) -> str | None:
    """The family's textbook claim ``key``; records written before the claim existed take it from the registry."""
    tb = textbook(rec)
    if tb is not None and key not in tb:
        reg = models.textbook(rec.family) if rec.family in models.names() else None
        return getattr(reg, key, None)
    return tb.get(key) if tb else None


def _se(values: list[float]) -> float | None:
    """Standard error of the mean of per-seed values (sample std, ddof = 1); ``None`` below 2 values."""
    n = len(values)
    if n < 2:
        return None
    m = sum(values) / n
    return math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1) / n)


def sample_quality(family: str, recs: list[CellRecord]) -> Verdict:
    """The textbook sample-quality claim of ``family`` ("excellent") against the other families on one dataset.

    ``recs`` are every family's ok records of one dataset (all seeds). ``value`` is the
    family's rank by mean sample metric (1 = best; lower metric is better).
    """
    groups = taxonomy.by_family(recs)
    own = groups.get(family, [])
    claimed = _claim_of(own[0], "sample_quality") if own else None
    scores = {f: taxonomy.sample_scores(rs)[1] for f, rs in groups.items()}
    scores = {f: v for f, v in scores.items() if v}
    if family not in scores:
        return Verdict(INCONCLUSIVE if claimed else NO_CLAIM, claimed or "", "no sample metric")
    means = {f: sum(v) / len(v) for f, v in scores.items()}
    rank = 1 + sum(means[f] < means[family] for f in means if f != family)
    measured = f"rank {rank} of {len(means)}"
    if claimed is None:
        return Verdict(NO_CLAIM, "", measured, rank)
    cost = taxonomy.training_cost(own)
    if cost.converged_fraction is not None and cost.converged_fraction < 1:
        return Verdict(INCONCLUSIVE, claimed, f"{measured}; not converged (quality still improving at the end of "
                                              f"training in {1 - cost.converged_fraction:.0%} of seeds)", rank)
    se = {f: _se(v) for f, v in scores.items()}
    if se[family] is None:
        return Verdict(INCONCLUSIVE, claimed, f"{measured}; one seed, no spread", rank)

    def separated(a: str, b: str) -> bool:  # a's mean is below b's by more than SEPARATION combined SEs
        if se[b] is None:
            return False
        return means[b] - means[a] > SEPARATION * math.hypot(se[a], se[b])

    others = [f for f in means if f != family]
    better = [f for f in others if separated(f, family)]
    if better:
        return Verdict(DISAGREES, claimed, f"{measured}; {', '.join(better)} better beyond the seed spread", rank)
    if rank == 1 and all(separated(family, f) for f in others):
        return Verdict(AGREES, claimed, f"{measured}; best beyond the seed spread", rank)
    return Verdict(INCONCLUSIVE, claimed, f"{measured}; within the seed spread of the best", rank)


def expressiveness(flow: list[CellRecord], reference: list[CellRecord]) -> Verdict:
    """The textbook expressiveness claim of a flow ("restricted") against an autoregressive model of matched size.

    ``flow`` and ``reference`` are the two families' ok records of one dataset (all seeds).
    ``value`` is the flow's mean KL minus the reference's (nats; > 0: the flow fits worse).
    Equal compute is equal training steps at matched parameter counts (the 2D suite's step budgets,
    docs/parallel-runs.md). Inconclusive when the parameter counts differ by more than
    :data:`MATCH_TOLERANCE`, when the records' training steps differ (e.g. a time budget, ``train.max_seconds``,
    fits a different number of steps per family), when either lacks an exact KL, or when the difference is
    within the seed spread.
    """
    claimed = _claim_of(flow[0], "expressiveness") if flow else None
    kl_f = [r.density.kl_nats for r in flow if r.ok and r.density and r.density.kl_nats is not None]
    kl_r = [r.density.kl_nats for r in reference if r.ok and r.density and r.density.kl_nats is not None]
    if not kl_f or not kl_r:
        return Verdict(INCONCLUSIVE if claimed else NO_CLAIM, claimed or "", "no exact KL on one side")
    p_f, p_r = flow[0].train.parameters if flow[0].train else None, \
        reference[0].train.parameters if reference[0].train else None
    diff = sum(kl_f) / len(kl_f) - sum(kl_r) / len(kl_r)
    size = f"{p_f:,} vs {p_r:,} parameters" if p_f and p_r else "parameters unknown"
    steps_f, steps_r = ({r.train.train_steps for r in side if r.ok and r.train and r.train.train_steps is not None}
                        for side in (flow, reference))
    if steps_f and steps_r:
        size += (f", {max(steps_f)} training steps each" if steps_f == steps_r and len(steps_f) == 1 else
                 f", {'/'.join(map(str, sorted(steps_f)))} vs {'/'.join(map(str, sorted(steps_r)))} training steps")
    if claimed is None:
        return Verdict(NO_CLAIM, "", f"ΔKL {diff:+.3g} nats ({size})", diff)
    if not p_f or not p_r or abs(p_f / p_r - 1) > MATCH_TOLERANCE:
        return Verdict(INCONCLUSIVE, claimed, f"sizes not matched ({size})", diff)
    if steps_f and steps_r and (steps_f != steps_r or len(steps_f) != 1):
        return Verdict(INCONCLUSIVE, claimed, f"compute not matched ({size})", diff)
    se_f, se_r = _se(kl_f), _se(kl_r)
    if se_f is None or se_r is None:
        return Verdict(INCONCLUSIVE, claimed, f"ΔKL {diff:+.3g} nats, one seed ({size})", diff)
    margin = SEPARATION * math.hypot(se_f, se_r)
    if diff > margin:
        return Verdict(AGREES, claimed, f"flow KL higher by {diff:.3g} > {margin:.2g} nats ({size})", diff)
    if diff < -margin:
        return Verdict(DISAGREES, claimed, f"flow KL lower by {-diff:.3g} > {margin:.2g} nats ({size})", diff)
    return Verdict(INCONCLUSIVE, claimed, f"|ΔKL| {abs(diff):.3g} ≤ {margin:.2g} nats, the seed spread ({size})",
                   diff)


# --------------------------------------------------------------------------- the claims (T-ids) these rules judge
LIKELIHOOD_CLAIM = {"exact": "T1", "bound": "T2", "none": "T3", "unnormalized": "T4"}  # by the family's claimed kind
# T7-T10 (autoregressive, VAE, GAN, flows, diffusion) are judged by sequential passes in
# bench.analysis.sample_verdicts; this wall-clock rule keeps the energy and score models' claims
SAMPLING_CLAIM = {"energy": "T12", "score": "T13"}
SAMPLING_RULE = (f"slow when the default sampler's cost per sample at the throughput batch is ≥ {SLOW_RATIO:g}× the "
                 "fastest family's on the dataset (first seed)")
LIKELIHOOD_RULE = ("the density kind the family exposes; in 2D the measured normalization decides: an exact density "
                   "integrates to 1, exp(bound) to less than 1, exp(−E) to Z ≠ 1 (first seed)")
QUALITY_RULE = (f"the family's mean sample metric is the best of all families by more than {SEPARATION:g} combined "
                "standard errors of the seed means, and its quality had settled by the end of training")
EXPRESSIVENESS_RULE = (f"the flow's mean KL exceeds the autoregressive model's by more than {SEPARATION:g} combined "
                       f"standard errors, at parameter counts within {MATCH_TOLERANCE:.0%}")


def _claim_verdict(claim: str, v: Verdict, rule: str, scope: str, family: str) -> list[ClaimVerdict]:
    """``v`` as a :class:`ClaimVerdict` of ``claim``; nothing for a family without a textbook claim."""
    if v.verdict == NO_CLAIM:
        return []
    value = "" if v.value is None else f" (value {v.value:.3g})"
    return [ClaimVerdict(claim, v.verdict, rule, f"measured {v.measured}{value}", scope, family)]


def judge_taxonomy(by_dataset: dict[str, list[CellRecord]]) -> list[ClaimVerdict]:
    """The taxonomy's rules above, each cited by its claim: the likelihood kind (T1-T4; T3 of a family whose
    records carry the probability-flow ODE's likelihood is :mod:`bench.analysis.sample_verdicts`') and sampling
    speed of the energy and score models (T12, T13), per dataset (ok records only; a family's learning-rate
    variants are left to the training verdicts). Diffusion's sample quality (T19), the flows' expressiveness (T21)
    and T7-T10 are judged in :mod:`bench.analysis.sample_verdicts`; training (T14, T15, T20) in
    :mod:`bench.analysis.training_verdicts`."""
    out: list[ClaimVerdict] = []
    for ds, recs in by_dataset.items():
        recs = [r for r in recs if r.ok]
        if not recs:
            continue
        seed = min(r.seed for r in recs)
        first = [r for r in recs if r.seed == seed]
        for r in first:
            if r.family != r.base_family:  # a variant (another learning rate) of a family judged under its own name
                continue
            tb = textbook(r)
            ode = r.density is not None and r.density.ode_test_nll_nats is not None
            if tb and tb.get("likelihood") in LIKELIHOOD_CLAIM and not (ode and tb["likelihood"] == "none"):
                out += _claim_verdict(LIKELIHOOD_CLAIM[tb["likelihood"]], likelihood(r), LIKELIHOOD_RULE, ds, r.family)
            if r.family in SAMPLING_CLAIM:
                out += _claim_verdict(SAMPLING_CLAIM[r.family], sampling(r, first), SAMPLING_RULE, ds, r.family)
    return out
