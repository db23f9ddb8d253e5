#!/usr/bin/env python
"""Fault injection for genbench: kills, damaged artifacts, full disks, read-only folders, two writers,
concurrent checkpoint saves and bad input. Prints one JSON object per scenario, and a Markdown table of the
bad-input rows (tried, clean, tracebacks, silently accepted, valid, probe failures).

    python scripts/fault_injection.py all --out /tmp/faults           # every scenario (a few minutes)
    python scripts/fault_injection.py kills truncate --out /tmp/faults
    PYTHONPATH=. python scripts/fault_injection.py bad-inputs --draws 1000 --out /tmp/faults   # ~2 h on 2 cores
    PYTHONPATH=. python scripts/fault_injection.py bad-inputs --generic-draws 0 --suites toy2d --seconds 900
    PYTHONPATH=. python scripts/fault_injection.py bad-inputs --generic-draws 0 --no-probes --draws 3000
    GENBENCH_FAULTS_CODE=/other/genbench PYTHONPATH=/other/genbench python scripts/fault_injection.py all

Each scenario runs ``run_bench.py`` in subprocesses on a tiny 2D suite (two families, one
dataset), injects its fault, resumes, and counts: exit codes, tracebacks on stderr,
cells ok, ``summary.csv`` rows lost, temporaries left. ``disk-full`` (tmpfs) and
``read-only`` need root and ``unshare -m`` (a private mount namespace); ``disk-full``
also uses ``ulimit -f`` (RLIMIT_FSIZE with SIGXFSZ ignored), which needs neither.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = Path(os.environ.get("GENBENCH_FAULTS_CODE", ROOT))  # the genbench whose run_bench.py is run
SUITE = """\
name: tiny
datasets: [8gaussians]
data: {n_train: 2000, n_val: 200, n_test: 500}
eval: {n_samples: 2000, bound_n: 100, throughput_batch: 500, quadrature_grid: 64, density_grid: 16}
families:
  autoregressive: {model: {hidden: 32, components: 4}, train: {steps: 300}}
  gan: {model: {hidden: 16}, train: {steps: 30}}
"""
CELLS = ["8gaussians__autoregressive__s0", "8gaussians__gan__s0"]
ROWS = 2  # one sampler each


def cli(folder: Path, *args: str, limit_bytes: int | None = None) -> dict:
    """Run run_bench.py on ``folder/s.yaml`` with results in ``folder/res``; its exit code and stderr facts."""
    def preexec():
        if limit_bytes is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, resource.RLIM_INFINITY))

    p = subprocess.run([sys.executable, str(CODE / "run_bench.py"), str(folder / "s.yaml"), "--results",
                        str(folder / "res"), "--no-progress", *args], capture_output=True, text=True,
                       preexec_fn=preexec, cwd=CODE, env={**os.environ, "PYTHONPATH": str(CODE)})
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("run_bench.py: error:")]
    return {"rc": p.returncode, "tracebacks": p.stderr.count("Traceback (most recent call last)"),
            "error": errors[-1] if errors else None, "stderr_tail": p.stderr.strip().splitlines()[-3:]}


def state(folder: Path, run_id: str = "r") -> dict:
    """Cells ok, summary rows, temporaries and leftover lock bodies of a run."""
    run = folder / "res" / "tiny" / run_id
    ok = 0
    for c in CELLS:
        try:
            ok += json.loads((run / c / "record.json").read_text()).get("status") == "ok"
        except (OSError, ValueError):
            pass
    try:
        rows = max(0, len((run / "summary.csv").read_text().strip().splitlines()) - 1)
    except OSError:
        rows = 0
    tmps = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and ".tmp" in p.name]
    return {"cells_ok": ok, "cells": len(CELLS), "rows": rows, "rows_lost": ROWS - rows, "temporaries": tmps}


def fresh(base: Path, name: str) -> Path:
    folder = base / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "s.yaml").write_text(SUITE)
    return folder


# --------------------------------------------------------------------------- scenarios
def kills(base: Path) -> list[dict]:
    """SIGKILL at each stage of the first cell, then resume."""
    cell = lambda f: f / "res" / "tiny" / "r" / CELLS[0]
    points = {
        "training": lambda f: cell(f).is_dir() and not (cell(f) / "model.pt").exists(),
        "after training": lambda f: (cell(f) / "SHA256SUMS").exists(),
        "sampling": lambda f: any(cell(f).glob("samples_*.npz")) and not (cell(f) / "model_eval.json").exists(),
        "after sampling": lambda f: (cell(f) / "model_eval.json").exists(),
        "evaluating": lambda f: (cell(f) / "model_eval.json").exists() and not (cell(f) / "record.json").exists(),
        "report": lambda f: (f / "res" / "tiny" / "r" / "figures").is_dir(),
    }
    out = []
    for point, ready in points.items():
        f = fresh(base, f"kill-{point.replace(' ', '-')}")
        p = subprocess.Popen([sys.executable, str(CODE / "run_bench.py"), str(f / "s.yaml"), "--results",
                              str(f / "res"), "--run-id", "r", "--no-progress"], stderr=subprocess.DEVNULL, cwd=CODE,
                             env={**os.environ, "PYTHONPATH": str(CODE)})
        deadline = time.monotonic() + 300
        while not ready(f) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        if point in ("training", "evaluating"):
            time.sleep(0.2)
        p.send_signal(signal.SIGKILL)
        p.wait()
        had = sorted(x.name for x in cell(f).iterdir()) if cell(f).is_dir() else []
        before = state(f)
        resumed = cli(f, "--run-id", "r")
        out.append({"fault": f"SIGKILL while {point}", "artifacts_at_kill": had,
                    "temporaries_at_kill": len(before["temporaries"]), **resumed, **state(f)})
    return out


def _finished(base: Path) -> Path:
    f = base / "finished"
    if not (f / "res" / "tiny" / "r" / "report.md").exists():
        f = fresh(base, "finished")
        assert cli(f, "--run-id", "r")["rc"] == 0
    return f


def truncate(base: Path) -> list[dict]:
    """Each artifact kind cut to half its size: the report alone, then a resume, then --force."""
    done = _finished(base)
    kinds = ["model.pt", "model_eval.json", "samples_default.npz", "density_grid.npz", "record.json", "SHA256SUMS",
             "../run.json", "../summary.csv", "../figures/samples.png"]
    out = []
    for kind in kinds:
        f = base / f"trunc-{kind.replace('../', '').replace('/', '-')}"
        shutil.rmtree(f, ignore_errors=True)
        shutil.copytree(done, f)
        path = (f / "res" / "tiny" / "r" / CELLS[0] / kind).resolve()
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        report = cli(f, "--run-id", "r", "--stage", "report")
        resumed = cli(f, "--run-id", "r")
        forced = cli(f, "--run-id", "r", "--force")
        out.append({"fault": f"truncated {kind.replace('../', '')}", "report_rc": report["rc"],
                    "report_tracebacks": report["tracebacks"], **resumed, "force_rc": forced["rc"],
                    "force_tracebacks": forced["tracebacks"], **state(f)})
    return out


def disk_full(base: Path) -> list[dict]:
    """``ulimit -f`` at several sizes, and small tmpfs results folders (root, unshare -m); then resume."""
    out = []
    for limit in (4_000, 20_000, 40_000):
        f = fresh(base, f"ulimit-{limit}")
        full = cli(f, "--run-id", "r", limit_bytes=limit)
        after = state(f)
        resumed = cli(f, "--run-id", "r")
        out.append({"fault": f"ulimit -f {limit} B", "full_rc": full["rc"], "full_error": full["error"],
                    "full_tracebacks": full["tracebacks"], "temporaries_after_failure": len(after["temporaries"]),
                    "resume_rc": resumed["rc"], "tracebacks": full["tracebacks"] + resumed["tracebacks"],
                    **state(f)})
    for size in ("64k", "192k", "512k"):
        f = fresh(base, f"tmpfs-{size}")
        (f / "res").mkdir()
        p = subprocess.run(["unshare", "-m", sys.executable, __file__, "_tmpfs", str(f), size], capture_output=True,
                           text=True)
        try:
            out.append({"fault": f"tmpfs of {size}", **json.loads(p.stdout.strip().splitlines()[-1])})
        except (IndexError, ValueError):
            out.append({"fault": f"tmpfs of {size}", "skipped": (p.stderr.strip().splitlines() or ["?"])[-1]})
    return out


def _tmpfs(folder: str, size: str) -> None:
    """Inside a private mount namespace: a tmpfs of ``size`` as the results root; fill it, grow it, resume."""
    f = Path(folder)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(f / "res")], check=True)
    full = cli(f, "--run-id", "r")
    after = state(f)
    subprocess.run(["mount", "-o", "remount,size=64m", str(f / "res")], check=True)
    resumed = cli(f, "--run-id", "r")
    print(json.dumps({"full_rc": full["rc"], "full_error": full["error"], "full_tracebacks": full["tracebacks"],
                      "temporaries_after_failure": len(after["temporaries"]), "resume_rc": resumed["rc"],
                      "tracebacks": full["tracebacks"] + resumed["tracebacks"], **state(f)}))


def read_only(base: Path) -> list[dict]:
    """A finished run on a read-only bind mount (root, unshare -m): reading works, writing is one line."""
    done = _finished(base)
    f = base / "read-only"
    shutil.rmtree(f, ignore_errors=True)
    shutil.copytree(done, f)
    p = subprocess.run(["unshare", "-m", sys.executable, __file__, "_readonly", str(f)], capture_output=True,
                       text=True)
    try:
        return [{"fault": "read-only results folder", **json.loads(p.stdout.strip().splitlines()[-1])}]
    except (IndexError, ValueError):
        return [{"fault": "read-only results folder", "skipped": (p.stderr.strip().splitlines() or ["?"])[-1]}]


def _readonly(folder: str) -> None:
    f = Path(folder)
    res = str(f / "res")
    subprocess.run(["mount", "--bind", res, res], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", res], check=True)
    before = {str(p): p.stat().st_mtime_ns for p in (f / "res").rglob("*")}
    checks = {"resume": cli(f, "--run-id", "r"), "force": cli(f, "--run-id", "r", "--force"),
              "report": cli(f, "--run-id", "r", "--stage", "report"), "new run": cli(f),
              "dry-run": cli(f, "--dry-run"), "resume dry-run": cli(f, "--resume", "--dry-run")}
    code = (f"import sys; sys.path.insert(0, {str(CODE)!r}); from bench.store.runs import RunDir; "
            f"print(len(RunDir({res!r}, 'tiny', 'r').records()), RunDir.latest({res!r}, 'tiny').run_id)")
    reading = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    changed = sum(before.get(str(p)) != p.stat().st_mtime_ns for p in (f / "res").rglob("*"))
    print(json.dumps({**{f"{k}_rc": v["rc"] for k, v in checks.items()},
                      "tracebacks": sum(v["tracebacks"] for v in checks.values()),
                      "errors": {k: v["error"] for k, v in checks.items() if v["error"]},
                      "records_read": reading.stdout.strip(), "read_error": reading.stderr.strip()[-200:],
                      "files_changed": changed, **state(f)}))


def writers(base: Path) -> list[dict]:
    """Two processes on one new run id at once; then a writer killed mid-run, and a resume (stale lock)."""
    f = fresh(base, "writers")
    args = [sys.executable, str(CODE / "run_bench.py"), str(f / "s.yaml"), "--results", str(f / "res"), "--run-id",
            "r", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(CODE)}
    procs = [subprocess.Popen(args, stderr=subprocess.PIPE, text=True, cwd=CODE, env=env) for _ in range(2)]
    logs = [p.communicate()[1] for p in procs]
    trained = [sum(": train " in ln for ln in log.splitlines()) for log in logs]
    corrupt = 0
    sys.path.insert(0, str(CODE))
    import models

    for c in CELLS:
        try:
            models.load_checkpoint(f / "res" / "tiny" / "r" / c / "model.pt")
        except Exception:  # noqa: BLE001
            corrupt += 1
    out = [{"fault": "two writers on one run id", "rcs": [p.returncode for p in procs], "cells_trained": trained,
            "refusal": next((ln for log in logs for ln in log.splitlines() if "is in use by" in ln), None),
            "corrupt_checkpoints": corrupt, "tracebacks": sum(log.count("Traceback") for log in logs), **state(f)}]
    g = fresh(base, "stale-lock")
    p = subprocess.Popen([*args[:2], str(g / "s.yaml"), "--results", str(g / "res"), "--run-id", "r",
                          "--no-progress"], stderr=subprocess.DEVNULL, cwd=CODE, env=env)
    while not (g / "res" / "tiny" / "r" / CELLS[0] / "SHA256SUMS").exists() and p.poll() is None:
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    resumed = subprocess.run([*args[:2], str(g / "s.yaml"), "--results", str(g / "res"), "--run-id", "r",
                              "--no-progress"], capture_output=True, text=True, cwd=CODE, env=env)
    out.append({"fault": "writer killed, lock left behind", "rc": resumed.returncode,
                "stale_report": next((ln for ln in resumed.stderr.splitlines() if "stale lock" in ln), None),
                "tracebacks": resumed.stderr.count("Traceback"), **state(g)})
    return out


def saves(base: Path) -> list[dict]:
    """300 checkpoint saves from 3 threads to one path while a thread loads it (the models on sys.path)."""
    import threading

    import torch

    import models

    cls = models.get("autoregressive", "vector")
    torch.manual_seed(0)
    model = cls(cls.Config(hidden=256), (2,))
    path = base / "saves" / "model.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    models.save_checkpoint(model, path)
    failed_saves, failed_loads, loads, stop = [], [], [0], threading.Event()

    def writer():
        for _ in range(100):
            try:
                models.save_checkpoint(model, path)
            except Exception as e:  # noqa: BLE001
                failed_saves.append(type(e).__name__)

    def reader():
        while not stop.is_set():
            try:
                models.load_checkpoint(path)
            except Exception as e:  # noqa: BLE001
                failed_loads.append(type(e).__name__)
            loads[0] += 1

    threads = [threading.Thread(target=writer) for _ in range(3)]
    r = threading.Thread(target=reader)
    r.start()
    [t.start() for t in threads]
    [t.join() for t in threads]
    stop.set()
    r.join()
    tmps = [p.name for p in path.parent.iterdir() if p.name != "model.pt"]
    return [{"fault": "300 concurrent saves + loads", "code": str(Path(models.__file__).parent.parent),
             "failed_saves": len(failed_saves), "failed_loads": len(failed_loads), "loads": loads[0],
             "temporaries_left": len(tmps)}]


OUTCOMES = ["clean", "traceback", "silently accepted", "valid", "probe failed", "unclear error"]
WORKER_DRAWS = 50  # family-key draws per worker process before it is replaced (bounds its memory)


def _run(argv: list[str]) -> tuple[int | str, str, str]:
    """``run_bench.main(argv)`` in this process: exit code (``"traceback"`` when it raised), stderr, stdout."""
    import contextlib
    import io

    import run_bench

    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = run_bench.main(argv)
    except SystemExit as e:
        code = e.code
    except BaseException:  # noqa: BLE001 (the finding)
        code = "traceback"
    return code, err.getvalue(), out.getvalue()


_BAD_INPUT = None


def _bad_input_module():
    """tests/test_bad_input.py as the module ``bad_input`` (its strategies, draws and outcome rules), loaded once
    per process (a fuzzer worker loads it before unpickling its first draw)."""
    global _BAD_INPUT
    if _BAD_INPUT is None:
        import importlib.util

        spec = importlib.util.spec_from_file_location("bad_input", ROOT / "tests" / "test_bad_input.py")
        t = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = t  # its dataclasses look their module up
        spec.loader.exec_module(t)
        _BAD_INPUT = t
    return _BAD_INPUT


def _family_draw(suite: Path, draw: list, how: str, folder: Path, data_root: Path) -> tuple[str, str, str]:
    """One family-key draw through ``run_bench.py --dry-run`` in this process: (outcome, stderr, stdout)."""
    t = _bad_input_module()
    folder.mkdir(parents=True, exist_ok=True)
    args, sources = t.family_draw_args(suite, "smoke", draw, how, folder, data_root)
    code, err, stdout = _run(args)
    return (code if code == "traceback" else t.family_outcome(code, err, stdout, draw, sources)), err, stdout


def _family_draw_in_worker(job: tuple) -> tuple[str, str, str]:
    """:func:`_family_draw` in a pool worker, in a folder of its own (removed after)."""
    i, suite, draw, how, folder, data_root = job
    mine = folder / f"draw{i}"
    try:
        return _family_draw(suite, draw, how, mine, data_root)
    finally:
        shutil.rmtree(mine, ignore_errors=True)


def bad_inputs(base: Path, n_fuzz: int = 1000, *, n_generic: int | None = None, seconds: float | None = None,
               suites: tuple[str, ...] = ("toy2d", "mnist", "cifar"), probes: bool = True,
               workers: int = 1) -> list[dict]:
    """The hand list of tests/test_bad_input.py, ``n_generic`` (default ``n_fuzz``) fuzzer draws of each kind
    around its tiny suite, and ``n_fuzz`` draws of the families' own keys (``family_edits``: every field of every
    family's config and sampler, at and beyond each bound, as ``--set`` or profile edits) on each of ``suites``
    (suites/<name>.yaml; ``--profile smoke --dry-run``, up to ``--stage sample`` for images, one family per
    draw), against the run_bench on sys.path. ``seconds``: stop a suite's family-key draws after this many
    seconds (its row's ``tried`` is the number drawn). ``probes=False``: the family-key draws go to the validator
    alone (``load_suite``, libyaml; a few ms a draw), not ``run_bench.py --dry-run``, so "valid" means accepted
    and within every declared range, unprobed.

    Outcomes: clean (exit 2, one line; for family keys naming the ``--set`` or file and the key), traceback,
    silently accepted (exit 0 on a value outside its range; for the hand list, any exit 0), valid (exit 0, every
    probe of the plan ok), probe failed (exit 0 but a probe raised: a validator bug), unclear error (exit 2, not
    one line or not naming the source and key).

    ``workers`` > 1 runs the probed family-key draws in that many spawned processes (each draw in a folder of
    its own; the draws and their order are the same as with one): for throughput only, since the probes then
    time each other's load (their cached rates are flagged and measured again by the next quiet plan). The
    first draw of each suite runs alone, so that the data root is prepared once.
    """
    import random
    import warnings

    import yaml

    t = _bad_input_module()

    folder = base / "bad-inputs"
    folder.mkdir(parents=True, exist_ok=True)

    def one(text, *args, accepting_is_bad: bool = False) -> str:
        (folder / "s.yaml").write_bytes(text if isinstance(text, bytes) else text.encode())
        code, err, out = _run([str(folder / "s.yaml"), "--results", str(folder / "res"), "--dry-run", *args])
        if code == "traceback":
            return code
        if code == 2:
            return "clean" if err.count("\n") == 1 else "unclear error"
        if code == 0:
            return "silently accepted" if accepting_is_bad else "probe failed" if t.PROBE_FAILED in out else "valid"
        return f"exit {code}"

    hand = []
    for what, patch, _ in t.BAD_INPUTS:
        if patch.startswith("--set "):
            hand.append((what, one(yaml.safe_dump(t.BASE), f"--set={patch[6:]}", accepting_is_bad=True)))
        else:
            hand.append((what, one(yaml.safe_dump(t._merge(t.BASE, yaml.safe_load(patch))), accepting_is_bad=True)))
    files = [b"name: t\ndescription: caf\xe9\n", b"name: t\nname: u\ndatasets: [8gaussians]\nfamilies: {gan: {}}\n",
             b"name: t\n" + b"x" * (1 << 20), b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n"]
    hand += [(f"file {i}", one(x, accepting_is_bad=True)) for i, x in enumerate(files)]
    count = lambda outcomes: {k: outcomes.count(k) for k in OUTCOMES + sorted(set(outcomes) - set(OUTCOMES))}
    out = [{"fault": "bad inputs by hand", "tried": len(hand), **count([o for _, o in hand]),
            "not clean": [w for w, o in hand if o != "clean"]}]
    warnings.simplefilter("ignore")
    st = t.st
    override = st.builds("{}={}".format, st.one_of(t._dotted, st.text(max_size=10)),
                         st.one_of(st.text(max_size=10), t._scalars.map(yaml.safe_dump).map(str.strip)))
    strategies = {"fuzzed suites": (t._suites(), lambda d: one(yaml.safe_dump(d))),
                  "fuzzed files": (st.one_of(st.text(max_size=200), st.binary(max_size=200)), one),
                  "fuzzed --set": (st.lists(override, min_size=1, max_size=3),
                                   lambda sets: one(yaml.safe_dump(t.BASE), *[f"--set={s}" for s in sets]))}
    n_generic = n_fuzz if n_generic is None else n_generic
    for name, (strategy, fn) in strategies.items() if n_generic > 0 else ():
        outcomes = [fn(strategy.example()) for _ in range(n_generic)]
        out.append({"fault": name, "tried": n_generic, **count(outcomes)})
    strict_read_yaml = t.suite_module.read_yaml
    data_root = base / "bad-inputs-data"  # one data root for the family-key draws: images extracted once
    for suite in (ROOT / "suites" / f"{name}.yaml" for name in suites):
        edits, rng = t.suite_edits(suite), random.Random(f"genbench-{suite.stem}")
        outcomes, findings, started, beyond, drawn = [], [], time.monotonic(), 0, set()
        draws = [t.sample_draw(rng, edits) for _ in range(n_fuzz)]  # the same sequence whatever ``workers``
        pool, results = None, None
        for i, (draw, how) in enumerate(draws):
            if seconds is not None and time.monotonic() - started > seconds:
                break
            if probes and workers > 1 and i == 1:  # after the first draw: the data root is prepared
                import multiprocessing

                # a worker is replaced after WORKER_DRAWS draws: every draw's probes leave memory behind in the
                # process (9.8 GiB peak over 1,000 toy2d draws in two workers without it)
                pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_bad_input_module,
                                                                 maxtasksperchild=WORKER_DRAWS)
                results = pool.imap(_family_draw_in_worker, [(k, suite, d, h, folder, data_root)
                                                             for k, (d, h) in enumerate(draws) if k > 0])
            beyond += not all(e.allowed for e in draw)
            drawn |= {(e.family, e.key) for e in draw}
            if probes and results is not None and i > 0:
                outcome, err, stdout = next(results)
            elif probes:
                outcome, err, stdout = _family_draw(suite, draw, how, folder, data_root)
            else:
                err = stdout = ""
                try:
                    t.suite_module.read_yaml = t._fast_read_yaml  # the files are yaml.safe_dump output
                    outcome = t.loaded_outcome(suite, draw, how, folder)
                except BaseException as e:  # noqa: BLE001 (the finding)
                    outcome, err = "traceback", f"{type(e).__name__}: {e}"
                finally:
                    t.suite_module.read_yaml = strict_read_yaml
            outcomes.append(outcome)
            if outcome not in ("clean", "valid"):
                findings.append({"outcome": outcome, "how": how, "edits": [e.set_arg() for e in draw],
                                 "stderr": err.strip().splitlines()[-3:],
                                 "probe": [ln for ln in stdout.splitlines() if t.PROBE_FAILED in ln]})
            if (i + 1) % 100 == 0:
                print(f"# family keys, {suite.name}: {i + 1} draws, {time.monotonic() - started:.0f} s, "
                      f"{count(outcomes)}", file=sys.stderr, flush=True)
        if pool is not None:
            pool.terminate()
        what = "--profile smoke --dry-run" if probes else "--profile smoke, validator only"
        out.append({"fault": f"family keys, {suite.name} {what}", "tried": len(outcomes), **count(outcomes),
                    "beyond_a_bound": beyond, "keys": len({(e.family, e.key) for e in edits}),
                    "keys_drawn": len(drawn), "families": len({e.family for e in edits}),
                    "seconds": round(time.monotonic() - started), "findings": findings[:20]})
    return out


def table(rows: list[dict]) -> str:
    """The bad-input rows as a Markdown table: tried and each outcome."""
    head = ["fault", "tried", "clean", "tracebacks", "silently accepted", "valid", "probe failed", "unclear error"]
    keys = ["fault", "tried", "clean", "traceback", "silently accepted", "valid", "probe failed", "unclear error"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r.get(k, 0)) for k in keys) + " |" for r in rows if "tried" in r]
    return "\n".join(lines)


SCENARIOS = {"kills": kills, "truncate": truncate, "disk-full": disk_full, "read-only": read_only,
             "writers": writers, "saves": saves, "bad-inputs": bad_inputs}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_tmpfs":
        return _tmpfs(*argv[1:]) or 0
    if argv and argv[0] == "_readonly":
        return _readonly(*argv[1:]) or 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scenarios", nargs="+", choices=[*SCENARIOS, "all"])
    p.add_argument("--out", default=None, help="working folder (default: a new temporary folder)")
    p.add_argument("--draws", type=int, default=1000, help="bad-inputs: fuzzer draws of each kind (default 1000)")
    p.add_argument("--generic-draws", type=int, default=None,
                   help="bad-inputs: draws of the generic suite/file/--set fuzzers (default --draws; 0 skips them)")
    p.add_argument("--seconds", type=float, default=None,
                   help="bad-inputs: stop each suite's family-key draws after this many seconds")
    p.add_argument("--no-probes", action="store_true",
                   help="bad-inputs: family-key draws checked by the validator alone (load_suite), no --dry-run")
    p.add_argument("--workers", type=int, default=1,
                   help="bad-inputs: probed family-key draws in this many processes at once (default 1)")
    p.add_argument("--suites", default="toy2d,mnist,cifar",
                   help="bad-inputs: suites whose families' keys are drawn (default toy2d,mnist,cifar)")
    a = p.parse_args(argv)
    base = Path(a.out or tempfile.mkdtemp(prefix="genbench-faults-")).resolve()
    base.mkdir(parents=True, exist_ok=True)
    results = []
    for name in SCENARIOS if "all" in a.scenarios else a.scenarios:
        t0 = time.monotonic()
        rows = (bad_inputs(base, a.draws, n_generic=a.generic_draws, seconds=a.seconds,
                           suites=tuple(x for x in a.suites.split(",") if x), probes=not a.no_probes,
                           workers=a.workers)
                if name == "bad-inputs" else SCENARIOS[name](base))
        for r in rows:
            print(json.dumps({"scenario": name, **r}), flush=True)
        results += rows
        print(f"# {name}: {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    (base / "faults.json").write_text(json.dumps(results, indent=1))
    if any("tried" in r for r in results):
        print(table(results))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.exit(main())
