"""The history of a metric (:func:`bench.analysis.history.series`) as a figure."""

from __future__ import annotations

from pathlib import Path

from bench.analysis.history import Point
from bench.report.plotting import plt, save


def plot(all_series: dict[tuple[str, str, str], list[Point]], metric: str, path: Path) -> Path:
    """The metric over runs: mean ± seed std per series, per-seed values faint, steps circled in red."""
    runs: list[str] = []
    for points in all_series.values():
        for p in points:
            if p.run_id not in runs:
                runs.append(p.run_id)
    sha = {p.run_id: (p.git_sha or "?")[:7] for pts in all_series.values() for p in pts}
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(runs) + 3), 4.2))
    for i, (key, points) in enumerate(all_series.items()):
        x = [runs.index(p.run_id) for p in points]
        colour = plt.cm.tab10(i % 10)
        label = "/".join(k for k in key if k)
        ax.errorbar(x, [p.stat.mean for p in points], yerr=[p.stat.std or 0.0 for p in points], marker="o", ms=4,
                    capsize=3, color=colour, label=label)
        for xi, p in zip(x, points):
            ax.scatter([xi] * len(p.stat.values), p.stat.values, s=6, color=colour, alpha=0.35)
            if p.step:
                ax.scatter([xi], [p.stat.mean], s=160, facecolors="none", edgecolors="red", linewidths=1.5)
    ax.set_xticks(range(len(runs)), [f"{r}\n{sha[r]}" for r in runs], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} over runs (mean ± seed std; red circle: step)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path)
