"""``report.md`` and figures for a run, built from its records alone (no models needed).

The report reproduces the textbook taxonomy from measured numbers: for each family
the likelihood it exposes (with the measured value) and its sampling cost (NFE,
samples/s), and for each textbook claim whether the measurement agrees, with the
ratio behind the verdict.
"""

from __future__ import annotations

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


# --------------------------------------------------------------------------- figures
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
        path = out / f"{what}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
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
    path = out / "taxonomy.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cid(r: dict) -> str:
    return f"{r['dataset']}__{r['family']}__s{r['seed']}"


# --------------------------------------------------------------------------- report
def write_report(run: RunDir) -> Path:
    """Write ``report.md`` and ``figures/`` for ``run``; returns the report's path."""
    import json

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
        rows = metrics_rows(rs)
        ref = _reference_row(rs)
        if ref:
            rows.append(ref)
        lines += [f"## All metrics: `{ds}`", "", _table(rows)]
    if ok and ok[0].get("modality") == "vector":
        ordered = [r for rs in by_ds.values() for r in rs]
        paths = figure_2d(run, ordered, figures) + [figure_cost_vs_quality(ordered, figures)]
        lines += ["## Figures", ""] + [f"![{p.stem}](figures/{p.name})" for p in paths] + [""]
    protocol = next((r.get("protocol") for r in ok if r.get("protocol")), None)
    if protocol:
        lines += ["## Protocol", ""] + [f"- **{k}**: {v}" for k, v in protocol.items()] + [""]
    path = run.path / "report.md"
    tmp = path.with_name("report.md.tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)
    return path
