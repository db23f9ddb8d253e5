"""What a re-run may reuse: each cell's artifacts are checked before the first cell runs.

A cell folder holds the artifacts of its stages:

* train: ``model.pt``;
* sample (the model stage): ``model_eval.json``, ``samples_<sampler>.npz``, ``density_grid.npz`` (2D);
* evaluate: ``features_<sampler>.npz``, ``samples_<sampler>.png`` (images) and ``record.json``.

:func:`check_cells` looks at every selected cell before anything runs, and
:func:`apply_checks` acts on what it found:

* **Corrupt artifacts** (a SHA-256 that differs from the one recorded in ``SHA256SUMS``
  when the file was written, or, without one, a file that does not load) are
  discarded with what depends on them, and the log says so; the cell then redoes
  them from its last sound artifact. A checkpoint is redone only when the cell
  still needs it (its samples are gone too).
* **A changed config**: the settings a cell's artifacts were made with (stored in the
  checkpoint, ``model_eval.json`` and the record) are compared with the suite's now.
  Without ``--force`` the run is refused (:class:`RunConflict`, exit 2) naming the
  keys; with ``--force`` the stale artifacts are discarded and redone. Sampler settings
  (``families.<name>.samplers``) and the model-stage evaluation settings redo the sample
  stage; evaluate-only settings (``EvalConfig.evaluate_only``) only redo the evaluation;
  neither retrains. A sampler *added* to a finished cell needs no ``--force``: its sample
  stage and evaluation are redone from the checkpoint.
* **A record of a newer schema** is refused likewise (``--force`` redoes the cell).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import models
from bench.config.suite import EvalConfig, Suite, sampler_settings
from bench.store.runs import RunDir, RunRefused, artifact_problem, cell_id, read_sums, update_sums
from bench.store.schema import READABLE, CellConfig, SchemaError

TRAIN_FILES = ("model.pt",)
IGNORED_KEYS = ("data.root",)  # where the data lives, not what it is (the record keeps the dataset fingerprint)


class RunConflict(RunRefused):
    """A run cannot be resumed as asked (changed settings, an unreadable record); ``str()`` is one line."""

def cell_config(suite: Suite, dataset: str, family: str) -> CellConfig:
    """The resolved settings of one cell, as stored in its record."""
    entry = suite.family(dataset, family)
    return CellConfig(model=dataclasses.asdict(entry.model), train=dataclasses.asdict(entry.train),
                      eval=dataclasses.asdict(suite.eval), data=dataclasses.asdict(suite.data),
                      samplers=sampler_settings(entry.samplers),
                      suite_file=suite.source, profile=suite.profile, profile_reason=suite.profile_reason)


def stored_config(config: CellConfig) -> dict[str, Any]:
    """The sections of a cell config that its artifacts depend on (what checkpoints and ``model_eval.json`` keep)."""
    return {"model": config.model, "train": config.train, "data": config.data, "eval": config.eval,
            "samplers": config.samplers}


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def config_changes(stored: dict[str, Any], current: dict[str, Any], sections: tuple[str, ...],
                   keys: Callable[[str], bool] = lambda k: True) -> list[str]:
    """``["train.steps: 30 -> 50", ...]``: the keys of ``sections`` whose value differs.

    Values are compared as JSON (tuples and lists alike). Keys absent on either side
    (a field added or removed by another genbench version) and :data:`IGNORED_KEYS` are
    not changes; ``keys`` filters further.
    """
    norm = lambda d: _flat(json.loads(json.dumps({s: d.get(s) or {} for s in sections}, default=str)))
    old, new = norm(stored), norm(current)
    return [f"{k}: {json.dumps(old[k])} -> {json.dumps(new[k])}" for k in sorted(old.keys() & new.keys())
            if old[k] != new[k] and k not in IGNORED_KEYS and keys(k)]


def sampler_changes(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``["samplers.ddim20: added", "samplers.ddim50.eta: 0 -> 0.5", ...]``: how the samplers differ from
    those the model stage was made with. Samplers absent from ``stored`` (an artifact of genbench 0.1, whose
    samplers were model settings) are not changes."""
    old, new = stored.get("samplers"), current.get("samplers") or {}
    if not old:
        return []
    out = [f"samplers.{n}: added" for n in new if n not in old]
    out += [f"samplers.{n}: removed" for n in old if n not in new]
    common = {n: old[n] for n in old if n in new}
    out += config_changes({"samplers": common}, {"samplers": {n: new[n] for n in common}}, ("samplers",))
    return out


def _model_stage_key(k: str) -> bool:
    return not (k.startswith("eval.") and k.split(".")[1] in EvalConfig.evaluate_only)


def _evaluate_key(k: str) -> bool:
    return k.startswith("eval.") and k.split(".")[1] in EvalConfig.evaluate_only


@dataclass
class CellCheck:
    """What :func:`check_cell` found in one cell folder.

    Attributes:
        corrupt: artifact name -> why it cannot be trusted.
        discard: artifact names to remove before the cell runs (corrupt ones and what depends on them;
            with ``force``, stale ones too).
        changes: settings that differ from those the artifacts were made with (``"train.steps: 30 -> 50"``);
            empty if none.
        stale: what those changes make stale: ``"all"``, ``"model stage"`` or ``"evaluation"``.
        unreadable: why the record cannot be read by this genbench (a newer schema), if so.
        done: the record says ok and nothing it rests on is discarded.
        model_needed: the cell has no sound model-stage artifacts, so it needs its checkpoint.
        added: samplers the suite adds to a finished cell (``"samplers.ddim20: added"``): the sample stage
            and the evaluation are redone from the checkpoint, without ``--force`` (nothing made is contradicted).
    """

    corrupt: dict[str, str] = field(default_factory=dict)
    discard: set[str] = field(default_factory=set)
    changes: list[str] = field(default_factory=list)
    stale: str = ""
    unreadable: str | None = None
    done: bool = False
    model_needed: bool = True
    added: list[str] = field(default_factory=list)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_cell(run: RunDir, suite: Suite, dataset: str, family: str, seed: int, force: bool) -> CellCheck:
    """Check one cell's artifacts against their checksums and the suite's settings (see the module doc)."""
    cid = cell_id(dataset, family, seed)
    folder = run.cell(cid)
    out = CellCheck()
    if not folder.is_dir():
        return out
    sums = read_sums(folder)
    present = {p.name for p in folder.iterdir() if p.is_file()}
    model_files = {"model_eval.json", "density_grid.npz"} | {n for n in present if n.startswith("samples_")
                                                              and n.endswith(".npz")}
    eval_files = {"record.json"} | {n for n in present if n.startswith("features_") and n.endswith(".npz")
                                    or n.startswith("samples_") and n.endswith(".png")}
    for name in sorted(present & (set(TRAIN_FILES) | model_files | eval_files)):
        problem = artifact_problem(folder / name, sums)
        if problem:
            out.corrupt[name] = problem
    record, record_data = None, _read_json(folder / "record.json")
    if "record.json" in present and "record.json" not in out.corrupt:
        try:
            record = run.read_record(cid)
        except SchemaError as e:
            version = (record_data or {}).get("schema", READABLE[0])
            if version in READABLE:
                out.corrupt["record.json"] = f"it does not fit the schema ({e})"
            else:
                out.unreadable = str(e)
    model_eval = None if "model_eval.json" in out.corrupt else _read_json(folder / "model_eval.json")
    if model_eval is not None:  # every sampler it lists must have its samples
        missing = [n for n in (model_eval.get("samplers") or {}) if f"samples_{n}.npz" not in present]
        if missing:
            out.corrupt["model_eval.json"] = f"the samples of {', '.join(missing)} are missing"
            model_eval = None
    # what depends on what: samples come from the model stage, features and the record from the samples
    if out.corrupt.keys() & model_files:
        out.discard |= (model_files | eval_files) & present
    out.discard |= out.corrupt.keys() & eval_files
    has_model_stage = model_eval is not None and not (out.discard & model_files)
    if "model.pt" in out.corrupt:
        out.discard.add("model.pt")
    # settings the artifacts were made with: the checkpoint's, else model_eval.json's, else the record's
    current = stored_config(cell_config(suite, dataset, family))
    from_record = stored_config(record.config) if record is not None else None
    ckpt_cfg = None
    if "model.pt" in present and "model.pt" not in out.discard:
        try:
            meta = models.checkpoint_metadata(folder / "model.pt")
            ckpt_cfg = meta["extra"].get("config") or {"model": meta["config"], **{
                k: v for k, v in (from_record or {}).items() if k in ("train", "data")}}
        except (models.CheckpointError, OSError):
            ckpt_cfg = None
    eval_cfg = (model_eval or {}).get("config") or from_record if has_model_stage else None
    # a checkpoint the cell no longer needs (its samples and timings are sound) is not a reason to redo the cell
    done = record is not None and record.ok and not (out.discard - set(TRAIN_FILES))
    out.model_needed = not has_model_stage
    train_changes = config_changes(ckpt_cfg or eval_cfg or (from_record if done else None) or {}, current,
                                   ("model", "train", "data"))
    model_changes = config_changes(eval_cfg or (from_record if done else None) or {}, current, ("eval",),
                                   _model_stage_key)
    samplers = sampler_changes(eval_cfg or (from_record if done else None) or {}, current)
    added = [c for c in samplers if c.endswith(": added")]
    model_changes += [c for c in samplers if c not in added]
    eval_changes = config_changes(from_record if done else {}, current, ("eval",), _evaluate_key)
    if train_changes and (ckpt_cfg or has_model_stage or done):
        out.changes, out.stale = train_changes + model_changes + eval_changes, "all"
        stale = set(TRAIN_FILES) | model_files | eval_files
    elif model_changes and (has_model_stage or done):
        out.changes, out.stale = model_changes + eval_changes, "model stage"
        stale = model_files | eval_files
    elif eval_changes:
        out.changes, out.stale = eval_changes, "evaluation"
        stale = {"record.json"}
    else:
        stale = set()
    if added and not out.changes and (has_model_stage or done):  # new samplers: redo the sample stage, keep model.pt
        out.added = added
        out.discard |= (model_files | eval_files) & present
        done = False
    if force and (out.changes or out.unreadable):
        out.discard |= (stale if out.changes else {"record.json"}) & present
    out.done = done and not (force and out.changes)
    return out


def check_cells(run: RunDir, suite: Suite, cells: list[tuple[str, str, int]], force: bool) -> dict[str, CellCheck]:
    """Check every cell of ``cells`` ((dataset, family, seed) triples); change nothing.

    Returns the checks by cell id, for :func:`apply_checks`.

    Raises:
        RunConflict: without ``force``, a cell's artifacts were made with other settings, or its record
            has a schema this genbench cannot read. The message names the cell and the keys.
    """
    checks = {cell_id(d, f, s): check_cell(run, suite, d, f, s, force) for d, f, s in cells}
    if not force:
        refused = [(cid, c) for cid, c in checks.items() if c.changes or c.unreadable]
        if refused:
            cid, c = refused[0]
            more = f" ({len(refused) - 1} more cells likewise)" if len(refused) > 1 else ""
            what = (f"was made with other settings ({'; '.join(c.changes)})" if c.changes else
                    f"has a record this genbench cannot read ({c.unreadable})")
            raise RunConflict(f"run {run.path}: cell {cid} {what}{more}; add --force to redo "
                              f"{'it' if len(refused) == 1 else 'them'}, or use another --run-id")
    return checks


def apply_checks(run: RunDir, checks: dict[str, CellCheck], log: Callable[[str], None]) -> None:
    """Discard what :func:`check_cells` found corrupt or stale, saying so through ``log``."""
    for cid, c in checks.items():
        folder = run.cell(cid)
        for name, why in sorted(c.corrupt.items()):
            redo = ("; the cell keeps its samples and timings, so it is not retrained (delete the cell folder "
                    "to retrain it)" if name == "model.pt" and not c.model_needed else "; it will be redone")
            log(f"{cid}: {name} cannot be trusted: {why}; discarded{redo}")
        if c.changes:
            log(f"{cid}: settings changed ({'; '.join(c.changes)}); --force: redoing the {c.stale}")
        if c.unreadable:
            log(f"{cid}: unreadable record ({c.unreadable}); --force: redoing the cell")
        if c.added:
            log(f"{cid}: {', '.join(c.added)}; redoing the sample stage and the evaluation from model.pt")
        if c.discard:
            discard(folder, c.discard)


def discard(folder: Path, names: set[str]) -> None:
    """Remove the artifacts ``names`` of a cell folder, forgetting their checksums first."""
    update_sums(folder, remove=names)
    for name in names:
        (folder / name).unlink(missing_ok=True)
