"""Shared matplotlib set-up for the report's figures: the Agg backend, colours, atomic saving."""

from __future__ import annotations

from pathlib import Path

import matplotlib

from bench.core.files import atomic_write

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plt", "colours", "save"]


def colours(families: list[str]) -> dict[str, tuple]:
    """One tab10 colour per family, in the given order."""
    return {f: plt.cm.tab10(i % 10) for i, f in enumerate(families)}


def save(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` (PNG, 110 dpi) atomically, close it, and return the path.

    Raises:
        bench.core.files.StorageError: the disk is full or the folder read-only (the figure is closed).
    """
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        plt.close(fig)
    return path
