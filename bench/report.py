"""``report.md`` and figures for a run, built from its records alone (no models needed).

The report reproduces the textbook taxonomy from measured numbers: for each family
the likelihood it exposes (with the measured value) and its sampling cost (NFE,
samples/s), and for each textbook claim whether the measurement agrees, with the
ratio behind the verdict.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.results import RunDir, summary_frame, write_json  # noqa: E402

# The textbook table: family -> (likelihood, sampling).
TEXTBOOK = {
    "autoregressive": ("exact", "slow (sequential)"),
    "vae": ("ELBO bound", "fast"),
    "gan": ("none", "fast"),
    "flow": ("exact", "fast"),
    "diffusion": ("ELBO bound", "slow (iterative)"),
    "energy": ("unnormalized", "slow (MCMC)"),
    "score": ("none explicit", "slow (SDE/ODE)"),
}
TEXTBOOK_KIND = {"exact": "exact", "ELBO bound": "bound", "none": "none", "unnormalized": "unnormalized",
                 "none explicit": "none"}
SLOW_RATIO = 10.0  # a family samples "slow" when its cost per sample is >= 10x the fastest family's
FAMILY_ORDER = list(TEXTBOOK)


def _fmt(v, digits: int = 3) -> str:
    """``digits`` significant digits; scientific notation for very large or small values."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if v != 0 and (abs(v) >= 10 ** max(digits, 4) or abs(v) < 1e-3):
        return f"{v:.{digits - 1}e}"
    return f"{v:#.{digits}g}".rstrip(".")


def _pm(v, se) -> str:
    if v is None:
        return "–"
    return f"{_fmt(v, 4)} ± {_fmt(se, 2)}" if se is not None else _fmt(v, 4)


def _table(rows: list[dict]) -> str:
    if not rows:
        return "_no rows_\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _order(families) -> list[str]:
    return sorted(families, key=lambda f: (FAMILY_ORDER.index(f) if f in FAMILY_ORDER else 99, f))


def _primary(rec: dict) -> tuple[str | None, dict]:
    samplers = rec.get("samplers") or {}
    name = next(iter(samplers), None)
    return name, samplers.get(name, {})


def _likelihood_value(rec: dict) -> str:
    """The measured likelihood of a record, as text."""
    d = rec.get("density") or {}
    kind = rec.get("likelihood_kind")
    if kind == "exact" and d.get("test_bpd") is not None:
        return f"exact: {_pm(d['test_bpd'], d.get('test_bpd_se'))} bits/dim"
    if kind == "bound" and d.get("test_bpd_bound") is not None:
        return f"bound: ≤ {_pm(d['test_bpd_bound'], d.get('test_bpd_bound_se'))} bits/dim ({d.get('bound_name')})"
    if kind == "unnormalized" and d.get("bpd_unavailable"):
        return "energy E(x) only: no bits/dim (log Z intractable)"
    if kind == "exact" and d.get("test_nll_nats") is not None:
        return f"exact: NLL {_pm(d['test_nll_nats'], d.get('test_nll_se_nats'))} nats"
    if kind == "bound" and d.get("test_nll_bound_nats") is not None:
        return f"bound: NLL ≤ {_pm(d['test_nll_bound_nats'], d.get('test_nll_bound_se_nats'))} nats ({d.get('bound_name')})"
    if kind == "unnormalized":
        if d.get("test_nll_nats") is not None:
            return (f"energy E(x) only; NLL {_pm(d['test_nll_nats'], d.get('test_nll_se_nats'))} nats after 2D "
                    f"quadrature ({d.get('quadrature_evaluations'):,} energy evaluations)")
        return "energy E(x) only"
    return "none"


def _likelihood_check(rec: dict) -> tuple[str, str]:
    """(measured normalization text, verdict) for the textbook likelihood claim of a record.

    Where the density could be integrated (2D), the verdict rests on that measurement:
    an exact density integrates to 1, exp(bound) to less than 1, exp(-E) to exp(log Z) != 1.
    Elsewhere it rests on the methods the family exposes.
    """
    d = rec.get("density") or {}
    kind = rec.get("likelihood_kind")
    book = TEXTBOOK_KIND.get(TEXTBOOK.get(rec["family"], ("?",))[0])
    li, err = d.get("log_integral_nats"), d.get("log_integral_error_nats") or 0.0
    if li is None:
        return "–", "agrees" if book == kind else "disagrees"
    integral = f"{_fmt(math.exp(li), 4)}" if abs(li) < 20 else f"e^{_fmt(li, 3)}"
    grid = f"{d.get('integral_grid')}² grid"
    if kind == "exact":
        ok = abs(li) <= max(0.01, 3 * err)
        return f"∫p dx = {integral} ({grid})", "agrees" if ok and book == "exact" else "disagrees"
    if kind == "bound":
        b = d.get("integral_of", "bound").upper()
        if li + err >= 0:
            return (f"∫exp({b}) dx = {integral} ± {_fmt(err, 2)} nats ({grid}): the per-point estimate is too noisy "
                    "to integrate", "inconclusive")
        return f"∫exp({b}) dx = {integral} < 1 ({grid})", "agrees" if book == "bound" else "disagrees"
    if kind == "unnormalized":
        ok = abs(li) > err
        return f"∫exp(−E) dx = {integral} ≠ 1 (log Z = {_fmt(li, 4)})", "agrees" if ok and book == "unnormalized" else "disagrees"
    return "–", "agrees" if book == kind else "disagrees"


def taxonomy_rows(recs: list[dict]) -> tuple[list[dict], list[str]]:
    """Rows of the measured taxonomy table for one dataset's ok records (one seed each),
    and one sentence per family comparing its sampling cost with the fastest family's."""
    costs = {}
    for r in recs:
        _, m = _primary(r)
        if m.get("sample_us_per_sample"):
            costs[r["family"]] = m["sample_us_per_sample"]
    if not costs:
        return [], []
    fastest = min(costs, key=costs.get)
    fastest_nfe = _primary(next(r for r in recs if r["family"] == fastest))[1].get("sample_nfe")
    rows, sentences = [], []
    for r in sorted(recs, key=lambda r: _order([r["family"]])[0]):
        fam = r["family"]
        book_lik, book_samp = TEXTBOOK.get(fam, ("?", "?"))
        sampler, m = _primary(r)
        norm_text, lik_verdict = _likelihood_check(r)
        ratio = costs.get(fam, math.nan) / costs[fastest]
        measured_slow = ratio >= SLOW_RATIO
        verdict = "agrees" if measured_slow == book_samp.startswith("slow") else "disagrees"
        rows.append({
            "family": fam,
            "textbook likelihood": book_lik,
            "measured likelihood": _likelihood_value(r),
            "normalization (measured)": norm_text,
            "likelihood claim": lik_verdict,
            "textbook sampling": book_samp,
            "NFE": m.get("sample_nfe"),
            "samples/s": _fmt(m.get("sample_throughput_per_s")),
            "batch-1 latency (ms)": _fmt(m.get("sample_latency_ms")),
            "cost per sample": "fastest" if fam == fastest else f"{_fmt(ratio)}× {fastest}",
            "sampling claim": f"{verdict} (measured {'slow' if measured_slow else 'fast'})",
        })
        if fam != fastest:
            sentences.append(f"- {fam} sampling ({sampler}) is {_fmt(ratio)}× slower per sample than {fastest} "
                             f"(NFE {m.get('sample_nfe')} vs {fastest_nfe}); this {verdict} with the textbook's "
                             f"\"{book_samp}\".")
    return rows, sentences


def metrics_rows(recs: list[dict]) -> list[dict]:
    """Per family and sampler: likelihood, KL, sample metrics, costs."""
    rows = []
    for r in sorted(recs, key=lambda r: _order([r["family"]])[0]):
        d = r.get("density") or {}
        for sampler, m in (r.get("samplers") or {}).items():
            nll = d.get("test_nll_nats")
            nll_txt = _pm(nll, d.get("test_nll_se_nats")) if nll is not None else (
                "≤ " + _pm(d["test_nll_bound_nats"], d.get("test_nll_bound_se_nats")) if d.get("test_nll_bound_nats") is not None else "–")
            kl = d.get("kl_nats")
            kl_txt = _pm(kl, d.get("kl_se_nats")) if kl is not None else (
                "≤ " + _pm(d["kl_bound_nats"], d.get("kl_bound_se_nats")) if d.get("kl_bound_nats") is not None else "–")
            rows.append({
                "family": r["family"], "sampler": sampler, "seed": r["seed"],
                "NLL (nats)": nll_txt, "KL (nats)": kl_txt,
                "MMD²": _fmt(m.get("mmd2")), "precision": _fmt(m.get("precision")), "recall": _fmt(m.get("recall")),
                "high-quality": _fmt(m.get("high_quality_fraction")),
                "modes": f"{m.get('modes_covered')}/{m.get('n_modes')}" if m.get("n_modes") else "–",
                "NFE": m.get("sample_nfe"), "samples/s": _fmt(m.get("sample_throughput_per_s")),
                "latency (ms)": _fmt(m.get("sample_latency_ms")),
                "density evals/s": _fmt(d.get("density_throughput_per_s")),
                "train (s)": _fmt((r.get("train") or {}).get("train_seconds")),
                "steps": (r.get("train") or {}).get("train_steps"),
            })
    return rows


def _reference_row(recs: list[dict]) -> dict | None:
    for r in recs:
        ref = r.get("reference_sample_metrics")
        if ref:
            return {"family": "*true mixture*", "sampler": "exact draw", "seed": "–",
                    "NLL (nats)": _pm((r.get("density") or {}).get("true_entropy_nats"),
                                      (r.get("density") or {}).get("true_entropy_se_nats")) + " (H)",
                    "KL (nats)": "0", "MMD²": _fmt(ref.get("mmd2")), "precision": _fmt(ref.get("precision")),
                    "recall": _fmt(ref.get("recall")), "high-quality": _fmt(ref.get("high_quality_fraction")),
                    "modes": f"{ref.get('modes_covered')}/{ref.get('n_modes')}", "NFE": "–", "samples/s": "–",
                    "latency (ms)": "–", "density evals/s": "–", "train (s)": "–", "steps": "–"}
    return None


def _image_bpd(rec: dict) -> tuple[float | None, float | None, str]:
    """(test bits/dim, its SE, kind): kind ``"exact"``, ``"bound"`` (an upper bound), or the
    record's likelihood kind when it has no bits/dim (value None)."""
    d = rec.get("density") or {}
    if d.get("test_bpd") is not None:
        return d["test_bpd"], d.get("test_bpd_se"), "exact"
    if d.get("test_bpd_bound") is not None:
        return d["test_bpd_bound"], d.get("test_bpd_bound_se"), "bound"
    return None, None, rec.get("likelihood_kind") or "none"


def image_metrics_rows(recs: list[dict]) -> list[dict]:
    """Per family and sampler: bits/dim, FID/KID per reference, precision/recall, density/coverage,
    FD_classifier, novelty and costs."""
    rows = []
    for r in sorted(recs, key=lambda r: _order([r["family"]])[0]):
        value, se, kind = _image_bpd(r)
        bpd = "–" if value is None else ("≤ " if kind == "bound" else "") + _pm(value, se)
        for sampler, m in (r.get("samplers") or {}).items():
            row = {"family": r["family"], "sampler": sampler, "bits/dim": bpd}
            for split in (_fid_splits(m) or ["test"]):
                n = m.get("n_samples")
                row[f"FID_{_k(n)} ({split})"] = _fmt(m.get(f"fid_{split}"), 4)
                row[f"KID ({split})"] = (f"{_fmt(m.get(f'kid_{split}_mean'))} ± {_fmt(m.get(f'kid_{split}_std'), 2)}"
                                         if m.get(f"kid_{split}_mean") is not None else "–")
            row.update({
                "precision": _fmt(m.get("precision")), "recall": _fmt(m.get("recall")),
                "density": _fmt(m.get("density")), "coverage": _fmt(m.get("coverage")),
                "IS": (f"{_fmt(m['inception_score']['inception_score_mean'])} ± "
                       f"{_fmt(m['inception_score']['inception_score_std'], 2)}"
                       if (m.get("inception_score") or {}).get("available") else "n/a"),
                "FD_classifier": _fmt(m.get("fd_classifier"), 4),
                "novelty": _fmt(m.get("novelty_ratio")), "copies": _fmt(m.get("copy_fraction")),
                "NFE": m.get("sample_nfe"), "samples/s": _fmt(m.get("sample_throughput_per_s")),
                "ms/sample": _fmt(1e-3 * m["sample_us_per_sample"]) if m.get("sample_us_per_sample") else "–",
                "train (s)": _fmt((r.get("train") or {}).get("train_seconds")),
            })
            rows.append(row)
    return rows


def protocol_lines(recs: list[dict]) -> list[str]:
    """The metric fingerprint shared by a dataset's image metrics, and a warning per value that differs.

    Every sampler's metrics carry ``metric_protocol`` (:mod:`bench.protocol`); the
    first one is shown, and each other one is compared with it. A difference in a
    value-changing entry (extractor, N, seed, reference statistics, KID/PRDC settings)
    is listed as a protocol mismatch and emitted as a ``ProtocolMismatchWarning``.
    """
    from bench import protocol

    fps = [(f"{r['family']}/{s}", m["metric_protocol"]) for r in recs
           for s, m in (r.get("samplers") or {}).items() if m.get("metric_protocol")]
    if not fps:
        return []
    name0, fp0 = fps[0]
    ext = fp0["extractor"]
    refs = "; ".join(f"{split}: {ref['dataset'].get('variant')} {split} split, first {ref['n']} images"
                     f"{' (whole split)' if ref.get('whole_split') else ''}, statistics SHA-256 `{ref['stats_sha256'][:16]}…`"
                     for split, ref in fp0["references"].items())
    lines = ["", "**Metric fingerprint** (how every number above was computed): "
             f"extractor `{ext['name']}` (weights `{ext['weights']}`, SHA-256 `{ext['weights_sha256'][:16]}…`), "
             f"resize `{ext['resize']}`, input `{ext['input_range']}`; N = {fp0['n']} samples, seed {fp0['seed']}, "
             f"KID subset size {fp0.get('kid_subset_size')}, precision/recall k = {fp0.get('pr_k')}; references: {refs}; "
             f"features on {fp0.get('device')}.", ""]
    is_reason = next((m["inception_score"]["reason"] for r in recs for m in (r.get("samplers") or {}).values()
                      if m.get("inception_score") and not m["inception_score"].get("available")), None)
    if is_reason:
        lines += [f"IS (n/a above): {is_reason}", ""]
    mismatches = []
    for name, fp in fps[1:]:
        diff = protocol.warn_if_incomparable(fp0, fp, f"metrics of {name0} and {name}")
        if diff:
            mismatches.append(f"- ⚠ **protocol mismatch**, {name} vs {name0}: " + "; ".join(diff))
    return lines + (mismatches + [""] if mismatches else [])


def _k(n) -> str:
    return "–" if not n else (f"{n // 1000}k" if n % 1000 == 0 else str(n))


def _fid_splits(m: dict) -> list[str]:
    """The reference splits a sampler's FID was computed against, in suite order."""
    return [k[len("fid_"):] for k in m if k.startswith("fid_")]


def _primary_fid(m: dict) -> tuple[str | None, float | None]:
    """FID against the first reference split (the suite's ``eval.fid_reference[0]``)."""
    for split in _fid_splits(m):
        return split, m.get(f"fid_{split}")
    return None, None


def figure_fid_vs_cost(recs: list[dict], out: Path) -> Path:
    """fid_vs_cost.png: FID against sampling cost (ms/sample at the large batch, log x), labelled with NFE."""
    families = _order({r["family"] for r in recs})
    colours = {f: plt.cm.tab10(i % 10) for i, f in enumerate(families)}
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for r in recs:
        for sampler, m in (r.get("samplers") or {}).items():
            split, fid = _primary_fid(m)
            if fid is None or not m.get("sample_us_per_sample"):
                continue
            cost = 1e-3 * m["sample_us_per_sample"]
            ax.scatter(cost, fid, color=colours[r["family"]], s=40, zorder=3)
            label = f"{r['family']}" + ("" if sampler == "default" else f"/{sampler}") + f" (NFE {m.get('sample_nfe')})"
            ax.annotate(label, (cost, fid), fontsize=6, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("sampling cost (ms per sample, large batch, log scale)")
    n = next((m.get("n_samples") for r in recs for m in (r.get("samplers") or {}).values()), None)
    ax.set_ylabel(f"FID_{_k(n)} (lower is better)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out / "fid_vs_cost.png")


def figure_bpd(recs: list[dict], out: Path) -> Path | None:
    """bpd.png: test bits/dim per family, solid for exact, hatched for upper bounds."""
    bars = []
    for r in sorted(recs, key=lambda r: _order([r["family"]])[0]):
        value, se, kind = _image_bpd(r)
        bars.append((r["family"], value or 0.0, se or 0.0, kind))
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, (fam, v, se, kind) in enumerate(bars):
        if kind in ("exact", "bound"):
            ax.bar(i, v, yerr=se, color="tab:blue" if kind == "exact" else "white", edgecolor="tab:blue",
                   hatch=None if kind == "exact" else "//")
            ax.text(i, v, f"{'' if kind == 'exact' else '≤'}{v:.3f}", ha="center", va="bottom", fontsize=7)
        else:
            ax.text(i, 0.05, f"{kind}:\nno bits/dim", ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_xticks(range(len(bars)), [b[0] for b in bars], rotation=20)
    ax.set_ylabel("test bits/dim (solid: exact, hatched: upper bound)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, out / "bpd.png")


def figure_ddim_curve(recs: list[dict], out: Path) -> Path | None:
    """ddim_fid_vs_nfe.png: the diffusion family's FID against NFE, DDIM at each step count and ancestral."""
    pts = []
    for r in recs:
        if r["family"] != "diffusion":
            continue
        for sampler, m in (r.get("samplers") or {}).items():
            split, fid = _primary_fid(m)
            if fid is not None:
                pts.append((m.get("sample_nfe"), fid, sampler))
    if len(pts) < 2:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ddim = sorted(p for p in pts if p[2].startswith("ddim"))
    if ddim:
        ax.plot([p[0] for p in ddim], [p[1] for p in ddim], "o-", label="DDIM (η = 0)")
    for nfe, fid, sampler in pts:
        if not sampler.startswith("ddim"):
            ax.plot(nfe, fid, "s", color="tab:red", label=f"{sampler} (T = {nfe})")
        ax.annotate(f"{fid:.1f}", (nfe, fid), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("NFE (network evaluations per sample)")
    ax.set_ylabel("FID")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out / "ddim_fid_vs_nfe.png")


# --------------------------------------------------------------------------- figures
def _save(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` (PNG, 110 dpi), close it, and return the path."""
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _load(path: Path, key: str):
    try:
        with np.load(path) as f:
            return {k: f[k] for k in f.files} if key == "*" else f[key]
    except (FileNotFoundError, KeyError, OSError, ValueError):
        return None


def _true_log_density(rec: dict, box, n: int = 200):
    from bench.data.toy2d import MIXTURES

    mix = MIXTURES[rec["dataset"]]()
    c = np.linspace(box[0], box[1], n)
    xx, yy = np.meshgrid(c, c, indexing="ij")
    return mix.log_prob(np.stack([xx.ravel(), yy.ravel()], 1)).reshape(n, n)


def _imshow_logp(ax, logp, box, vmax):
    ax.imshow(np.exp(logp).T, origin="lower", extent=[box[0], box[1], box[0], box[1]], cmap="magma",
              vmin=0, vmax=vmax, interpolation="nearest")


def figure_2d(run: RunDir, recs: list[dict], out: Path) -> list[Path]:
    """samples.png and density.png: rows are datasets; the true density, then each family."""
    by_ds: dict[str, list[dict]] = {}
    for r in recs:
        by_ds.setdefault(r["dataset"], []).append(r)
    families = _order({r["family"] for r in recs})
    paths = []
    for what in ("samples", "density"):
        fig, axes = plt.subplots(len(by_ds), len(families) + 1, figsize=(2.2 * (len(families) + 1), 2.3 * len(by_ds)),
                                 squeeze=False)
        for i, (ds, rs) in enumerate(by_ds.items()):
            cell = {r["family"]: r for r in rs}
            box = tuple(rs[0]["figure_box"])
            true = _true_log_density(rs[0], box)
            vmax = float(np.exp(true).max())
            _imshow_logp(axes[i, 0], true, box, vmax)
            axes[i, 0].set_title(f"{ds}: true density", fontsize=8)
            for j, fam in enumerate(families, start=1):
                ax = axes[i, j]
                r = cell.get(fam)
                ax.set_title(fam, fontsize=8)
                if r is None or r.get("status") != "ok":
                    ax.text(0.5, 0.5, "failed" if r else "–", ha="center", va="center", transform=ax.transAxes)
                elif what == "samples":
                    sampler, mtr = _primary(r)
                    x = _load(run.cell(_cid(r)) / f"samples_{sampler}.npz", "samples")
                    if x is not None:
                        ax.hist2d(x[:, 0], x[:, 1], bins=120, range=[box, box], cmap="magma")
                        ax.set_title(f"{fam} ({sampler}, NFE {mtr.get('sample_nfe')})", fontsize=7)
                else:
                    g = _load(run.cell(_cid(r)) / "density_grid.npz", "*")
                    if g is not None:
                        _imshow_logp(ax, g["log_density"], tuple(g["box"]), vmax)
                        ax.set_title(f"{fam}: {g['kind']}", fontsize=7)
                    else:
                        ax.text(0.5, 0.5, "no density", ha="center", va="center", transform=ax.transAxes, fontsize=8)
                ax.set_xlim(box)
                ax.set_ylim(box)
            for ax in axes[i]:
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_aspect("equal")
        fig.suptitle("samples (2D histograms)" if what == "samples" else "densities p(x) (same colour scale as the truth)",
                     fontsize=10)
        fig.tight_layout()
        paths.append(_save(fig, out / f"{what}.png"))
    return paths


def figure_cost_vs_quality(recs: list[dict], out: Path) -> Path:
    """taxonomy.png: sampling cost (µs/sample, log x) against KL (nats), one panel per dataset.

    Colour = family, marker = likelihood kind (● exact or quadrature, ▼ upper bound).
    Families with no likelihood are vertical dashed lines at their sampling cost.
    Every point is labelled with its sampler's NFE.
    """
    by_ds: dict[str, list[dict]] = {}
    for r in recs:
        by_ds.setdefault(r["dataset"], []).append(r)
    families = _order({r["family"] for r in recs})
    colours = {f: plt.cm.tab10(i % 10) for i, f in enumerate(families)}
    fig, axes = plt.subplots(1, len(by_ds), figsize=(4.6 * len(by_ds) + 1.6, 3.9), squeeze=False)
    for ax, (ds, rs) in zip(axes[0], by_ds.items()):
        for r in rs:
            d, fam = r.get("density") or {}, r["family"]
            kl, bound = d.get("kl_nats"), False
            if kl is None and d.get("kl_bound_nats") is not None:
                kl, bound = d["kl_bound_nats"], True
            for sampler, m in (r.get("samplers") or {}).items():
                cost = m.get("sample_us_per_sample")
                if cost is None:
                    continue
                if kl is None:
                    ax.axvline(cost, color=colours[fam], ls="--", lw=1)
                    ax.text(cost, 0.98, f" {fam} (NFE {m.get('sample_nfe')}): no likelihood", rotation=90,
                            va="top", ha="right", fontsize=6, color=colours[fam], transform=ax.get_xaxis_transform())
                    continue
                ax.scatter(cost, kl, marker="v" if bound else "o", s=45, color=colours[fam], zorder=3)
                ax.annotate(f"NFE {m.get('sample_nfe')}", (cost, kl), fontsize=6, xytext=(4, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("sampling cost (µs per sample, large batch)")
        ax.set_ylabel("KL(p_data ‖ p_model), nats")
        ax.set_title(ds, fontsize=9)
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=colours[f], marker="o", ls="", label=f) for f in families]
    handles += [plt.Line2D([], [], color="k", marker="o", ls="", label="exact KL"),
                plt.Line2D([], [], color="k", marker="v", ls="", label="upper bound on KL"),
                plt.Line2D([], [], color="k", ls="--", label="no likelihood")]
    fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 1.5 / fig.get_figwidth(), 1))
    return _save(fig, out / "taxonomy.png")


def _cid(r: dict) -> str:
    return f"{r['dataset']}__{r['family']}__s{r['seed']}"


# --------------------------------------------------------------------------- report
def write_report(run: RunDir) -> Path:
    """Write ``report.md`` and ``figures/`` for ``run``; returns the report's path."""
    records = run.records()
    info = json.loads((run.path / "run.json").read_text()) if (run.path / "run.json").exists() else {}
    ok = [r for r in records if r.get("status") == "ok"]
    failed = [r for r in records if r.get("status") != "ok"]
    figures = run.path / "figures"
    figures.mkdir(exist_ok=True)
    lines = [f"# genbench report: suite `{run.suite}`, run `{run.run_id}`", ""]
    dev = info.get("device", {})
    ver = info.get("versions", {})
    lines += [
        f"- profile: {info.get('profile') or 'default'}; suite file `{info.get('suite_file')}`",
        f"- device: {dev.get('name')} ({dev.get('type')}, {dev.get('torch_threads')} torch threads)",
        f"- versions: " + ", ".join(f"{k} {v}" for k, v in ver.items()),
        f"- git SHA: `{info.get('git_sha')}`",
        f"- cells: {len(ok)} ok, {len(failed)} failed",
        "",
    ]
    if failed:
        lines += ["## Failed cells", "", _table([{"cell": _cid(r), "reason": r.get("reason")} for r in failed])]
    order = (info.get("resolved") or {}).get("datasets") or []
    by_ds: dict[str, list[dict]] = {}
    for r in sorted(ok, key=lambda r: (order.index(r["dataset"]) if r["dataset"] in order else 99, r["dataset"])):
        by_ds.setdefault(r["dataset"], []).append(r)
    if ok and ok[0].get("modality") == "vector":
        lines += ["## Datasets", "", _table([
            {"dataset": ds, "components": rs[0]["dataset_info"].get("components"),
             "train/val/test": f"{rs[0]['dataset_info']['n_train']}/{rs[0]['dataset_info']['n_val']}/{rs[0]['dataset_info']['n_test']}",
             "true entropy H (nats)": _pm(rs[0]["dataset_info"]["true_entropy_nats"], rs[0]["dataset_info"]["true_entropy_se_nats"]),
             "H by Monte Carlo with": f"{rs[0]['dataset_info']['entropy_mc_samples']:,} samples"}
            for ds, rs in by_ds.items()])]
    for ds, rs in by_ds.items():
        first_seed = min(r["seed"] for r in rs)
        rows, sentences = taxonomy_rows([r for r in rs if r["seed"] == first_seed])
        batch = _primary(rs[0])[1].get("sample_throughput_batch")
        lines += [f"## Taxonomy reproduced from measurements: `{ds}`", "",
                  f"Seed {first_seed}. *Sampling claim*: sampling is measured *slow* when its cost per sample at "
                  f"batch {batch} is at least {SLOW_RATIO:g}× that of the fastest family on this dataset. NFE counts "
                  "sequential network evaluations per sampling call. *Likelihood claim*: where the density can be "
                  "integrated numerically (2D), the verdict rests on that integral: an exact density integrates to "
                  "1, exp(bound) to less than 1, and exp(−E) to Z ≠ 1.", "", _table(rows), *sentences, ""]
    for ds, rs in by_ds.items():
        if rs[0].get("modality") == "image":
            info_ds = rs[0].get("dataset_info") or {}
            lines += [f"## All metrics: `{ds}`", ""]
            if info_ds.get("comparable_to_published") is False:
                lines += [f"**Not comparable with published numbers.** {info_ds.get('note', '')}", ""]
            lines += [f"Dataset fingerprint: `{json.dumps(info_ds.get('fingerprint'))}`", "", _table(image_metrics_rows(rs))]
            lines += protocol_lines(rs)
            continue
        rows = metrics_rows(rs)
        ref = _reference_row(rs)
        if ref:
            rows.append(ref)
        lines += [f"## All metrics: `{ds}`", "", _table(rows)]
    if ok and ok[0].get("modality") == "vector":
        ordered = [r for rs in by_ds.values() for r in rs]
        paths = figure_2d(run, ordered, figures) + [figure_cost_vs_quality(ordered, figures)]
        lines += ["## Figures", ""] + [f"![{p.stem}](figures/{p.name})" for p in paths] + [""]
    if ok and ok[0].get("modality") == "image":
        ordered = [r for rs in by_ds.values() for r in rs]
        paths = [figure_fid_vs_cost(ordered, figures), figure_bpd(ordered, figures), figure_ddim_curve(ordered, figures)]
        lines += ["## Figures", ""] + [f"![{p.stem}](figures/{p.name})" for p in paths if p is not None] + [""]
        lines += ["## Samples", ""]
        for r in ordered:
            for sampler in r.get("samplers") or {}:
                png = run.cell(_cid(r)) / f"samples_{sampler}.png"
                if png.exists():
                    lines += [f"**{r['dataset']} / {r['family']} / {sampler}**", "",
                              f"![{r['family']} {sampler}]({_cid(r)}/samples_{sampler}.png)", ""]
    protocol = next((r.get("protocol") for r in ok if r.get("protocol")), None)
    if protocol:
        lines += ["## Protocol", ""] + [f"- **{k}**: {v}" for k, v in protocol.items()] + [""]
    path = run.path / "report.md"
    tmp = path.with_name("report.md.tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)
    return path
