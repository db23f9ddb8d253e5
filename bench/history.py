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
of :func:`bench.compare.test` applied to that run and the one before it (Student's t
with ≥ 2 seeds on each side; with one seed, the metric's own SE, else the seed spread,
else a 10% tolerance) is significant at :data:`STEP_ALPHA` (one-sided, toward either
direction, no multiplicity correction) and the change is at least the minimum effect
of :mod:`bench.compare`.
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the appending path imports no torch (concurrent appends start fast)
    from bench.aggregate import Stat
    from bench.results import RunDir

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
                             cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=10)
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
    from bench.aggregate import long_frame
    from bench.results import read_json_dict

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
    from bench.aggregate import write_seed_stats

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

    from bench.aggregate import Stat

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
    from bench.schema import metric_info

    info = metric_info(metric)
    return info.se if info else None


def _flag_steps(points: list[Point], metric: str) -> None:
    """Flag each run whose value stepped from the run before (the module docstring's rule)."""
    from bench.compare import MIN_EFFECT_ABS, MIN_EFFECT_REL, TOLERANCE_REL, test
    from bench.schema import metric_info

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


def plot(all_series: dict[tuple[str, str, str], list[Point]], metric: str, path: Path) -> Path:
    """The metric over runs: mean ± seed std per series, per-seed values faint, steps circled in red."""
    from bench.report.plotting import plt, save

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


def main(argv: list[str] | None = None) -> int:
    """``python run_bench.py history --suite S --metric M``: a metric over runs, steps flagged, and a PNG.

    Exit codes: 0 printed; 2 bad input (no database, unknown metric, no rows).
    """
    from bench.report.fmt import fmt
    from bench.schema import metric_info

    p = argparse.ArgumentParser(prog="run_bench.py history", description=main.__doc__.splitlines()[0])
    p.add_argument("--suite", required=True)
    p.add_argument("--metric", required=True, help="a metric column, e.g. kl_nats, fid_test, precision")
    p.add_argument("--family")
    p.add_argument("--dataset")
    p.add_argument("--sampler", help="a sampler; '' selects cell-level metrics (NLL, KL, training)")
    p.add_argument("--profile")
    p.add_argument("--results", default=str(Path(__file__).resolve().parent.parent / "results"),
                   help="results root holding history.sqlite (default: ./results)")
    p.add_argument("--db", help="the database file (default: <results>/history.sqlite)")
    p.add_argument("--out", help="PNG path (default: <results>/history_<suite>_<metric>.png)")
    args = p.parse_args(argv)
    db = Path(args.db or Path(args.results) / "history.sqlite")
    err = None
    if metric_info(args.metric) is None:
        err = f"--metric {args.metric}: not a metric of the schema (e.g. kl_nats, mmd2, precision, fid_test)"
    elif not db.is_file():
        err = f"{db}: no history database (runs append to it when they finish)"
    if err is None:
        data = series(db, args.suite, args.metric, family=args.family, dataset=args.dataset, sampler=args.sampler,
                      profile=args.profile)
        if not data:
            err = f"{db}: no rows for suite {args.suite!r}, metric {args.metric!r} with these filters"
    if err is not None:
        print(f"run_bench.py history: error: {err}", file=sys.stderr)
        return 2
    print(f"{args.metric} ({metric_info(args.metric).unit or 'no unit'}, better: "
          f"{metric_info(args.metric).better or '–'}), runs in commit order; step rule: "
          f"bench.compare's test vs the previous run at p ≤ {STEP_ALPHA:g} and at least the minimum effect")
    for key, points in data.items():
        print("/".join(k for k in key if k) + ":")
        for pt in points:
            s = pt.stat
            spread = f" ± {fmt(s.std, 2)}" if s.std is not None else ""
            flag = f"  <- step {pt.step} ({pt.rule})" if pt.step else ""
            print(f"  {pt.run_id:<20} {(pt.git_sha or '?')[:12]:<13} {fmt(s.mean, 4)}{spread} (n={s.n}){flag}")
    out = Path(args.out or Path(args.results) / f"history_{args.suite}_{args.metric}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"plot: {plot(data, args.metric, out)}")
    return 0
