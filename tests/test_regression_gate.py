"""The regression gate end to end on tiny runs: seeds aggregated, compare's exit codes and messages,
baselines, and the history database under concurrent appends.

The slow tier: the module's runs train 19 cells, and the concurrent appends come from two child processes. The
gate's logic on hand-made records is in tests/test_compare.py (fast tier).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import run_bench
from bench.analysis import baselines, compare, history
from tests.helpers import wait_for, write_tiny_suite

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
FLOW = {"flow": {"model": {"transforms": 2, "hidden": 16}, "train": {"steps": 100, "batch_size": 256, "lr": 5.0e-3}}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Four runs of a 2-dataset, 3-seed flow suite: a; b, the same again; c, sabotaged (5 training
    steps); d, one seed on one dataset with another n_samples."""
    tmp = tmp_path_factory.mktemp("gate")
    suite = write_tiny_suite(tmp, FLOW, datasets=["8gaussians", "25gaussians"], seeds=[0, 1, 2])
    args = [str(suite), "--results", str(tmp / "res"), "--no-progress", "--stage", "evaluate"]
    for run_id, extra in (("a", []), ("b", []), ("c", ["--set", "families.flow.train.steps=5"]),
                          ("d", ["--set", "eval.n_samples=200", "--set", "seeds=[0]", "--datasets", "8gaussians"])):
        assert run_bench.main([*args, "--run-id", run_id, *extra]) == 0
    return tmp / "res"


def _compare(capsys, *argv) -> tuple[int, str]:
    code = run_bench.main(["compare", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_seed_statistics_are_stored_with_the_run(runs):
    stats = pd.read_csv(runs / "tiny" / "a" / "seeds.csv", keep_default_na=False)
    row = stats[(stats.dataset == "8gaussians") & (stats.metric == "kl_nats")].iloc[0]
    kl = [json.loads((runs / "tiny" / "a" / f"8gaussians__flow__s{s}" / "record.json").read_text())["density"]
          ["kl_nats"] for s in range(3)]
    assert row["n"] == 3 and row["seeds"] == "0 1 2" and row["better"] == "lower" and row["unit"] == "nats"
    assert row["mean"] == pytest.approx(np.mean(kl), rel=1e-12) and row["std"] == pytest.approx(np.std(kl, ddof=1))


def test_same_seeds_give_unchanged_everywhere(runs, capsys):
    code, out = _compare(capsys, runs / "tiny" / "a", runs / "tiny" / "b")
    assert code == 0 and "compare: no regression" in out
    cmp = compare.compare(compare.load_run(runs / "tiny" / "a"), compare.load_run(runs / "tiny" / "b"))
    quality = [r for r in cmp.rows if not r.info.timing]
    assert len(quality) == 2 * 15  # per dataset: NLL, KL, latent reconstruction RMSE and L2, 11 sample metrics
    assert all(r.verdict == "unchanged" and r.rule == "identical values" for r in quality)
    assert not cmp.family(False)  # nothing left to test
    assert not any(r.gated for r in cmp.rows if r.info.timing)
    assert (runs / "tiny" / "b" / "compare.md").exists() and (runs / "tiny" / "b" / "compare.html").exists()


def test_a_sabotaged_flow_regresses_its_kl_on_each_dataset(runs, capsys):
    code, out = _compare(capsys, runs / "tiny" / "a", runs / "tiny" / "c")
    assert code == 1
    lines = [line for line in out.splitlines() if line.startswith("REGRESSION")]
    for ds in ("8gaussians", "25gaussians"):
        assert any(line.startswith(f"REGRESSION {ds}/flow kl_nats: ") and "Student t" in line for line in lines), out
    md = (runs / "tiny" / "c" / "compare.md").read_text()
    assert "regression(s)" in md and "| regressed | 8gaussians | flow | – | kl_nats |" in md


def test_a_different_n_samples_is_refused_naming_the_key(runs, capsys):
    a, d = runs / "tiny" / "a", runs / "tiny" / "d"
    code, out = _compare(capsys, a, d)
    assert code == 2
    assert "11 quality metrics were computed under different protocols (eval.n_samples: 300 vs 200)" in out
    assert not (d / "compare.md").exists()  # refused before anything is written
    code, out = _compare(capsys, a, d, "--allow-protocol-mismatch")
    assert code in (0, 1) and "missing: 25gaussians/flow only in A" in out and (d / "compare.md").exists()
    cmp = compare.compare(compare.load_run(a), compare.load_run(d))
    refused = cmp.refused()
    assert {r.key[3] for r in refused} == {"mmd2", "mmd2_multiscale", "precision", "recall", "high_quality_fraction",
                                           "modes_covered", "mode_coverage", "nonfinite_fraction",
                                           "sample_nll_data_nats", "mode_kl_nats", "modes_hit"}
    assert all(r.rule == "protocol differs: eval.n_samples: 300 vs 200" for r in refused)
    kl = [r for r in cmp.rows if r.key == ("8gaussians", "flow", "", "kl_nats")][0]
    assert kl.verdict != "not comparable" and kl.rule.startswith("own SE")  # NLL does not depend on n_samples
    assert cmp.only_a == ["25gaussians/flow"]


def test_bad_input_exits_2_before_writing(runs, tmp_path, capsys):
    code, out = _compare(capsys, runs / "tiny" / "a", tmp_path / "nope")
    assert code == 2 and f"{tmp_path / 'nope'}: no such run folder" in out
    code, out = _compare(capsys, "--baseline", runs / "tiny" / "a", "--baselines", tmp_path)
    assert code == 2 and "no baseline for suite 'tiny', profile 'default'" in out
    assert list(tmp_path.iterdir()) == []


def test_baseline_round_trip_and_gate(runs, tmp_path, capsys):
    assert run_bench.main(["baseline", str(runs / "tiny" / "a"), "--dir", str(tmp_path)]) == 0
    path = tmp_path / "tiny-default.json"
    assert path.stat().st_size < 16_000  # small enough to commit
    stored, run = baselines.load(path), compare.load_run(runs / "tiny" / "a")
    assert stored.stats.keys() == run.stats.keys() and stored.protocols.keys() <= run.protocols.keys()
    for key, s in run.stats.items():
        b = stored.stats[key]
        assert (b.n, b.protocol, b.values) == (s.n, s.protocol, pytest.approx(s.values, rel=1e-6))
    assert _compare(capsys, "--baseline", runs / "tiny" / "b", "--baselines", tmp_path)[0] == 0
    code, out = _compare(capsys, "--baseline", runs / "tiny" / "c", "--baselines", tmp_path)
    assert code == 1 and "REGRESSION 8gaussians/flow kl_nats" in out


def test_history_holds_every_seed_and_prints_the_metric(runs, tmp_path, capsys):
    db = runs / "history.sqlite"
    with sqlite3.connect(db) as con:
        n = con.execute("SELECT COUNT(*) FROM metrics WHERE run_id = 'a' AND metric = 'kl_nats'").fetchone()[0]
        runs_n = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    assert n == 6 and runs_n == 4  # 2 datasets x 3 seeds; runs a, b, c, d
    code = run_bench.main(["history", "--suite", "tiny", "--metric", "kl_nats", "--results", str(runs),
                           "--out", str(tmp_path / "h.png")])
    out = capsys.readouterr().out
    assert code == 0 and (tmp_path / "h.png").stat().st_size > 0
    assert "8gaussians/flow:" in out and out.count("<- step up") >= 1  # c's 5-step flow steps up from b


def test_concurrent_history_appends_lose_nothing(tmp_path):
    db = tmp_path / "h.sqlite"
    # two processes, each 30 runs of 200 rows, started together (each waits for the file "go")
    code = ("import sys, time, pathlib; from bench.analysis import history\n"
            "who, db, tmp = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])\n"
            "(tmp / f'ready_{who}').touch()\n"
            "while not (tmp / 'go').exists(): time.sleep(0.01)\n"
            "for i in range(30):\n"
            "    rows = [('s', f'{who}{i}', 'sha', 'd', 'f', '', k, 'm', float(k), 'cpu') for k in range(200)]\n"
            "    history.append(db, {'suite': 's', 'run_id': f'{who}{i}'}, rows)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code, who, str(db), str(tmp_path)], cwd=ROOT, env=env)
             for who in ("x", "y")]
    assert wait_for(lambda: all((tmp_path / f"ready_{w}").exists() for w in "xy"), timeout=120)
    (tmp_path / "go").touch()
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == 2 * 30 * 200
        assert con.execute("SELECT COUNT(DISTINCT run_id) FROM runs").fetchone()[0] == 60
    # appending a run again replaces its rows
    history.append(db, {"suite": "s", "run_id": "x0"}, [("s", "x0", "sha", "d", "f", "", 0, "m", 1.0, "cpu")])
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM metrics WHERE run_id = 'x0'").fetchone()[0] == 1


def test_an_unwritable_history_costs_only_the_history_rows(runs, tmp_path, capsys):
    import shutil

    from bench.store.runs import RunDir

    shutil.copytree(runs / "tiny" / "a", tmp_path / "tiny" / "a")
    (tmp_path / "history.sqlite").mkdir()  # a folder where the database file should be
    (tmp_path / "tiny" / "a" / "seeds.csv").unlink()
    history.record_run(RunDir(tmp_path, "tiny", "a"))
    assert "warning: run a not added to" in capsys.readouterr().err
    assert (tmp_path / "tiny" / "a" / "seeds.csv").exists()


def test_the_gate_command_runs_each_profile_and_compares_it_with_its_baseline(tmp_path, capsys):
    """``run_bench.py gate``: one process, each profile run and compared; a clean profile passes, a sabotaged one
    (5 flow steps instead of 100, compared with the clean baseline) fails with its regression, exit 1."""
    suite = write_tiny_suite(tmp_path, FLOW, seeds=[0, 1, 2],
                             profiles={"ci": {}, "sabotaged": {"families": {"flow": {"train": {"steps": 5}}}}})
    common = ["--results", str(tmp_path / "res"), "--stage", "evaluate", "--no-progress", "--jobs", "1",
              "--threads", "1"]
    assert run_bench.main([str(suite), "--profile", "ci", "--run-id", "base", *common]) == 0
    assert run_bench.main(["baseline", str(tmp_path / "res" / "tiny" / "base"), "--dir", str(tmp_path / "b")]) == 0
    clean = json.loads((tmp_path / "b" / "tiny-ci.json").read_text())
    (tmp_path / "b" / "tiny-sabotaged.json").write_text(json.dumps({**clean, "profile": "sabotaged"}))
    capsys.readouterr()
    code = run_bench.main(["gate", str(suite), "--profile", "ci", "--profile", "sabotaged", "--baselines",
                           str(tmp_path / "b"), "--results", str(tmp_path / "gate"), "--jobs", "1", "--threads", "1"])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 1, text
    assert "gate: --profile ci: clean" in text and "gate: --profile sabotaged: regressed" in text
    assert "REGRESSION 8gaussians/flow kl_nats" in text and "cost model:" not in text  # --no-estimate: no probes
    base = compare.load_run(tmp_path / "res" / "tiny" / "base")
    again = compare.load_run(tmp_path / "gate" / "tiny" / "ci")  # the profile's name is the run id
    kl = lambda side: {k: s.values for k, s in side.stats.items() if k[-1] == "kl_nats"}  # noqa: E731
    assert kl(base) and kl(again) == kl(base)  # the gate's run is the separate command's, seed for seed


def test_the_gate_command_refuses_an_unknown_profile_or_a_missing_baseline_with_exit_2(tmp_path, capsys):
    suite = write_tiny_suite(tmp_path, FLOW, profiles={"ci": {}})
    assert run_bench.main(["gate", str(suite), "--profile", "nope", "--profile", "ci"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope" in err  # refused before anything ran
    code = run_bench.main(["gate", str(suite), "--profile", "ci", "--baselines", str(tmp_path / "none"),
                           "--results", str(tmp_path / "gate")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no baseline for suite 'tiny', profile 'ci'" in err
    assert not (tmp_path / "gate").exists()  # refused before the run
