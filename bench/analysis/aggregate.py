"""Seed aggregation: each metric's mean, spread and count over a run's seeds, with its protocol.

A suite's ``seeds: [0, 1, 2]`` runs every cell once per seed. This module turns the
ok records of a run into one statistic per (dataset, family, sampler, metric)
(:class:`Stat`): the mean over seeds, the sample standard deviation across seeds
(ddof = 1, the seed spread), the number of seeds n, the metric's own standard error
of that mean where the metric has one (√ΣSEᵢ² / n), and the protocol and device it
was measured under. Cell-level metrics (training, NLL, KL) have the sampler
:data:`CELL` (``""``).

The spread is stored with the run (``seeds.csv``, :func:`write_seed_stats`) and in
baselines, so that a comparison knows each metric's noise.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.files import write_text
from bench.evaluation import protocol
from bench.store import schema
from bench.store.schema import CellRecord

CELL = ""  # the sampler of cell-level metrics (train and density parts)
KEYS = ["dataset", "family", "sampler", "metric"]

Key = tuple[str, str, str, str]  # (dataset, family, sampler, metric)


@dataclass
class Stat:
    """One metric of one (dataset, family, sampler) over a side's seeds.

    Attributes:
        values: the per-seed values, in seed order (empty when only the summary is known).
        mean, std, n: mean, sample std across seeds (``None`` for n = 1) and number of seeds.
        se: the metric's own standard error of ``mean`` (NLL, KL, KID subsets), or ``None``.
        protocol: ids (:func:`fingerprint_id`) of the protocols the seeds were measured under;
            one id unless the seeds disagree.
        device: for timings, ``"<type>|<name>|torch <version>"`` of each seed (one unless they disagree).
    """

    mean: float
    std: float | None
    n: int
    se: float | None = None
    values: list[float] = field(default_factory=list)
    protocol: list[str] = field(default_factory=list)
    device: list[str] = field(default_factory=list)


@dataclass
class Side:
    """One side of a comparison: a run (or a stored baseline) reduced to seed statistics.

    Attributes:
        label: how the side is named in output (the run folder or the baseline file).
        suite, profile, modality: the suite the numbers come from.
        stats: per (dataset, family, sampler, metric), the :class:`Stat`.
        protocols: fingerprint id -> fingerprint (:func:`bench.evaluation.protocol.record_fingerprint`).
        cells: per (dataset, family), the seeds present and the failed ones with reasons.
        git_sha, versions, device: provenance (of the first record).
    """

    label: str
    suite: str
    profile: str | None
    modality: str | None
    stats: dict[Key, Stat] = field(default_factory=dict)
    protocols: dict[str, dict[str, Any]] = field(default_factory=dict)
    cells: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    git_sha: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)


def fingerprint_id(fp: dict[str, Any]) -> str:
    """A short content id of a fingerprint: the first 12 hex digits of the SHA-256 of its sorted JSON."""
    return hashlib.sha256(json.dumps(fp, sort_keys=True, default=str).encode()).hexdigest()[:12]


def metric_kind(metric: str, sampler: str) -> str:
    """``"timing"``, ``"sample"`` or ``"density"``: which protocol a metric column depends on."""
    info = schema.metric_info(metric)
    if info is not None and info.timing:
        return "timing"
    return "density" if sampler == CELL else "sample"


def timing_device(rec: CellRecord) -> str:
    """Where a record's timings ran: ``"<type>|<name>|torch <version>"`` (the model stage's device)."""
    dev = rec.model_device or rec.device or {}
    return f"{dev.get('type')}|{dev.get('name')}|torch {rec.versions.get('torch')}"


def long_frame(records: list[CellRecord], protocols: dict | None = None):
    """One row per (ok record, sampler, numeric metric): the per-seed values.

    Columns: dataset, family, sampler (:data:`CELL` for cell-level metrics), seed,
    metric, value (float), se (the metric's own standard error from the same record,
    NaN if none), protocol (fingerprint id), device (timing device). Returns a
    ``pandas.DataFrame``; ``protocols``, when given, receives the fingerprints by id. (Not in ``frame.attrs``:
    pandas deep-copies ``attrs`` into every frame derived from it, which made a 2D ci ``compare`` spend
    most of its time copying fingerprints.)
    """
    import pandas as pd

    rows = []
    protocols = {} if protocols is None else protocols
    for r in records:
        if not r.ok:
            continue
        fps: dict[tuple[str, str], str] = {}
        for sampler, cols in schema.flat_metrics(r).items():
            sampler = sampler or CELL
            for metric, value in cols.items():
                info = schema.metric_info(metric)
                se = cols.get(info.se) if info is not None and info.se else None
                kind = metric_kind(metric, sampler)
                if (kind, sampler) not in fps:
                    fp = protocol.record_fingerprint(r, kind, sampler or None)
                    fps[kind, sampler] = fid = fingerprint_id(fp)
                    protocols[fid] = fp
                rows.append({"dataset": r.dataset, "family": r.family, "sampler": sampler, "seed": r.seed,
                             "metric": metric, "value": float(value), "se": math.nan if se is None else float(se),
                             "protocol": fps[kind, sampler], "device": timing_device(r)})
    cols = KEYS[:3] + ["seed", "metric", "value", "se", "protocol", "device"]
    return pd.DataFrame(rows, columns=cols)


def seed_stats(records: list[CellRecord]):
    """Per (dataset, family, sampler, metric): n, mean, std (ddof = 1; NaN for one seed), min, max,
    se (√ΣSEᵢ² / n, NaN without an own SE), the seeds, unit, direction and timing flag.

    Returns a ``pandas.DataFrame`` (empty with these columns when there is no ok record).
    """
    import numpy as np
    import pandas as pd

    long = long_frame(records)
    cols = KEYS + ["n", "mean", "std", "min", "max", "se", "seeds", "unit", "better", "timing"]
    if long.empty:
        return pd.DataFrame(columns=cols)
    g = long.sort_values("seed", kind="stable").groupby(KEYS, sort=False)
    out = g["value"].agg(n="count", mean="mean", std="std", min="min", max="max")
    out["se"] = g["se"].agg(lambda s: np.sqrt((s**2).sum()) / len(s) if s.notna().all() else np.nan)
    out["seeds"] = g["seed"].agg(lambda s: " ".join(str(int(x)) for x in s))
    out = out.reset_index()
    infos = [schema.metric_info(m) for m in out["metric"]]
    out["unit"] = [i.unit if i else "" for i in infos]
    out["better"] = [i.better if i else None for i in infos]
    out["timing"] = [bool(i and i.timing) for i in infos]
    return out[cols]


def write_seed_stats(records: list[CellRecord], path: Path) -> Path:
    """Write :func:`seed_stats` of ``records`` to ``path`` (``seeds.csv`` of a run), atomically; returns it."""
    return write_text(path, seed_stats(records).to_csv(index=False))


def side_from_records(records: list[CellRecord], label: str, profile: str | None = None) -> Side:
    """Reduce a run's records to a :class:`Side`: ok records become statistics, failed ones are listed.

    Only metrics with a direction (:attr:`bench.store.schema.MetricInfo.better`) are kept:
    facts (NFE, sample counts) and standard-error columns are not compared.
    """
    first = records[0] if records else None
    side = Side(label=label, suite=first.suite if first else "", profile=profile,
                modality=first.modality if first else None, git_sha=first.git_sha if first else None,
                versions=dict(first.versions) if first else {}, device=dict(first.device) if first else {})
    for r in records:
        cell = side.cells.setdefault((r.dataset, r.family), {"seeds": [], "failed": {}})
        if r.ok:
            cell["seeds"].append(r.seed)
        else:
            cell["failed"][r.seed] = r.reason or r.status
    long = long_frame(records, side.protocols)
    if long.empty:
        return side
    long = long[[bool((i := schema.metric_info(m)) and i.better) for m in long["metric"]]]
    for key, g in long.sort_values("seed", kind="stable").groupby(KEYS, sort=False):
        values = [float(v) for v in g["value"]]
        n = len(values)
        se = g["se"]
        side.stats[tuple(key)] = Stat(
            mean=float(sum(values) / n), std=float(g["value"].std()) if n > 1 else None, n=n,
            se=float(math.sqrt((se**2).sum()) / n) if se.notna().all() else None, values=values,
            protocol=sorted(set(g["protocol"])), device=sorted(set(g["device"])))
    return side
