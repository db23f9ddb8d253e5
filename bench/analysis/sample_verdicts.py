"""The textbook's claims about samples and likelihoods, judged by comparative rules (issue 26).

One judge, :func:`judge_samples`, gives the verdicts below; each rule is one sentence (the ``*_RULE``
constants, shown in the report beside its T-id) and each verdict carries N, seeds and the margin or p-value
that decided it. Standard errors are of the seed means (sample std / sqrt(n), ddof = 1) where a family ran
2 or more seeds, else the metric's own standard error (test-set SE of an NLL, the delta-method SE of a blur
ratio, KID's subset std), which covers evaluation noise only; the evidence says which.

* **T3** (score models: no explicit likelihood): the probability-flow ODE gives one; the claim agrees when
  that costs at least :data:`ODE_COST_RATIO` network evaluations per point (an explicit density costs 1),
  with the solver settled at its step count (:func:`ode_unsettled`) and the ODE density normalized where it
  was integrated (2D).
* **T5** (autoregressive models reach the best likelihoods): the autoregressive NLL (2D: KL in nats; images:
  bits/dim) against every other family's exact likelihood (flows, the ODE, the EBM by quadrature) and upper
  bounds (ELBO, IWAE).
* **T6** (likelihood does not guarantee quality): Theis et al. 2016's mixture 0.01 p_model + 0.99 noise
  (images), and, across families, pairs ordered oppositely by likelihood and sample quality.
* **T7-T10** (sampling speed): sequential network passes per sample (NFE) first, against the fewest any family
  needs on the dataset; wall clock second, with the parameter counts beside it; for diffusion, "parallelizable"
  from samples/s against batch size.
* **T11** (DDIM speeds diffusion up): a DDIM sampler of at most T/10 steps keeps the ancestral sampler's
  quality (within 2 SE or 10%) at >= 5x its speed.
* **T17, T18** (VAE blurrier than GAN; GAN samples sharp): high-frequency energy and Laplacian variance
  against the test set's (:mod:`bench.evaluation.metrics.blur`), the VAE read as its decoder mean.
* **T19** (diffusion rivals or exceeds GANs): a non-inferiority test of diffusion's KID (2D: the multi-scale
  MMD², the same estimator) against the GAN's, Holm-corrected over datasets, only where training converged.
* **T21** (flows pay in expressiveness): KL (images: bits/dim) of the autoregressive model against each flow
  at matched parameter counts, size by size, each trained to its plateau (read on the monitor's test bits/dim
  where it has them, images; else on its sample quality).
* **T30** (simple estimators fail): one Gaussian and a KDE (the records' ``reference_estimates``) against the
  best family.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import mean, stdev

from scipy import stats as st

import models
from bench.analysis import training_verdicts
from bench.analysis.claims import AGREES, DISAGREES, INCONCLUSIVE, ClaimVerdict
from bench.analysis.compare import holm
from bench.store.schema import CellRecord, DensityResult, SamplerResult

SEPARATION = 2.0  # a difference is a finding beyond 2 combined standard errors
SLOW_NFE_RATIO = 10.0  # "slow": at least 10x the sequential passes of the dataset's cheapest family
PARALLEL_GAIN = 10.0  # "parallelizable": samples/s at the largest timed batch >= 10x at batch 1
ODE_COST_RATIO = 10.0  # T3: an implicit likelihood costs >= 10x an explicit density's single evaluation
DDIM_MAX_FRACTION = 0.1  # T11: DDIM with at most T/10 steps ...
DDIM_MIN_SPEEDUP = 5.0  # ... at >= 5x the speed ...
QUALITY_TOLERANCE = 0.10  # ... keeps quality within 2 SE or 10%
NONINFERIORITY_MARGIN = 0.10  # T19: diffusion may be worse than the GAN by at most 10% of the GAN's value
ALPHA = 0.05  # T19: family-wise level (Holm over the datasets of a run)
MIN_BLUR_SEEDS = 3  # T17: seeds needed on each side
SHARP_TOLERANCE = math.log(1.25)  # T18: as sharp as the data within 25% (|log ratio| < log 1.25)
THEIS_MAX_BPD = 0.01  # T6: the mixture moves bits/dim by less than this ...
THEIS_MIN_FID_SE = 10.0  # ... while FID moves by more than this many standard errors
MATCH_TOLERANCE = 0.2  # parameter counts within 20% are matched
ODE_ORDER = {"euler": 1, "heun": 2}  # global order of the probability-flow ODE's solvers
INTEGRAL_TOLERANCE = 0.01  # a density integrates to 1 within 1% (|log integral| <= 0.01 or 3x its error)

ODE_RULE = (f"score models give no explicit likelihood: agrees when their exact likelihood, by the probability-flow "
            f"ODE, costs >= {ODE_COST_RATIO:g}x the network evaluations of an explicit density (1 per point), "
            "the solver's error (half the steps against all, Richardson) is within the NLL's SE, and, where "
            "integrated (2D), the ODE density integrates to 1 within 1%")
AR_BEST_RULE = (f"agrees when the autoregressive NLL is below every other family's exact NLL (flows, ODE, EBM by "
                f"quadrature) by > {SEPARATION:g} combined SE and no upper bound (ELBO, IWAE) is below it; disagrees "
                "when another family's NLL or upper bound is below it by that margin")
THEIS_RULE = (f"Theis et al.'s mixture {0.01:g} p_model + {0.99:g} noise: agrees when its test bits/dim move by "
              f"less than {THEIS_MAX_BPD:g} (either way) while its FID rises by > {THEIS_MIN_FID_SE:g} SE of the "
              "model's FID")
DISCORDANCE_RULE = (f"agrees when two families are ordered oppositely by likelihood (KL or bits/dim; an upper bound "
                    f"counts where it is the better one) and by sample quality (KID; 2D: multi-scale MMD²), each "
                    f"difference beyond {SEPARATION:g} combined SE; disagrees when every decidable pair is "
                    "concordant (3 or more families)")
PASSES_RULE = (f"slow when the default sampler's sequential network passes per sample (NFE) are >= "
               f"{SLOW_NFE_RATIO:g}x the fewest any family needs on the dataset, fast otherwise; wall clock per "
               "sample at the throughput batch is reported beside, with the parameter counts")
DIFFUSION_RULE = (f"{PASSES_RULE}; parallelizable when its samples/s at the largest timed batch is >= "
                  f"{PARALLEL_GAIN:g}x that at batch 1; agrees when slow and parallelizable")
DDIM_RULE = (f"agrees when a DDIM sampler with <= T/{1 / DDIM_MAX_FRACTION:g} steps keeps the ancestral sampler's "
             f"quality (KID; 2D: multi-scale MMD²) within max({SEPARATION:g} combined SE, "
             f"{QUALITY_TOLERANCE:.0%}) at >= {DDIM_MIN_SPEEDUP:g}x its samples per second; disagrees when none does")
BLUR_RULE = (f"agrees when the VAE's decoder-mean samples are blurrier than the GAN's on both measures (high-frequency "
             f"energy and Laplacian variance, each relative to the test set, log ratio lower by > {SEPARATION:g} "
             f"combined SE of the seed means, >= {MIN_BLUR_SEEDS} seeds each); disagrees when sharper by that "
             "margin on both")
SHARP_RULE = (f"agrees when the GAN's samples are as sharp as the test images within 25% on both measures "
              f"(|log ratio| + {SEPARATION:g} SE < log 1.25); disagrees when either is off by more "
              f"(|log ratio| - {SEPARATION:g} SE > log 1.25)")
RIVAL_RULE = (f"non-inferiority of diffusion's KID (2D: multi-scale MMD²) to the GAN's with margin "
              f"{NONINFERIORITY_MARGIN:.0%} of the GAN's value (2D: at least the true mixture's own value + 2 std), "
              f"one-sided Welch t on the seeds (1 seed: z on KID's subset std), Holm over datasets at "
              f"{ALPHA:g}; agrees when non-inferior, disagrees when inferior beyond the margin, inconclusive "
              "otherwise or when training had not converged")
EXPRESSIVE_RULE = (f"agrees when the flow's KL (images: bits/dim) exceeds the autoregressive model's by > "
                   f"{SEPARATION:g} combined SE at every matched size (parameters within {MATCH_TOLERANCE:.0%}) "
                   "where both trained to their plateau (the convergence guard on the monitor's test bits/dim where "
                   "recorded, images; else on its sample quality); disagrees when it is lower by that margin at every "
                   "such size")
SIMPLE_RULE = (f"agrees when the estimator's KL (images: bits/dim) exceeds the best family's (an exact value or an "
               f"upper bound) by > {SEPARATION:g} combined SE; disagrees when it is within that margin or below")

ESTIMATOR_LABELS = {"gaussian": "single Gaussian", "kde": "KDE"}  # T30's rows, as the report names them
SAMPLING_CLAIM = {"autoregressive": "T7", "vae": "T8", "gan": "T8", "flow": "T9", "coupling_flow": "T9",
                  "diffusion": "T10"}


# --------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class Estimate:
    """A mean over seeds and its standard error.

    Attributes:
        mean: the mean of the per-seed values.
        se: sample std / sqrt(n) for n >= 2 seeds, else the metric's own SE (``None`` without one).
        n: seeds.
        how: ``"seeds"`` or ``"own SE"`` (or ``"no SE"``).
        values: the per-seed values.
    """

    mean: float
    se: float | None
    n: int
    how: str
    values: tuple[float, ...] = ()

    def text(self, digits: int = 3) -> str:
        se = "" if self.se is None else f" ± {self.se:.2g}"
        return f"{self.mean:.{digits}g}{se}"


def estimate(values: list[float], own_se: list[float | None] | None = None) -> Estimate | None:
    """:class:`Estimate` of per-seed ``values`` (``None`` when empty or not finite)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None
    if len(vals) > 1:
        return Estimate(mean(vals), stdev(vals) / math.sqrt(len(vals)), len(vals), "seeds", tuple(vals))
    se = next((s for s in (own_se or []) if s is not None and math.isfinite(s)), None)
    return Estimate(vals[0], se, 1, "own SE" if se is not None else "no SE", tuple(vals))


def combined_se(*ests: Estimate) -> float | None:
    """sqrt(sum SE²) of independent estimates, ``None`` if one has no SE."""
    if any(e.se is None for e in ests):
        return None
    return math.sqrt(sum(e.se**2 for e in ests))


def _seeds(ests: list[Estimate]) -> str:
    return "/".join(str(e.n) for e in ests) + " seeds"


# --------------------------------------------------------------------------- record access
def family_kind(rec: CellRecord) -> str:
    """The registered family a record ran: its ``family``, or, for a variant named otherwise, the family whose
    class it ran (``model_class``)."""
    if rec.family in SAMPLING_CLAIM or rec.family in models.names():
        return rec.family
    for name, modality in models.entries():
        cls = models.get(name, modality)
        if f"{cls.__module__}.{cls.__qualname__}" == rec.model_class:
            return name
    return rec.family


def sampler_of(rec: CellRecord, kind: str | None = None) -> tuple[str | None, SamplerResult | None]:
    """(name, result) of the record's first sampler of ``kind`` (``None``: the default sampler)."""
    if kind is None:
        name, m = rec.primary()
        return (name, m) if name is not None else (None, None)
    for name, m in rec.samplers.items():
        if m.sampler_kwargs.get("kind") == kind:
            return name, m
    return None, None


def quality(m: SamplerResult | None) -> tuple[float | None, float | None, str]:
    """(value, own SE, name) of a sampler's sample quality, lower is better: KID against the first reference
    split (images) or the multi-scale MMD² (2D); ``(None, None, "")`` without either."""
    if m is None:
        return None, None, ""
    if m.kid_mean:
        split = next(iter(m.kid_mean))
        return m.kid_mean[split], m.kid_std.get(split), f"KID ({split})"
    if m.mmd2_multiscale is not None:
        return m.mmd2_multiscale, m.mmd2_multiscale_std, "multi-scale MMD²"
    return None, None, ""


def impossible_bpd(value: float | None, se: float | None) -> bool:
    """Whether bits/dim of uniformly dequantized 8-bit pixels lie below 0 by more than 2 standard errors.

    No normalized density does that: a unit-width bin holds probability at most 1, so E_u[−log p(x + u)] ≥
    −log P(bin) ≥ 0 (Theis et al. 2016, arXiv:1511.01844). Such a value is not a likelihood: for the
    probability-flow ODE it says the solve (its NFE) was too coarse for the density to integrate to 1. ``value``
    and ``se`` in bits/dim; ``False`` for ``None`` or a non-finite value.
    """
    return value is not None and math.isfinite(value) and value + 2 * (se or 0.0) < 0


def ode_solver_error(d: DensityResult) -> tuple[float, float] | None:
    """(estimated, lower bound) error of the ODE likelihood left at its step count, nats per example: the paired
    change of the NLL from half the steps to all (``ode_step_change_nats``, SE ``ode_step_change_se_nats``)
    divided by r^p - 1 for the solver's global order p (:data:`ODE_ORDER`) and the ratio of step counts r =
    ``ode_steps / ode_check_steps`` (2, or 25/12 for an odd count; Richardson extrapolation), the lower bound from
    |change| - 2 SE; ``None`` for a record without the check (before it existed, or 1 step).
    """
    if (d.ode_step_change_nats is None or d.ode_method not in ODE_ORDER or not d.ode_steps
            or not d.ode_check_steps):
        return None
    k = (d.ode_steps / d.ode_check_steps) ** ODE_ORDER[d.ode_method] - 1
    change, se = abs(d.ode_step_change_nats), d.ode_step_change_se_nats or 0.0
    return change / k, max(0.0, change - 2 * se) / k


def worst_ode_solver_error(dd: list[DensityResult]) -> tuple[float, DensityResult, float] | None:
    """The largest estimated solver error over seeds' records (:func:`ode_solver_error`), nats, with its record
    and the factor that turns that record's nats into bits/dim (1 / (D ln 2)); ``None`` when no record has the
    check."""
    errs = [(e[0], d) for d in dd if (e := ode_solver_error(d)) is not None]
    if not errs:
        return None
    e, d = max(errs, key=lambda p: p[0])
    return e, d, 1 / (d.dims * math.log(2)) if d.dims else 1.0


def ode_unsettled(d: DensityResult) -> bool:
    """Whether the ODE likelihood of a record is not settled at its step count: the solver's error left there,
    estimated from half the steps (:func:`ode_solver_error`) and less 2 SE of that check, still exceeds the NLL's
    standard error over the test points (``ode_test_nll_se_nats``). Such a value says as much about the solver as
    about the model. ``False`` without the check or the SE.
    """
    err = ode_solver_error(d)
    return err is not None and d.ode_test_nll_se_nats is not None and err[1] > d.ode_test_nll_se_nats


def likelihood(rec: CellRecord) -> tuple[float | None, float | None, str, str]:
    """(value, own SE, unit, kind) of a record's likelihood, lower is better: 2D KL (nats), images bits/dim;
    kind ``"exact"`` (exact, EBM by quadrature, or the probability-flow ODE, whichever is lowest among exact
    values) or ``"bound"`` (an upper bound: ELBO/IWAE); ``(None, None, "", "")`` without one. An image value
    below 0 bits/dim by more than 2 SE (:func:`impossible_bpd`, an ODE solved too coarsely) is left out, and so is
    an ODE value its solver has not settled (:func:`ode_unsettled`)."""
    d = rec.density or DensityResult()
    if d.kl_nats is not None or d.ode_kl_nats is not None or d.kl_bound_nats is not None:
        unit = "nats"
        exact = [(d.kl_nats, d.kl_se_nats), (d.ode_kl_nats, d.ode_kl_se_nats)]
        bound = (d.kl_bound_nats, d.kl_bound_se_nats)
    else:
        unit = "bits/dim"
        exact = [(d.test_bpd, d.test_bpd_se), (d.ode_test_bpd, d.ode_test_bpd_se)]
        bound = (d.test_bpd_bound, d.test_bpd_bound_se)
    if ode_unsettled(d):
        exact = exact[:1]  # the ODE's value says as much about its solver as about the model
    exact = [(v, s) for v, s in exact if v is not None and math.isfinite(v)
             and not (unit == "bits/dim" and impossible_bpd(v, s))]
    if exact:
        v, s = min(exact)
        return v, s, unit, "exact"
    if bound[0] is not None and math.isfinite(bound[0]):
        return bound[0], bound[1], unit, "bound"
    return None, None, "", ""


def ok_groups(recs: list[CellRecord]) -> dict[str, list[CellRecord]]:
    """ok records by registered family (:func:`family_kind`), first-seen order."""
    out: dict[str, list[CellRecord]] = {}
    for r in recs:
        if r.ok:
            out.setdefault(family_kind(r), []).append(r)
    return out


def _by_seed(recs: list[CellRecord], fn: Callable[[CellRecord], tuple[float | None, float | None]]) -> Estimate | None:
    pairs = [fn(r) for r in sorted(recs, key=lambda r: r.seed)]
    return estimate([p[0] for p in pairs], [p[1] for p in pairs])


def converged(recs: list[CellRecord], keys=training_verdicts.MONITOR_KEYS) -> tuple[bool, str]:
    """Whether the seeds' training had settled, and why: the training verdicts' convergence guard
    (:func:`bench.analysis.training_verdicts.converged`: over the last fifth of training the monitor neither improves
    beyond its noise nor moves by more than the failure margin, and it improved since the first checkpoint;
    a family with no monitored run is not known to have converged), on the monitored quality of ``keys`` (sample
    quality by default; T21, a likelihood claim, reads test bits/dim first). Callers here judge only when it says
    ``True``.
    """
    return training_verdicts.converged(recs, keys)


def _verdict(claim: str, verdict: str, rule: str, evidence: str, scope: str, family: str | None) -> ClaimVerdict:
    return ClaimVerdict(claim, verdict, rule, evidence, scope, family)


# --------------------------------------------------------------------------- T3: the ODE likelihood's cost
def ode_likelihood_verdicts(ds: str, groups: dict[str, list[CellRecord]]) -> list[ClaimVerdict]:
    """T3 for each family whose textbook gives no likelihood but whose records carry the ODE's (score)."""
    out = []
    explicit = [r for rs in groups.values() for r in rs if r.likelihood_kind == "exact" and r.density
                and r.density.density_batch_ms and r.density.density_batch]
    explicit_ms = mean(r.density.density_batch_ms / r.density.density_batch for r in explicit) if explicit else None
    for fam, rs in groups.items():
        tb = rs[0].textbook or {}
        ds_ = [r.density for r in rs if r.density and r.density.ode_test_nll_nats is not None]
        if tb.get("likelihood") != "none" or not ds_:
            continue
        d0 = ds_[0]
        nll = estimate([d.ode_test_bpd if d.ode_test_bpd is not None else d.ode_test_nll_nats for d in ds_],
                       [d.ode_test_bpd_se if d.ode_test_bpd is not None else d.ode_test_nll_se_nats for d in ds_])
        unit = "bits/dim" if d0.ode_test_bpd is not None else "nats"
        backward = "D backward passes" if d0.ode_trace == "exact" else "one backward pass (Hutchinson)"
        ms = mean(d.ode_ms_per_example for d in ds_ if d.ode_ms_per_example is not None)
        cost = (f"NFE {d0.ode_nfe} per point, each with {backward}; {ms:.3g} ms per example"
                + (f" vs {explicit_ms:.3g} ms for an explicit density" if explicit_ms else ""))
        norm = ""
        ok_norm = True
        integrals = [(d.ode_log_integral_nats, d.ode_log_integral_error_nats or 0.0) for d in ds_
                     if d.ode_log_integral_nats is not None]
        resolved = [(li, err) for li, err in integrals if err <= INTEGRAL_TOLERANCE]
        if resolved:
            li, err = max(resolved, key=lambda p: abs(p[0]))
            ok_norm = abs(li) <= INTEGRAL_TOLERANCE + 3 * err
            norm = (f"; ∫p = {math.exp(li):.4f} (farthest from 1 over seeds, {d0.ode_integral_grid}² grid, "
                    f"error {err:.2g})")
        elif integrals:
            err = min(e for _, e in integrals)
            norm = f"; ∫p not resolved by the {d0.ode_integral_grid}² grid (quadrature error {err:.2g} nats)"
        unsettled = [d for d in ds_ if ode_unsettled(d)]
        check = ""
        if (worst := worst_ode_solver_error(ds_)) is not None:
            e, dw, to_bpd = worst
            scale = to_bpd if unit == "bits/dim" else 1.0
            check = (f"; solver error ≈ {scale * e:.2g} {unit} at {dw.ode_steps} {dw.ode_method} steps (the largest "
                     f"over seeds: NLL moved {scale * dw.ode_step_change_nats:+.3g} ± "
                     f"{scale * (dw.ode_step_change_se_nats or 0):.2g} from {dw.ode_check_steps} steps on "
                     f"{dw.ode_check_n} points) against the NLL's SE {scale * (dw.ode_test_nll_se_nats or 0):.2g}")
        evidence = (f"ODE NLL {nll.text()} {unit} on N = {d0.ode_test_n} test points, {nll.n} seeds ({nll.how}); "
                    f"{cost}{norm}{check}")
        if unit == "bits/dim" and impossible_bpd(nll.mean, nll.se):
            verdict = INCONCLUSIVE
            evidence += (": below 0 bits/dim by more than 2 SE, which no normalized density of dequantized pixels "
                         "gives: not a likelihood at this step count")
        elif unsettled:
            verdict = INCONCLUSIVE
            evidence += (f": not settled at this step count in {len(unsettled)} of {len(ds_)} seeds (its error, "
                         "less 2 SE of the check, exceeds the NLL's SE)")
        elif not ok_norm:
            verdict = INCONCLUSIVE
            evidence += ": not normalized within 1% at this step count"
        else:
            verdict = AGREES if d0.ode_nfe >= ODE_COST_RATIO else DISAGREES
        out.append(_verdict("T3", verdict, ODE_RULE, evidence, ds, fam))
    return out


# --------------------------------------------------------------------------- T5: the best likelihood
def ar_best_likelihood(ds: str, groups: dict[str, list[CellRecord]]) -> list[ClaimVerdict]:
    """T5: the autoregressive likelihood against every other family's."""
    if "autoregressive" not in groups:
        return []
    ests = {}
    for fam, rs in groups.items():
        kinds = {likelihood(r)[3] for r in rs} - {""}
        if not kinds:
            continue
        e = _by_seed(rs, lambda r: likelihood(r)[:2])
        if e is not None:
            ests[fam] = (e, "bound" if kinds == {"bound"} else "exact", likelihood(rs[0])[2])
    if "autoregressive" not in ests:
        return []
    ar, _, unit = ests.pop("autoregressive")
    better, undecided, beaten = [], [], []
    for fam, (e, kind, _) in ests.items():
        se = combined_se(ar, e)
        if se is None:
            undecided.append(fam)
        elif e.mean < ar.mean - SEPARATION * se:
            better.append(f"{fam} {'≤ ' if kind == 'bound' else ''}{e.text()}")
        elif kind == "exact" and e.mean > ar.mean + SEPARATION * se:
            beaten.append(fam)
        else:
            undecided.append(fam)
    evidence = (f"autoregressive {ar.text()} {unit} ({ar.n} seeds, {ar.how}); others: "
                + ", ".join(f"{f} {'≤ ' if k == 'bound' else ''}{e.text()}" for f, (e, k, _) in ests.items()))
    if better:
        return [_verdict("T5", DISAGREES, AR_BEST_RULE, evidence + f"; lower: {', '.join(better)}", ds,
                         "autoregressive")]
    exact_others = [f for f, (_, k, _) in ests.items() if k == "exact"]
    if exact_others and set(exact_others) <= set(beaten):
        note = [f for f in undecided if ests[f][1] == "bound"]
        tail = f"; upper bounds above it do not decide ({', '.join(note)})" if note else ""
        return [_verdict("T5", AGREES, AR_BEST_RULE, evidence + tail, ds, "autoregressive")]
    return [_verdict("T5", INCONCLUSIVE, AR_BEST_RULE, evidence + f"; within {SEPARATION:g} SE: "
                     f"{', '.join(undecided) or 'none'}", ds, "autoregressive")]


# --------------------------------------------------------------------------- T6: likelihood against quality
def theis_verdicts(ds: str, groups: dict[str, list[CellRecord]]) -> list[ClaimVerdict]:
    """T6 by Theis et al.'s noise mixture, per family that has it (exact image likelihoods)."""
    out = []
    for fam, rs in groups.items():
        dd = [r.density for r in rs if r.density and r.density.theis_fid is not None]
        if not dd:
            continue
        shift = mean(d.theis_bpd_shift for d in dd)
        model_fid = estimate([d.theis_model_fid for d in dd], [d.theis_model_fid_se for d in dd])
        move = mean(d.theis_fid - d.theis_model_fid for d in dd)
        kid = mean(d.theis_kid_mean for d in dd)
        n = dd[0].theis_test_n or dd[0].test_n or "?"
        evidence = (f"bits/dim {shift:+.4g} (at most +log2(100)/D; N = {n} test images), FID "
                    f"{model_fid.mean:.4g} → {model_fid.mean + move:.4g} ({move:+.4g}), KID of the mixture {kid:.3g}; "
                    f"{model_fid.n} seeds, FID SE {model_fid.se:.3g} ({'seeds' if model_fid.n > 1 else 'bootstrap'})"
                    if model_fid.se is not None else "")
        if model_fid.se is None or model_fid.se == 0:
            out.append(_verdict("T6", INCONCLUSIVE, THEIS_RULE, evidence or "no FID standard error", ds, fam))
            continue
        z = move / model_fid.se
        evidence += f"; the FID moved {z:.3g} SE"
        verdict = AGREES if abs(shift) < THEIS_MAX_BPD and z > THEIS_MIN_FID_SE else DISAGREES
        out.append(_verdict("T6", verdict, THEIS_RULE, evidence, ds, fam))
    return out


def discordance(ds: str, groups: dict[str, list[CellRecord]]) -> list[ClaimVerdict]:
    """T6 across families: pairs ordered oppositely by likelihood and sample quality, and Spearman's rho."""
    rows = {}
    for fam, rs in groups.items():
        lik = _by_seed(rs, lambda r: likelihood(r)[:2])
        q = _by_seed(rs, lambda r: quality(r.primary()[1])[:2])
        kinds = {likelihood(r)[3] for r in rs}
        if lik is not None and q is not None:
            rows[fam] = (lik, "bound" if kinds == {"bound"} else "exact", q)
    if len(rows) < 2:
        return []
    names = list(rows)
    unit = likelihood(groups[names[0]][0])[2]
    qname = quality(groups[names[0]][0].primary()[1])[2]

    def better_lik(a: str, b: str) -> bool:  # a's likelihood beats b's beyond the margin (b's bound cannot lose)
        (la, _, _), (lb, kb, _) = rows[a], rows[b]
        se = combined_se(la, lb)
        return kb == "exact" and se is not None and la.mean < lb.mean - SEPARATION * se

    def better_q(a: str, b: str) -> bool:
        qa, qb = rows[a][2], rows[b][2]
        se = combined_se(qa, qb)
        return se is not None and qa.mean < qb.mean - SEPARATION * se

    discordant, concordant, undecided = [], 0, 0
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if (better_lik(a, b) and better_q(b, a)) or (better_lik(b, a) and better_q(a, b)):
                win_l, win_q = (a, b) if better_lik(a, b) else (b, a)
                discordant.append(f"{win_l} has the better likelihood, {win_q} the better samples")
            elif (better_lik(a, b) and better_q(a, b)) or (better_lik(b, a) and better_q(b, a)):
                concordant += 1
            else:
                undecided += 1
    rho, p = (st.spearmanr([rows[f][0].mean for f in names], [rows[f][2].mean for f in names])
              if len(names) >= 3 else (math.nan, math.nan))
    spearman = (f"Spearman rho = {rho:.2f} (p = {p:.2g})" if math.isfinite(rho)
                else "Spearman rho n/a (fewer than 3 families, or tied)")
    evidence = (f"{len(names)} families ({min(r[0].n for r in rows.values())}+ seeds): likelihood in {unit} vs "
                f"{qname}; {spearman}; pairs: {len(discordant)} discordant, {concordant} "
                f"concordant, {undecided} within the noise" + (f"; e.g. {discordant[0]}" if discordant else ""))
    if discordant:
        verdict = AGREES
    elif concordant and not undecided and len(names) >= 3:
        verdict = DISAGREES
    else:
        verdict = INCONCLUSIVE
    return [_verdict("T6", verdict, DISCORDANCE_RULE, evidence, ds, None)]


# --------------------------------------------------------------------------- T7-T10: sequential passes
def _parallel_gain(m: SamplerResult) -> tuple[float | None, str]:
    """samples/s at the largest timed batch over samples/s at batch 1, and the batches it compares."""
    sweep = {int(b): v for b, v in m.batch_sweep_per_s.items()}
    if m.sample_latency_batch and m.sample_latency_ms:
        sweep.setdefault(m.sample_latency_batch, 1e3 * m.sample_latency_batch / m.sample_latency_ms)
    if m.sample_throughput_batch and m.sample_throughput_per_s:
        sweep.setdefault(m.sample_throughput_batch, m.sample_throughput_per_s)
    if 1 not in sweep or len(sweep) < 2:
        return None, ""
    top = max(sweep)
    return sweep[top] / sweep[1], f"{sweep[1]:.3g} samples/s at batch 1 → {sweep[top]:.3g} at batch {top}"


def sampling_verdicts(ds: str, groups: dict[str, list[CellRecord]]) -> list[ClaimVerdict]:
    """T7-T10: each family's default sampler by sequential passes, wall clock beside; T10's parallelism."""
    first = {f: min(rs, key=lambda r: r.seed) for f, rs in groups.items()}
    nfes = {f: r.primary()[1].sample_nfe for f, r in first.items() if r.primary()[1].sample_nfe}
    if not nfes:
        return []
    cheapest = min(nfes.values())
    cheap_fams = [f for f, n in nfes.items() if n == cheapest]
    costs = {f: r.primary()[1].sample_us_per_sample for f, r in first.items() if r.primary()[1].sample_us_per_sample}
    fastest = min(costs, key=costs.get) if costs else None
    params = {f: r.train.parameters for f, r in first.items() if r.train and r.train.parameters}
    dims = next((r.density.dims for r in first.values() if r.density and r.density.dims), None)
    out = []
    for fam, rec in first.items():
        claim = SAMPLING_CLAIM.get(fam)
        tb = rec.textbook or {}
        if claim is None or fam not in nfes or tb.get("sampling") not in ("fast", "slow"):
            continue
        name, m = rec.primary()
        ratio = nfes[fam] / cheapest
        slow = ratio >= SLOW_NFE_RATIO
        d_text = f", D = {dims}" if dims else ""
        parts = [f"{name}: NFE {nfes[fam]}{d_text}, {ratio:.3g}x the fewest ({cheapest}: {', '.join(cheap_fams)})"]
        if fastest and fam in costs:
            pf, pb = params.get(fam), params.get(fastest)
            match = ("matched" if pf and pb and abs(pf / pb - 1) <= MATCH_TOLERANCE else "not matched") \
                if fam != fastest else ""
            size = f" ({pf:,} vs {pb:,} parameters, {match})" if pf and pb and fam != fastest else ""
            parts.append("fastest by wall clock" if fam == fastest else
                         f"wall clock {costs[fam] / costs[fastest]:.3g}x {fastest}'s per sample{size}")
            twins = [f for f in cheap_fams if f != fam and f in costs and params.get(f) and params.get(fam)
                     and abs(params[f] / params[fam] - 1) <= MATCH_TOLERANCE]
            if twins and fam not in cheap_fams:
                f = min(twins, key=lambda f: abs(params[f] - params[fam]))
                parts.append(f"at matched parameters ({params[fam]:,} vs {params[f]:,}) {costs[fam] / costs[f]:.3g}x "
                             f"the wall clock of {f} (NFE {cheapest})")
        measured_slow = slow
        verdict = AGREES if (tb["sampling"] == "slow") == measured_slow else DISAGREES
        rule = PASSES_RULE
        if fam == "diffusion":
            rule = DIFFUSION_RULE
            gain, how = _parallel_gain(m)
            if gain is None:
                parts.append("parallelism not timed (no batch-1 and larger-batch timings)")
                verdict = INCONCLUSIVE if slow else DISAGREES
            else:
                parallel = gain >= PARALLEL_GAIN
                ar_gain = ""
                if "autoregressive" in first:
                    g2, how2 = _parallel_gain(first["autoregressive"].primary()[1])
                    ar_gain = f"; autoregressive: {g2:.3g}x ({how2})" if g2 else ""
                parts.append(f"batch gain {gain:.3g}x ({how}){ar_gain}")
                verdict = AGREES if slow and parallel else DISAGREES
        out.append(_verdict(claim, verdict, rule, "; ".join(parts) + f" (seed {rec.seed})", ds, fam))
    return out


# --------------------------------------------------------------------------- T11: DDIM
def _model_T(rec: CellRecord) -> int | None:
    t = (rec.config.model or {}).get("T")
    return int(t) if t else None


def ddim_verdict(ds: str, groups: dict[str, list[CellRecord]]) -> list[ClaimVerdict]:
    """T11 on the diffusion family's sampler sweep."""
    rs = groups.get("diffusion")
    if not rs or not _model_T(rs[0]):
        return []
    T = _model_T(rs[0])
    anc_name, _ = sampler_of(rs[0], "ancestral")
    if anc_name is None:
        return []

    def per(name: str, fn):
        return [fn(r.samplers[name]) for r in rs if name in r.samplers]

    anc_q = estimate(per(anc_name, lambda m: quality(m)[0]), per(anc_name, lambda m: quality(m)[1]))
    anc_cost = per(anc_name, lambda m: m.sample_us_per_sample)
    cands = [(n, m) for n, m in rs[0].samplers.items() if m.sampler_kwargs.get("kind") == "ddim"
             and m.sample_nfe and m.sample_nfe <= DDIM_MAX_FRACTION * T]
    qname = quality(rs[0].samplers[anc_name])[2]
    if anc_q is None or not cands or not all(anc_cost):
        return [_verdict("T11", INCONCLUSIVE, DDIM_RULE, f"no DDIM sampler with <= T/10 = {T * DDIM_MAX_FRACTION:g} "
                         "steps, or no ancestral quality or timing", ds, "diffusion")]
    kept, lines = [], []
    for name, m in cands:
        q = estimate(per(name, lambda m: quality(m)[0]), per(name, lambda m: quality(m)[1]))
        cost = per(name, lambda m: m.sample_us_per_sample)
        if q is None or not all(cost):
            continue
        se = combined_se(anc_q, q)
        margin = max(SEPARATION * se if se is not None else 0.0, QUALITY_TOLERANCE * abs(anc_q.mean))
        speed = mean(anc_cost) / mean(cost)
        ok_q, ok_s = q.mean - anc_q.mean <= margin, speed >= DDIM_MIN_SPEEDUP
        lines.append(f"{name} (NFE {m.sample_nfe}): {qname} {q.text()} vs ancestral {anc_q.text()} (NFE {T}), "
                     f"Δ {q.mean - anc_q.mean:+.3g} {'≤' if ok_q else '>'} margin {margin:.2g}; {speed:.3g}x the "
                     "samples/s")
        if ok_q and ok_s:
            kept.append(name)
    if not lines:
        return [_verdict("T11", INCONCLUSIVE, DDIM_RULE, "no DDIM quality or timing", ds, "diffusion")]
    evidence = "; ".join(lines) + f"; {anc_q.n} seeds ({anc_q.how})"
    return [_verdict("T11", AGREES if kept else DISAGREES, DDIM_RULE, evidence, ds, "diffusion")]


# --------------------------------------------------------------------------- T17, T18: blur
BLUR_MEASURES = (("high-frequency energy", "hf_energy_ratio", "hf_energy_log_ratio_se"),
                 ("Laplacian variance", "laplacian_var_ratio", "laplacian_log_ratio_se"))


def _log_ratio(recs: list[CellRecord], kind: str | None, attr: str, se_attr: str) -> Estimate | None:
    vals, ses = [], []
    for r in sorted(recs, key=lambda r: r.seed):
        _, m = sampler_of(r, kind)
        v = getattr(m, attr, None) if m is not None else None
        if v is not None and v > 0:
            vals.append(math.log(v))
            ses.append(getattr(m, se_attr, None))
    return estimate(vals, ses)


def _has_blur(recs: list[CellRecord]) -> bool:
    """Some record's default sampler has the blur measures (images only: 2D samples have none)."""
    return any(sampler_of(r)[1] and sampler_of(r)[1].hf_energy_ratio is not None for r in recs)


def blur_verdicts(ds: str, groups: dict[str, list[CellRecord]]) -> list[ClaimVerdict]:
    """T17 (VAE decoder mean against GAN) and T18 (GAN against the test set) on the blur measures."""
    out = []
    gan, vae = groups.get("gan"), groups.get("vae")
    if gan and _has_blur(gan):
        parts, verdicts = [], []
        for label, attr, se_attr in BLUR_MEASURES:
            e = _log_ratio(gan, None, attr, se_attr)
            if e is None or e.se is None:
                verdicts.append(INCONCLUSIVE)
                continue
            dist = abs(e.mean)
            parts.append(f"{label} ratio {math.exp(e.mean):.3g} (|log| {dist:.3g} ± {e.se:.2g}, {e.n} seeds, {e.how})")
            verdicts.append(AGREES if dist + SEPARATION * e.se < SHARP_TOLERANCE else
                            DISAGREES if dist - SEPARATION * e.se > SHARP_TOLERANCE else INCONCLUSIVE)
        p = [m.precision for r in gan for _, m in [r.primary()] if m.precision is not None]
        verdict = (DISAGREES if DISAGREES in verdicts else AGREES if all(v == AGREES for v in verdicts)
                   else INCONCLUSIVE)
        tail = f"; precision {mean(p):.3g}" if p else ""
        out.append(_verdict("T18", verdict, SHARP_RULE, "; ".join(parts) + tail, ds, "gan"))
    if gan and vae and _has_blur(gan) and _has_blur(vae):
        mean_kind = "decoder_mean" if sampler_of(vae[0], "decoder_mean")[0] else None
        parts, verdicts = [], []
        for label, attr, se_attr in BLUR_MEASURES:
            v, g = _log_ratio(vae, mean_kind, attr, se_attr), _log_ratio(gan, None, attr, se_attr)
            if v is None or g is None:
                verdicts.append(INCONCLUSIVE)
                continue
            draw = _log_ratio(vae, "native", attr, se_attr)
            se = combined_se(v, g) if v.how == g.how == "seeds" else None
            diff = v.mean - g.mean
            beside = f", full draw {math.exp(draw.mean):.3g} (|log| {abs(draw.mean):.3g})" if draw and mean_kind else ""
            parts.append(f"{label}: VAE {'decoder mean ' if mean_kind else ''}{math.exp(v.mean):.3g} (|log| "
                         f"{abs(v.mean):.3g}){beside} vs GAN {math.exp(g.mean):.3g} (|log| {abs(g.mean):.3g}); "
                         f"Δlog {diff:+.3g}" + (f" ± {se:.2g}" if se is not None else ""))
            if se is None or min(v.n, g.n) < MIN_BLUR_SEEDS:
                verdicts.append(INCONCLUSIVE)
            else:
                verdicts.append(AGREES if diff < -SEPARATION * se else DISAGREES if diff > SEPARATION * se
                                else INCONCLUSIVE)
        seeds = f"{len(vae)}/{len(gan)} seeds (VAE/GAN)"
        if min(len(vae), len(gan)) < MIN_BLUR_SEEDS:
            seeds += f" < {MIN_BLUR_SEEDS}"
        verdict = verdicts[0] if len(set(verdicts)) == 1 else INCONCLUSIVE
        out.append(_verdict("T17", verdict, BLUR_RULE, "; ".join(parts) + f"; {seeds}", ds, "vae"))
    return out


# --------------------------------------------------------------------------- T19: diffusion against GANs
@dataclass
class _Rival:
    ds: str
    diff: Estimate
    gan: Estimate
    margin: float
    p_noninf: float
    p_inferior: float
    p_superior: float
    guard: str
    allowed: bool
    qname: str


def _one_sided(a: Estimate, b: Estimate, shift: float) -> tuple[float, float]:
    """(P-value that mean(a) - mean(b) < shift, P-value that it is > shift): Welch t on the seeds, or z on the
    own SEs with one seed."""
    if a.n >= 2 and b.n >= 2:
        x = [v - shift for v in a.values]
        less = float(st.ttest_ind(x, list(b.values), equal_var=False, alternative="less").pvalue)
        greater = float(st.ttest_ind(x, list(b.values), equal_var=False, alternative="greater").pvalue)
        return less, greater
    se = combined_se(a, b)
    if not se:
        return math.nan, math.nan
    z = (a.mean - b.mean - shift) / se
    return float(st.norm.cdf(z)), float(st.norm.sf(z))


def rival_tests(by_dataset: dict[str, list[CellRecord]]) -> list[_Rival]:
    """T19's non-inferiority tests, one per dataset with diffusion and GAN records, before Holm."""
    tests = []
    for ds, recs in by_dataset.items():
        groups = ok_groups(recs)
        if "diffusion" not in groups or "gan" not in groups:
            continue
        d = _by_seed(groups["diffusion"], lambda r: quality(r.primary()[1])[:2])
        g = _by_seed(groups["gan"], lambda r: quality(r.primary()[1])[:2])
        if d is None or g is None:
            continue
        ref = next((r.reference_sample_metrics for r in recs if r.reference_sample_metrics is not None), None)
        floor = 0.0
        if ref is not None and ref.mmd2_multiscale is not None:
            floor = abs(ref.mmd2_multiscale) + 2 * (ref.mmd2_multiscale_std or 0.0)
        margin = max(NONINFERIORITY_MARGIN * abs(g.mean), floor)
        p_non, p_inf = _one_sided(d, g, margin)
        p_sup, _ = _one_sided(d, g, 0.0)
        ok_d, why_d = converged(groups["diffusion"])
        ok_g, why_g = converged(groups["gan"])
        allowed = ok_d is True and ok_g is True
        tests.append(_Rival(ds, d, g, margin, p_non, p_inf, p_sup, f"diffusion {why_d}; GAN {why_g}", allowed,
                            quality(groups["diffusion"][0].primary()[1])[2]))
    return tests


def rival_verdicts(by_dataset: dict[str, list[CellRecord]]) -> list[ClaimVerdict]:
    """T19 per dataset: non-inferiority of diffusion's sample quality to the GAN's, Holm over datasets."""
    tests = rival_tests(by_dataset)
    valid = [t for t in tests if math.isfinite(t.p_noninf)]
    adj_non = dict(zip((t.ds for t in valid), holm([t.p_noninf for t in valid]))) if valid else {}
    adj_inf = dict(zip((t.ds for t in valid), holm([t.p_inferior for t in valid]))) if valid else {}
    adj_sup = dict(zip((t.ds for t in valid), holm([t.p_superior for t in valid]))) if valid else {}
    out = []
    for t in tests:
        evidence = (f"{t.qname}: diffusion {t.diff.text()} vs GAN {t.gan.text()} ({_seeds([t.diff, t.gan])}, "
                    f"{t.diff.how}); margin {t.margin:.2g}")
        if t.ds not in adj_non:
            out.append(_verdict("T19", INCONCLUSIVE, RIVAL_RULE, evidence + "; no standard error", t.ds, "diffusion"))
            continue
        evidence += (f"; non-inferiority p = {t.p_noninf:.2g} (Holm {adj_non[t.ds]:.2g}), inferiority p = "
                     f"{t.p_inferior:.2g} (Holm {adj_inf[t.ds]:.2g}), superiority Holm p = {adj_sup[t.ds]:.2g}; "
                     f"{t.guard}")
        if not t.allowed:
            verdict = INCONCLUSIVE
        elif adj_non[t.ds] < ALPHA:
            verdict = AGREES
            if adj_sup[t.ds] < ALPHA:
                evidence += "; exceeds the GAN"
        elif adj_inf[t.ds] < ALPHA:
            verdict = DISAGREES
        else:
            verdict = INCONCLUSIVE
        out.append(_verdict("T19", verdict, RIVAL_RULE, evidence, t.ds, "diffusion"))
    return out


# --------------------------------------------------------------------------- T21: expressiveness
def _size_points(rs: list[CellRecord]) -> dict[int, list[CellRecord]]:
    out: dict[int, list[CellRecord]] = {}
    for r in rs:
        if r.train and r.train.parameters:
            out.setdefault(r.train.parameters, []).append(r)
    return out


def _between_modes(rs: list[CellRecord]) -> str:
    hq = [m.high_quality_fraction for r in rs for _, m in [r.primary()] if m.high_quality_fraction is not None]
    return f", mass between modes {1 - mean(hq):.3g}" if hq else ""


def expressiveness_verdicts(ds: str, groups: dict[str, list[CellRecord]]) -> list[ClaimVerdict]:
    """T21: each flow (textbook expressiveness "restricted") against the autoregressive model, size by size."""
    ar = groups.get("autoregressive")
    if not ar:
        return []
    out = []
    ar_points = _size_points(ar)
    for fam, rs in groups.items():
        registered = models.textbook(fam) if fam in models.names() else None
        if (rs[0].textbook or {}).get("expressiveness", getattr(registered, "expressiveness", None)) != "restricted":
            continue
        lines, verdicts = [], []
        for p_f, frs in sorted(_size_points(rs).items()):
            match = [(p_a, a) for p_a, a in ar_points.items() if abs(p_f / p_a - 1) <= MATCH_TOLERANCE]
            if not match:
                lines.append(f"{p_f:,} parameters: no autoregressive model within {MATCH_TOLERANCE:.0%}")
                continue
            p_a, ars = min(match, key=lambda m: abs(m[0] - p_f))
            ef, ea = _by_seed(frs, lambda r: likelihood(r)[:2]), _by_seed(ars, lambda r: likelihood(r)[:2])
            if ef is None or ea is None:
                continue
            unit = likelihood(frs[0])[2]
            cf, cwhy = converged(frs, training_verdicts.LIKELIHOOD_MONITOR_KEYS)
            ca, awhy = converged(ars, training_verdicts.LIKELIHOOD_MONITOR_KEYS)
            se = combined_se(ef, ea)
            diff = ef.mean - ea.mean
            line = (f"{p_f:,} vs {p_a:,} parameters: {fam} {ef.text()} {unit}{_between_modes(frs)} vs "
                    f"autoregressive {ea.text()} {unit}{_between_modes(ars)}, Δ {diff:+.3g}"
                    + (f" ± {se:.2g}" if se else "")
                    + f" ({_seeds([ef, ea])}, {ef.how})")
            if cf is False or ca is False:
                lines.append(line + f"; not at its plateau ({fam}: {cwhy}; autoregressive: {awhy})")
                verdicts.append(INCONCLUSIVE)
                continue
            if cf is None or ca is None:
                line += "; plateau not monitored"
            lines.append(line)
            if se is None:
                verdicts.append(INCONCLUSIVE)
            else:
                verdicts.append(AGREES if diff > SEPARATION * se else DISAGREES if diff < -SEPARATION * se
                                else INCONCLUSIVE)
        if not lines:
            continue
        verdict = verdicts[0] if verdicts and len(set(verdicts)) == 1 else INCONCLUSIVE
        if likelihood(rs[0])[2] == "bits/dim":
            lines.append("the flow's bits/dim are of dequantized pixels, an upper bound on its discrete ones")
        out.append(_verdict("T21", verdict, EXPRESSIVE_RULE, "; ".join(lines), ds, fam))
    return out


# --------------------------------------------------------------------------- T30: simple estimators
def simple_estimator_verdicts(ds: str, recs: list[CellRecord],
                              groups: dict[str, list[CellRecord]]) -> list[ClaimVerdict]:
    """T30: the records' reference estimates (one Gaussian, a KDE) against the best family's likelihood."""
    refs = next((r.reference_estimates for r in recs if r.reference_estimates), None)
    if not refs:
        return []
    fams = {}
    for fam, rs in groups.items():
        e = _by_seed(rs, lambda r: likelihood(r)[:2])
        if e is not None:
            fams[fam] = e
    if not fams:
        return []
    best_fam = min(fams, key=lambda f: fams[f].mean)
    best = fams[best_fam]
    out = []
    for name, ref in refs.items():
        d = ref.density
        value, se = (d.kl_nats, d.kl_se_nats) if d.kl_nats is not None else (d.test_bpd, d.test_bpd_se)
        unit = "nats (KL)" if d.kl_nats is not None else "bits/dim"
        if value is None:
            continue
        e = Estimate(value, se, 1, "own SE")
        c = combined_se(e, best)
        bw = f", bandwidth {ref.bandwidth:.3g}" if ref.bandwidth else ""
        evidence = (f"{ESTIMATOR_LABELS.get(name, name)}{bw} ({ref.fit_n:,} training points): {e.text()} vs best "
                    f"family {best_fam} {best.text()} {unit} ({best.n} seeds, {best.how}); Δ {value - best.mean:+.3g}"
                    + (f" ± {c:.2g}" if c is not None else ""))
        if c is None:
            verdict = INCONCLUSIVE
        else:
            verdict = AGREES if value - best.mean > SEPARATION * c else DISAGREES
        out.append(_verdict("T30", verdict, SIMPLE_RULE, evidence, ds, ESTIMATOR_LABELS.get(name, name)))
    return out


# --------------------------------------------------------------------------- the judge
def judge_samples(by_dataset: dict[str, list[CellRecord]]) -> list[ClaimVerdict]:
    """Every rule of this module on a run's records: T3, T5, T6, T7-T11, T17-T19, T21 and T30 per dataset."""
    out: list[ClaimVerdict] = []
    for ds, recs in by_dataset.items():
        groups = ok_groups(recs)
        if not groups:
            continue
        out += ode_likelihood_verdicts(ds, groups)
        out += ar_best_likelihood(ds, groups)
        out += theis_verdicts(ds, groups)
        out += discordance(ds, groups)
        out += sampling_verdicts(ds, groups)
        out += ddim_verdict(ds, groups)
        out += blur_verdicts(ds, groups)
        out += expressiveness_verdicts(ds, groups)
        out += simple_estimator_verdicts(ds, recs, groups)
    out += rival_verdicts(by_dataset)
    return out
