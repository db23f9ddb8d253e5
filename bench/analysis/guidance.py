"""Conditioning and classifier-free guidance judged: T24 (every family can be conditioned) and T25 (guidance
trades diversity for fidelity), from the records of a class-conditional run (docs/conditional.md).

**Guidance sweeps.** A conditional cell's samplers that differ only in their guidance scale w form one sweep
(:func:`sweeps`): e.g. ``ddim_w0`` ... ``ddim_w4`` of one family on one dataset. Per w, every metric is reduced
to its mean over seeds and the standard error of that mean (sample std / sqrt(n), n seeds).

**T25** (:func:`judge_t25`), per sweep of at least :data:`MIN_SCALES` scales: a metric *rises* when its seed
means have Spearman ρ ≥ :data:`RHO` with w and its means at the largest and smallest w differ by more than
:data:`SEPARATION` standard errors (the two SEs combined), and *falls* likewise with ρ ≤ -:data:`RHO`. The claim
agrees when a fidelity metric (:data:`FIDELITY`: class-conditional precision, label agreement) rises and a
diversity metric (:data:`DIVERSITY`: class-conditional recall, coverage) falls, with none moving the other way;
it disagrees when one moves the other way; otherwise (trends within the seed spread, fewer than 2 seeds or
3 scales) it is inconclusive.

**T24** (:func:`judge_t24`), per family and dataset: the samples of the unguided sampler (w = 0) are given to
the dataset's classifier (2D: the true mixture's Bayes classifier; MNIST: the LeNet); the claim agrees when their
label agreement, mean over seeds, is at least :data:`RESPECT` times the agreement the same classifier reaches on
the real reference points (its ceiling: real-vs-real calibration) with the margin beyond :data:`SEPARATION`
standard errors of the seed mean, disagrees when it falls short of that by more than the margin, and is
inconclusive otherwise, with fewer than 2 seeds (the spread over training seeds unknown) or without a
classifier. One verdict per dataset then covers every family: agrees when all agree, disagrees when one
disagrees.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from scipy.stats import spearmanr

from bench.analysis.claims import AGREES, DISAGREES, INCONCLUSIVE, ClaimVerdict
from bench.store.schema import CellRecord, SamplerResult

FIDELITY = ("cond_precision", "label_agreement")
DIVERSITY = ("cond_recall", "cond_coverage")
RHO = 0.8  # |Spearman rho| of a trend over the sweep
SEPARATION = 2.0  # standard errors between the endpoints (or from a threshold)
MIN_SCALES = 3  # guidance scales a sweep needs for a rank correlation
RESPECT = 0.9  # a conditioned family's label agreement reaches this fraction of the real data's
#: the unguided samples' precision (k-NN, against the real reference) below which they are off the data manifold:
#: a classifier's label for an unrecognisable sample says nothing about conditioning, so T24 and T25 do not judge
MANIFOLD_PRECISION = 0.1

T25_RULE = (f"agrees when, over one sampler's guidance sweep (≥ {MIN_SCALES} scales w), a fidelity metric "
            "(class-conditional precision or label agreement) rises and a diversity metric (class-conditional recall "
            f"or coverage) falls, each with Spearman |ρ| ≥ {RHO:g} against w and its seed means at the largest and "
            f"smallest w more than {SEPARATION:g} standard errors apart, and no metric moves significantly the other "
            "way; disagrees when one does; inconclusive otherwise, and when the unguided samples are off the data "
            f"manifold (precision < {MANIFOLD_PRECISION:g})")
T24_RULE = (f"agrees when the unguided samples' label agreement (the dataset's classifier gives back the requested "
            f"label), mean over seeds, reaches {RESPECT:g}× the same classifier's agreement on the real reference "
            f"points by more than {SEPARATION:g} standard errors of the seed mean; disagrees when it falls short by "
            "more than that; inconclusive otherwise, with fewer than 2 seeds, without a classifier, or when the "
            f"unguided samples are off the data manifold (precision < {MANIFOLD_PRECISION:g}: a model not yet trained)")


@dataclass
class Point:
    """One metric at one guidance scale: mean over seeds, standard error of that mean (sample std / sqrt(n);
    ``None`` for one seed), n seeds."""

    mean: float
    se: float | None
    n: int

    @property
    def std(self) -> float | None:
        """The sample standard deviation over seeds (ddof = 1), ``None`` for one seed."""
        return None if self.se is None else self.se * math.sqrt(self.n)


@dataclass
class Sweep:
    """The guidance sweep of one sampler of one (dataset, family): its scales in increasing order, the sampler
    name at each, and every metric's :class:`Point` per scale.

    Attributes:
        dataset, family: where it ran.
        label: the sampler's settings besides w, e.g. ``"ddim (steps 50, eta 0)"``.
        ws: the guidance scales, increasing. samplers: the sampler name at each.
        points: metric -> one :class:`Point` per scale (``None`` where no seed has it).
        nfe: NFE at each scale (doubled for w > 0).
    """

    dataset: str
    family: str
    label: str
    ws: list[float] = field(default_factory=list)
    samplers: list[str] = field(default_factory=list)
    points: dict[str, list[Point | None]] = field(default_factory=dict)
    nfe: list[int | None] = field(default_factory=list)


def point(values: list[float | None]) -> Point | None:
    """The :class:`Point` of per-seed values (``None`` and non-finite ones left out), ``None`` when none is left."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None
    n = len(vals)
    m = sum(vals) / n
    se = math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1) / n) if n > 1 else None
    return Point(m, se, n)


def _sweep_key(m: SamplerResult) -> str:
    """The sampler's settings except its guidance scale: samplers of one sweep share it."""
    return json.dumps({k: v for k, v in sorted(m.sampler_kwargs.items()) if k != "guidance"}, default=str)


def _label(m: SamplerResult) -> str:
    """``"ddim (steps 50, eta 0)"``: the sampler's kind and its settings besides w."""
    parts = [f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in m.sampler_kwargs.items()
             if k not in ("guidance", "kind")]
    return f"{m.sampler_kwargs.get('kind', '?')}" + (f" ({', '.join(parts)})" if parts else "")


METRICS = ("label_agreement", "label_agreement_real", "cond_precision", "cond_recall", "cond_density",
           "cond_coverage", "class_diversity", "cond_mmd2", "mmd2", "fid_test", "fid_train", "kid_test_mean",
           "tilted_ce_nats", "tilted_entropy_nats", "tilted_gap_nats", "sample_us_per_sample", "precision", "recall")


def _value(m: SamplerResult, metric: str) -> float | None:
    if metric.startswith("fid_"):
        return m.fid.get(metric[4:])
    if metric.startswith("kid_") and metric.endswith("_mean"):
        return m.kid_mean.get(metric[4:-5])
    return getattr(m, metric, None)


def sweeps(recs: list[CellRecord]) -> list[Sweep]:
    """Every guidance sweep in ``recs`` (ok records of conditional cells, any datasets, families and seeds), in
    record order: samplers with a ``guidance`` scale grouped by (dataset, family, settings besides w)."""
    groups: dict[tuple[str, str, str], dict[float, dict[str, list]]] = {}
    labels: dict[tuple[str, str, str], str] = {}
    names: dict[tuple[str, str, str], dict[float, str]] = {}
    nfes: dict[tuple[str, str, str], dict[float, int | None]] = {}
    for r in recs:
        if not r.ok:
            continue
        for name, m in r.samplers.items():
            if m.guidance is None:
                continue
            key = (r.dataset, r.family, _sweep_key(m))
            labels.setdefault(key, _label(m))
            names.setdefault(key, {}).setdefault(m.guidance, name)
            nfes.setdefault(key, {}).setdefault(m.guidance, m.sample_nfe)
            per = groups.setdefault(key, {}).setdefault(m.guidance, {})
            for metric in METRICS:
                per.setdefault(metric, []).append(_value(m, metric))
    out = []
    for key, by_w in groups.items():
        ws = sorted(by_w)
        out.append(Sweep(key[0], key[1], labels[key], ws, [names[key][w] for w in ws],
                         {metric: [point(by_w[w].get(metric, [])) for w in ws] for metric in METRICS},
                         [nfes[key][w] for w in ws]))
    return out


@dataclass(frozen=True)
class Trend:
    """How one metric moves over a sweep: Spearman ρ of its seed means with w, the change from the smallest to the
    largest w, and that change's standard error (``None`` without two seeds at both ends)."""

    metric: str
    rho: float | None
    first: float
    last: float
    se: float | None

    @property
    def delta(self) -> float:
        return self.last - self.first

    def significant(self) -> bool:
        """|Δ| > :data:`SEPARATION` standard errors (and a standard error exists)."""
        return self.se is not None and abs(self.delta) > SEPARATION * self.se

    @property
    def direction(self) -> str:
        """``"rises"``, ``"falls"`` or ``"flat"`` (no significant monotone trend)."""
        if self.rho is None or not self.significant():
            return "flat"
        if self.rho >= RHO and self.delta > 0:
            return "rises"
        if self.rho <= -RHO and self.delta < 0:
            return "falls"
        return "flat"

    def text(self) -> str:
        se = f"2 SE {SEPARATION * self.se:.2g}" if self.se is not None else "no SE"
        rho = f"ρ {self.rho:+.2f}" if self.rho is not None else "ρ n/a"
        return f"{self.metric} {self.first:.3g}→{self.last:.3g} ({rho}, Δ {self.delta:+.3g}, {se})"


def trend(sw: Sweep, metric: str) -> Trend | None:
    """The :class:`Trend` of ``metric`` over the sweep, or ``None`` when a scale lacks it."""
    pts = sw.points.get(metric) or []
    if len(pts) < 2 or any(p is None for p in pts):
        return None
    means = [p.mean for p in pts]
    rho = None
    if len(set(means)) > 1 and len(set(sw.ws)) > 1:
        r = spearmanr(sw.ws, means).statistic
        rho = None if r is None or not math.isfinite(r) else float(r)
    a, b = pts[0], pts[-1]
    se = math.hypot(a.se, b.se) if a.se is not None and b.se is not None else None
    return Trend(metric, rho, a.mean, b.mean, se)


def t25(sw: Sweep) -> ClaimVerdict:
    """T25 on one sweep (module docstring)."""
    scope = f"{sw.dataset}: {sw.family} {sw.label}"
    seeds = min((p.n for pts in sw.points.values() for p in pts if p is not None), default=0)
    trends = {m: trend(sw, m) for m in FIDELITY + DIVERSITY}
    shown = [t for t in trends.values() if t is not None]
    evidence = (f"w {sw.ws[0]:g}…{sw.ws[-1]:g} ({len(sw.ws)} scales), {seeds} seed(s): "
                + "; ".join(t.text() for t in shown)) if shown else "no class-conditional metrics"
    if len(sw.ws) < MIN_SCALES or seeds < 2 or not shown:
        why = f"fewer than {MIN_SCALES} scales" if len(sw.ws) < MIN_SCALES else ("fewer than 2 seeds" if seeds < 2
                                                                                  else "no metric")
        return ClaimVerdict("T25", INCONCLUSIVE, T25_RULE, f"{why}; {evidence}", scope, sw.family)
    unguided = (sw.points.get("precision") or [None])[0]
    if unguided is not None and (off := _off_manifold(unguided.mean, unguided.n)) is not None:
        return ClaimVerdict("T25", INCONCLUSIVE, T25_RULE, f"{off}; {evidence}", scope, sw.family)
    up = {m for m, t in trends.items() if t is not None and t.direction == "rises"}
    down = {m for m, t in trends.items() if t is not None and t.direction == "falls"}
    against = (down & set(FIDELITY)) | (up & set(DIVERSITY))
    if against:
        return ClaimVerdict("T25", DISAGREES, T25_RULE, f"against the claim: {', '.join(sorted(against))}; {evidence}",
                            scope, sw.family)
    if up & set(FIDELITY) and down & set(DIVERSITY):
        return ClaimVerdict("T25", AGREES, T25_RULE, evidence, scope, sw.family)
    return ClaimVerdict("T25", INCONCLUSIVE, T25_RULE, f"trends within the seed spread; {evidence}", scope, sw.family)


def judge_t25(by_dataset: dict[str, list[CellRecord]]) -> list[ClaimVerdict]:
    """T25 for every guidance sweep of a run (:func:`t25`)."""
    return [t25(sw) for recs in by_dataset.values() for sw in sweeps(recs) if len(sw.ws) > 1]


def _off_manifold(precision: float | None, seeds: int) -> str | None:
    """Why unguided samples cannot be judged for conditioning (their mean ``precision`` over ``seeds`` below
    :data:`MANIFOLD_PRECISION`), or ``None`` when they can (or their precision was not measured). T24 and T25."""
    if precision is None or precision >= MANIFOLD_PRECISION:
        return None
    return (f"unguided samples off the data manifold (precision {precision:.3g} < {MANIFOLD_PRECISION:g} over "
            f"{seeds} seed(s)): the model has not learned the data, so its labels say nothing of conditioning")


def _unguided(r: CellRecord) -> SamplerResult | None:
    """A conditional record's first sampler at w = 0 (its unguided samples), or ``None``."""
    return next((m for m in r.samplers.values() if m.guidance == 0), None)


def t24(dataset: str, family: str, recs: list[CellRecord]) -> ClaimVerdict:
    """T24 for one family on one dataset (module docstring), from its conditional records (all seeds)."""
    scope = dataset
    ms = [m for m in (_unguided(r) for r in recs if r.ok) if m is not None]
    reasons = {m.label_agreement_unavailable for m in ms if m.label_agreement_unavailable}
    a = [m.label_agreement for m in ms if m.label_agreement is not None]
    real = [m.label_agreement_real for m in ms if m.label_agreement_real is not None]
    if not a or not real:
        why = "; ".join(sorted(reasons)) or "no label agreement measured"
        return ClaimVerdict("T24", INCONCLUSIVE, T24_RULE, why, scope, family)
    p, ceiling = point(a), sum(real) / len(real)
    threshold = RESPECT * ceiling
    prec = [m.precision for m in ms if m.precision is not None]
    if (off := _off_manifold(sum(prec) / len(prec) if prec else None, len(prec))) is not None:
        return ClaimVerdict("T24", INCONCLUSIVE, T24_RULE, f"{off}; label agreement {p.mean:.3f} vs threshold "
                            f"{threshold:.3f}", scope, family)
    if p.se is None:  # one seed: the binomial SE misses the spread over training seeds
        evidence = (f"fewer than 2 seeds; label agreement {p.mean:.3f} (1 seed) vs threshold {RESPECT:g} × "
                    f"{ceiling:.3f} (real reference points) = {threshold:.3f}")
        return ClaimVerdict("T24", INCONCLUSIVE, T24_RULE, evidence, scope, family)
    se = p.se
    evidence = (f"label agreement {p.mean:.3f} ± {se:.2g} (SE, {p.n} seeds) vs threshold {RESPECT:g} × "
                f"{ceiling:.3f} (real reference points) = {threshold:.3f}")
    if p.mean - threshold > SEPARATION * se:
        return ClaimVerdict("T24", AGREES, T24_RULE, evidence, scope, family)
    if threshold - p.mean > SEPARATION * se:
        return ClaimVerdict("T24", DISAGREES, T24_RULE, evidence, scope, family)
    return ClaimVerdict("T24", INCONCLUSIVE, T24_RULE, f"within {SEPARATION:g} SE of the threshold; {evidence}", scope,
                        family)


def judge_t24(by_dataset: dict[str, list[CellRecord]]) -> list[ClaimVerdict]:
    """T24 per family and dataset of a run's conditional cells (:func:`t24`), and per dataset over all of them: the
    claim is about every family, so the overall verdict agrees only when every registered family with a textbook
    entry in the records' modality was conditioned and each agrees (a run of the guided families alone, as the 2D
    ``conditional`` profile, is inconclusive there and names the families it did not run); one disagreeing family
    makes it disagree."""
    out: list[ClaimVerdict] = []
    for ds, recs in by_dataset.items():
        cond = [r for r in recs if r.ok and any(m.guidance is not None for m in r.samplers.values())]
        families = list(dict.fromkeys(r.family for r in cond))
        per = [t24(ds, f, [r for r in cond if r.family == f]) for f in families]
        out += per
        if len(per) > 1:
            counts = {v: sum(p.verdict == v for p in per) for v in (AGREES, DISAGREES, INCONCLUSIVE)}
            missing = _not_run(cond)
            overall = DISAGREES if counts[DISAGREES] else (
                AGREES if counts[AGREES] == len(per) and not missing else INCONCLUSIVE)
            out.append(ClaimVerdict("T24", overall, "every family conditioned agrees (one verdict per family, above)",
                                    f"{counts[AGREES]} of {len(per)} families agree, {counts[DISAGREES]} disagree, "
                                    f"{counts[INCONCLUSIVE]} inconclusive ({', '.join(families)})"
                                    + (f"; not run: {', '.join(missing)}" if missing else ""), f"{ds}: all families"))
    return out


def _not_run(recs: list[CellRecord]) -> list[str]:
    """The registered families with a textbook entry, in the records' modality, that none of ``recs`` ran."""
    import models

    ran = {r.base_family for r in recs} | {r.family for r in recs}
    modality = recs[0].modality if recs else None
    return [n for n in models.names(modality) if n not in ran and models.textbook(n) is not None]


__all__ = ["FIDELITY", "DIVERSITY", "RHO", "SEPARATION", "MIN_SCALES", "RESPECT", "MANIFOLD_PRECISION", "T24_RULE",
           "T25_RULE", "Point", "point", "Sweep", "Trend", "sweeps", "trend", "t25", "t24", "judge_t25", "judge_t24"]
