"""Figures of a 2D run (mirrors :mod:`bench.evaluation.vector`): samples and densities next to the truth,
and sampling cost against KL."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np

from bench.core.files import load_npz
from bench.data.toy2d import MIXTURES
from bench.report.figures import adjust
from bench.report.plotting import colours, plt, save
from bench.store.runs import RunDir
from bench.store.schema import CellRecord, DensityResult


def _load(path: Path, key: str):
    """An array (``key``) or every array (``"*"``) of an npz file; ``None`` if missing or unreadable
    (a truncated or foreign file is said on stderr, and its panel left empty)."""
    arrays = load_npz(path)
    if arrays is None or (key != "*" and key not in arrays):
        if path.exists():
            print(f"genbench: report: {path} does not load; its panel is left empty", file=sys.stderr)
        return None
    return arrays if key == "*" else arrays[key]


def _is_points(x) -> bool:
    return isinstance(x, np.ndarray) and x.ndim == 2 and x.shape[1] == 2 and np.issubdtype(x.dtype, np.number)


def _is_grid(g) -> bool:
    return (g is not None and {"log_density", "box", "kind"} <= g.keys() and g["log_density"].ndim == 2
            and g["box"].shape == (2,) and np.issubdtype(g["log_density"].dtype, np.number))


@functools.lru_cache(maxsize=16)
def _true_log_density(dataset: str, box: tuple[float, float], n: int = 200) -> np.ndarray:
    """log p of the true mixture on an n × n grid over ``box`` (cached: both figures draw it)."""
    mix = MIXTURES[dataset]()
    c = np.linspace(box[0], box[1], n)
    xx, yy = np.meshgrid(c, c, indexing="ij")
    return mix.log_prob(np.stack([xx.ravel(), yy.ravel()], 1)).reshape(n, n)


def _imshow_logp(ax, logp, box, vmax):
    ax.imshow(np.exp(logp).T, origin="lower", extent=[box[0], box[1], box[0], box[1]], cmap="magma",
              vmin=0, vmax=vmax, interpolation="nearest")


def samples_and_densities(run: RunDir, by_ds: dict[str, list[CellRecord]], families: list[str],
                          out: Path) -> list[Path]:
    """samples.png and density.png: rows are datasets; the true density, then each family."""
    paths = []
    for what in ("samples", "density"):
        fig, axes = plt.subplots(len(by_ds), len(families) + 1, figsize=(2.2 * (len(families) + 1), 2.3 * len(by_ds)),
                                 squeeze=False)
        for i, (ds, rs) in enumerate(by_ds.items()):
            cell = {r.family: r for r in rs}
            box = tuple(rs[0].figure_box)
            true = _true_log_density(ds, box)
            vmax = float(np.exp(true).max())
            _imshow_logp(axes[i, 0], true, box, vmax)
            axes[i, 0].set_title(f"{ds}: true density", fontsize=8)
            for j, fam in enumerate(families, start=1):
                ax = axes[i, j]
                r = cell.get(fam)
                ax.set_title(fam, fontsize=8)
                if r is None or not r.ok:
                    ax.text(0.5, 0.5, "failed" if r else "–", ha="center", va="center", transform=ax.transAxes)
                elif what == "samples":
                    sampler, mtr = r.primary()
                    x = _load(run.cell(r.cell_id) / f"samples_{sampler}.npz", "samples")
                    if _is_points(x):
                        ax.hist2d(x[:, 0], x[:, 1], bins=120, range=[box, box], cmap="magma")
                        ax.set_title(f"{fam} ({sampler}, NFE {mtr.sample_nfe})", fontsize=7)
                else:
                    g = _load(run.cell(r.cell_id) / "density_grid.npz", "*")
                    if _is_grid(g):
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
        title = "samples (2D histograms)" if what == "samples" else "densities p(x) (same colour scale as the truth)"
        fig.suptitle(title, fontsize=10)
        adjust(fig, left=0.1, right=0.1, top=0.5, bottom=0.1, wspace=0.15, hspace=0.3)
        paths.append(save(fig, out / f"{what}.png"))
    return paths


def cost_vs_kl(by_ds: dict[str, list[CellRecord]], families: list[str], out: Path) -> Path:
    """taxonomy.png: sampling cost (µs/sample, log x) against KL (nats), one panel per dataset.

    Colour = family, marker = likelihood kind (● exact or quadrature, ▼ upper bound).
    Families with no likelihood are vertical dashed lines at their sampling cost.
    Every point is labelled with its sampler's NFE.
    """
    colour = colours(families)
    fig, axes = plt.subplots(1, len(by_ds), figsize=(4.6 * len(by_ds) + 1.6, 3.9), squeeze=False)
    for ax, (ds, rs) in zip(axes[0], by_ds.items()):
        for r in rs:
            d, fam = r.density or DensityResult(), r.family
            kl, bound = d.kl_nats, False
            if kl is None and d.kl_bound_nats is not None:
                kl, bound = d.kl_bound_nats, True
            for m in r.samplers.values():
                cost = m.sample_us_per_sample
                if cost is None:
                    continue
                if kl is None:
                    ax.axvline(cost, color=colour[fam], ls="--", lw=1)
                    ax.text(cost, 0.98, f" {fam} (NFE {m.sample_nfe}): no likelihood", rotation=90,
                            va="top", ha="right", fontsize=6, color=colour[fam], transform=ax.get_xaxis_transform())
                    continue
                ax.scatter(cost, kl, marker="v" if bound else "o", s=45, color=colour[fam], zorder=3)
                ax.annotate(f"NFE {m.sample_nfe}", (cost, kl), fontsize=6, xytext=(4, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("sampling cost (µs per sample, large batch)")
        ax.set_ylabel("KL(p_data ‖ p_model), nats")
        ax.set_title(ds, fontsize=9)
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=colour[f], marker="o", ls="", label=f) for f in families]
    handles += [plt.Line2D([], [], color="k", marker="o", ls="", label="exact KL"),
                plt.Line2D([], [], color="k", marker="v", ls="", label="upper bound on KL"),
                plt.Line2D([], [], color="k", ls="--", label="no likelihood")]
    fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False)
    adjust(fig, left=0.7, right=1.8, top=0.35, bottom=0.6, wspace=0.3)
    return save(fig, out / "taxonomy.png")
