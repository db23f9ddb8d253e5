"""Baselines: a run's seed statistics in a small JSON file meant to be committed.

``python run_bench.py baseline results/toy2d/<run_id>`` writes
``results/baselines/<suite>-<profile>.json`` (profile ``default`` without one). Per
(dataset, family, sampler) and metric with a direction it keeps the mean, the seed
spread (std, ddof = 1), n, the metric's own standard error, the per-seed values (7
significant digits), the protocol fingerprint id and, for timings, the device; once
per file the fingerprints, the git SHA, library versions and device the run came
from. ``python run_bench.py compare --baseline RUN`` finds the file by RUN's suite
and profile. The ci profile of toy2d (21 cells × 3 seeds, about 400 metrics) gives about 60 kB.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench.analysis.aggregate import Side, Stat
from bench.core import env
from bench.core.files import write_text
from bench.store.schema import metric_info

FORMAT = "genbench.baseline/1"
DEFAULT_DIR = env.ROOT / "results" / "baselines"


class BaselineError(ValueError):
    """A missing or unreadable baseline; the message names the file and, where it applies, the key."""


def path_for(directory: str | Path, suite: str, profile: str | None) -> Path:
    """``<directory>/<suite>-<profile>.json`` (profile ``default`` when ``None``)."""
    return Path(directory) / f"{suite}-{profile or 'default'}.json"


def _g(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.7g}")


def to_dict(side: Side, source: str) -> dict[str, Any]:
    """The baseline file's content for ``side`` (a run reduced by :func:`bench.analysis.aggregate.side_from_records`).

    Metric entries refer to protocols by fingerprint id and to timing devices by a short id
    (``"d0"``), both resolved in the file's ``protocols`` and ``devices`` tables.
    """
    metrics, used, devices = {}, set(), {}
    one = lambda ids: ids[0] if len(ids) == 1 else ids
    for (ds, fam, sampler, metric), s in sorted(side.stats.items()):
        entry = {"mean": _g(s.mean), "std": _g(s.std), "n": s.n, "se": _g(s.se), "values": [_g(v) for v in s.values],
                 "protocol": one(s.protocol)}
        info = metric_info(metric)
        if s.device and info is not None and info.timing:
            entry["device"] = one([devices.setdefault(d, f"d{len(devices)}") for d in s.device])
        used.update(s.protocol)
        metrics[f"{ds}/{fam}/{sampler}/{metric}"] = entry
    return {"format": FORMAT, "suite": side.suite, "profile": side.profile, "modality": side.modality,
            "source": source, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git_sha": side.git_sha,
            "versions": side.versions, "device": side.device,
            "cells": {f"{ds}/{fam}": c for (ds, fam), c in sorted(side.cells.items())},
            "devices": {v: k for k, v in devices.items()},
            "protocols": {k: v for k, v in side.protocols.items() if k in used}, "metrics": metrics}


def write(side: Side, path: Path, source: str) -> Path:
    """Write ``side`` as a baseline to ``path`` atomically: JSON with one line per key, and one line per
    entry of the cells, protocols and metrics tables (diffs stay readable)."""
    compact = lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    parts = []
    for k, v in to_dict(side, source).items():
        if k in ("cells", "protocols", "metrics") and v:
            rows = ",\n".join(f"  {json.dumps(kk)}: {compact(vv)}" for kk, vv in v.items())
            parts.append(f" {json.dumps(k)}: {{\n{rows}\n }}")
        else:
            parts.append(f" {json.dumps(k)}: {compact(v)}")
    text = "{\n" + ",\n".join(parts) + "\n}\n"
    json.loads(text)  # the hand-joined text must stay valid JSON
    return write_text(path, text)


def load(path: str | Path) -> Side:
    """Read a baseline file as a :class:`~bench.analysis.aggregate.Side`.

    Raises:
        BaselineError: the file is missing, not JSON, of another format, or lacks a key (named).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BaselineError(f"{path}: no such baseline file") from None
    except (OSError, json.JSONDecodeError) as e:
        raise BaselineError(f"{path}: not a readable baseline ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BaselineError(f"{path}: format {data.get('format') if isinstance(data, dict) else None!r} "
                            f"is not {FORMAT!r}")
    try:
        side = Side(label=str(path), suite=data["suite"], profile=data["profile"], modality=data.get("modality"),
                    protocols=data["protocols"], git_sha=data.get("git_sha"), versions=data.get("versions") or {},
                    device=data.get("device") or {})
        devices = data.get("devices") or {}
        for key, c in data["cells"].items():
            ds, fam = key.split("/")
            side.cells[ds, fam] = {"seeds": c["seeds"], "failed": {int(k): v for k, v in c["failed"].items()}}
        for key, m in data["metrics"].items():
            ds, fam, sampler, metric = key.split("/")
            listed = lambda v: [] if v is None else ([v] if isinstance(v, str) else list(v))
            side.stats[ds, fam, sampler, metric] = Stat(mean=m["mean"], std=m["std"], n=m["n"], se=m["se"],
                                                        values=m["values"], protocol=listed(m["protocol"]),
                                                        device=[devices[d] for d in listed(m.get("device"))])
    except (KeyError, TypeError, ValueError) as e:
        raise BaselineError(f"{path}: malformed baseline ({type(e).__name__}: {e})") from None
    return side
