"""Result records on disk.

Layout of one run::

    results/<suite>/<run_id>/
        run.json                         # resolved suite, versions, device, git SHA
        <dataset>__<family>__s<seed>/    # one folder per cell
            record.json                  # status, config, every metric (keys carry units)
            model.pt                     # checkpoint (models.load_checkpoint)
            samples_<sampler>.npz        # samples used for the metrics
            density_grid.npz             # model density on a grid, for figures (2D)
        summary.csv                      # one row per cell and sampler
        report.md, figures/*.png

Every file is written to a temporary name and renamed into place, so an
interrupted or failing cell never leaves a half-written record.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.schema import CellRecord, record_from_dict, record_to_dict


def cell_id(dataset: str, family: str, seed: int) -> str:
    """Folder name of a cell: ``<dataset>__<family>__s<seed>``."""
    return f"{dataset}__{family}__s{seed}"


def new_run_id() -> str:
    """A sortable run id from the local time: ``YYYYmmdd-HHMMSS``."""
    return time.strftime("%Y%m%d-%H%M%S")


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN and infinities become None, numpy scalars become Python ones."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(_clean(obj), indent=2, allow_nan=False) + "\n")
    tmp.replace(path)


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` to ``path``, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


class RunDir:
    """One run's folder: ``<root>/<suite>/<run_id>``."""

    def __init__(self, root: str | Path, suite: str, run_id: str):
        self.root, self.suite, self.run_id = Path(root), suite, run_id
        self.path = self.root / suite / run_id

    @classmethod
    def latest(cls, root: str | Path, suite: str) -> RunDir | None:
        """The most recent run of ``suite`` under ``root`` (by run id), or ``None``."""
        base = Path(root) / suite
        runs = sorted(p.name for p in base.iterdir() if (p / "run.json").exists()) if base.is_dir() else []
        return cls(root, suite, runs[-1]) if runs else None

    def cell(self, cell: str) -> Path:
        return self.path / cell

    def record_path(self, cell: str) -> Path:
        return self.path / cell / "record.json"

    def read_record(self, cell: str) -> CellRecord | None:
        """The cell's record, or ``None`` if absent or not valid JSON.

        Raises:
            bench.schema.SchemaError: a record of an unreadable version or with an unknown key.
        """
        path = self.record_path(cell)
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return record_from_dict(data, f"{path}: ")

    def write_record(self, record: CellRecord) -> None:
        """Write ``record`` to its cell's ``record.json``, atomically."""
        write_json(self.record_path(record.cell_id), record_to_dict(record))

    def records(self) -> list[CellRecord]:
        """Every readable cell record of the run, sorted by cell folder (invalid JSON is skipped).

        Raises:
            bench.schema.SchemaError: a record of an unreadable version or with an unknown key.
        """
        out = []
        for p in sorted(self.path.glob("*/record.json")):
            rec = self.read_record(p.parent.name)
            if rec is not None:
                out.append(rec)
        return out


def load_samples(cell_dir: Path, sampler: str) -> np.ndarray:
    """The samples a cell saved for ``sampler`` (``samples_<sampler>.npz``): (N, *shape) array,
    float32 vectors or uint8 images."""
    with np.load(Path(cell_dir) / f"samples_{sampler}.npz") as f:
        return f["samples"]


def summary_frame(records: list[CellRecord]):
    """One row per (cell, sampler), with the cell's train and density metrics repeated.

    Columns: suite, run_id, dataset, family, seed, status, reason, likelihood_kind,
    sampler, then the flat metric keys (which carry their units, e.g. ``test_nll_nats``;
    see :func:`bench.schema.metric_info`).
    """
    from bench.schema import part_to_dict

    def scalars(part) -> dict:
        return {} if part is None else {k: v for k, v in part_to_dict(part).items() if not isinstance(v, (dict, list))}

    rows = []
    for r in records:
        ids = {"suite": r.suite, "run_id": r.run_id, "dataset": r.dataset, "family": r.family, "seed": r.seed,
               "status": r.status, "reason": r.reason, "likelihood_kind": r.likelihood_kind}
        cell = {**scalars(r.train), **scalars(r.density)}
        if not r.samplers:
            rows.append({**ids, "sampler": None, **cell})
        for name, metrics in r.samplers.items():
            rows.append({**ids, "sampler": name, **cell, **scalars(metrics)})
    import pandas as pd  # lazy: the train/sample stages run where pandas may be missing

    return pd.DataFrame(rows)


def write_summary(run: RunDir) -> Path:
    """Write ``summary.csv`` of all records in ``run``; returns its path."""
    path = run.path / "summary.csv"
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    summary_frame(run.records()).to_csv(tmp, index=False)
    tmp.replace(path)
    return path
