"""The trade-off figures of a run, one question each, for both modalities (2D and images).

1. :func:`pareto`: sample quality against sampling cost, with the Pareto front.
2. :func:`likelihood`: NLL (2D, nats) or bits/dim (images) by kind: exact solid, bounds hatched.
3. :func:`quality_vs_nfe`: quality against NFE for every sampler sweep.
4. :func:`training_curves`: training losses against wall-clock seconds.
5. :func:`precision_recall`: fidelity (precision) against diversity (recall).
6. :func:`parallel`: samples/s against batch size (is sampling parallel across a batch?).
7. the sampler sweep again on KID (images) or the multi-scale MMD² (2D), the metric of the DDIM claim (T11).
8. :func:`expressiveness`: KL or bits/dim against parameter count, autoregressive model and flows (T21).

Every figure is drawn from the records' seed statistics (:func:`bench.analysis.aggregate.seed_stats`):
a point is the mean over seeds and, where a cell ran n ≥ 2 seeds, its error bar is ±1 sample
std (ddof = 1) over those seeds. One panel per dataset; a colour per family.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.analysis import sample_verdicts as sv
from bench.evaluation.modality import modality as get_modality
from bench.report.plotting import colours, plt, save
from bench.store.schema import CellRecord

#: the quality metric every family has, per modality (lower is better): 2D MMD², images FID_N
QUALITY = {"vector": ("mmd2",), "image": ("fid_test", "fid_train")}


@dataclass(frozen=True)
class Point:
    """One (dataset, family, sampler) metric over seeds: mean, std (0 for one seed), n, and the metric's own
    standard error of the mean where it has one (NaN otherwise)."""

    mean: float
    std: float
    n: int
    se: float = float("nan")


class Stats:
    """Seed statistics indexed by (dataset, family, sampler, metric); cell-level metrics have sampler ``""``."""

    def __init__(self, frame):
        self.frame = frame
        self._d = {(r.dataset, r.family, r.sampler, r.metric): Point(float(r.mean), float(r.std)
                                                                       if r.n > 1 else 0.0, int(r.n),
                                                                       float(getattr(r, "se", float("nan"))))
                   for r in frame.itertuples()}

    def get(self, dataset: str, family: str, sampler: str, metric: str) -> Point | None:
        """The statistic of ``metric`` for the sampler, falling back to the cell-level one."""
        return self._d.get((dataset, family, sampler, metric)) or self._d.get((dataset, family, "", metric))

    def samplers(self, dataset: str, family: str) -> list[str]:
        """The family's samplers on ``dataset``, in record order."""
        return list(dict.fromkeys(s for (d, f, s, _) in self._d if d == dataset and f == family and s))

    def has(self, metric: str) -> bool:
        return any(k[3] == metric for k in self._d)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (both lower is better), by increasing x.

    A point is on the front when no other point has x ≤ its x and y ≤ its y with one of them
    strictly smaller. Ties in both coordinates keep the first point.

    >>> pareto_front([(1, 5), (2, 3), (3, 4), (4, 1)])
    [0, 1, 3]
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best_y = [], float("inf")
    for i in order:
        if points[i][1] < best_y:
            front.append(i)
            best_y = points[i][1]
    return front


def _quality_metric(stats: Stats, modality: str) -> str | None:
    return next((m for m in QUALITY.get(modality, ()) if stats.has(m)), None)


def _quality_label(metric: str, n: int | None) -> str:
    if metric == "mmd2":
        return "MMD² to the test set (lower is better)"
    if metric == "mmd2_multiscale":
        return "multi-scale MMD² to the test set (lower is better)"
    if metric.startswith("kid_"):
        return f"KID_{n or 'N'} vs the {metric.split('_')[1]} split (lower is better)"
    split = metric.split("_", 1)[1]
    return f"FID_{n or 'N'} vs the {split} split (lower is better)"


def _label(family: str, sampler: str, nfe: Point | None) -> str:
    name = family if sampler == "default" else f"{family}/{sampler}"
    return f"{name} (NFE {nfe.mean:.0f})" if nfe else name


def _err(p: Point, scale: float = 1.0) -> float | None:
    return p.std * scale if p.n > 1 else None


def _panels(n: int, width: float = 6.6, height: float = 4.6):
    """``n`` panels, two to a row, with room on the right for the legend."""
    cols = min(n, 2)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols + 1.9, height * rows + 0.5), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def adjust(fig, left: float = 1.15, right: float = 0.3, top: float = 0.95, bottom: float = 0.75,
           wspace: float = 0.3, hspace: float = 0.45) -> None:
    """Fixed margins in inches (matplotlib's tight_layout costs about a second a figure on a 2-core CPU)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, top=1 - top / h, bottom=bottom / h, wspace=wspace,
                        hspace=hspace)


def _annotate(ax, pts: list[tuple[float, float]], labels: list[str], log_x: bool = True) -> None:
    """Label points, alternating above and below among points in x order so that neighbours do not overlap,
    to the left of the points near the right edge so that labels stay inside the panel."""
    import math

    order = sorted(range(len(pts)), key=lambda i: pts[i])
    logs = [math.log10(x) if x > 0 and log_x else x for x, _ in pts]
    lo, hi = (min(logs), max(logs)) if logs else (0.0, 0.0)
    for k, i in enumerate(order):
        right = hi > lo and (logs[i] - lo) / (hi - lo) > 0.7  # near the right edge: the label goes to the left
        ax.annotate(labels[i], pts[i], fontsize=8, xytext=(-6 if right else 6, 5 if k % 2 == 0 else -12),
                    textcoords="offset points", ha="right" if right else "left")


def _quality_scale(ax, metric: str, ys: list[float]) -> None:
    """MMD² (unbiased: can be slightly negative; good models sit near 0): a symmetric log scale, linear within
    ±1e-3, so that the good models are told apart from each other as well as from the bad ones."""
    if metric == "mmd2" and ys and max(abs(y) for y in ys) > 0.01:
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_ylim(bottom=min(-2e-3, 2 * min(ys)), top=2 * max(ys))
        ax.set_ylabel(ax.get_ylabel() + "\n(symmetric log scale, linear within ±0.001)")


def _legend(fig, families: list[str], colour: dict, extra: list | None = None) -> None:
    """The families' colours: in the empty panel of the grid where there is one, else on the right."""
    handles = [plt.Line2D([], [], color=colour[f], marker="o", ls="", label=f) for f in families] + (extra or [])
    spare = [ax for ax in fig.axes if not ax.get_visible()]
    if spare:
        spare[0].set_visible(True)
        spare[0].axis("off")
        spare[0].legend(handles=handles, loc="center", fontsize=10, frameon=False, title="family")
        adjust(fig)
    else:
        fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
        adjust(fig, right=2.0)


def pareto(stats: Stats, datasets: list[str], families: list[str], modality: str, n_samples: int | None,
           out: Path) -> Path | None:
    """pareto.png: quality (MMD² or FID_N) against ms per sample at the throughput batch (log x),
    one point per (family, sampler) labelled with its NFE, the Pareto front dashed."""
    metric = _quality_metric(stats, modality)
    if metric is None:
        return None
    colour = colours(families)
    fig, axes = _panels(len(datasets))
    for ax, ds in zip(axes, datasets):
        pts, labels = [], []
        for fam in families:
            for smp in stats.samplers(ds, fam):
                q, cost = stats.get(ds, fam, smp, metric), stats.get(ds, fam, smp, "sample_us_per_sample")
                if q is None or cost is None:
                    continue
                x = 1e-3 * cost.mean
                ax.errorbar(x, q.mean, xerr=_err(cost, 1e-3), yerr=_err(q), fmt="o", ms=6, color=colour[fam],
                            capsize=2, zorder=3)
                pts.append((x, q.mean))
                labels.append(_label(fam, smp, stats.get(ds, fam, smp, "sample_nfe")))
        _annotate(ax, pts, labels)
        front = pareto_front(pts)
        fx, fy = [pts[i][0] for i in front], [pts[i][1] for i in front]
        ax.scatter(fx, fy, s=170, facecolors="none", edgecolors="0.3", lw=1.2, zorder=4)
        if len(front) > 1:
            ax.step(fx, fy, where="post", ls="--", color="0.4", lw=1, zorder=2)
        ax.set_xscale("log")
        ax.set_xlabel("sampling cost (ms per sample at the throughput batch, log scale)")
        ax.set_ylabel(_quality_label(metric, n_samples))
        _quality_scale(ax, metric, [p[1] for p in pts])
        ax.set_title(ds, fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle("Which family gives the best samples for the time?\n"
                 "(lower left is better; ringed, joined by the dashed line: the Pareto front)",
                 fontsize=11)
    _legend(fig, families, colour, [plt.Line2D([], [], color="0.4", ls="--", marker="o", mfc="none", ms=11,
                                               label="Pareto front")])
    return save(fig, out / "pareto.png")


def _likelihood_value(rec_kind: str | None, stats: Stats, ds: str, fam: str, modality: str):
    """(value point, how): how is ``"exact"``, ``"bound"``, ``"quadrature"`` or ``None`` (no likelihood)."""
    mod = get_modality(modality)
    exact, bound = mod.nll_column, mod.bound_column
    p = stats.get(ds, fam, "", exact)
    if p is not None:
        return p, "quadrature" if rec_kind == "unnormalized" else "exact"
    p = stats.get(ds, fam, "", bound)
    if p is not None:
        return p, "bound"
    return None, None


def likelihood(stats: Stats, recs: list[CellRecord], datasets: list[str], families: list[str], modality: str,
               out: Path) -> Path | None:
    """likelihood.png: test NLL (2D, nats) or bits/dim (images) per family: exact solid, upper bounds
    hatched with a "≤" and an arrow down (the true value lies below), the EBM's NLL by quadrature of
    exp(−E) dotted; families without a likelihood are listed under the panel, not drawn as zero.
    2D panels draw the true entropy H(p_data), the least NLL any model can reach."""
    kinds = {(r.dataset, r.family): r.likelihood_kind for r in recs}
    entropy = {r.dataset: r.dataset_info.get("true_entropy_nats") for r in recs}
    colour = colours(families)
    fig, axes = _panels(len(datasets), 5.4, 4.4)
    drawn = False
    for ax, ds in zip(axes, datasets):
        names, missing = [], []
        for fam in families:
            if (ds, fam) not in kinds:
                continue
            p, how = _likelihood_value(kinds[ds, fam], stats, ds, fam, modality)
            if p is None:
                missing.append(f"{fam} ({kinds[ds, fam] or 'none'})")
                continue
            i = len(names)
            names.append(fam)
            face = {"exact": colour[fam], "bound": "white", "quadrature": (*colour[fam][:3], 0.35)}[how]
            hatch = {"bound": "///", "quadrature": "..."}.get(how)
            ax.bar(i, p.mean, yerr=_err(p), color=face, edgecolor=colour[fam], hatch=hatch, lw=1.5, capsize=3)
            text = {"exact": f"{p.mean:.3g}", "bound": f"≤ {p.mean:.3g}",
                    "quadrature": f"{p.mean:.3g}\n(quadrature)"}[how]
            top = p.mean + (_err(p) or 0.0) if p.mean >= 0 else 0.0
            ax.annotate(text, (i, top), fontsize=7, ha="center", va="bottom", xytext=(0, 3),
                        textcoords="offset points")
            if how == "bound":
                ax.annotate("", (i + 0.3, p.mean - 0.12 * abs(p.mean) - 0.05), (i + 0.3, p.mean),
                            arrowprops={"arrowstyle": "->", "color": colour[fam]})
            drawn = True
        if get_modality(modality).closed_form_density and entropy.get(ds) is not None:
            ax.axhline(entropy[ds], color="k", ls=":", lw=1)
            ax.annotate("true entropy H", (0, entropy[ds]), fontsize=7, xytext=(0, -10),
                        textcoords="offset points", xycoords=("axes fraction", "data"))
        ax.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
        ax.axhline(0, color="0.6", lw=0.5)
        ax.set_ylabel(get_modality(modality).nll_label)
        ax.set_title(ds, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if missing:
            head = f"{get_modality(modality).no_nll_text}: "
            ax.text(0.5, -0.32, head + ", ".join(missing), transform=ax.transAxes, ha="center", va="top", fontsize=7,
                    wrap=True)
    if not drawn:
        plt.close(fig)
        return None
    fig.suptitle("Which families give a likelihood, and how good is it?\n(solid: exact; hatched: upper bound ≤, the "
                 "true value is lower; dotted: by quadrature of exp(−E))", fontsize=10)
    adjust(fig, bottom=1.5, hspace=0.7)
    return save(fig, out / "likelihood.png")


def quality_vs_nfe(stats: Stats, datasets: list[str], families: list[str], modality: str, n_samples: int | None,
                   sweeps: dict[tuple[str, str, str], str | None], out: Path, metric: str | None = None,
                   name: str | None = None) -> Path | None:
    """fid_vs_nfe.png (images) or mmd_vs_nfe.png (2D): quality against NFE (log x) for each family
    with several samplers. Samplers of one sweep (declared by the family, e.g. DDIM at several step
    counts) are joined by a line; a sampler outside any sweep (ancestral sampling) is a square.
    ``metric`` and ``name`` draw another quality metric into another file (the DDIM claim's KID), its error
    bars ±1 std over seeds, or with one seed the metric's own standard error (KID's subset std).
    ``None`` when no family has two samplers with the quality metric."""
    metric = metric or _quality_metric(stats, modality)
    if metric is None or not stats.has(metric):
        return None
    colour = colours(families)
    fig, axes = _panels(len(datasets), 5.6, 3.8)
    drawn = False
    for ax, ds in zip(axes, datasets):
        marks: list[tuple[float, float]] = []
        texts: list[str] = []
        for fam in families:
            pts = []
            for smp in stats.samplers(ds, fam):
                q, nfe = stats.get(ds, fam, smp, metric), stats.get(ds, fam, smp, "sample_nfe")
                if q is not None and nfe is not None and nfe.mean > 0:
                    pts.append((nfe.mean, q, smp, sweeps.get((ds, fam, smp))))
            if len(pts) < 2:
                continue
            drawn = True
            def bar(q: Point) -> float | None:  # the named metric's figure: its own SE where one seed ran
                if name is not None and q.n == 1 and q.se == q.se:
                    return q.se
                return _err(q)

            for sweep in sorted({p[3] for p in pts if p[3]}):
                line = sorted((p for p in pts if p[3] == sweep), key=lambda p: p[0])
                ax.errorbar([p[0] for p in line], [p[1].mean for p in line], yerr=[bar(p[1]) or 0.0 for p in line],
                            fmt="o-", color=colour[fam], capsize=2, label=f"{fam}: {sweep}")
            for nfe, q, smp, sweep in pts:
                if not sweep:
                    ax.errorbar(nfe, q.mean, yerr=bar(q), fmt="s", ms=7, color=colour[fam], capsize=2,
                                label=f"{fam}: {smp}")
                marks.append((nfe, q.mean))
                texts.append(f"{smp} (NFE {nfe:.0f})")
        _annotate(ax, marks, texts)
        ax.set_xscale("log")
        ax.margins(x=0.2, y=0.15)
        ax.set_xlabel("NFE (sequential network evaluations per sample, log scale)")
        ax.set_ylabel(_quality_label(metric, n_samples))
        ax.set_title(ds, fontsize=10)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if not drawn:
        plt.close(fig)
        return None
    fig.suptitle("What does sampling with fewer steps cost in quality?\n(line: one sampler sweep; "
                 "square: a sampler outside any sweep)", fontsize=10)
    adjust(fig)
    return save(fig, out / (name or get_modality(modality).sweep_figure))


def parallel(stats: Stats, datasets: list[str], families: list[str], out: Path) -> Path | None:
    """parallel.png: samples/s of each family's default sampler against the batch size (``eval.batch_sweep``),
    log-log; the dotted diagonal is perfect parallelism (samples/s proportional to the batch). ``None`` without a
    batch sweep."""
    batches = sorted({int(m.rsplit("_", 1)[1]) for (_, _, _, m) in stats._d if m.startswith("sample_per_s_at_batch_")})
    if len(batches) < 2:
        return None
    colour = colours(families)
    fig, axes = _panels(len(datasets), 5.0, 4.0)
    for ax, ds in zip(axes, datasets):
        for fam in families:
            smp = next(iter(stats.samplers(ds, fam)), None)
            pts = [(b, stats.get(ds, fam, smp, f"sample_per_s_at_batch_{b}")) for b in batches] if smp else []
            pts = [(b, p) for b, p in pts if p is not None]
            if len(pts) < 2:
                continue
            ax.errorbar([b for b, _ in pts], [p.mean for _, p in pts], yerr=[_err(p) or 0.0 for _, p in pts],
                        fmt="o-", color=colour[fam], capsize=2, label=f"{fam} ({smp})")
            b0, p0 = pts[0]
            ax.plot([b for b, _ in pts], [p0.mean * b / b0 for b, _ in pts], ":", color=colour[fam], lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch size (log scale)")
        ax.set_ylabel("samples per second (log scale)")
        ax.set_title(ds, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("Is sampling parallel across a batch?\n(samples/s against batch size; dotted: proportional "
                 "to the batch from the smallest one)", fontsize=10)
    adjust(fig)
    return save(fig, out / "parallel.png")


def expressiveness(recs: list[CellRecord], datasets: list[str], out: Path, name: str = "expressiveness.png"
                   ) -> Path | None:
    """expressiveness.png: each size point's KL (2D, nats) or bits/dim (images) against its parameter count for the
    autoregressive family and the flows (claim T21), mean ± 1 std over seeds. ``None`` without both."""
    fams = ("autoregressive", "flow", "coupling_flow")
    fig, axes = _panels(len(datasets), 5.0, 4.0)
    colour = colours(list(fams))
    drawn = False
    for ax, ds in zip(axes, datasets):
        groups = sv.ok_groups([r for r in recs if r.dataset == ds])
        if "autoregressive" not in groups or not any(f in groups for f in fams[1:]):
            continue
        unit = ""
        for fam in fams:
            points: dict[int, list[float]] = {}
            for r in groups.get(fam, []):
                v, _, unit_r, _ = sv.likelihood(r)
                if v is not None and r.train and r.train.parameters:
                    points.setdefault(r.train.parameters, []).append(v)
                    unit = unit_r
            if not points:
                continue
            xs = sorted(points)
            ys = [sum(points[x]) / len(points[x]) for x in xs]
            es = [float(np.std(points[x], ddof=1)) if len(points[x]) > 1 else 0.0 for x in xs]
            ax.errorbar(xs, ys, yerr=es, fmt="o-", color=colour[fam], capsize=2, label=fam)
            drawn = True
        ax.set_xscale("log")
        ax.set_xlabel("parameters (log scale)")
        ax.set_ylabel("KL (nats)" if unit == "nats" else f"test {unit}")
        ax.set_title(ds, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    if not drawn:
        plt.close(fig)
        return None
    fig.suptitle("Do flows pay for invertibility? (T21)\n(likelihood against parameter count; lower is better)",
                 fontsize=10)
    adjust(fig)
    return save(fig, out / name)


def training_curves(recs: list[CellRecord], datasets: list[str], families: list[str], out: Path) -> Path | None:
    """training.png: each training loss against wall-clock seconds, one panel per (dataset, family)
    (losses of different families are on different scales), one thin line per seed."""
    cells: dict[tuple[str, str], list[CellRecord]] = {}
    for r in recs:
        if r.train is not None and r.train.train_history:
            cells.setdefault((r.dataset, r.family), []).append(r)
    if not cells:
        return None
    fams = [f for f in families if any((ds, f) in cells for ds in datasets)]
    fig, axes = plt.subplots(len(datasets), len(fams), figsize=(2.5 * len(fams) + 0.4, 2.3 * len(datasets) + 0.6),
                             squeeze=False)
    styles = ["-", "--", ":", "-."]
    for i, ds in enumerate(datasets):
        for j, fam in enumerate(fams):
            ax = axes[i, j]
            ax.set_title(f"{fam}" if len(datasets) == 1 else f"{ds}: {fam}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            keys: list[str] = []
            for r in cells.get((ds, fam), []):
                hist = r.train.train_history
                for k in hist[0]:
                    if k not in ("step", "seconds") and k not in keys:
                        keys.append(k)
                for k in keys:
                    xs = [h["seconds"] for h in hist if k in h and "seconds" in h]
                    ys = [h[k] for h in hist if k in h and "seconds" in h]
                    ax.plot(xs, ys, styles[keys.index(k) % 4], color=f"C{keys.index(k)}", lw=0.9, alpha=0.8,
                            label=k if r is cells[ds, fam][0] else None)
            if len(keys) > 1:
                ax.legend(fontsize=6)
            if i == len(datasets) - 1:
                ax.set_xlabel("wall-clock seconds", fontsize=7)
            if j == 0:
                ax.set_ylabel("training loss", fontsize=7)
    fig.suptitle("How fast does each family train?\n(training loss against wall-clock seconds; one line per seed)",
                 fontsize=10)
    adjust(fig, left=0.6, right=0.15, top=0.75, bottom=0.5, wspace=0.35, hspace=0.5)
    return save(fig, out / "training.png")


def precision_recall(stats: Stats, recs: list[CellRecord], datasets: list[str], families: list[str],
                     out: Path) -> Path | None:
    """precision_recall.png: k-NN precision (fidelity) against recall (diversity), one point per
    (family, sampler); 2D panels add the true mixture's own samples scored the same way (the noise floor)."""
    if not stats.has("precision"):
        return None
    ref = {r.dataset: r.reference_sample_metrics for r in recs if r.reference_sample_metrics is not None}
    colour = colours(families)
    fig, axes = _panels(len(datasets), 4.6, 4.4)
    for ax, ds in zip(axes, datasets):
        pts, labels = [], []
        for fam in families:
            for k, smp in enumerate(stats.samplers(ds, fam)):
                p, r = stats.get(ds, fam, smp, "precision"), stats.get(ds, fam, smp, "recall")
                if p is None or r is None:
                    continue
                ax.errorbar(r.mean, p.mean, xerr=_err(r), yerr=_err(p), fmt="osD^v"[k % 5], ms=6, color=colour[fam],
                            capsize=2)
                pts.append((r.mean, p.mean))
                labels.append(fam if smp == "default" else f"{fam}/{smp}")
        _annotate(ax, pts, labels, log_x=False)
        m = ref.get(ds)
        if m is not None and m.precision is not None and m.recall is not None:
            ax.plot(m.recall, m.precision, "*", ms=12, color="k")
            ax.annotate("true mixture", (m.recall, m.precision), fontsize=7, xytext=(4, -10),
                        textcoords="offset points")
        ax.set_xlim(-0.03, 1.08)
        ax.set_ylim(-0.03, 1.08)
        ax.set_xlabel("recall (fraction of real data covered: diversity)")
        ax.set_ylabel("precision (fraction of samples on the data: fidelity)")
        ax.set_title(ds, fontsize=10)
        ax.grid(alpha=0.3)
        ax.set_aspect("equal")
    fig.suptitle("Fidelity or diversity?\n(k-NN precision against recall; upper right is better)", fontsize=10)
    _legend(fig, families, colour, [plt.Line2D([], [], color="k", marker="*", ls="", ms=10, label="true mixture")]
            if ref else None)
    return save(fig, out / "precision_recall.png")


def sweeps_of(recs: list[CellRecord]) -> dict[tuple[str, str, str], str | None]:
    """(dataset, family, sampler) -> the sweep the sampler belongs to (``SamplerResult.sweep``)."""
    return {(r.dataset, r.family, s): m.sweep for r in recs for s, m in r.samplers.items()}


def n_samples_of(recs: list[CellRecord]) -> int | None:
    """The number of samples the sample metrics were computed on (the first sampler's ``n_samples``)."""
    return next((m.n_samples for r in recs for m in r.samplers.values() if m.n_samples), None)


def all_figures(stats_frame, recs: list[CellRecord], datasets: list[str], families: list[str], modality: str,
                out: Path) -> list[Path]:
    """The five trade-off figures that apply to ``recs`` (a figure with nothing to draw is left out)."""
    stats = Stats(stats_frame)
    n = n_samples_of(recs)
    sweep_metric = "kid_test_mean" if stats.has("kid_test_mean") else "mmd2_multiscale"
    paths = [pareto(stats, datasets, families, modality, n, out),
             likelihood(stats, recs, datasets, families, modality, out),
             quality_vs_nfe(stats, datasets, families, modality, n, sweeps_of(recs), out),
             quality_vs_nfe(stats, datasets, families, modality, n, sweeps_of(recs), out, sweep_metric,
                            f"{sweep_metric.split('_test')[0]}_vs_nfe.png"),
             training_curves(recs, datasets, families, out),
             precision_recall(stats, recs, datasets, families, out),
             parallel(stats, datasets, families, out),
             expressiveness(recs, datasets, out)]
    return [p for p in paths if p is not None]


__all__ = ["pareto_front", "pareto", "likelihood", "quality_vs_nfe", "training_curves", "precision_recall",
           "parallel", "expressiveness", "all_figures", "Stats"]
