"""Report tables built from typed records: formatting only (verdicts come from :mod:`bench.analysis.verdicts`)."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass

from bench.analysis import sample_verdicts, taxonomy, training_verdicts, verdicts
from bench.analysis.aggregate import CELL
from bench.evaluation import protocol
from bench.report.fmt import count, fmt, pm
from bench.store import schema
from bench.store.schema import CellRecord, DensityResult, SamplerResult


def likelihood_text(rec: CellRecord) -> str:
    """The measured likelihood of a record, as text (bits/dim for images, nats in 2D), and where the record has
    one, the probability-flow ODE's exact likelihood with its cost ("exact via ODE at N NFE: ...")."""
    text = _likelihood_text(rec)
    d = rec.density or DensityResult()
    if d.ode_test_nll_nats is None:
        return text
    value = (f"{pm(d.ode_test_bpd, d.ode_test_bpd_se)} bits/dim" if d.ode_test_bpd is not None
             else f"NLL {pm(d.ode_test_nll_nats, d.ode_test_nll_se_nats)} nats")
    ode = f"exact via ODE at {d.ode_nfe} NFE: {value} ({fmt(d.ode_ms_per_example)} ms per point)"
    if sample_verdicts.impossible_bpd(d.ode_test_bpd, d.ode_test_bpd_se):
        ode += " — not a likelihood: below 0 bits/dim, impossible for a normalized density (too few NFE)"
    elif sample_verdicts.ode_unsettled(d):
        ode += " — not settled: the solver's error at this step count exceeds the NLL's SE"
    return ode if text == "none" else f"{text}; {ode}"


def _likelihood_text(rec: CellRecord) -> str:
    d = rec.density or DensityResult()
    kind = rec.likelihood_kind
    if kind == "exact" and d.test_bpd is not None:
        return f"exact: {pm(d.test_bpd, d.test_bpd_se)} bits/dim"
    if kind == "bound" and d.test_bpd_bound is not None:
        return f"bound: ≤ {pm(d.test_bpd_bound, d.test_bpd_bound_se)} bits/dim ({d.bound_name})"
    if kind == "unnormalized" and d.bpd_unavailable:
        return "energy E(x) only: no bits/dim (log Z intractable)"
    if kind == "exact" and d.test_nll_nats is not None:
        return f"exact: NLL {pm(d.test_nll_nats, d.test_nll_se_nats)} nats"
    if kind == "bound" and d.test_nll_bound_nats is not None:
        return f"bound: NLL ≤ {pm(d.test_nll_bound_nats, d.test_nll_bound_se_nats)} nats ({d.bound_name})"
    if kind == "unnormalized":
        if d.test_nll_nats is not None:
            return (f"energy E(x) only; NLL {pm(d.test_nll_nats, d.test_nll_se_nats)} nats after 2D "
                    f"quadrature ({d.quadrature_evaluations:,} energy evaluations)")
        return "energy E(x) only"
    return "none"


def normalization_text(rec: CellRecord) -> str:
    """The measured normalization behind the likelihood verdict (2D), e.g. "∫p dx = 1.000 (256² grid)"."""
    import math

    d = rec.density or DensityResult()
    li, err = d.log_integral_nats, d.log_integral_error_nats or 0.0
    if li is None:
        return "–"
    integral = fmt(math.exp(li), 4) if abs(li) < 20 else f"e^{fmt(li, 3)}"
    grid = f"{d.integral_grid}² grid"
    kind = rec.likelihood_kind
    if kind == "exact":
        return f"∫p dx = {integral} ({grid})"
    if kind == "bound":
        b = (d.integral_of or "bound").upper()
        if li + err >= 0:
            return (f"∫exp({b}) dx = {integral} ± {fmt(err, 2)} nats ({grid}): the per-point estimate is too noisy "
                    "to integrate")
        return f"∫exp({b}) dx = {integral} < 1 ({grid})"
    if kind == "unnormalized":
        return f"∫exp(−E) dx = {integral} ≠ 1 (log Z = {fmt(li, 4)})"
    return "–"


def _claim(v: verdicts.Verdict) -> str:
    return v.verdict if v.verdict == verdicts.NO_CLAIM else f"{v.verdict} (measured {v.measured})"


def _passes_claims(recs: list[CellRecord]) -> dict[str, str]:
    """family -> the sequential-passes verdict of T7-T10 (:func:`bench.analysis.sample_verdicts.sampling_verdicts`),
    as the taxonomy table shows it."""
    found = sample_verdicts.sampling_verdicts(recs[0].dataset if recs else "", sample_verdicts.ok_groups(recs))
    return {v.family: f"{v.claim} {v.verdict} ({v.evidence.split('; ')[0]})" for v in found}


def taxonomy_rows(recs: list[CellRecord]) -> tuple[list[dict[str, str]], list[str]]:
    """Rows of the measured taxonomy table for one dataset's ok records (one seed each), and one
    sentence per family comparing its sampling cost with the fastest family's.

    The sampling claim of the autoregressive, VAE, GAN, flow and diffusion families (T7-T10) is judged by
    sequential network passes (:mod:`bench.analysis.sample_verdicts`); the energy and score models' (T12, T13)
    by the wall-clock ratio of :func:`bench.analysis.verdicts.sampling`."""
    best = verdicts.fastest(recs)
    if best is None:
        return [], []
    best_sampler = best.primary()[1]
    passes = _passes_claims(recs)
    rows, sentences = [], []
    for r in recs:
        tb = verdicts.textbook(r) or {}
        sampler, m = r.primary()
        lik, samp = verdicts.likelihood(r), verdicts.sampling(r, recs)
        rows.append({
            "family": r.family,
            "textbook likelihood": tb.get("likelihood_text", "–"),
            "measured likelihood": likelihood_text(r),
            "normalization (measured)": normalization_text(r),
            "likelihood claim": lik.verdict,
            "textbook sampling": tb.get("sampling_text", "–"),
            "NFE": fmt(m.sample_nfe),
            "samples/s": fmt(m.sample_throughput_per_s),
            "batch-1 latency (ms)": fmt(m.sample_latency_ms),
            "cost per sample": "fastest" if r is best else f"{fmt(samp.value)}× {best.family}",
            "sampling claim": passes.get(r.family, _claim(samp)),
        })
        if r is not best:
            if r.family in passes:
                tail = f"by sequential passes, {passes[r.family]}."
            else:
                tail = (f"this {samp.verdict} with the textbook's \"{tb['sampling_text']}\"." if tb
                        else "the family makes no textbook claim.")
            sentences.append(f"{r.family} sampling ({sampler}) is {fmt(samp.value)}× slower per sample than "
                             f"{best.family} (NFE {m.sample_nfe} vs {best_sampler.sample_nfe}); {tail}")
    return rows, sentences


def _nll_text(d: DensityResult) -> str:
    if d.test_nll_nats is not None:
        return pm(d.test_nll_nats, d.test_nll_se_nats)
    if d.test_nll_bound_nats is not None:
        return "≤ " + pm(d.test_nll_bound_nats, d.test_nll_bound_se_nats)
    return "–"


def _kl_text(d: DensityResult) -> str:
    if d.kl_nats is not None:
        return pm(d.kl_nats, d.kl_se_nats)
    if d.kl_bound_nats is not None:
        return "≤ " + pm(d.kl_bound_nats, d.kl_bound_se_nats)
    return "–"


def _sample_cells_2d(m: SamplerResult) -> dict[str, str]:
    return {"MMD²": fmt(m.mmd2),
            "MMD² (multi-scale)": pm(m.mmd2_multiscale, m.mmd2_multiscale_std) if m.mmd2_multiscale is not None
            else "–", "precision": fmt(m.precision), "recall": fmt(m.recall),
            "high-quality": fmt(m.high_quality_fraction),
            "modes": f"{m.modes_covered}/{m.n_modes}" if m.n_modes else "–",
            "−log p_data (nats)": pm(m.sample_nll_data_nats, m.sample_nll_data_se_nats),
            "mode KL (nats)": fmt(m.mode_kl_nats),
            "modes hit": f"{m.modes_hit}/{m.n_modes}" if m.modes_hit is not None else "–"}


def metrics_rows(recs: list[CellRecord]) -> list[dict[str, str]]:
    """2D: per family and sampler, likelihood, KL, sample metrics, costs."""
    rows = []
    for r in recs:
        d = r.density or DensityResult()
        for sampler, m in r.samplers.items():
            rows.append({
                "family": r.family, "sampler": sampler, "seed": str(r.seed),
                "NLL (nats)": _nll_text(d), "KL (nats)": _kl_text(d),
                "ODE KL (nats)": pm(d.ode_kl_nats, d.ode_kl_se_nats) if d.ode_kl_nats is not None else "–",
                **_sample_cells_2d(m),
                "NFE": fmt(m.sample_nfe), "samples/s": fmt(m.sample_throughput_per_s),
                "latency (ms)": fmt(m.sample_latency_ms),
                "density evals/s": fmt(d.density_throughput_per_s),
                "train (s)": fmt(r.train.train_seconds if r.train else None),
                "steps": fmt(r.train.train_steps if r.train else None),
            })
    return rows


def reference_row(recs: list[CellRecord]) -> dict[str, str] | None:
    """2D: the *true mixture* row, fresh samples from the real density scored the same way (the noise floor)."""
    for r in recs:
        ref = r.reference_sample_metrics
        if ref is not None:
            d = r.density or DensityResult()
            return {"family": "*true mixture*", "sampler": "exact draw", "seed": "–",
                    "NLL (nats)": pm(d.true_entropy_nats, d.true_entropy_se_nats) + " (H)", "KL (nats)": "0",
                    "ODE KL (nats)": "–", **_sample_cells_2d(ref), "NFE": "–", "samples/s": "–", "latency (ms)": "–",
                    "density evals/s": "–", "train (s)": "–", "steps": "–"}
    return None


def estimator_rows_2d(recs: list[CellRecord]) -> list[dict[str, str]]:
    """2D: claim T30's reference rows, one Gaussian and a KDE fitted to the training split, scored like the families
    (the columns of :func:`metrics_rows`)."""
    refs = next((r.reference_estimates for r in recs if r.reference_estimates), {})
    rows = []
    for name, e in refs.items():
        d, m = e.density, e.samples or SamplerResult()
        label = sample_verdicts.ESTIMATOR_LABELS.get(name, name)
        rows.append({"family": f"*{label}* (reference)", "sampler": "exact draw", "seed": "–",
                     "NLL (nats)": pm(d.test_nll_nats, d.test_nll_se_nats), "KL (nats)": pm(d.kl_nats, d.kl_se_nats),
                     "ODE KL (nats)": "–", **_sample_cells_2d(m), "NFE": "–", "samples/s": "–", "latency (ms)": "–",
                     "density evals/s": "–", "train (s)": fmt(e.seconds), "steps": "–"})
    return rows


def image_bpd(rec: CellRecord) -> tuple[float | None, float | None, str]:
    """(test bits/dim, its SE, kind): kind ``"exact"``, ``"bound"`` (an upper bound), or the
    record's likelihood kind when it has no bits/dim (value None)."""
    d = rec.density or DensityResult()
    if d.test_bpd is not None:
        return d.test_bpd, d.test_bpd_se, "exact"
    if d.test_bpd_bound is not None:
        return d.test_bpd_bound, d.test_bpd_bound_se, "bound"
    return None, None, rec.likelihood_kind or "none"


def primary_fid(m: SamplerResult) -> tuple[str | None, float | None]:
    """(split, FID) against the first reference split (the suite's ``eval.fid_reference[0]``)."""
    for split, v in m.fid.items():
        return split, v
    return None, None


def image_metrics_rows(recs: list[CellRecord]) -> list[dict[str, str]]:
    """Images: per family and sampler, bits/dim, FID/KID per reference, precision/recall,
    density/coverage, FD_classifier, novelty and costs."""
    rows = []
    for r in recs:
        value, se, kind = image_bpd(r)
        bpd = "–" if value is None else ("≤ " if kind == "bound" else "") + pm(value, se)
        for sampler, m in r.samplers.items():
            row = {"family": r.family, "sampler": sampler, "bits/dim": bpd}
            for split in (list(m.fid) or ["test"]):
                row[f"FID_{count(m.n_samples)} ({split})"] = fmt(m.fid.get(split), 4)
                row[f"KID ({split})"] = (f"{fmt(m.kid_mean[split])} ± {fmt(m.kid_std.get(split), 2)}"
                                         if split in m.kid_mean else "–")
            is_ = m.inception_score or {}
            row.update({
                "precision": fmt(m.precision), "recall": fmt(m.recall),
                "density": fmt(m.density), "coverage": fmt(m.coverage),
                "HF energy ratio": fmt(m.hf_energy_ratio), "Laplacian ratio": fmt(m.laplacian_var_ratio),
                "IS": (f"{fmt(is_['inception_score_mean'])} ± {fmt(is_['inception_score_std'], 2)}"
                       if is_.get("available") else "n/a"),
                "FD_classifier": fmt(m.fd_classifier, 4),
                "mode KL (classes)": fmt(m.mode_kl_nats),
                "classes hit": f"{m.modes_hit}/{m.n_modes}" if m.modes_hit is not None else "–",
                "novelty": fmt(m.novelty_ratio), "copies": fmt(m.copy_fraction),
                "NFE": fmt(m.sample_nfe), "samples/s": fmt(m.sample_throughput_per_s),
                "ms/sample": fmt(1e-3 * m.sample_us_per_sample) if m.sample_us_per_sample else "–",
                "train (s)": fmt(r.train.train_seconds if r.train else None),
            })
            rows.append(row)
    return rows


def dataset_rows_2d(by_ds: dict[str, list[CellRecord]]) -> list[dict[str, str]]:
    """2D: one row per dataset: components, split sizes, the true entropy."""
    rows = []
    for ds, rs in by_ds.items():
        i = rs[0].dataset_info
        rows.append({"dataset": ds, "components": fmt(i.get("components")),
                     "train/val/test": f"{i['n_train']}/{i['n_val']}/{i['n_test']}",
                     "true entropy H (nats)": pm(i["true_entropy_nats"], i["true_entropy_se_nats"]),
                     "H by Monte Carlo with": f"{i['entropy_mc_samples']:,} samples"})
    return rows


def protocol_lines(recs: list[CellRecord]) -> list[str]:
    """The metric fingerprint shared by a dataset's image metrics, and a warning per value that differs.

    Every sampler's metrics carry ``metric_protocol`` (:mod:`bench.evaluation.protocol`); the
    first one is shown, and each other one is compared with it. A difference in a
    value-changing entry (extractor, N, seed, reference statistics, KID/PRDC settings)
    is listed as a protocol mismatch and emitted as a ``ProtocolMismatchWarning``.
    """
    fps = [(f"{r.family}/{s}", m.metric_protocol) for r in recs for s, m in r.samplers.items() if m.metric_protocol]
    if not fps:
        return []
    name0, fp0 = fps[0]
    ext = fp0["extractor"]
    refs = "; ".join(f"{split}: {ref['dataset'].get('variant')} {split} split, first {ref['n']} images"
                     f"{' (whole split)' if ref.get('whole_split') else ''}, "
                     f"statistics SHA-256 `{ref['stats_sha256'][:16]}…`"
                     for split, ref in fp0["references"].items())
    lines = ["**Metric fingerprint** (how every number above was computed): "
             f"extractor `{ext['name']}` (weights `{ext['weights']}`, SHA-256 `{ext['weights_sha256'][:16]}…`), "
             f"resize `{ext['resize']}`, input `{ext['input_range']}`; N = {fp0['n']} samples, seed {fp0['seed']}, "
             f"KID subset size {fp0.get('kid_subset_size')}, precision/recall k = {fp0.get('pr_k')}; "
             f"references: {refs}; "
             f"features on {fp0.get('device')}."]
    is_reason = next((m.inception_score["reason"] for r in recs for m in r.samplers.values()
                      if m.inception_score and not m.inception_score.get("available")), None)
    if is_reason:
        lines.append(f"IS (n/a above): {is_reason}")
    for name, fp in fps[1:]:
        diff = protocol.warn_if_incomparable(fp0, fp, f"metrics of {name0} and {name}")
        if diff:
            lines.append(f"⚠ **protocol mismatch**, {name} vs {name0}: " + "; ".join(diff))
    return lines


def fingerprint_text(rec: CellRecord) -> str:
    """The dataset fingerprint of a record, as inline code."""
    return f"Dataset fingerprint: `{json.dumps(rec.dataset_info.get('fingerprint'))}`"


@dataclass(frozen=True)
class Column:
    """One column of the headline table.

    Attributes:
        label: the header, without its unit (the unit comes from :func:`bench.store.schema.metric_info`).
        metrics: flattened metric columns. With ``mix``, each row shows the first one it has (an exact
            value, else its bound: ``test_nll_nats`` then ``test_nll_bound_nats``); without, the first one
            any row of the dataset has is used for every row (one reference split per column).
        scale: factor applied to the value (µs -> ms: 1e-3), with ``unit`` replacing the declared unit.
    """

    label: str
    metrics: tuple[str, ...]
    mix: bool = False
    scale: float = 1.0
    unit: str | None = None


_COST = Column("cost", ("sample_us_per_sample",), scale=1e-3, unit="ms/sample")
#: the headline table's columns per modality (every metric's unit and direction come from bench.store.schema)
HEADLINE = {
    "vector": (Column("NLL", ("test_nll_nats", "test_nll_bound_nats"), mix=True),
               Column("KL", ("kl_nats", "kl_bound_nats"), mix=True), Column("MMD²", ("mmd2",)),
               Column("MMD² (multi-scale)", ("mmd2_multiscale",)),
               Column("precision", ("precision",)), Column("recall", ("recall",)),
               Column("mode coverage", ("mode_coverage",)), Column("−log p_data", ("sample_nll_data_nats",)),
               Column("mode KL", ("mode_kl_nats",)), Column("NFE", ("sample_nfe",)), _COST,
               Column("samples/s", ("sample_throughput_per_s",)), Column("train", ("train_seconds",))),
    "image": (Column("bits/dim", ("test_bpd", "test_bpd_bound"), mix=True), Column("FID", ("fid_test", "fid_train")),
              Column("KID", ("kid_test_mean", "kid_train_mean")), Column("precision", ("precision",)),
              Column("recall", ("recall",)), Column("density", ("density",)), Column("coverage", ("coverage",)),
              Column("mode KL", ("mode_kl_nats",)), Column("NFE", ("sample_nfe",)), _COST,
              Column("samples/s", ("sample_throughput_per_s",)), Column("train", ("train_seconds",))),
}


def _header(col: Column, metric: str) -> str:
    info = schema.metric_info(metric)
    unit = col.unit if col.unit is not None else (info.unit if info else "")
    split = metric.split("_")[1] if not col.mix and metric.startswith(("fid_", "kid_")) else None
    label = f"{col.label} ({split})" if split else col.label
    return label if unit in ("", "fraction", col.label, "NFE") else f"{label} ({unit})"


def headline_rows(stats, dataset: str, modality: str) -> tuple[list[dict[str, str]], bool]:
    """The headline table of ``dataset``: one row per family and sampler, the winner per column in bold.

    A cell is ``mean ± std`` over seeds (sample std, ddof = 1) where the cell ran n ≥ 2 seeds, else
    the value ± its own standard error where the metric has one (NLL, KL, bits/dim), else the value;
    3 significant digits (2 for the error), and an upper bound is written ``≤ value``. The winner of
    a column with a direction (``better`` in :mod:`bench.store.schema`) is the best mean, in bold (all of
    them on a tie); an upper bound competes with its value: a bound below every exact value is
    certainly the best. Facts (NFE, training wall time) have no winner and no ± .

    Args:
        stats: :func:`bench.analysis.aggregate.seed_stats` of the run's ok records (a DataFrame).
        dataset: the dataset whose rows to build.
        modality: ``"vector"`` or ``"image"`` (which columns, :data:`HEADLINE`).

    Returns:
        (rows, several_seeds): the rows, and whether some cell has n ≥ 2 seeds.
    """
    s = stats[stats["dataset"] == dataset]
    lookup = {(r.family, r.sampler, r.metric): r for r in s.itertuples()}
    present = set(s["metric"])
    pairs = [(f, smp) for f, smp in dict.fromkeys(zip(s["family"], s["sampler"])) if smp != CELL]
    cells: dict[tuple[str, str], dict[str, tuple]] = {p: {} for p in pairs}
    headers: list[tuple[str, Column]] = []
    for col in HEADLINE[modality]:
        candidates = col.metrics if col.mix else tuple(m for m in col.metrics if m in present)[:1]
        if not candidates:
            continue
        header = _header(col, candidates[0])
        headers.append((header, col))
        for family, sampler in pairs:
            row = next((lookup[family, smp, m] for m in candidates for smp in (sampler, CELL)
                        if (family, smp, m) in lookup), None)
            if row is not None:
                cells[family, sampler][header] = (row, "bound" in row.metric)
    several = bool(len(s) and int(s["n"].max()) > 1)
    best: dict[str, float] = {}
    for header, _ in headers:
        found = [c[header][0] for c in cells.values() if header in c]
        better = next((r.better for r in found if isinstance(r.better, str)), None)
        if better and len(found) > 1:
            means = [float(r.mean) for r in found]
            best[header] = min(means) if better == "lower" else max(means)
    rows = []
    for (family, sampler), c in cells.items():
        n = max((int(r.n) for r, _ in c.values()), default=0)
        out = {"family": family, "sampler": sampler, "seeds": str(n)}
        for header, col in headers:
            if header not in c:
                out[header] = "–"
                continue
            r, bound = c[header]
            err = r.std if r.n > 1 else r.se
            value = r.mean * col.scale
            text = fmt(int(value) if not isinstance(r.better, str) and float(value).is_integer() else value)
            if isinstance(r.better, str) and err is not None and err == err and not (r.n > 1 and r.std == 0):
                text += f" ± {fmt(err * col.scale, 2)}"
            text = ("≤ " if bound else "") + text
            out[header] = f"**{text}**" if header in best and float(r.mean) == best[header] else text
        rows.append(out)
    return rows, several


def _sec(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def _err(measured: float | None, estimated: float | None) -> str:
    if measured is None or not estimated:
        return "–"
    return f"{100 * (measured / estimated - 1):+.0f}%"


def estimate_rows(recs: list[CellRecord]) -> list[dict[str, str]]:
    """The plan's estimate against the measured wall time, per cell and stage, in seconds, and the total.

    Error = measured / estimated - 1. The evaluate column compares the estimate's evaluate and
    one-off parts (reference statistics, classifier, extractor load) with the measured evaluate
    stage, where they happen. Cells without an estimate (run without a plan) are left out.
    """
    rows, est_sum, wall_sum = [], 0.0, 0.0
    for r in recs:
        e = r.estimate
        if e is None or e.est_total_seconds is None or r.wall_seconds is None:
            continue
        s = r.stage_seconds
        pairs = {"train": (s.get("train"), e.est_train_seconds), "sample": (s.get("sample"), e.est_sample_seconds),
                 "density": (s.get("density"), e.est_density_seconds),
                 "evaluate": (s.get("evaluate"), (e.est_evaluate_seconds or 0) + (e.est_one_off_seconds or 0))}
        row = {"cell": r.cell_id, "status": r.status}
        for stage, (got, want) in pairs.items():
            row[f"{stage} s (est.)"] = f"{_sec(got)} ({_sec(want)})"
        row.update({"total s": _sec(r.wall_seconds), "estimated s": _sec(e.est_total_seconds),
                    "error": _err(r.wall_seconds, e.est_total_seconds)})
        rows.append(row)
        est_sum += e.est_total_seconds
        wall_sum += r.wall_seconds
    if rows:
        blank = {k: "" for k in rows[0]}
        rows.append({**blank, "cell": "**all cells**", "total s": _sec(wall_sum), "estimated s": _sec(est_sum),
                     "error": _err(wall_sum, est_sum)})
    return rows


# --------------------------------------------------------------------------- issue 11: the rest of the taxonomy
#: one sentence per rule, shown under the table (the rules themselves are in bench.analysis.verdicts and
#: bench.analysis.taxonomy)
TAXONOMY_REST_RULES = [
    "*Final quality*: KL(p_data‖p_model) in nats where the density is normalized, else its upper bound from the "
    "NLL bound, else the default sampler's MMD²; mean ± sample std over seeds, CV = std / |mean|.",
    "*Diverged*: a NaN/inf loss or final quality. *Collapsed*: the default sampler hits fewer modes (2D components, "
    "image classes; at least half their share, no σ gate) than 99% of real sample sets of the same N. The training "
    "claims (T14, T15) and collapse (T20) are judged in the training verdicts section.",
    "*Time to quality*: training steps and seconds until the monitored validation quality (KL for exact densities, "
    "else MMD² of the cheapest sampler; images: FD_classifier) stays within max({rel:g} × |final value|, an absolute "
    "floor: {abs_kl:g} nats, MMD² {abs_mmd:g}) of its final value; gain/s = (first − final) / training seconds.",
    "*Latent inference* x → z: `to_latent` timed like sampling (median over repeats), NFE per call, and the "
    "reconstruction x → z → x in data units (RMSE per coordinate); families without it say none and are not timed.",
    f"*Sample quality claim* (T19, diffusion rivals or exceeds GANs): {sample_verdicts.RIVAL_RULE}.",
    f"*Expressiveness claim* (T21, flows): {sample_verdicts.EXPRESSIVE_RULE}.",
]


def _mean_std(values: list[float], digits: int = 3) -> str:
    if not values:
        return "–"
    from statistics import mean, stdev

    return f"{fmt(mean(values), digits)} ± {fmt(stdev(values), 2)}" if len(values) > 1 else fmt(values[0], digits)


def _latent_text(recs: list[CellRecord]) -> tuple[str, str, str]:
    """(kind and NFE, ms per batch and examples/s, reconstruction RMSE) of a family's latent inference."""
    parts = [r.latent for r in recs if r.latent is not None]
    if not parts:
        return "–", "–", "–"
    first = parts[0]
    if first.latent_kind == "none":
        return "none", "–", "–"
    rmse = [p.latent_recon_rmse for p in parts if p.latent_recon_rmse is not None]
    return (f"{first.latent_kind} (NFE {first.latent_nfe})",
            f"{fmt(first.latent_batch_ms)} ms / {first.latent_batch} ({fmt(first.latent_throughput_per_s)}/s)",
            _mean_std(rmse))


def taxonomy_rest_rows(recs: list[CellRecord]) -> tuple[list[dict[str, str]], list[str]]:
    """The remaining taxonomy columns for one dataset's records (all seeds, failed ones included): final
    quality and its spread, divergence and collapse, time to quality, latent inference, and the
    sample-quality and expressiveness verdicts; and the rules, one sentence each."""
    groups = taxonomy.by_family(recs)
    ok_all = [r for r in recs if r.ok]
    ds = ok_all[0].dataset if ok_all else ""
    ok_groups = sample_verdicts.ok_groups(ok_all)
    t19 = {v.family: v for v in sample_verdicts.rival_verdicts({ds: ok_all})} if ok_all else {}
    t21 = {v.family: v for v in sample_verdicts.expressiveness_verdicts(ds, ok_groups)} if ok_all else {}
    rows = []
    for family, rs in groups.items():
        st = taxonomy.stability(rs)
        cost = taxonomy.training_cost(rs)
        kind, timing, recon = _latent_text([r for r in rs if r.ok])
        row = {
            "family": family,
            "seeds": str(len(st.seeds)),
            "final quality": (f"{taxonomy.QUALITY_LABELS.get(st.metric, st.metric)} "
                              f"{_mean_std(st.values, 4)}" if st.metric else "–"),
            "CV": fmt(st.cv, 2),
            "diverged": fmt(st.diverged_fraction, 2),
            "collapsed": fmt(st.collapsed_fraction, 2),
            "time to quality": (f"{fmt(cost.steps, 3)} steps, {fmt(cost.seconds, 2)} s "
                                f"({taxonomy.MONITOR_LABELS.get(cost.metric, cost.metric)})" if cost.n else "–"),
            "train (s)": fmt(cost.train_seconds, 3),
            "gain/s": fmt(cost.gain_per_s, 2),
            "latent": kind,
            "latent cost": timing,
            "recon RMSE": recon,
        }
        row["sample quality"] = (f"T19 {t19[family].verdict} ({t19[family].evidence.split('; margin')[0]})"
                                 if family in t19 else "–")
        row["expressiveness"] = (f"T21 {t21[family].verdict} ({t21[family].evidence.split('; ')[0]})"
                                 if family in t21 else "–")
        rows.append(row)
    rules = [s.format(rel=taxonomy.SETTLE_REL,
                      abs_kl=taxonomy.SETTLE_ABS["val_kl_nats"], abs_mmd=taxonomy.SETTLE_ABS["val_mmd2"])
             for s in TAXONOMY_REST_RULES]
    return rows, rules


# --------------------------------------------------------------------------- issue 23: the training verdicts' tables
def _lr(scale: float) -> str:
    return f"lr ×{scale:g}"


def _count_text(k: int, n: int) -> str:
    return f"{k}/{n} ({k / n:.0%})" if n else "–"


def training_rows(groups: dict[str, list[training_verdicts.Run]]) -> list[dict[str, str]]:
    """One row per registered family (:func:`bench.analysis.training_verdicts.family_runs`, failures marked): its
    runs and failed runs (per learning rate where there are several), why they failed, collapsed runs, the
    oscillation index, the convergence guard at its own learning rate, and the texts' training claim."""
    scales = sorted({r.lr_scale for rs in groups.values() for r in rs})
    rows = []
    for family, runs in groups.items():
        judged = [r for r in runs if r.failed is not None]
        row = {"family": family, "runs": str(len(judged)),
               "failed": _count_text(sum(bool(r.failed) for r in judged), len(judged))}
        if len(scales) > 1:
            for s in scales:
                at = [r for r in judged if r.lr_scale == s]
                row[f"failed at {_lr(s)}"] = f"{sum(bool(r.failed) for r in at)}/{len(at)}" if at else "–"
        col = [r for r in runs if r.collapsed is not None]
        reasons = [x for r in judged for x in r.reasons]
        osc = sorted(r.oscillation for r in runs if r.oscillation is not None)
        own = [r.record for r in runs if r.lr_scale == 1.0 and r.record.ok] or [r.record for r in runs if r.record.ok]
        ok, why = training_verdicts.converged(own)
        tb = runs[0].record.textbook or {}
        claims = [c for c in training_verdicts.claims_of(runs[0].record) if c in ("T14", "T15", "T20")]
        row.update({
            "diverged": str(sum(r.diverged for r in runs)),
            "collapsed": _count_text(sum(bool(r.collapsed) for r in col), len(col)),
            "worse fidelity": str(sum(x.startswith("fidelity") for x in reasons)),
            "worse coverage": str(sum(x.startswith("coverage") for x in reasons)),
            "oscillation index (median [IQR])": (f"{fmt(statistics.median(osc), 2)} [{fmt(osc[len(osc) // 4], 2)}, "
                                                 f"{fmt(osc[(3 * len(osc)) // 4], 2)}]" if osc else "–"),
            "converged (own lr)": f"{_reading(ok, why)}: {why}",
            "texts' claim": (f"{tb.get('training') or '–'} ({', '.join(claims)})" if claims else "no training claim"),
        })
        rows.append(row)
    return rows


def collapse_rows(by_ds: dict[str, list[CellRecord]]) -> list[dict[str, str]]:
    """Per dataset and family (a variant is its own row): the default sampler's modes hit (2D components, image
    classes: at least half their share) per seed against the count 99% of real sample sets of the same N reach,
    the mode KL against real sets', and the collapsed seeds."""
    rows = []
    for ds, recs in by_ds.items():
        for family, rs in taxonomy.by_family([r for r in recs if r.ok]).items():
            ms = [r.primary()[1] for r in sorted(rs, key=lambda r: r.seed)]
            ms = [m for m in ms if m.modes_hit is not None]
            if not ms:
                continue
            what = "classes" if rs[0].modality == "image" else "modes"
            col = [taxonomy.collapsed(r) for r in rs]
            col = [c for c in col if c is not None]
            kl = [m.mode_kl_nats for m in ms]
            rows.append({
                "dataset": ds, "family": family, "seeds": str(len(ms)),
                f"{what} covered (per seed)": f"{', '.join(str(m.modes_hit) for m in ms)} of {ms[0].n_modes}",
                "real sets of the same N reach (99%)": str(ms[0].modes_hit_real_q01),
                "mode KL (nats, median)": fmt(statistics.median(kl), 3),
                "real: mean / 99th pct.": (f"{fmt(ms[0].mode_kl_real_mean_nats, 2)} / "
                                           f"{fmt(ms[0].mode_kl_real_q99_nats, 2)}"),
                "collapsed": f"{sum(col)}/{len(col)}",
            })
    return rows


def _reading(ok: bool, why: str) -> str:
    """The convergence guard's reading in one word: yes (settled), no (still improving), unknown."""
    return "yes" if ok else ("unknown" if why.startswith("convergence unknown") else "no")


def convergence_rows(by_ds: dict[str, list[CellRecord]]) -> list[dict[str, str]]:
    """Per dataset and family: the convergence guard's reading (:func:`bench.analysis.training_verdicts.converged`)
    on its ok runs."""
    rows = []
    for ds, recs in by_ds.items():
        for family, rs in taxonomy.by_family([r for r in recs if r.ok]).items():
            ok, why = training_verdicts.converged(rs)
            rows.append({"dataset": ds, "family": family, "runs": str(len(rs)), "converged": _reading(ok, why),
                         "monitor over the last fifth of training": why})
# --------------------------------------------------------------------------- issue 26: samples and likelihoods
def _mean_se(values: list[float], own: list[float | None] | None = None) -> str:
    e = sample_verdicts.estimate(values, own)
    return "–" if e is None else pm(e.mean, e.se)


def _solver_error_text(dd: list[DensityResult], image: bool) -> str:
    """The largest solver error over seeds (:func:`~bench.analysis.sample_verdicts.ode_solver_error`), in the
    table's unit, with the steps it compares; "not settled" where any seed's is beyond its NLL's SE; "–" without
    the check."""
    worst = sample_verdicts.worst_ode_solver_error(dd)
    if worst is None:
        return "–"
    e, d, to_bpd = worst
    text = f"≈ {fmt((to_bpd if image else 1.0) * e)} ({d.ode_check_steps} → {d.ode_steps} steps)"
    unsettled = sum(sample_verdicts.ode_unsettled(x) for x in dd)
    return text + (f", not settled in {unsettled} of {len(dd)} seeds" if unsettled else "")


def ode_rows(recs: list[CellRecord]) -> list[dict[str, str]]:
    """The probability-flow ODE's exact likelihood per family, beside its bound (ELBO/IWAE) where it has one, with
    what it cost: NFE per point, the trace estimator, ms per test point, and in 2D the ODE density's integral;
    the solver's error at its step count, estimated from half the steps. Means ± SE over seeds (one seed: the
    test-set SE)."""
    rows = []
    for fam, rs in sample_verdicts.ok_groups(recs).items():
        dd = [r.density for r in rs if r.density and r.density.ode_test_nll_nats is not None]
        if not dd:
            continue
        image = dd[0].ode_test_bpd is not None
        unit = "bits/dim" if image else "nats"
        est = sample_verdicts.estimate([d.ode_test_bpd if image else d.ode_test_nll_nats for d in dd],
                                       [d.ode_test_bpd_se if image else d.ode_test_nll_se_nats for d in dd])
        ode = "–" if est is None else pm(est.mean, est.se)
        if image and est is not None and sample_verdicts.impossible_bpd(est.mean, est.se):
            ode += " (below 0: not a likelihood, too few NFE)"
        bound = _mean_se([d.test_bpd_bound if image else d.test_nll_bound_nats for d in dd
                          if (d.test_bpd_bound if image else d.test_nll_bound_nats) is not None],
                         [d.test_bpd_bound_se if image else d.test_nll_bound_se_nats for d in dd])
        integral = [d.ode_log_integral_nats for d in dd if d.ode_log_integral_nats is not None]
        rows.append({
            "family": fam, "seeds": str(len(dd)), f"ODE NLL ({unit})": ode,
            f"bound ({unit})": "–" if bound == "–" else f"≤ {bound} ({dd[0].bound_name})",
            "solver error": _solver_error_text(dd, image),
            "NFE per point": fmt(dd[0].ode_nfe),
            "trace": {"exact": "exact (D backward passes)", "hutchinson": "Hutchinson (1 backward pass)"}.get(
                dd[0].ode_trace or "", "–"),
            "ms per point": fmt(sum(d.ode_ms_per_example for d in dd) / len(dd)),
            "∫p dx": (", ".join(fmt(math.exp(v), 4) for v in integral) + f" ({dd[0].ode_integral_grid}² grid)"
                      if integral else "–"),
            "test points": fmt(dd[0].ode_test_n),
        })
    return rows


def passes_rows(recs: list[CellRecord]) -> list[dict[str, str]]:
    """Sequential network passes per sample for every family and sampler (first seed), beside the wall clock per
    sample, the parameter count and samples/s at each batch of the batch sweep."""
    first = [r for r in recs if r.ok and r.seed == min(x.seed for x in recs if x.ok)]
    if not first:
        return []
    fewest = min((m.sample_nfe for r in first for m in r.samplers.values() if m.sample_nfe), default=None)
    dims = next((r.density.dims for r in first if r.density and r.density.dims), None)
    batches = sorted({int(b) for r in first for m in r.samplers.values() for b in m.batch_sweep_per_s})
    rows = []
    for r in first:
        for name, m in r.samplers.items():
            row = {"family": r.family, "sampler": name, "NFE (sequential passes)": fmt(m.sample_nfe),
                   "× the fewest": fmt(m.sample_nfe / fewest) if m.sample_nfe and fewest else "–",
                   "D": fmt(dims), "parameters": f"{r.train.parameters:,}" if r.train and r.train.parameters else "–",
                   "ms per sample": fmt(1e-3 * m.sample_us_per_sample) if m.sample_us_per_sample else "–"}
            for b in batches:
                row[f"samples/s at batch {b}"] = fmt(m.batch_sweep_per_s.get(str(b)))
            rows.append(row)
    return rows


def blur_rows(recs: list[CellRecord]) -> list[dict[str, str]]:
    """Images: blur against the test set per family and sampler: the two ratios (< 1 blurrier, > 1 sharper or
    noisier) and their |log|, means ± SE over seeds (one seed: the delta-method SE of the log)."""
    rows = []
    for fam, rs in sample_verdicts.ok_groups(recs).items():
        for name in rs[0].samplers:
            ms = [r.samplers[name] for r in rs if name in r.samplers and r.samplers[name].hf_energy_ratio is not None]
            if not ms:
                continue
            row = {"family": fam, "sampler": name, "seeds": str(len(ms))}
            for label, ratio, se in (("HF energy", "hf_energy_ratio", "hf_energy_log_ratio_se"),
                                     ("Laplacian variance", "laplacian_var_ratio", "laplacian_log_ratio_se")):
                logs = [math.log(getattr(m, ratio)) for m in ms if getattr(m, ratio) and getattr(m, ratio) > 0]
                e = sample_verdicts.estimate(logs, [getattr(m, se) for m in ms])
                row[f"{label} ratio"] = "–" if e is None else fmt(math.exp(e.mean))
                row[f"|log| {label}"] = "–" if e is None else pm(abs(e.mean), e.se)
            rows.append(row)
    return rows


def theis_rows(recs: list[CellRecord]) -> list[dict[str, str]]:
    """Images: Theis et al.'s mixture 0.01 p_model + 0.99 noise per family with an exact likelihood: bits/dim of the
    model and of the mixture on the same test images, the bound log2(100)/D, and FID/KID of the model's samples and
    of the mixture's."""
    rows = []
    for fam, rs in sample_verdicts.ok_groups(recs).items():
        dd = [r.density for r in rs if r.density and r.density.theis_test_bpd is not None]
        if not dd:
            continue
        d0 = dd[0]
        model_bpd = [d.theis_test_bpd - d.theis_bpd_shift for d in dd]
        rows.append({
            "family": fam, "seeds": str(len(dd)), "bits/dim (model)": _mean_se(model_bpd),
            "bits/dim (mixture)": _mean_se([d.theis_test_bpd for d in dd]),
            "shift": fmt(sum(d.theis_bpd_shift for d in dd) / len(dd), 4),
            "bound log2(100)/D": fmt(math.log2(1 / d0.theis_weight) / d0.dims, 4) if d0.dims else "–",
            "FID (model)": _mean_se([d.theis_model_fid for d in dd if d.theis_model_fid is not None],
                                    [d.theis_model_fid_se for d in dd]),
            "FID (mixture)": _mean_se([d.theis_fid for d in dd if d.theis_fid is not None]),
            "KID (mixture)": _mean_se([d.theis_kid_mean for d in dd if d.theis_kid_mean is not None],
                                      [d.theis_kid_std for d in dd]),
        })
    return rows


def estimator_rows_image(recs: list[CellRecord]) -> list[dict[str, str]]:
    """Images: claim T30's reference rows (one Gaussian, a KDE on dequantized pixels) in bits/dim, beside the
    families' bits/dim (exact, ODE, or bounds) of the first seed."""
    refs = next((r.reference_estimates for r in recs if r.reference_estimates), {})
    rows = []
    for name, e in refs.items():
        d = e.density
        rows.append({"model": f"*{sample_verdicts.ESTIMATOR_LABELS.get(name, name)}* (reference)",
                     "bits/dim": pm(d.test_bpd, d.test_bpd_se), "kind": "exact (dequantized: an upper bound)",
                     "bandwidth": fmt(e.bandwidth) if e.bandwidth else "–", "fitted on": f"{e.fit_n:,}",
                     "seconds": fmt(e.seconds)})
    for fam, rs in sample_verdicts.ok_groups(recs).items():
        v, se, unit, kind = sample_verdicts.likelihood(rs[0])
        if v is not None:
            rows.append({"model": fam, "bits/dim": ("≤ " if kind == "bound" else "") + pm(v, se), "kind": kind,
                         "bandwidth": "–", "fitted on": "–", "seconds": "–"})
    return rows
