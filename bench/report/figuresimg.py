"""Figures of an image run (mirrors :mod:`bench.evalimg`): FID against sampling cost, bits/dim by
kind, and FID against NFE for every sampler sweep a family declares."""

from __future__ import annotations

from pathlib import Path

from bench.report.fmt import count
from bench.report.plotting import colours, plt, save
from bench.report.tables import image_bpd, primary_fid
from bench.schema import CellRecord


def _fid_label(recs: list[CellRecord]) -> str:
    n = next((m.n_samples for r in recs for m in r.samplers.values()), None)
    return f"FID_{count(n)} (lower is better)"


def fid_vs_cost(recs: list[CellRecord], families: list[str], out: Path) -> Path:
    """fid_vs_cost.png: FID against sampling cost (ms/sample at the large batch, log x), labelled with NFE."""
    colour = colours(families)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for r in recs:
        for sampler, m in r.samplers.items():
            _, fid = primary_fid(m)
            if fid is None or not m.sample_us_per_sample:
                continue
            cost = 1e-3 * m.sample_us_per_sample
            ax.scatter(cost, fid, color=colour[r.family], s=40, zorder=3)
            label = r.family + ("" if sampler == "default" else f"/{sampler}") + f" (NFE {m.sample_nfe})"
            ax.annotate(label, (cost, fid), fontsize=6, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("sampling cost (ms per sample, large batch, log scale)")
    ax.set_ylabel(_fid_label(recs))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, out / "fid_vs_cost.png")


def bpd_by_kind(recs: list[CellRecord], out: Path) -> Path | None:
    """bpd.png: test bits/dim per family, solid for exact, hatched for upper bounds."""
    bars = []
    for r in recs:
        value, se, kind = image_bpd(r)
        bars.append((r.family, value or 0.0, se or 0.0, kind))
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, (_, v, se, kind) in enumerate(bars):
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
    return save(fig, out / "bpd.png")


def fid_vs_nfe(recs: list[CellRecord], families: list[str], out: Path) -> Path | None:
    """fid_vs_nfe.png: FID against NFE for each family with several samplers.

    Samplers of one sweep (``SamplerResult.sweep``, declared by the family, e.g. DDIM at
    several step counts) are joined by a line; a sampler outside any sweep (ancestral
    sampling) is a square. ``None`` when no family has two samplers with an FID.
    """
    colour = colours(families)
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    drawn = False
    for r in recs:
        pts = [(m.sample_nfe, primary_fid(m)[1], name, m.sweep) for name, m in r.samplers.items()
               if primary_fid(m)[1] is not None and m.sample_nfe]
        if len(pts) < 2:
            continue
        drawn = True
        for sweep in sorted({p[3] for p in pts if p[3]}):
            line = sorted(p for p in pts if p[3] == sweep)
            ax.plot([p[0] for p in line], [p[1] for p in line], "o-", color=colour[r.family],
                    label=f"{r.family}: {sweep}")
        for nfe, fid, name, sweep in pts:
            if not sweep:
                ax.plot(nfe, fid, "s", color=colour[r.family], label=f"{r.family}: {name} (NFE {nfe})")
            ax.annotate(f"{fid:.1f}", (nfe, fid), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xscale("log")
    ax.set_xlabel("NFE (network evaluations per sample)")
    ax.set_ylabel(_fid_label(recs))
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, out / "fid_vs_nfe.png")
