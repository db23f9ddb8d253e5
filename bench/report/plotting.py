"""Shared matplotlib set-up for the report's figures: the Agg backend, colours, atomic saving."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plt", "colours", "save"]


def colours(families: list[str]) -> dict[str, tuple]:
    """One tab10 colour per family, in the given order."""
    return {f: plt.cm.tab10(i % 10) for i, f in enumerate(families)}


def save(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` (PNG, 110 dpi) atomically, close it, and return the path."""
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
