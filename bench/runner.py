"""Runs a suite: every (dataset, family, seed) cell through its stages.

Stages of a cell, each leaving an artifact so that a re-run skips it:

1. train    -> ``model.pt`` (with training time and steps);
2. sample   -> ``samples_<sampler>.npz`` per sampler, plus sampling timings;
3. evaluate -> density metrics, sample metrics and their timings -> ``record.json``.

A cell whose ``record.json`` says ``ok`` is skipped on a re-run with the same run
id (``--run-id`` or ``--resume``); a failed or interrupted cell is redone from its
last artifact. Any exception inside a cell is recorded as ``failed`` with the
reason, and the suite goes on with the next cell.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import models
from bench import data as datasets
from bench import env
from bench.config import EvalConfig, FamilyEntry, Suite
from bench.results import RunDir, cell_id, new_run_id, save_npz, write_json, write_summary
from bench.schema import CellConfig, CellRecord, DensityResult, SamplerResult, TrainResult, part_from_dict, part_to_dict
from bench.timing import Timing, measure
from bench.train import train


@dataclass
class RunOptions:
    """How to run a suite (from the command line).

    Attributes:
        root: results root folder.
        run_id: reuse (resume) this run id; ``None`` makes a new one.
        families, datasets: run only these (``None``: all of the suite's).
        force: redo cells even if their record says ``ok``.
        progress: show progress bars.
        stages: stages to run, a subset of ("train", "sample", "evaluate", "report").
    """

    root: Path = Path("results")
    run_id: str | None = None
    families: list[str] | None = None
    datasets: list[str] | None = None
    force: bool = False
    progress: bool = True
    stages: tuple[str, ...] = ("train", "sample", "evaluate", "report")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _batched(fn, x: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([fn(c) for c in x.split(batch)])


def _timing_ms(t: Timing) -> tuple[float, float]:
    return 1e3 * t.median_s, 1e3 * t.iqr_s


# --------------------------------------------------------------------------- stages
def train_stage(entry: FamilyEntry, family: str, modality: str, ds: datasets.Dataset, seed: int, cell_dir: Path,
                device: torch.device, progress: bool) -> tuple[models.GenerativeModel, TrainResult]:
    """Train (or load the checkpoint of) one cell's model; returns it and its training facts."""
    ckpt = cell_dir / "model.pt"
    if ckpt.exists():
        model = models.load_checkpoint(ckpt, device)
        return model, part_from_dict(TrainResult, model.checkpoint_extra["train"], "model.pt: train.")
    torch.manual_seed(seed)
    model = models.build(family, modality, entry.model, ds.shape)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stats = train(model, ds.train, entry.train, device=device, seed=seed, desc=f"{ds.name}/{family} s{seed}",
                  progress=progress)
    info = TrainResult(
        train_seconds=stats.seconds,
        train_steps=stats.steps,
        train_steps_per_s=stats.steps / stats.seconds if stats.seconds > 0 else None,
        train_stopped_by=stats.stopped_by,
        train_final_losses=stats.final_losses,
        train_history=stats.history,
        parameters=sum(p.numel() for p in model.parameters()),
        train_peak_gpu_mem_gb=torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    )
    cell_dir.mkdir(parents=True, exist_ok=True)
    models.save_checkpoint(model, ckpt, train=part_to_dict(info))
    return model, info


@torch.no_grad()
def sample_stage(model: models.GenerativeModel, ev: EvalConfig, cell_dir: Path,
                 device: torch.device) -> dict[str, SamplerResult]:
    """Draw ``ev.n_samples`` per sampler (saved as npz) and time sampling.

    The samples come from the timed calls themselves: a generator seeded with
    ``ev.seed`` feeds ``ev.timing_warmup`` + ``ev.timing_repeats`` calls of
    ``sample(ev.throughput_batch)`` (plus more untimed calls if they fall short
    of ``n_samples``), so the samples are reproducible and drawing them costs no
    extra time. Returns per sampler: NFE, throughput (samples/s) at the large batch,
    latency (ms) at ``ev.latency_batch``, and the cost of one NFE (ms), each a
    median over the timed calls, and the sweep the family puts the sampler in.
    """
    out = {}
    sweeps = model.sampler_sweeps()
    for name, kwargs in model.sampling_variants().items():
        gen = torch.Generator(device).manual_seed(ev.seed)
        drawn: list[torch.Tensor] = []

        def draw(n: int = ev.throughput_batch, gen=gen, kwargs=kwargs, drawn=drawn) -> None:
            drawn.append(model.sample(n, generator=gen, **kwargs))

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        big = measure(draw, device=device, warmup=ev.timing_warmup, repeats=ev.timing_repeats)
        while sum(len(x) for x in drawn) < ev.n_samples:
            draw()
        x = torch.cat([x.cpu() for x in drawn])[: ev.n_samples]  # images stay uint8
        save_npz(cell_dir / f"samples_{name}.npz", samples=x.numpy())
        del drawn[:]
        small = measure(lambda kwargs=kwargs: model.sample(ev.latency_batch, **kwargs), device=device,
                        warmup=ev.timing_warmup, repeats=ev.timing_repeats)
        nfe = model.sample_nfe(**kwargs)
        batch_ms, batch_iqr_ms = _timing_ms(big)
        lat_ms, lat_iqr_ms = _timing_ms(small)
        out[name] = SamplerResult(
            sampler_kwargs=kwargs,
            sweep=sweeps.get(name),
            sample_nfe=nfe,
            sample_throughput_batch=ev.throughput_batch,
            sample_batch_ms=batch_ms,
            sample_batch_iqr_ms=batch_iqr_ms,
            sample_throughput_per_s=ev.throughput_batch / big.median_s,
            sample_us_per_sample=1e6 * big.median_s / ev.throughput_batch,
            sample_latency_batch=ev.latency_batch,
            sample_latency_ms=lat_ms,
            sample_latency_iqr_ms=lat_iqr_ms,
            nfe_ms_at_throughput_batch=batch_ms / nfe,
            nfe_ms_at_latency_batch=lat_ms / nfe,
            n_samples=len(x),
            sample_peak_gpu_mem_gb=torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        )
    return out


@torch.no_grad()
def density_stage(model: models.GenerativeModel, ds: datasets.Dataset, ev: EvalConfig,
                  device: torch.device) -> DensityResult:
    """Evaluate and time the model's density on the test set, as far as its kind allows.

    * exact: mean test NLL (nats) over the whole test set, with its standard error;
    * bound: each bound on the first ``ev.bound_n`` test points as an upper bound
      on the NLL (``test_nll_bound_<name>_nats``); ``test_nll_bound_nats`` is the tightest;
    * energy: mean test energy (unnormalized, nats);
    * none: nothing.

    Timing: throughput (examples/s) of the same call on ``ev.density_batch`` test
    points (bounds: ``min(density_batch, bound_n)``).
    """
    caps = model.capabilities
    x_test = ds.test[: ev.density_n].to(device) if ev.density_n else ds.test.to(device)
    b = ev.density_batch
    if caps.log_prob:
        gen = torch.Generator(device).manual_seed(ev.seed)
        lp = _batched(lambda c: model.log_prob(c, generator=gen), x_test, b).double().cpu()
        out = DensityResult(test_nll_nats=float(-lp.mean()), test_nll_se_nats=float(lp.std() / len(lp) ** 0.5),
                            test_n=len(lp), density_call="log_prob")
        fn, xb = model.log_prob, x_test[: ev.density_batch]
    elif caps.bound:
        gen = torch.Generator(device).manual_seed(ev.seed)
        xs = x_test[: ev.bound_n]
        chunks = [model.log_prob_bounds(c, generator=gen) for c in xs.split(b)]
        bounds, bounds_se = {}, {}
        for name in chunks[0]:
            v = torch.cat([c[name] for c in chunks]).double().cpu()
            bounds[name], bounds_se[name] = float(-v.mean()), float(v.std() / len(v) ** 0.5)
        best = min(bounds, key=bounds.get)  # the tightest upper bound on the NLL (first on a tie)
        out = DensityResult(bounds=bounds, bounds_se=bounds_se, test_nll_bound_nats=bounds[best],
                            test_nll_bound_se_nats=bounds_se[best], bound_name=best,
                            standard_bound=next(iter(chunks[0])), test_n=len(xs), density_call="log_prob_bounds")
        fn, xb = model.log_prob_bounds, xs[: min(ev.density_batch, ev.bound_n)]
    elif caps.energy:
        e = _batched(model.energy, x_test, b).double().cpu()
        out = DensityResult(test_energy_mean_nats=float(e.mean()), test_n=len(e), density_call="energy")
        fn, xb = model.energy, x_test[: ev.density_batch]
    else:
        return DensityResult(likelihood_kind=caps.likelihood)
    t = measure(lambda: fn(xb), device=device, warmup=ev.timing_warmup, repeats=ev.timing_repeats)
    ms, iqr = _timing_ms(t)
    return dataclasses.replace(out, likelihood_kind=caps.likelihood, density_batch=len(xb), density_batch_ms=ms,
                               density_batch_iqr_ms=iqr, density_throughput_per_s=len(xb) / t.median_s)


# --------------------------------------------------------------------------- cells
@dataclass
class ModelEval:
    """Everything that needs the model (``model_eval.json``): training facts, sampler timings, densities."""

    train: TrainResult
    samplers: dict[str, SamplerResult] = field(default_factory=dict)
    density: DensityResult | None = None
    model_device: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"train": part_to_dict(self.train), "samplers": {k: part_to_dict(v) for k, v in self.samplers.items()},
                "density": None if self.density is None else part_to_dict(self.density),
                "model_device": self.model_device}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelEval:
        return cls(train=part_from_dict(TrainResult, d["train"], "model_eval.json: train."),
                   samplers={k: part_from_dict(SamplerResult, v, f"model_eval.json: samplers.{k}.")
                             for k, v in (d.get("samplers") or {}).items()},
                   density=None if d.get("density") is None else part_from_dict(DensityResult, d["density"],
                                                                                "model_eval.json: density."),
                   model_device=d.get("model_device"))


def model_stage(model: models.GenerativeModel, ds: datasets.Dataset, ev: EvalConfig, cell_dir: Path,
                device: torch.device) -> tuple[dict[str, SamplerResult], DensityResult, dict[str, Any]]:
    """Everything that needs the model: samples, sampling timings, densities and their timings.

    Returns (samplers, density, model device); the caller writes them to
    ``model_eval.json`` so that the evaluate stage can run elsewhere, from the samples alone.
    """
    from bench import eval2d

    samplers = sample_stage(model, ev, cell_dir, device)
    density = density_stage(model, ds, ev, device)
    if model.modality == "vector":
        density = eval2d.model_extras(model, ds, ev, density, cell_dir, device)
    return samplers, density, env.device_info(device)


def _new_record(suite: Suite, ds: datasets.Dataset, family: str, seed: int, run: RunDir,
                device: torch.device) -> CellRecord:
    entry = suite.family(ds.name, family)
    cls = models.get(family, suite.modality)
    return CellRecord(
        suite=suite.name, run_id=run.run_id, dataset=ds.name, family=family, seed=seed, modality=suite.modality,
        likelihood_kind=cls.capabilities.likelihood, capabilities=dataclasses.asdict(cls.capabilities),
        model_class=f"{cls.__module__}.{cls.__qualname__}", reference=cls.reference,
        textbook=dataclasses.asdict(cls.textbook) if cls.textbook else None,
        config=CellConfig(model=dataclasses.asdict(entry.model), train=dataclasses.asdict(entry.train),
                          eval=dataclasses.asdict(suite.eval), data=dataclasses.asdict(suite.data),
                          suite_file=suite.source, profile=suite.profile),
        git_sha=env.git_sha(), versions=env.versions(), device=env.device_info(device), dataset_info=ds.info,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))


def run_cell(suite: Suite, ds: datasets.Dataset, family: str, seed: int, run: RunDir, device: torch.device,
             opts: RunOptions) -> CellRecord:
    """Run one cell's stages and write its record; never raises except on Ctrl-C.

    The record's status is ``ok`` once evaluated, ``partial`` when ``opts.stages``
    stopped earlier, and ``failed`` (with the reason) when anything raised.
    """
    from bench import eval2d, evalimg

    cid = cell_id(ds.name, family, seed)
    cell_dir = run.cell(cid)
    cell_dir.mkdir(parents=True, exist_ok=True)
    record = _new_record(suite, ds, family, seed, run, device)
    stages: list[str] = []
    t0 = time.perf_counter()
    model_eval_path = cell_dir / "model_eval.json"
    try:
        if model_eval_path.exists():  # trained and sampled before (maybe on another machine)
            model_eval = ModelEval.from_dict(json.loads(model_eval_path.read_text()))
            stages += ["train", "sample"]
        else:
            model, train_info = train_stage(suite.family(ds.name, family), family, suite.modality, ds, seed, cell_dir,
                                            device, opts.progress)
            stages.append("train")
            model_eval = ModelEval(train=train_info)
            if "sample" in opts.stages:
                samplers, density, model_device = model_stage(model, ds, suite.eval, cell_dir, device)
                model_eval = ModelEval(train_info, samplers, density, model_device)
                write_json(model_eval_path, model_eval.to_dict())
                stages.append("sample")
        record = dataclasses.replace(record, train=model_eval.train, samplers=model_eval.samplers,
                                     density=model_eval.density, model_device=model_eval.model_device,
                                     stages_done=list(stages))
        if "evaluate" in opts.stages:
            if suite.modality == "vector":
                result = eval2d.evaluate(ds, suite.eval, record, cell_dir)
            else:
                result = evalimg.evaluate(ds, suite.eval, suite.data, record, cell_dir, device)
            stages.append("evaluate")
            record = dataclasses.replace(record, **result, stages_done=list(stages))
        record.status = "ok" if "evaluate" in stages else "partial"
    except KeyboardInterrupt:
        raise
    except Exception as e:  # one failing cell must not kill the suite
        record = dataclasses.replace(record, status="failed", reason=f"{type(e).__name__}: {e}".splitlines()[0],
                                     traceback=traceback.format_exc(), stages_done=list(stages))
    record.wall_seconds = time.perf_counter() - t0
    record.finished_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    run.write_record(record)
    return record


def _headline(r: CellRecord) -> str:
    if r.status == "failed":
        return f"FAILED ({r.reason})"
    d, parts = r.density or DensityResult(), [f"train {r.train.train_seconds:.1f}s"]
    if d.test_nll_nats is not None:
        parts.append(f"NLL {d.test_nll_nats:.3f} nats")
    if d.test_nll_bound_nats is not None:
        parts.append(f"NLL <= {d.test_nll_bound_nats:.3f} nats")
    _, first = r.primary()
    if first.sample_throughput_per_s is not None:
        parts.append(f"{first.sample_throughput_per_s:.3g} samples/s at NFE {first.sample_nfe}")
    return ", ".join(parts)


def run_suite(suite: Suite, opts: RunOptions) -> RunDir:
    """Run every selected cell of ``suite`` and write the summary and report.

    Returns the run folder; cell statuses are in its records. ``summary.csv`` and the
    report need pandas and matplotlib, which a train/sample-only run (e.g. on a GPU
    machine without them) does not import.
    """
    device = env.resolve_device(suite.device)
    run = RunDir(opts.root, suite.name, opts.run_id or new_run_id())
    run.path.mkdir(parents=True, exist_ok=True)
    write_json(run.path / "run.json", {
        "suite": suite.name, "run_id": run.run_id, "profile": suite.profile, "suite_file": suite.source,
        "resolved": suite.resolved(), "git_sha": env.git_sha(), "versions": env.versions(),
        "device": env.device_info(device), "command": sys.argv, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    names = [d for d in suite.datasets if not opts.datasets or d in opts.datasets]
    families = [f for f in suite.families if not opts.families or f in opts.families]
    total, k = len(names) * len(families) * len(suite.seeds), 0
    log(f"genbench: suite {suite.name!r} ({suite.profile or 'default'} profile), run {run.run_id}, "
        f"{total} cells on {device}; results in {run.path}")
    if {"train", "sample", "evaluate"} & set(opts.stages):
        for name in names:
            ds = None
            for family in families:
                for seed in suite.seeds:
                    k += 1
                    cid = cell_id(name, family, seed)
                    old = run.read_record(cid)
                    if old and old.ok and not opts.force:
                        log(f"[{k}/{total}] {cid}: done before, skipped")
                        continue
                    if ds is None:
                        try:
                            ds = datasets.load(name, suite.data, suite.eval.entropy_mc)
                        except Exception as e:  # a missing dataset fails its cells, not the suite
                            ds = e
                    if isinstance(ds, Exception):
                        r = CellRecord(suite=suite.name, run_id=run.run_id, dataset=name, family=family, seed=seed,
                                       modality=suite.modality, status="failed",
                                       reason=f"dataset: {type(ds).__name__}: {ds}")
                        run.write_record(r)
                    else:
                        r = run_cell(suite, ds, family, seed, run, device, opts)
                    log(f"[{k}/{total}] {cid}: {_headline(r)}")
    if {"evaluate", "report"} & set(opts.stages):
        write_summary(run)
    if "report" in opts.stages:
        from bench import report

        path = report.write_report(run)
        log(f"genbench: report in {path}")
    return run
