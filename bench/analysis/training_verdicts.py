"""Training verdicts a reviewer would accept: fragility (T14, T15), mode collapse (T20) and convergence.

Every family is judged by one yardstick, on its default sampler's samples (:class:`Run`):

* **fidelity**: 2D, the samples' mean −log p_data under the true mixture minus that of real samples of the same
  N (nats; 0 for the data itself); images, the Fréchet distance in the dataset classifier's features
  (``fd_classifier``, not FID). Lower is better.
* **coverage**: the mode KL of the samples' mode histogram (2D: most probable component; images: the
  classifier's class) against the data's, minus that of real samples of the same N (nats). Lower is better.
* **collapse** (:func:`bench.analysis.taxonomy.collapsed`): the samples hit fewer modes (≥ half their share) than
  99% of real sample sets of the same N do. A real sample set counts as collapsed at most 1% of the time.

The rules (Lucic et al. 2018, arXiv:1711.10337, and Kurach et al. 2019, arXiv:1807.04720, measure fragility as
the sensitivity of the outcome to hyperparameters and seeds under a fixed budget):

* **failed run** (:func:`mark_failures`): it diverged (a NaN/inf loss, or half its samples non-finite), it
  collapsed, or its fidelity or coverage is worse than the median of the family's best learning rate on that
  dataset by more than the margin max(:data:`MARGIN_ABS`, :data:`MARGIN_REL` × |that median|). With one
  learning rate (the default profile) the best setting is the only one, and a collapse in every seed still
  counts as a failure in every seed.
* **oscillation index** (:func:`oscillation_index`): after the best checkpoint of the monitored mode KL,
  Σ|Δq| / (q_first − q_best) (the gain at least the mode KL of real samples of the monitor's size, its noise):
  0 for a curve that stays at its best, 1 when it gives back as much as it gained.
* **T14** (the GAN is more fragile than the autoregressive, VAE and diffusion models, the families T15 calls
  stable): the GAN's fraction of failed runs exceeds each of theirs by Fisher's exact test, one-sided, Holm-
  adjusted over the three at α = :data:`ALPHA`; its oscillation indices exceed theirs by Mann–Whitney, likewise.
* **T15**: each of those families fails less often than the GAN (the same tests, read from its side).
* **T20** (GANs collapse more than diffusion models; diffusion covers the data better): the GAN's fraction of
  collapsed runs exceeds diffusion's (Fisher, one-sided) and diffusion's coverage is better (Mann–Whitney,
  one-sided), Holm-adjusted over the two parts.
* A test in the other direction at the same level *disagrees*; neither is *inconclusive*. Runs are pooled over
  the run's datasets and learning rates: every family runs the same cells.
* **convergence guard** (:func:`converged`): a verdict is *inconclusive: not converged* unless every compared
  family's runs are shown to have settled over the last fifth of training on every dataset: not still improving
  (z ≤ :data:`CONVERGENCE_Z`, or a gain below the failure rule's floor), better than at the first checkpoint,
  and the change within the failure margin at 95% (|Δ̄| + 2 SE ≤ margin). A monitor too noisy to show it reads
  *convergence unknown*.

The families a rule compares are those whose textbook claims (:class:`models.base.Textbook`, ``claims``) name
T14, T15 or T20; a family without one is not judged. This replaces the CV rule of :mod:`bench.analysis.verdicts`.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import models
from bench.analysis.claims import AGREES, DISAGREES, INCONCLUSIVE, ClaimVerdict
from bench.analysis.compare import holm
from bench.analysis.taxonomy import CONVERGED_BY, collapsed
from bench.store.schema import CellRecord, SamplerResult

ALPHA = 0.05  # family-wise level of each claim's tests (Holm)
MARGIN_REL = 0.5  # a run fails when worse than its family's best setting by 50% of that setting's median ...
MARGIN_ABS = {"nats": 1.0, "fd": 1.0, "coverage": 0.1,  # ... or by this, whichever is larger (fidelity, coverage)
              "bpd": 0.05}  # test bits/dim (image monitor, exact densities): 0.05 bits/dim = 27 nats an MNIST image
NONFINITE_DIVERGED = 0.5  # a run with at least this fraction of non-finite samples has diverged
CONVERGENCE_Z = 2.0  # still improving: the last fifth of training improves by > 2 SE (and by > the margin's floor)
OSCILLATION_KEY = "val_mode_kl_nats"  # the monitored curve of the oscillation index (coverage: mode hopping)
OSCILLATION_NOISE_KEY = "val_mode_kl_real_nats"  # its noise level: real sample sets of the monitor's size
#: the monitored quality, its standard error, its label and its fidelity kind (the key of :data:`MARGIN_ABS`)
#: behind the convergence guard, in order of preference
MONITOR_KEYS = (("val_fd_classifier", "val_fd_classifier_se", "FD_classifier", "fd"),
                ("val_sample_nll_nats", "val_sample_nll_se_nats", "−log p_data (nats)", "nats"))
#: the same for a likelihood claim (T21): test bits/dim first where the monitor has it (images, exact densities)
LIKELIHOOD_MONITOR_KEYS = (("val_bpd", "val_bpd_se", "test bits/dim", "bpd"), *MONITOR_KEYS)

FAILURE_RULE = (f"a run fails when it diverged, collapsed (fewer modes hit than 99% of real sample sets of its N), "
                f"or its fidelity or coverage is worse than the median of its family's best learning rate by more "
                f"than max(absolute floor, {MARGIN_REL:.0%} of that median)")
T14_RULE = (f"the GAN fails more often than each of the autoregressive, VAE and diffusion models (Fisher's exact, "
            f"one-sided, Holm over the three, α = {ALPHA:g}; {FAILURE_RULE})")
T14_OSC_RULE = (f"the GAN's oscillation index after its best checkpoint (Σ|Δ mode KL| / gain) exceeds each of the "
                f"autoregressive, VAE and diffusion models' (Mann–Whitney, one-sided, Holm over the three, "
                f"α = {ALPHA:g})")
T15_RULE = (f"the family fails less often than the GAN (Fisher's exact, one-sided, Holm over the families T15 "
            f"names, α = {ALPHA:g}; {FAILURE_RULE})")
T20_COLLAPSE_RULE = (f"GAN runs collapse more often than diffusion runs (fewer modes hit than 99% of real sample sets "
                     f"of the same N; Fisher's exact, one-sided, Holm over T20's two parts, α = {ALPHA:g})")
T20_COVERAGE_RULE = (f"diffusion's coverage beats the GAN's: its mode KL beyond real samples' of the same N is lower "
                     f"(Mann–Whitney, one-sided, Holm over T20's two parts, α = {ALPHA:g})")


# --------------------------------------------------------------------------- one run on the yardstick
def claims_of(rec: CellRecord) -> tuple[str, ...]:
    """The T-ids the texts claim about a record's registered family: from the record's textbook, else (records
    before the claims were mapped) from the registry, else ``()``."""
    tb = rec.textbook or {}
    if "claims" in tb:
        return tuple(tb["claims"] or ())
    if rec.base_family in models.names():
        reg = models.textbook(rec.base_family)
        return tuple(reg.claims) if reg is not None else ()
    return ()


def diverged(rec: CellRecord) -> bool:
    """Whether a run diverged: training raised on a non-finite loss, or at least :data:`NONFINITE_DIVERGED` of
    its default sampler's samples are non-finite."""
    if rec.status == "failed":
        reason = (rec.reason or "").lower()
        return "divergenceerror" in reason or "became nan" in reason or "became inf" in reason
    frac = rec.primary()[1].nonfinite_fraction
    return rec.ok and frac is not None and frac >= NONFINITE_DIVERGED


def fidelity(m: SamplerResult) -> tuple[float | None, str]:
    """(fidelity of a sample set, its kind): 2D, mean −log p_data minus real samples' (``"nats"``); images,
    ``fd_classifier`` (``"fd"``); ``(None, "")`` when neither was measured."""
    if m.sample_nll_data_nats is not None and m.sample_nll_data_real_nats is not None:
        return m.sample_nll_data_nats - m.sample_nll_data_real_nats, "nats"
    if m.fd_classifier is not None:
        return m.fd_classifier, "fd"
    return None, ""


def coverage(m: SamplerResult) -> float | None:
    """Mode KL of a sample set beyond real samples' of the same N (``mode_kl_nats − mode_kl_real_mean_nats``), nats."""
    if m.mode_kl_nats is None or m.mode_kl_real_mean_nats is None:
        return None
    return m.mode_kl_nats - m.mode_kl_real_mean_nats


def oscillation_index(history: list[dict[str, float]], key: str = OSCILLATION_KEY,
                      noise_key: str = OSCILLATION_NOISE_KEY) -> float | None:
    """Σ_{j > k*} |q_{j+1} − q_j| / max(q_0 − q_{k*}, ε) over the monitored curve ``key`` of a training history,
    k* its best (lowest) checkpoint: how much of its gain the run gives back, and back again, after its best.

    ε is the curve's noise level where the history has it (``noise_key``: the mean mode KL of real sample sets of
    the monitor's size), so that a run that barely improved is not divided by almost nothing. ``None`` with
    fewer than 3 finite checkpoints or no gain (the first checkpoint is the best).
    """
    q = [h[key] for h in history if key in h and math.isfinite(h[key])]
    if len(q) < 3:
        return None
    best = min(range(len(q)), key=q.__getitem__)
    gain = q[0] - q[best]
    if gain <= 0:
        return None
    noise = next((h[noise_key] for h in history if noise_key in h), 0.0)
    return sum(abs(b - a) for a, b in zip(q[best:], q[best + 1:])) / max(gain, noise)


@dataclass
class Run:
    """One cell on the yardstick (see the module docstring).

    Attributes:
        record: the cell record.
        fidelity, kind: its fidelity and kind (``"nats"``: 2D excess −log p_data; ``"fd"``: images FD_classifier).
        coverage: mode KL beyond real samples' (nats).
        collapsed: :func:`bench.analysis.taxonomy.collapsed`; diverged: :func:`diverged`.
        oscillation: :func:`oscillation_index` of its training history.
        failed: set by :func:`mark_failures` (``None`` before, or when nothing was measured).
        reasons: why it failed, one phrase each.
    """

    record: CellRecord
    fidelity: float | None
    kind: str
    coverage: float | None
    collapsed: bool | None
    diverged: bool
    oscillation: float | None
    failed: bool | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def family(self) -> str:
        """The registered family (variants of one family are its settings)."""
        return self.record.base_family

    @property
    def lr_scale(self) -> float:
        return self.record.lr_scale if self.record.lr_scale is not None else 1.0


def run_of(rec: CellRecord) -> Run:
    """A record (ok, or failed by divergence) on the yardstick."""
    m = rec.primary()[1] if rec.ok else SamplerResult()
    f, kind = fidelity(m)
    hist = rec.train.train_history if rec.train is not None else []
    return Run(rec, f, kind, coverage(m), collapsed(rec) if rec.ok else None, diverged(rec), oscillation_index(hist))


def _margin(kind: str, best: float) -> float:
    return max(MARGIN_ABS[kind], MARGIN_REL * abs(best))


def mark_failures(runs: list[Run]) -> list[Run]:
    """Set each run's ``failed`` and ``reasons`` against its (dataset, registered family)'s best learning rate:
    the lowest median over that setting's non-diverged runs, per metric (fidelity, coverage). Returns ``runs``."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.record.dataset, r.family), []).append(r)
    for group in groups.values():
        best: dict[str, float] = {}
        for metric in ("fidelity", "coverage"):
            by_setting: dict[float, list[float]] = {}
            for r in group:
                v = getattr(r, metric)
                if not r.diverged and v is not None and math.isfinite(v):
                    by_setting.setdefault(r.lr_scale, []).append(v)
            if by_setting:
                best[metric] = min(statistics.median(v) for v in by_setting.values())
        for r in group:
            r.reasons = []
            if r.diverged:
                r.reasons.append("diverged")
            if r.collapsed:
                m = r.record.primary()[1]
                r.reasons.append(f"collapsed ({m.modes_hit} of {m.n_modes} modes; real sets: ≥ {m.modes_hit_real_q01})")
            if not r.diverged:
                unit = "nats" if r.kind == "nats" else ""
                for metric, kind, label in (("fidelity", r.kind, "fidelity"), ("coverage", "coverage", "coverage")):
                    v = getattr(r, metric)
                    if v is None or metric not in best or not kind:
                        continue
                    margin = _margin(kind, best[metric])
                    if not math.isfinite(v) or v - best[metric] > margin:
                        u = "nats" if metric == "coverage" else unit
                        r.reasons.append(f"{label} {v - best[metric]:+.3g}{' ' + u if u else ''} from the best "
                                         f"setting's median (margin {margin:.3g})")
            measured = r.diverged or r.fidelity is not None or r.coverage is not None or r.collapsed is not None
            r.failed = bool(r.reasons) if measured else None
    return runs


def family_runs(by_dataset: dict[str, list[CellRecord]],
                failed: list[CellRecord] | tuple = ()) -> dict[str, list[Run]]:
    """Every ok record of ``by_dataset`` and every diverged one of ``failed`` on the yardstick, failures marked
    (:func:`mark_failures`), by registered family in first-seen order. Cells that failed for another reason
    (out of memory, a bug) are not runs."""
    recs = [r for rs in by_dataset.values() for r in rs if r.ok]
    recs += [r for r in failed if diverged(r) and r.dataset in by_dataset]
    runs = mark_failures([run_of(r) for r in recs])
    out: dict[str, list[Run]] = {}
    for r in runs:
        out.setdefault(r.family, []).append(r)
    return out


# --------------------------------------------------------------------------- convergence
@dataclass(frozen=True)
class _Stretch:
    """A run's monitored quality (lower is better) over two spans: the last fifth of training and the whole run."""
    label: str  # e.g. "FD_classifier"
    kind: str  # its fidelity kind, a key of MARGIN_ABS
    gain: float  # improvement q_a − q_K over the last fifth of training
    se: float  # its standard error, √(SE_a² + SE_K²)
    gain_whole: float  # improvement q_1 − q_K from the first checkpoint
    se_whole: float


def _final_stretch(rec: CellRecord, keys=MONITOR_KEYS) -> _Stretch | None:
    """A record's monitored quality over the last fifth of training, from the last checkpoint at or before
    :data:`CONVERGED_BY` of the final checkpoint's step (the second-to-last when the steps are not recorded) to
    the final one, and from the first checkpoint to the final one; ``None`` without two checkpoints.

    The final checkpoint sits at the end of training, often a few steps after the one before it, so the last
    *pair* of checkpoints says little about whether training had stopped improving."""
    hist = rec.train.train_history if rec.train is not None else []
    for key, se_key, label, kind in keys:
        pts = [h for h in hist if key in h and se_key in h and math.isfinite(h[key]) and math.isfinite(h[se_key])]
        if len(pts) < 2:
            continue
        first, b = pts[0], pts[-1]
        a = pts[-2]
        if all("step" in h for h in pts):
            a = ([h for h in pts[:-1] if h["step"] <= CONVERGED_BY * b["step"]] or [first])[-1]
        return _Stretch(label, kind, a[key] - b[key], math.hypot(a[se_key], b[se_key]),
                        first[key] - b[key], math.hypot(first[se_key], b[se_key]))
    return None


def _tolerance(recs: list[CellRecord], kind: str) -> float:
    """The change in a monitored quality of fidelity ``kind`` that a verdict cannot resolve on one dataset: the
    failure rule's margin (:func:`_margin`) at the median fidelity of the runs, or its absolute floor when no run
    has a fidelity of that kind."""
    fid = [f[0] for r in recs if r.samplers and (f := fidelity(r.primary()[1]))[1] == kind and math.isfinite(f[0])]
    return _margin(kind, statistics.median(fid)) if fid else MARGIN_ABS[kind]


def _pooled(gains: list[float], ses: list[float]) -> tuple[float, float, float]:
    """(mean gain, SE of the mean √ΣSE² / n, z = Σgain / √ΣSE²) of independent runs' gains."""
    n, gain, se = len(gains), sum(gains), math.sqrt(sum(x * x for x in ses))
    z = gain / se if se > 0 else (math.inf if gain > 0 else 0.0)
    return gain / n, se / n, z


def converged(recs: list[CellRecord], keys=MONITOR_KEYS) -> tuple[bool, str]:
    """Whether a family's runs had stopped changing by the end of training, and why, in words.

    Per dataset, the training monitor's quality (images: FD_classifier with its bootstrap SE; 2D: the samples'
    mean −log p_data with its SE) changes over the last fifth of training (:func:`_final_stretch`) by Δ_i ± SE_i
    in run i; pooled over the dataset's runs, Δ̄ ± SĒ (the mean, and √ΣSE_i² / n). Three readings:

    * **still improving**: on some dataset z = ΣΔ_i / √ΣSE_i² > :data:`CONVERGENCE_Z` (one-sided) and Δ̄ exceeds
      the failure rule's absolute floor (:data:`MARGIN_ABS`: 1 nat, 1 FD_classifier unit, 0.05 bits/dim), the smallest
      difference any verdict resolves (a significant gain below it, as five GAN runs' −0.81 ± 0.23 nats over steps
      800-1000 on 8gaussians, is not material; it falls to the equivalence test below);
    * **settled**: on every dataset the change is shown to lie within the verdicts' resolution, an equivalence
      test: |Δ̄| + :data:`CONVERGENCE_Z` · SĒ ≤ the failure rule's margin at the runs' median fidelity
      (:func:`_tolerance`: max(absolute floor, 50% of it));
    * **convergence unknown**: neither, i.e. the monitor is too noisy (or the quality moved too much in either
      direction) to show that more training would not move a run across the failure margin; or the runs' quality
      at the last checkpoint is not better than at the first by more than :data:`CONVERGENCE_Z` SE (pooled): a
      flat curve that never left its initialisation is not "settled". Also when no run carries a monitored
      quality with an SE.

    Only "settled" returns ``True``: the verdicts judge a family only when its training is shown to have settled.

    Args:
        recs: one family's ok records (any datasets, seeds, settings).
        keys: the monitored qualities to read, in order of preference (the first a run's history has with an SE):
            :data:`MONITOR_KEYS` (sample quality) for the training and sample claims,
            :data:`LIKELIHOOD_MONITOR_KEYS` (test bits/dim first) for a likelihood claim.

    Returns:
        (converged, why): e.g. ``(False, "still improving on mnist: FD_classifier −220 ± 60 (mean over 1 run)
        over the last fifth of training, z = 3.7 > 2")``; ``why`` starts with "settled", "still improving" or
        "convergence unknown".
    """
    by_ds: dict[str, list[tuple[CellRecord, _Stretch]]] = {}
    for r in recs:
        if r.ok and (s := _final_stretch(r, keys)) is not None:
            by_ds.setdefault(r.dataset, []).append((r, s))
    if not by_ds:
        return False, "convergence unknown: no training monitor with a standard error in these runs"
    label = next(iter(by_ds.values()))[0][1].label
    improving, unknown, settled = [], [], []
    for ds, pairs in by_ds.items():
        pairs = [(r, s) for r, s in pairs if s.label == label]
        if not pairs:
            continue
        n, kind = len(pairs), pairs[0][1].kind
        mean, se_mean, z = _pooled([s.gain for _, s in pairs], [s.se for _, s in pairs])
        mean_whole, se_whole, z_whole = _pooled([s.gain_whole for _, s in pairs], [s.se_whole for _, s in pairs])
        floor, tol = MARGIN_ABS[kind], _tolerance([r for r, _ in pairs], kind)
        bound = abs(mean) + CONVERGENCE_Z * se_mean  # the change over the last fifth, at 95%
        text = (f"{ds}: {label} {-mean:+.3g} ± {se_mean:.2g} (mean over {n} run{'s' if n != 1 else ''}) over the "
                f"last fifth of training, z = {z:.2g}")
        if z > CONVERGENCE_Z and mean > floor:
            improving.append(f"{text} > {CONVERGENCE_Z:g}, by more than the failure rule's floor {floor:g}")
        elif z_whole <= CONVERGENCE_Z:
            unknown.append(f"{ds}: {label} {-mean_whole:+.3g} ± {se_whole:.2g} from the first monitor checkpoint to "
                           f"the last, z = {z_whole:.2g} ≤ {CONVERGENCE_Z:g}: not shown to have learned")
        elif bound <= tol:
            settled.append(f"{text}; |Δ| + {CONVERGENCE_Z:g} SE = {bound:.3g} ≤ margin {tol:.3g}")
        else:
            unknown.append(f"{text}; |Δ| + {CONVERGENCE_Z:g} SE = {bound:.3g} > margin {tol:.3g}")
    if improving:
        return False, "still improving on " + "; ".join(improving)
    if unknown:
        return False, "convergence unknown on " + "; ".join(unknown)
    return True, "settled on " + "; ".join(settled)


# --------------------------------------------------------------------------- the tests
def fisher_greater(k_a: int, n_a: int, k_b: int, n_b: int) -> float:
    """One-sided p-value of Fisher's exact test that the failure probability of A (k_a of n_a) exceeds B's."""
    from scipy.stats import fisher_exact

    return float(fisher_exact([[k_a, n_a - k_a], [k_b, n_b - k_b]], alternative="greater").pvalue)


def mann_whitney_greater(a: list[float], b: list[float]) -> float:
    """One-sided p-value of the Mann–Whitney U test that values in ``a`` tend to exceed those in ``b`` (exact for
    small samples without ties; 1 when a side is empty)."""
    from scipy.stats import mannwhitneyu

    if not a or not b:
        return 1.0
    return float(mannwhitneyu(a, b, alternative="greater").pvalue)


def _count(runs: list[Run], attr: str) -> tuple[int, int]:
    vals = [getattr(r, attr) for r in runs if getattr(r, attr) is not None]
    return sum(bool(v) for v in vals), len(vals)


def _p(p: float) -> str:
    return f"{p:.2g}"


@dataclass
class _Test:
    """One one-sided comparison and its reverse, for Holm."""

    name: str
    p: float
    p_reverse: float
    text: str
    p_adj: float = 1.0
    p_reverse_adj: float = 1.0


def _holm(tests: list[_Test]) -> None:
    for t, a in zip(tests, holm([t.p for t in tests])):
        t.p_adj = a
    for t, a in zip(tests, holm([t.p_reverse for t in tests])):
        t.p_reverse_adj = a


def _guard(groups: dict[str, list[Run]], names: list[str]) -> str | None:
    """Why a verdict on ``names`` must wait (a family whose own-learning-rate runs are not shown to have settled:
    still improving, or convergence unknown), or ``None``."""
    for name in names:
        own = [r.record for r in groups[name] if r.lr_scale == 1.0 and r.record.ok] or \
              [r.record for r in groups[name] if r.record.ok]
        ok, why = converged(own)
        if not ok:
            return f"inconclusive: not converged ({name}: {why})"
    return None


def _by_claim(groups: dict[str, list[Run]], claim: str) -> list[str]:
    return [f for f, rs in groups.items() if claim in claims_of(rs[0].record)]


def _fragile_stable(groups: dict[str, list[Run]]) -> tuple[str | None, list[str]]:
    """(the family T14 calls fragile, the families T15 calls stable) among ``groups``."""
    fragile = [f for f in _by_claim(groups, "T14") if (groups[f][0].record.textbook or {}).get("training") != "stable"]
    return (fragile[0] if fragile else None), [f for f in _by_claim(groups, "T15") if f not in fragile]


def judge_training(by_dataset: dict[str, list[CellRecord]],
                   failed: list[CellRecord] | tuple = ()) -> list[ClaimVerdict]:
    """The training verdicts T14, T15 and T20 of a run (the rules in the module docstring), pooled over its
    datasets; ``failed`` adds the diverged cells. Nothing for a claim whose families are not in the run."""
    groups = family_runs(by_dataset, failed)
    scope = ", ".join(by_dataset)
    out: list[ClaimVerdict] = []
    gan, stable = _fragile_stable(groups)
    if gan is not None and stable:
        out += _fragility(groups, gan, stable, scope)
    diffusion = next((f for f in _by_claim(groups, "T20") if f != gan), None)
    if gan is not None and diffusion is not None:
        out += _collapse(groups, gan, diffusion, scope)
    return out


judge_training.takes_failed = True  # bench.analysis.judges passes the run's failed cells (divergences count)


def _fragility(groups: dict[str, list[Run]], gan: str, stable: list[str], scope: str) -> list[ClaimVerdict]:
    k_g, n_g = _count(groups[gan], "failed")
    fail, osc = [], []
    for f in stable:
        k, n = _count(groups[f], "failed")
        fail.append(_Test(f, fisher_greater(k_g, n_g, k, n) if n and n_g else 1.0,
                          fisher_greater(k, n, k_g, n_g) if n and n_g else 1.0, f"{f} {k}/{n}"))
        a = [r.oscillation for r in groups[gan] if r.oscillation is not None]
        b = [r.oscillation for r in groups[f] if r.oscillation is not None]
        osc.append(_Test(f, mann_whitney_greater(a, b), mann_whitney_greater(b, a),
                         f"{f} median {statistics.median(b):.2g} (n = {len(b)})" if b else f"{f}: none"))
    _holm(fail)
    _holm(osc)
    wait = _guard(groups, [gan, *stable])
    out = []
    for tests, rule, head in ((fail, T14_RULE, f"{gan} {k_g}/{n_g} runs failed"),
                              (osc, T14_OSC_RULE, _osc_head(groups[gan], gan))):
        evidence = head + "; " + "; ".join(f"{t.text} (p_Holm {_p(t.p_adj)})" for t in tests)
        if wait:
            verdict, evidence = INCONCLUSIVE, f"{wait}; {evidence}"
        elif all(t.p_adj < ALPHA for t in tests):
            verdict = AGREES
        elif any(t.p_reverse_adj < ALPHA for t in tests):
            verdict = DISAGREES
            evidence += "; reverse: " + ", ".join(f"{t.name} p_Holm {_p(t.p_reverse_adj)}" for t in tests)
        else:
            verdict = INCONCLUSIVE
        out.append(ClaimVerdict("T14", verdict, rule, evidence, scope + (" (oscillation)" if tests is osc else ""),
                                gan))
    for t in fail:
        evidence = (f"{t.text} runs failed vs {gan} {k_g}/{n_g}: p_Holm {_p(t.p_adj)} (fewer), "
                    f"{_p(t.p_reverse_adj)} (more)")
        wait_f = _guard(groups, [gan, t.name])
        if wait_f:
            verdict, evidence = INCONCLUSIVE, f"{wait_f}; {evidence}"
        else:
            verdict = AGREES if t.p_adj < ALPHA else DISAGREES if t.p_reverse_adj < ALPHA else INCONCLUSIVE
        out.append(ClaimVerdict("T15", verdict, T15_RULE, evidence, scope, t.name))
    return out


def _osc_head(runs: list[Run], gan: str) -> str:
    v = [r.oscillation for r in runs if r.oscillation is not None]
    return (f"{gan} oscillation median {statistics.median(v):.2g} (n = {len(v)})" if v
            else f"{gan}: no oscillation index")


def _collapse(groups: dict[str, list[Run]], gan: str, diffusion: str, scope: str) -> list[ClaimVerdict]:
    k_g, n_g = _count(groups[gan], "collapsed")
    k_d, n_d = _count(groups[diffusion], "collapsed")
    cov_g = [r.coverage for r in groups[gan] if r.coverage is not None and not r.diverged]
    cov_d = [r.coverage for r in groups[diffusion] if r.coverage is not None and not r.diverged]
    tests = [_Test("collapse", fisher_greater(k_g, n_g, k_d, n_d) if n_g and n_d else 1.0,
                   fisher_greater(k_d, n_d, k_g, n_g) if n_g and n_d else 1.0,
                   f"collapsed runs: {gan} {k_g}/{n_g}, {diffusion} {k_d}/{n_d}"),
             _Test("coverage", mann_whitney_greater(cov_g, cov_d), mann_whitney_greater(cov_d, cov_g),
                   (f"mode KL beyond real (nats), median: {gan} {statistics.median(cov_g):.3g} (n = {len(cov_g)}), "
                    f"{diffusion} {statistics.median(cov_d):.3g} (n = {len(cov_d)})") if cov_g and cov_d
                   else "mode KL not measured on one side")]
    _holm(tests)
    wait = _guard(groups, [gan, diffusion])
    out = []
    for t, rule in zip(tests, (T20_COLLAPSE_RULE, T20_COVERAGE_RULE)):
        evidence = f"{t.text}; p_Holm {_p(t.p_adj)} (reverse {_p(t.p_reverse_adj)})"
        if wait:
            verdict, evidence = INCONCLUSIVE, f"{wait}; {evidence}"
        else:
            verdict = AGREES if t.p_adj < ALPHA else DISAGREES if t.p_reverse_adj < ALPHA else INCONCLUSIVE
        out.append(ClaimVerdict("T20", verdict, rule, evidence, f"{scope} ({t.name})", gan))
    return out
