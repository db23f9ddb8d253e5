"""The history database: every finished run's metrics, per seed, in ``results/history.sqlite``.

One row per (suite, run, commit, dataset, family, sampler, seed, metric, value, device)
in the table ``metrics``, and one per run in ``runs`` (profile, git SHA, commit time,
device). A run is appended when its evaluation finishes (:func:`append_run`); appending
it again (a resumed run) replaces its rows. Each append is one ``BEGIN IMMEDIATE``
transaction with a 60 s busy timeout, so runs finishing at once wait for each other
and lose nothing.

``python run_bench.py history --suite toy2d --metric kl_nats --family flow`` prints a
metric over runs in commit order (commit time, then the run's finish time) and saves
a plot. **Step rule**: a run is flagged where the metric stepped: the comparison rule
of :func:`bench.analysis.compare.test` applied to that run and the one before it (Student's t
with ≥ 2 seeds on each side; with one seed, the metric's own SE, else the seed spread,
else a 10% tolerance) is significant at :data:`STEP_ALPHA` (one-sided, toward either
direction, no multiplicity correction) and the change is at least the minimum effect
of :mod:`bench.analysis.compare`.
"""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.core import env

if TYPE_CHECKING:  # the appending path imports no torch (concurrent appends start fast)
    from bench.analysis.aggregate import Stat
    from bench.store.runs import RunDir

STEP_ALPHA = 0.01
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    suite TEXT NOT NULL, run_id TEXT NOT NULL, profile TEXT, git_sha TEXT, commit_time TEXT,
    finished_at TEXT, device TEXT, torch TEXT, results TEXT,
    PRIMARY KEY (suite, run_id));
CREATE TABLE IF NOT EXISTS metrics (
    suite TEXT NOT NULL, run_id TEXT NOT NULL, git_sha TEXT, dataset TEXT NOT NULL, family TEXT NOT NULL,
    sampler TEXT NOT NULL, seed INTEGER NOT NULL, metric TEXT NOT NULL, value REAL NOT NULL, device TEXT,
    PRIMARY KEY (suite, run_id, dataset, family, sampler, seed, metric));
"""


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) the history database; autocommit mode, explicit transactions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    con.executescript(_SCHEMA)
    return con


def commit_time(sha: str | None) -> str | None:
    """The committer date (ISO 8601) of ``sha`` (a ``-dirty`` suffix ignored) in this checkout, or ``None``."""
    if not sha or sha == "unknown":
        return None
    try:
        out = subprocess.run(["git", "show", "-s", "--format=%cI", sha.removesuffix("-dirty")],
                             cwd=env.ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def append(db: str | Path, run_rows: dict, metric_rows: list[tuple]) -> int:
    """Insert one run and its metric rows in one transaction (replacing that run's earlier rows).

    Args:
        db: the database file.
        run_rows: the ``runs`` row as a dict of its columns.
        metric_rows: ``metrics`` rows, tuples in column order.

    Returns:
        The number of metric rows written.
    """
    with closing(connect(db)) as con:
        con.execute("BEGIN IMMEDIATE")
        try:
            key = (run_rows["suite"], run_rows["run_id"])
            con.execute("DELETE FROM metrics WHERE suite = ? AND run_id = ?", key)
            cols = list(run_rows)
            con.execute(f"INSERT OR REPLACE INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                        [run_rows[c] for c in cols])
            con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", metric_rows)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return len(metric_rows)


def append_run(run: RunDir, db: str | Path | None = None) -> int:
    """Append the ok cells of ``run`` (every numeric metric, per seed) to the history database.

    Args:
        run: the run folder.
        db: the database (default: ``<results root>/history.sqlite``).

    Returns:
        The number of metric rows written.
    """
    from bench.analysis.aggregate import long_frame
    from bench.core.files import read_json_dict

    records = run.records()
    info = read_json_dict(run.path / "run.json")  # absent or damaged, the rows are still written
    long = long_frame(records)
    first = next((r for r in records if r.ok), None)
    sha = first.git_sha if first else info.get("git_sha")
    dev = info.get("device") or {}
    run_row = {"suite": run.suite, "run_id": run.run_id, "profile": info.get("profile"), "git_sha": sha,
               "commit_time": commit_time(sha), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "device": f"{dev.get('type')}|{dev.get('name')}", "torch": (info.get("versions") or {}).get("torch"),
               "results": str(run.root)}
    rows = [(run.suite, run.run_id, sha, r.dataset, r.family, r.sampler, int(r.seed), r.metric, float(r.value),
             r.device) for r in long.itertuples(index=False)]
    return append(db or run.root / "history.sqlite", run_row, rows)


def record_run(run: RunDir) -> None:
    """What a finished run stores beyond its records: ``seeds.csv`` and its rows in the history database.

    A database that cannot be written (locked past the busy timeout, read-only, full) costs the run
    its history rows only: one line on stderr says so, and the run's own files stand.
    """
    from bench.analysis.aggregate import write_seed_stats

    write_seed_stats(run.records(), run.path / "seeds.csv")
    try:
        append_run(run)
    except sqlite3.Error as e:
        print(f"genbench: warning: run {run.run_id} not added to {run.root / 'history.sqlite'}: {e}", file=sys.stderr)


# --------------------------------------------------------------------------- reading
@dataclass
class Point:
    """One run of one series: the metric over its seeds, and whether it stepped."""

    run_id: str
    git_sha: str | None
    commit_time: str | None
    stat: Stat
    step: str = ""  # "" or "up" / "down" (the direction of the value, not of quality)
    rule: str = ""


def series(db: str | Path, suite: str, metric: str, *, family: str | None = None, dataset: str | None = None,
           sampler: str | None = None, profile: str | None = None) -> dict[tuple[str, str, str], list[Point]]:
    """The metric over runs, per (dataset, family, sampler), in commit order, steps flagged.

    Raises:
        FileNotFoundError: no database at ``db``.
    """
    import pandas as pd

    from bench.analysis.aggregate import Stat

    if not Path(db).is_file():
        raise FileNotFoundError(f"{db}: no history database (runs append to it when they finish)")
    where, params = ["m.suite = ?", "m.metric = ?"], [suite, metric]
    for col, v in (("m.family", family), ("m.dataset", dataset), ("m.sampler", sampler), ("r.profile", profile)):
        if v is not None:
            where.append(f"{col} = ?")
            params.append(v)
    with closing(connect(db)) as con:
        se_col = _se_column(metric)
        frame = pd.read_sql_query(
            "SELECT m.run_id, m.git_sha, r.commit_time, r.finished_at, m.dataset, m.family, m.sampler, m.seed, "
            f"m.value, se.value AS se FROM metrics m JOIN runs r ON r.suite = m.suite AND r.run_id = m.run_id "
            "LEFT JOIN metrics se ON se.suite = m.suite AND se.run_id = m.run_id AND se.dataset = m.dataset "
            "AND se.family = m.family AND se.sampler = m.sampler AND se.seed = m.seed AND se.metric = ? "
            f"WHERE {' AND '.join(where)}", con, params=[se_col or "", *params])
    out: dict[tuple[str, str, str], list[Point]] = {}
    frame["order"] = frame["commit_time"].fillna("") + "|" + frame["finished_at"].fillna("")
    for key, g in frame.groupby(["dataset", "family", "sampler"], sort=True):
        points = []
        for (_, run_id), rg in g.groupby(["order", "run_id"], sort=True):
            v = [float(x) for x in rg.sort_values("seed")["value"]]
            n = len(v)
            se = rg["se"]
            stat = Stat(mean=sum(v) / n, std=float(rg["value"].std()) if n > 1 else None, n=n, values=v,
                        se=float(math.sqrt((se**2).sum()) / n) if se.notna().all() else None)
            points.append(Point(run_id, rg["git_sha"].iloc[0], rg["commit_time"].iloc[0], stat))
        _flag_steps(points, metric)
        out[tuple(key)] = points
    return out


def _se_column(metric: str) -> str | None:
    from bench.store.schema import metric_info

    info = metric_info(metric)
    return info.se if info else None


def _flag_steps(points: list[Point], metric: str) -> None:
    """Flag each run whose value stepped from the run before (the module docstring's rule)."""
    from bench.analysis.compare import MIN_EFFECT_ABS, MIN_EFFECT_REL, TOLERANCE_REL, test
    from bench.store.schema import metric_info

    info = metric_info(metric)
    unit = info.unit if info else ""
    for prev, cur in zip(points, points[1:]):
        rule, p_up, p_down = test(prev.stat, cur.stat, +1.0)
        d = cur.stat.mean - prev.stat.mean
        floor = max(MIN_EFFECT_REL * abs(prev.stat.mean), MIN_EFFECT_ABS.get(unit, 0.0))
        if p_up is None:  # the tolerance rule
            stepped = abs(d) >= max(TOLERANCE_REL * abs(prev.stat.mean), floor)
        else:
            stepped = min(p_up, p_down) <= STEP_ALPHA and abs(d) >= floor
        if stepped:
            cur.step, cur.rule = ("up" if d > 0 else "down"), rule
