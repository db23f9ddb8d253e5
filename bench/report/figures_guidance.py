"""Figures and tables of a class-conditional run: the guidance sweeps (:mod:`bench.analysis.guidance`).

1. :func:`fidelity_diversity`: class-conditional precision (fidelity) against recall (diversity) along each
   guided family's sweep, points labelled by the guidance scale w, error bars ±1 std over seeds.
2. :func:`quality_vs_guidance`: MMD² (2D) or FID (images) against w, error bars likewise.
3. :func:`tilted_panels` (2D): each guided family's samples at every w (first seed), coloured by their requested
   class, over the contours of the tilted target sum_c q_c p_w(x|c) that guidance is often said to sample.

:func:`sweep_rows` and :func:`conditioning_rows` are the report's tables.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np

from bench.analysis import guidance
from bench.analysis.guidance import Point, Sweep
from bench.core.files import load_npz
from bench.data.toy2d import MIXTURES
from bench.evaluation.metrics.tilted import tilted_mixture_log_density
from bench.report.figures import adjust
from bench.report.fmt import fmt
from bench.report.plotting import colours, plt, save
from bench.store.runs import RunDir
from bench.store.schema import CellRecord


def _err(p: Point | None) -> float | None:
    return None if p is None else p.std


def _panels(n: int, width: float, height: float):
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols + 1.8, height * rows + 0.9), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _by_dataset(sweeps: list[Sweep]) -> dict[str, list[Sweep]]:
    out: dict[str, list[Sweep]] = {}
    for sw in sweeps:
        if len(sw.ws) > 1:
            out.setdefault(sw.dataset, []).append(sw)
    return out


def fidelity_diversity(sweeps: list[Sweep], families: list[str], out: Path) -> Path | None:
    """guidance_fidelity_diversity.png: class-conditional precision against recall along each sweep (one panel per
    dataset, one line per guided family and sampler), each point labelled by w; ``None`` without a sweep."""
    by_ds = _by_dataset(sweeps)
    if not by_ds:
        return None
    colour = colours(families)
    fig, axes = _panels(len(by_ds), 4.4, 4.2)
    for ax, (ds, sws) in zip(axes, by_ds.items()):
        for sw in sws:
            prec, rec = sw.points.get("cond_precision"), sw.points.get("cond_recall")
            pts = [(w, p, r) for w, p, r in zip(sw.ws, prec or [], rec or []) if p is not None and r is not None]
            if not pts:
                continue
            c = colour.get(sw.family, "k")
            ax.plot([r.mean for _, _, r in pts], [p.mean for _, p, _ in pts], "-", color=c, lw=1, alpha=0.7,
                    label=f"{sw.family}: {sw.label}")
            for w, p, r in pts:
                ax.errorbar(r.mean, p.mean, xerr=_err(r), yerr=_err(p), fmt="o", ms=5, color=c, capsize=2)
                ax.annotate(f"w={w:g}", (r.mean, p.mean), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.set_xlim(-0.03, 1.05)
        ax.set_ylim(-0.03, 1.05)
        ax.set_aspect("equal")
        ax.set_xlabel("class-conditional recall (diversity)")
        ax.set_ylabel("class-conditional precision (fidelity)")
        ax.set_title(ds, fontsize=10)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="lower left")
    fig.suptitle("Does guidance trade diversity for fidelity? (T25)\n(points: guidance scale w along each sampler's "
                 "sweep; error bars ±1 std over seeds)", fontsize=10)
    adjust(fig, left=0.8, right=0.3, top=1.0, bottom=0.7, wspace=0.35, hspace=0.45)
    return save(fig, out / "guidance_fidelity_diversity.png")


def quality_vs_guidance(sweeps: list[Sweep], families: list[str], modality: str, out: Path) -> Path | None:
    """guidance_quality.png: MMD² (2D) or FID (images) against w, one line per guided family and sampler, with the
    NFE of each point; ``None`` without a sweep or the metric."""
    by_ds = _by_dataset(sweeps)
    metric = "mmd2" if modality == "vector" else "fid_test"
    if not by_ds:
        return None
    colour = colours(families)
    fig, axes = _panels(len(by_ds), 4.4, 3.6)
    drawn = False
    for ax, (ds, sws) in zip(axes, by_ds.items()):
        for sw in sws:
            pts = [(w, p, nfe) for w, p, nfe in zip(sw.ws, sw.points.get(metric) or [], sw.nfe) if p is not None]
            if metric == "fid_test" and not pts:
                pts = [(w, p, nfe) for w, p, nfe in zip(sw.ws, sw.points.get("fid_train") or [], sw.nfe)
                       if p is not None]
            if not pts:
                continue
            drawn = True
            c = colour.get(sw.family, "k")
            ax.errorbar([w for w, _, _ in pts], [p.mean for _, p, _ in pts], yerr=[_err(p) or 0 for _, p, _ in pts],
                        fmt="o-", color=c, capsize=2, label=f"{sw.family}: {sw.label}")
        ax.set_xlabel("guidance scale w")
        ax.set_ylabel("MMD² vs the test set" if metric == "mmd2" else "FID vs the reference")
        ax.set_title(ds, fontsize=10)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    if not drawn:
        plt.close(fig)
        return None
    fig.suptitle(f"Sample quality against the guidance scale ({'MMD²' if metric == 'mmd2' else 'FID'}; NFE doubles "
                 "for w > 0)\n(error bars ±1 std over seeds)", fontsize=10)
    adjust(fig, left=0.8, right=0.3, top=1.0, bottom=0.7, wspace=0.35, hspace=0.45)
    return save(fig, out / "guidance_quality.png")


def tilted_panels(run: RunDir, by_ds: dict[str, list[CellRecord]], sweeps: list[Sweep], out: Path) -> list[Path]:
    """guidance_samples_<dataset>.png (2D): one row per guided sweep, one column per w: the samples of the first
    seed, coloured by requested class, over the contours of sum_c q_c p_w(x|c) (q: the samples' class frequencies).
    """
    paths = []
    for ds, sws in _by_dataset(sweeps).items():
        if ds not in MIXTURES:
            continue
        mix = MIXTURES[ds]()
        recs = by_ds.get(ds, [])
        if not recs:
            continue
        box = tuple(recs[0].figure_box or (-4.0, 4.0))
        cols = max(len(sw.ws) for sw in sws)
        fig, axes = plt.subplots(len(sws), cols, figsize=(2.2 * cols + 0.4, 2.3 * len(sws) + 0.9), squeeze=False)
        c = np.linspace(box[0], box[1], 120)
        xx, yy = np.meshgrid(c, c, indexing="ij")
        grid_pts = np.stack([xx.ravel(), yy.ravel()], 1)
        cmap = plt.get_cmap("tab10" if mix.k <= 10 else "tab20" if mix.k <= 20 else "hsv")
        for i, sw in enumerate(sws):
            first = min((r for r in recs if r.family == sw.family), key=lambda r: r.seed, default=None)
            for j in range(cols):
                ax = axes[i, j]
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_aspect("equal")
                if j >= len(sw.ws):
                    ax.set_visible(False)
                    continue
                w, name = sw.ws[j], sw.samplers[j]
                # the sampler's label (e.g. "annealed_langevin (steps_per_sigma 40, ...)") wrapped to the panel's width
                ax.set_title(f"{sw.family} w={w:g}" if j else f"{sw.family}: {textwrap.fill(sw.label, 30)}\nw={w:g}",
                             fontsize=7)
                arrays = None if first is None else load_npz(run.cell(first.cell_id) / f"samples_{name}.npz")
                if arrays is None or "labels" not in arrays:
                    continue
                x, y = arrays["samples"], arrays["labels"]
                q = np.bincount(y, minlength=mix.k) / len(y)
                logp = tilted_mixture_log_density(mix, grid_pts, w, q, n=128).reshape(xx.shape)
                levels = np.quantile(logp[np.isfinite(logp)], [0.9, 0.97, 0.995])
                ax.contour(xx, yy, logp, levels=np.unique(levels), colors="k", linewidths=0.5)
                ok = np.isfinite(x).all(1)
                ax.scatter(x[ok, 0], x[ok, 1], c=y[ok] % cmap.N, cmap=cmap, vmin=0, vmax=cmap.N - 1, s=1.5,
                           alpha=0.6, linewidths=0)
                ax.set_xlim(box)
                ax.set_ylim(box)
        fig.suptitle(f"{ds}: guided samples (colour: requested class)\nagainst the tilted target "
                     "∝ p(x|c)^(1+w) p(x)^(−w) (contours)", fontsize=9)
        adjust(fig, left=0.15, right=0.15, top=0.95, bottom=0.1, wspace=0.08, hspace=0.55)
        paths.append(save(fig, out / f"guidance_samples_{ds}.png"))
    return paths


def _ms(p: Point | None, digits: int = 3) -> str:
    """``mean ± std`` over seeds (or the mean alone for one seed)."""
    if p is None:
        return "–"
    return fmt(p.mean, digits) + (f" ± {fmt(p.std, 2)}" if p.std is not None and math.isfinite(p.std) else "")


def sweep_rows(sweeps: list[Sweep], modality: str) -> list[dict[str, str]]:
    """One row per (sweep, w) of the sweeps with two or more scales: the guidance sweep table (mean ± std over
    seeds)."""
    quality = ("mmd2", "cond_mmd2") if modality == "vector" else ("fid_test", "kid_test_mean")
    rows = []
    for sw in (sw for sw in sweeps if len(sw.ws) > 1):
        for k, (w, name) in enumerate(zip(sw.ws, sw.samplers)):
            def cell(metric: str, k=k, sw=sw) -> str:
                pts = sw.points.get(metric) or []
                return _ms(pts[k] if k < len(pts) else None)

            row = {"family": sw.family, "sampler": name, "w": f"{w:g}", "NFE": str(sw.nfe[k] or "–"),
                   "label agreement": cell("label_agreement"), "precision (cond)": cell("cond_precision"),
                   "recall (cond)": cell("cond_recall"), "density (cond)": cell("cond_density"),
                   "coverage (cond)": cell("cond_coverage"), "diversity ratio": cell("class_diversity")}
            row.update({q: cell(q) for q in quality})
            if modality == "vector":
                row.update({"−log p_w (nats)": cell("tilted_ce_nats"), "H(p_w) (nats)": cell("tilted_entropy_nats"),
                            "gap (nats)": cell("tilted_gap_nats")})
            row["µs/sample"] = cell("sample_us_per_sample")
            rows.append(row)
    return rows


def conditioning_rows(recs: list[CellRecord]) -> list[dict[str, str]]:
    """One row per family of a conditional run: its unguided samples' (w = 0) label agreement against the real
    reference points', and the T24 verdict (:func:`bench.analysis.guidance.t24`)."""
    rows = []
    for fam in dict.fromkeys(r.family for r in recs):
        rs = [r for r in recs if r.family == fam]
        v = guidance.t24(rs[0].dataset, fam, rs)
        ms = [m for m in (next((m for m in r.samplers.values() if m.guidance == 0), None) for r in rs) if m]
        pick = lambda attr, ms=ms: guidance.point([getattr(m, attr) for m in ms])  # noqa: E731
        rows.append({"family": fam, "seeds": str(len(rs)), "label agreement (w = 0)": _ms(pick("label_agreement")),
                     "real reference": _ms(pick("label_agreement_real")),
                     "precision (cond)": _ms(pick("cond_precision")), "recall (cond)": _ms(pick("cond_recall")),
                     "T24": v.verdict})
    return rows


__all__ = ["fidelity_diversity", "quality_vs_guidance", "tilted_panels", "sweep_rows", "conditioning_rows"]
