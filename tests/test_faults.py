"""Faults: untrusted checkpoints, damaged artifacts, full disks, read-only folders, two writers, kills.

Every test injects one fault into a tiny run (one family, one 2D dataset) and checks
what the issue asks: nothing runs code, nothing escapes the results root, nothing
is lost, and each failure is one line with the right exit code.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import models
import run_bench
from bench.config.suite import load_suite
from bench.core.files import StorageError, atomic_write, sweep_temporaries
from bench.execution.resume import check_cell
from bench.store.runs import SUMS, RunDir, RunLock, read_sums
from tests.helpers import MARKER_ENV, start_run_bench, tiny_model, wait_for_marker, write_tiny_suite

# the tiny suite (tests/helpers.write_tiny_suite), smaller still: one family, 10 steps, 100 samples
AR = {"model": {"hidden": 8, "components": 2}, "train": {"steps": 10}}
SMALL = {"data": {"n_train": 500, "n_val": 100, "n_test": 200},
         "eval": {"n_samples": 100, "bound_n": 50, "throughput_batch": 100, "quadrature_grid": 16, "density_grid": 8}}
CELL = "8gaussians__autoregressive__s0"


def _main(folder, *args) -> int:
    return run_bench.main([str(folder / "s.yaml"), "--results", str(folder / "res"), "--no-progress", *args])


def _err(capsys) -> str:
    return capsys.readouterr().err


def _temporaries(folder) -> list:
    return [p for p in folder.rglob("*") if p.is_file() and (p.name.endswith(".tmp") or ".tmp" in p.name)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run ``r`` (train, sample, evaluate; no report), copied by each test that changes it."""
    folder = tmp_path_factory.mktemp("finished")
    write_tiny_suite(folder, {"autoregressive": AR}, **SMALL)
    assert _main(folder, "--run-id", "r", "--stage", "evaluate") == 0
    return folder


@pytest.fixture
def run(finished, tmp_path):
    """A private copy of the finished run: (folder holding s.yaml and res/, the cell folder)."""
    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    return tmp_path, tmp_path / "res" / "tiny" / "r" / CELL


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- untrusted checkpoints
class _Payload:
    """Unpickling it calls ``open(marker, "w")``: a file appears if the payload runs."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(path, marker) -> None:
    torch.save({"family": "autoregressive", "modality": "vector", "config": {}, "data_shape": [2],
                "state_dict": {}, "extra": {"x": _Payload(marker)}}, path)


def test_a_planted_pickle_is_refused_and_runs_nothing(tmp_path):
    live = tmp_path / "live"
    _plant(tmp_path / "live.pt", live)
    torch.load(tmp_path / "live.pt", weights_only=False)  # the payload is live: an unsafe load runs it
    assert live.exists()
    marker = tmp_path / "pwned"
    _plant(tmp_path / "model.pt", marker)
    with pytest.raises(models.CheckpointError) as e:
        models.load_checkpoint(tmp_path / "model.pt")
    assert "saved by an older genbench or not a genbench checkpoint" in str(e.value)
    assert "re-run the cell with --force" in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()


def test_a_planted_pickle_in_a_run_is_discarded_and_retrained(run, capsys):
    folder, cell = run
    marker = folder / "pwned"
    for name in ("model_eval.json", "record.json"):  # the cell needs its model again
        (cell / name).unlink()
    _plant(cell / "model.pt", marker)
    assert _main(folder, "--run-id", "r", "--stage", "evaluate") == 0
    assert "model.pt cannot be trusted" in _err(capsys)
    assert not marker.exists()
    assert models.load_checkpoint(cell / "model.pt").family == "autoregressive"  # retrained, genbench's own format


def test_checkpoints_round_trip_and_genbench_0_1_checkpoints_still_load(tmp_path):
    model = tiny_model("autoregressive", "vector")
    models.save_checkpoint(model, tmp_path / "new.pt", train={"train_steps": 3})
    back = models.load_checkpoint(tmp_path / "new.pt")
    assert back.checkpoint_extra == {"train": {"train_steps": 3}}
    for k, v in model.state_dict().items():
        assert torch.equal(v, back.state_dict()[k])
    torch.save({"family": "autoregressive", "modality": "vector", "config": model.config_dict(), "data_shape": [2],
                "state_dict": model.state_dict(), "extra": {}}, tmp_path / "old.pt")  # the layout before the format tag
    assert models.load_checkpoint(tmp_path / "old.pt").config == model.config
    with pytest.raises(TypeError, match="not a plain type"):  # what weights_only could not read back is refused
        models.save_checkpoint(model, tmp_path / "bad.pt", train={"x": np.float32(1)})


def test_concurrent_saves_never_show_a_reader_a_torn_checkpoint(tmp_path):
    model = tiny_model("autoregressive", "vector", hidden=256)  # ~0.5 MB: a save takes many writes
    path = tmp_path / "model.pt"
    models.save_checkpoint(model, path)
    errors, stop = [], threading.Event()

    def writer():
        for _ in range(40):
            try:
                models.save_checkpoint(model, path)
            except Exception as e:  # noqa: BLE001 (a save failing under a concurrent one is a finding too)
                errors.append(e)

    def reader():
        while not stop.is_set():
            try:
                models.load_checkpoint(path)
            except Exception as e:  # noqa: BLE001 (any failure is the finding)
                errors.append(e)

    writers = [threading.Thread(target=writer) for _ in range(3)]
    r = threading.Thread(target=reader)
    r.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    r.join()
    assert errors == []
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary left behind


# --------------------------------------------------------------------------- damaged artifacts
MODEL_STAGE = {"model_eval.json", "samples_default.npz", "density_grid.npz", "record.json"}


@pytest.mark.parametrize("with_sums", [True, False], ids=["checksums", "load-only"])
@pytest.mark.parametrize("name,discard", [
    ("model.pt", {"model.pt"}),
    ("model_eval.json", MODEL_STAGE),
    ("samples_default.npz", MODEL_STAGE),
    ("density_grid.npz", MODEL_STAGE),
    ("record.json", {"record.json"}),
])
def test_each_truncated_artifact_is_found_with_what_depends_on_it(run, name, discard, with_sums):
    folder, cell = run
    if not with_sums:  # a run of an older genbench: each artifact must load
        (cell / SUMS).unlink()
    _truncate(cell / name)
    run_dir = RunDir(folder / "res", "tiny", "r")
    c = check_cell(run_dir, load_suite(folder / "s.yaml"), "8gaussians", "autoregressive", 0, force=False)
    assert set(c.corrupt) == {name}
    assert c.discard == discard
    assert c.done == (name == "model.pt")  # the samples and metrics stand without the checkpoint
    assert not c.changes


def _flip_a_weight_byte(path) -> None:
    """Flip one byte in the middle of the checkpoint's largest tensor (not in its zip or pickle headers)."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26: info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + info.file_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_only_a_checksum_catches_a_flipped_byte(run):
    folder, cell = run
    _flip_a_weight_byte(cell / "model.pt")
    run_dir, suite = RunDir(folder / "res", "tiny", "r"), load_suite(folder / "s.yaml")
    assert "SHA-256 differs" in check_cell(run_dir, suite, "8gaussians", "autoregressive", 0, False).corrupt["model.pt"]
    (cell / SUMS).unlink()
    assert check_cell(run_dir, suite, "8gaussians", "autoregressive", 0, False).corrupt == {}  # it still loads


def test_a_run_redoes_damaged_artifacts_even_under_force(run, capsys):
    folder, cell = run
    for name in ("model.pt", "samples_default.npz"):
        _truncate(cell / name)
    assert _main(folder, "--run-id", "r", "--stage", "evaluate", "--force") == 0
    err = _err(capsys)
    assert "model.pt cannot be trusted" in err and "samples_default.npz cannot be trusted" in err
    rec = json.loads((cell / "record.json").read_text())
    assert rec["status"] == "ok" and rec["train"]["train_steps"] == 10
    assert np.load(cell / "samples_default.npz")["samples"].shape == (100, 2)
    sums = read_sums(cell)
    assert all(_sha(cell / n) == h for n, h in sums.items()) and {"model.pt", "samples_default.npz"} <= sums.keys()


def test_the_report_survives_a_truncated_npz_under_an_ok_record(run, capsys):
    folder, cell = run
    _truncate(cell / "samples_default.npz")
    assert _main(folder, "--run-id", "r", "--stage", "report") == 0
    assert "samples_default.npz does not load; its panel is left empty" in _err(capsys)
    assert (folder / "res" / "tiny" / "r" / "report.md").stat().st_size > 0


# --------------------------------------------------------------------------- changed settings
def test_changed_settings_are_refused_then_redone_under_force(run, capsys):
    folder, cell = run
    before = {p.name: _sha(p) for p in cell.iterdir()}
    assert _main(folder, "--run-id", "r", "--set", "families.autoregressive.train.steps=12") == 2
    err = _err(capsys).strip()
    assert "\n" not in err and "cell 8gaussians__autoregressive__s0 was made with other settings" in err
    assert "train.steps: 10 -> 12" in err and "--force" in err
    assert {p.name: _sha(p) for p in cell.iterdir()} == before  # nothing changed
    assert _main(folder, "--run-id", "r", "--stage", "evaluate", "--force",
                 "--set", "families.autoregressive.train.steps=12") == 0
    rec = json.loads((cell / "record.json").read_text())
    assert rec["train"]["train_steps"] == 12 and rec["config"]["train"]["steps"] == 12
    assert models.checkpoint_metadata(cell / "model.pt")["extra"]["config"]["train"]["steps"] == 12


def test_an_evaluation_setting_redoes_only_the_evaluation(run, capsys):
    folder, cell = run
    model_sha, samples_sha = _sha(cell / "model.pt"), _sha(cell / "samples_default.npz")
    assert _main(folder, "--run-id", "r", "--stage", "evaluate", "--set", "eval.pr_k=4") == 2
    assert "eval.pr_k: 3 -> 4" in _err(capsys)
    assert _main(folder, "--run-id", "r", "--stage", "evaluate", "--set", "eval.pr_k=4", "--force") == 0
    assert json.loads((cell / "record.json").read_text())["config"]["eval"]["pr_k"] == 4
    assert (_sha(cell / "model.pt"), _sha(cell / "samples_default.npz")) == (model_sha, samples_sha)


# --------------------------------------------------------------------------- full disk, read-only folder
def test_a_full_disk_fails_the_cell_cleans_up_and_stops_the_suite(tmp_path, tiny_suite, monkeypatch, capsys):
    tiny_suite({"autoregressive": AR}, seeds=[0, 1], **SMALL)
    real = np.savez_compressed

    def disk_full(f, **arrays):
        f.write(b"\0" * 4096)  # part of the file reached the disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez_compressed", disk_full)
    assert _main(tmp_path, "--run-id", "r", "--stage", "evaluate") == 3
    err = _err(capsys).strip().splitlines()[-1]
    run_dir = tmp_path / "res" / "tiny" / "r"
    assert err == (f"run_bench.py: error: the results cannot be written: no space left on device "
                   f"({run_dir / CELL / 'samples_default.npz'}); the run stopped (finished cells are kept; a later "
                   "run resumes)")
    rec = json.loads((run_dir / CELL / "record.json").read_text())
    assert rec["status"] == "failed" and rec["reason"].startswith("no space left on device (")
    assert not (run_dir / "8gaussians__autoregressive__s1").exists()  # the suite stopped
    assert _temporaries(tmp_path / "res") == []
    monkeypatch.setattr(np, "savez_compressed", real)  # space freed: the run resumes from the checkpoint
    assert _main(tmp_path, "--run-id", "r", "--stage", "evaluate") == 0
    assert {r.status for r in RunDir(tmp_path / "res", "tiny", "r").records()} == {"ok"}


def test_a_read_only_results_folder_is_one_line_and_reading_needs_no_write(run, monkeypatch, capsys):
    folder, cell = run
    run_dir = folder / "res" / "tiny" / "r"
    before = {p: _sha(p) for p in run_dir.rglob("*") if p.is_file()}
    real_open = os.open

    def read_only(path, flags, *args, **kw):
        if str(path).startswith(str(folder / "res")) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", read_only)  # tempfile.mkstemp and the lock open files through os.open
    assert len(RunDir(folder / "res", "tiny", "r").records()) == 1  # reading works
    assert RunDir.latest(folder / "res", "tiny").run_id == "r"
    assert _main(folder, "--run-id", "r", "--stage", "report") == 3
    err = _err(capsys).strip()
    assert "\n" not in err and "cannot write the run folder: read-only file system" in err
    monkeypatch.setattr(os, "open", real_open)
    assert {p: _sha(p) for p in run_dir.rglob("*") if p.is_file()} == before


def test_rebuilding_a_report_does_not_rewrite_run_json(run):
    folder, _ = run
    info = folder / "res" / "tiny" / "r" / "run.json"
    before = info.read_bytes()
    assert _main(folder, "--run-id", "r", "--stage", "report") == 0
    assert info.read_bytes() == before


def test_a_report_over_a_truncated_run_json_still_writes_the_history(run):
    import sqlite3

    folder, _ = run
    info = folder / "res" / "tiny" / "r" / "run.json"
    info.write_bytes(info.read_bytes()[: len(info.read_bytes()) // 2])  # run.json only adds provenance
    assert _main(folder, "--run-id", "r", "--stage", "report") == 0
    with sqlite3.connect(folder / "res" / "history.sqlite") as con:
        cells = con.execute("SELECT COUNT(DISTINCT family) FROM metrics WHERE run_id = 'r'").fetchone()[0]
    assert cells == 1  # the run fixture's one cell (8gaussians, autoregressive)


def test_a_report_over_a_truncated_plan_json_leaves_out_the_estimates(run):
    folder, _ = run
    plan = folder / "res" / "tiny" / "r" / "plan.json"
    _truncate(plan)  # the plan only adds estimates
    assert _main(folder, "--run-id", "r", "--stage", "report") == 0
    assert (folder / "res" / "tiny" / "r" / "report.md").stat().st_size > 0


def test_atomic_write_keeps_the_old_file_and_no_temporary_when_a_write_fails(tmp_path):
    path = tmp_path / "samples.png"
    path.write_bytes(b"old")

    def fails(f):
        f.write(b"new, half written")
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))

    with pytest.raises(StorageError) as e:
        atomic_write(path, fails)
    assert str(e.value) == f"file too large for the file system or the `ulimit -f` limit ({path})"
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["samples.png"]


def test_temporaries_of_killed_writers_are_swept(tmp_path):
    for name in (".model.pt.k2j3.tmp", "record.json.tmp4242", "samples.tmp77.png", "model.pt.tmp"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "record.json").write_bytes(b"{}")
    assert sorted(p.name for p in sweep_temporaries(tmp_path)) == sorted(
        [".model.pt.k2j3.tmp", "record.json.tmp4242", "samples.tmp77.png", "model.pt.tmp"])
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


# --------------------------------------------------------------------------- two writers
def test_a_second_writer_is_refused_naming_the_holder(run, capsys):
    folder, _ = run
    with RunLock(folder / "res" / "tiny" / "r"):
        assert _main(folder, "--run-id", "r", "--stage", "report") == 2
    err = _err(capsys).strip()
    assert "\n" not in err and f"is in use by pid {os.getpid()} on host {socket.gethostname()}" in err


def test_a_stale_lock_is_reported_and_taken_over(run, capsys):
    folder, _ = run
    gone = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # above the largest pid Linux gives: not running
    (folder / "res" / "tiny" / "r" / ".lock").write_text(json.dumps(
        {"pid": gone, "host": socket.gethostname(), "started_at": "2026-01-01T00:00:00+0000", "command": ["x"]}))
    assert _main(folder, "--run-id", "r", "--stage", "report") == 0
    assert f"took over the stale lock of pid {gone}" in _err(capsys)
    assert (folder / "res" / "tiny" / "r" / ".lock").read_text() == ""  # released cleanly


# --------------------------------------------------------------------------- paths, --resume
@pytest.mark.parametrize("run_id", ["../../x", "/tmp/genbench-abs", "a/b", ".hidden", "..", ""])
def test_unsafe_run_ids_exit_2_and_write_nothing(tmp_path, tiny_suite, capsys, run_id):
    tiny_suite({"autoregressive": AR}, **SMALL)
    assert _main(tmp_path, "--run-id", run_id) == 2
    err = _err(capsys).strip()
    assert err.startswith("run_bench.py: error: --run-id ") and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"] and not os.path.exists("/tmp/genbench-abs")


def test_an_unsafe_suite_name_exits_2(tmp_path, tiny_suite, capsys):
    tiny_suite({"autoregressive": AR}, name="../../x", **SMALL)
    assert _main(tmp_path) == 2
    assert "name: '../../x' is not allowed" in _err(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_a_run_folder_symlinked_outside_the_root_is_refused(tmp_path, tiny_suite, capsys):
    tiny_suite({"autoregressive": AR}, **SMALL)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "res" / "tiny").mkdir(parents=True)
    (tmp_path / "res" / "tiny" / "r").symlink_to(tmp_path / "elsewhere")
    assert _main(tmp_path, "--run-id", "r") == 2
    assert "resolves outside the results root" in _err(capsys)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_resume_picks_the_run_started_last_not_the_last_name(tmp_path):
    for name, started in (("zzz", "2026-01-01T10:00:00+0000"), ("aaa", "2026-01-01T12:00:00+0200"),
                          ("mmm", "2026-01-01T10:30:00+0000")):
        (tmp_path / "s" / name).mkdir(parents=True)
        (tmp_path / "s" / name / "run.json").write_text(json.dumps({"started_at": started}))
    assert RunDir.latest(tmp_path, "s").run_id == "mmm"  # aaa began at 10:00 UTC, zzz at 10:00, mmm at 10:30


# --------------------------------------------------------------------------- SIGKILL
@pytest.mark.slow
def test_a_sigkill_after_training_resumes_without_retraining(tmp_path, tiny_suite, signalling_families):
    # the autoregressive family, except that in the child it creates a marker file at its first sampling call once
    # its checkpoint exists, and then waits: the kill lands after training and before the record, every time
    suite = tiny_suite({"pauses_after_training": {**AR, "train": {"steps": 60}}}, **SMALL)
    cell = tmp_path / "res" / "tiny" / "r" / "8gaussians__pauses_after_training__s0"
    marker = tmp_path / "paused"
    proc = start_run_bench(suite, tmp_path / "res", "r", "--stage", "evaluate",
                           env={"GENBENCH_FAMILIES": str(signalling_families), MARKER_ENV: str(marker),
                                "GENBENCH_TEST_CHECKPOINT": str(cell / "model.pt")})
    try:
        wait_for_marker(proc, marker)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert (cell / "model.pt").exists() and (cell / SUMS).exists() and not (cell / "record.json").exists()
    trained = models.checkpoint_metadata(cell / "model.pt")["extra"]["train"]
    assert _main(tmp_path, "--run-id", "r", "--stage", "evaluate") == 0  # in this process: the family only samples
    rec = json.loads((cell / "record.json").read_text())
    assert rec["status"] == "ok" and rec["train"]["train_seconds"] == trained["train_seconds"]  # not retrained
    assert _temporaries(tmp_path / "res") == []


# --------------------------------------------------------------------------- the MNIST classifier cache
def test_the_classifier_cache_is_used_only_when_its_hash_matches(tmp_path, capsys):
    import io

    from bench.evaluation.metrics import classifier as clf

    torch.manual_seed(0)
    net = clf.LeNet().eval()
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    path, meta_path = tmp_path / "c.pt", tmp_path / "c.json"
    path.write_bytes(buf.getvalue())
    meta_path.write_text(json.dumps({"weights_sha256": hashlib.sha256(buf.getvalue()).hexdigest()}))
    model, _ = clf._cached(path, meta_path)
    assert torch.equal(model.fc2.weight, net.fc2.weight)
    data = bytearray(buf.getvalue())
    data[-100] ^= 0xFF  # a changed file that torch would still load
    path.write_bytes(bytes(data))
    assert clf._cached(path, meta_path) is None
    assert "is not the one recorded in c.json; training it again" in _err(capsys)
