"""Runs a suite: every (dataset, family, seed) cell through its stages.

Stages of a cell, each leaving an artifact so that a re-run skips it:

1. train    -> ``model.pt`` (with training time and steps);
2. sample   -> ``samples_<sampler>.npz`` per sampler, plus sampling timings;
3. evaluate -> density metrics, sample metrics and their timings -> ``record.json``.

A cell whose ``record.json`` says ``ok`` is skipped on a re-run with the same run
id (``--run-id`` or ``--resume``); a failed or interrupted cell is redone from its
last artifact. Before the first cell, :func:`bench.execution.resume.check_cells` discards
corrupt artifacts and refuses (or, with ``--force``, redoes) cells whose settings
changed. Any exception inside a cell is recorded as ``failed`` with the reason,
and the suite goes on with the next cell, except when the results cannot be
written (:class:`~bench.core.files.StorageError`: a full disk, a read-only folder),
which stops the suite. Ctrl-C during a cell records it as ``interrupted`` (its
artifacts so far stay, each written atomically) and stops the run, which
``--run-id``/``--resume`` finishes later. One process writes a run at a time
(:class:`~bench.store.runs.RunLock`).

Each record stores the plan's estimate of the cell (``estimate``, from
:mod:`bench.execution.plan`) and the measured wall time of each stage (``stage_seconds``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import models
from bench import data as datasets
from bench.config.suite import DataConfig, EvalConfig, FamilyEntry, Suite
from bench.core import env
from bench.core.files import StorageError, save_npz, storage_error, write_json
from bench.core.timing import Stopwatch, Timing, measure
from bench.evaluation.modality import modality as get_modality
from bench.evaluation.ode import ode_likelihood
from bench.execution.resume import cell_config, stored_config
from bench.execution.train import train
from bench.store.runs import RunDir, cell_id, read_sums, update_sums
from bench.store.schema import (
    CellEstimate,
    CellRecord,
    DensityResult,
    LatentResult,
    SamplerResult,
    TrainResult,
    part_from_dict,
    part_to_dict,
)
from models.samplers import Sampler


def _batched(fn, x: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([fn(c) for c in x.split(batch)])


def _timing_ms(t: Timing) -> tuple[float, float, float | None]:
    """(median, IQR, standard error of the median) of a timing, in ms."""
    return 1e3 * t.median_s, 1e3 * t.iqr_s, None if t.median_se_s is None else 1e3 * t.median_se_s


# --------------------------------------------------------------------------- stages
def train_stage(entry: FamilyEntry, family: str, modality: str, ds: datasets.Dataset, seed: int, cell_dir: Path,
                device: torch.device, progress: bool,
                config: dict[str, Any] | None = None,
                ev: EvalConfig | None = None,
                data: DataConfig | None = None) -> tuple[models.GenerativeModel, TrainResult]:
    """Train (or load the checkpoint of) one cell's model; returns it and its training facts.

    ``family`` is the suite's entry name (a variant's, e.g. ``gan_lr2``); the model is the registered
    family ``entry.family`` (``family`` where unset). ``config`` (the cell's model, train and data settings)
    is stored in the checkpoint, so that a re-run with other settings is noticed
    (:mod:`bench.execution.resume`). With ``ev``, the training history gets validation quality at
    ``ev.monitor_points`` checkpoints where the modality has a monitor (:meth:`Modality.training_monitor`:
    2D against the true density; images in the dataset classifier's features, with ``data`` locating its cache).
    """
    ckpt = cell_dir / "model.pt"
    if ckpt.exists():
        model = models.load_checkpoint(ckpt, device)
        return model, part_from_dict(TrainResult, model.checkpoint_extra["train"], "model.pt: train.")
    torch.manual_seed(seed)
    model = models.build(entry.family or family, modality, entry.model, ds.shape)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    monitor = (get_modality(modality).training_monitor(ds, ev, device, entry.samplers, data, model.capabilities)
               if ev is not None else None)
    stats = train(model, ds.train, entry.train, device=device, seed=seed, desc=f"{ds.name}/{family} s{seed}",
                  progress=progress, monitor=monitor, monitor_points=ev.monitor_points if ev else 0,
                  y_train=ds.train_labels)
    info = TrainResult(
        train_seconds=stats.seconds,
        train_steps=stats.steps,
        train_steps_per_s=stats.steps / stats.seconds if stats.seconds > 0 else None,
        train_stopped_by=stats.stopped_by,
        train_final_losses=stats.final_losses,
        train_history=stats.history,
        train_monitor_seconds=stats.monitor_seconds if monitor is not None else None,
        parameters=sum(p.numel() for p in model.parameters()),
        train_peak_gpu_mem_gb=torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    )
    cell_dir.mkdir(parents=True, exist_ok=True)
    models.save_checkpoint(model, ckpt, train=part_to_dict(info), **({"config": config} if config else {}))
    update_sums(cell_dir, add=[ckpt.name])
    return model, info


def sample_labels(ds: datasets.Dataset, n: int) -> torch.Tensor:
    """The labels a conditional cell's samples are drawn with: those of the first ``n`` test examples (cycled when
    the test set is smaller), int64 (n,). Each class then gets as many samples as the first ``n`` test points have
    members, and those points are its reference in the class-conditional metrics."""
    y = ds.test_labels
    return y[torch.arange(n) % len(y)].clone()


@torch.no_grad()
def sample_stage(model: models.GenerativeModel, ev: EvalConfig, cell_dir: Path, device: torch.device,
                 samplers: dict[str, Sampler] | None = None,
                 labels: torch.Tensor | None = None) -> dict[str, SamplerResult]:
    """Draw ``ev.n_samples`` per sampler of ``samplers`` (default: the family's; saved as npz) and time sampling.

    A conditional model draws with ``labels`` (int64, :func:`sample_labels`), in order: sample i gets label
    ``labels[i mod len]``, also in the timed calls; the npz stores them beside the samples (``labels``), and the
    record the sampler's guidance scale.

    The samples come from the timed calls themselves: a generator seeded with
    ``ev.seed`` feeds ``ev.timing_warmup`` + ``ev.timing_repeats`` calls of
    ``sample(ev.throughput_batch)`` (plus more untimed calls if they fall short
    of ``n_samples``), so the samples are reproducible and drawing them costs no
    extra time. Samplers of at least ``ev.slow_sampler_nfe`` NFE get
    ``ev.sampler_repeats(nfe)`` timed calls (fewer in smoke profiles); each records its
    count. Returns per sampler: NFE, throughput (samples/s) at the large batch, latency
    (ms) at ``ev.latency_batch``, and the cost of one NFE (ms), each a median over the
    timed calls, and the sweep the sampler belongs to. The first (default) sampler is also timed at each batch
    of ``ev.batch_sweep`` (samples/s against batch size; the same warm-up, at most 3 timed calls).
    """
    out = {}
    for k, (name, sampler) in enumerate((samplers or model.default_samplers()).items()):
        sampler = model.resolve_sampler(sampler)
        gen = torch.Generator(device).manual_seed(ev.seed)
        drawn: list[torch.Tensor] = []

        def draw(n: int = ev.throughput_batch, gen=gen, sampler=sampler, drawn=drawn) -> None:
            drawn.append(model.sample(n, generator=gen, sampler=sampler, y=_labels_at(labels, sum(map(len, drawn)),
                                                                                    n, device)))

        nfe = sampler.nfe(model)
        repeats = ev.sampler_repeats(nfe)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        big = measure(draw, device=device, warmup=ev.timing_warmup, repeats=repeats)
        while sum(len(x) for x in drawn) < ev.n_samples:
            draw()
        x = torch.cat([x.cpu() for x in drawn])[: ev.n_samples]  # images stay uint8
        y = _labels_at(labels, 0, len(x), "cpu")
        save_npz(cell_dir / f"samples_{name}.npz", samples=x.numpy(), **({} if y is None else {"labels": y.numpy()}))
        del drawn[:]
        y_small = _labels_at(labels, 0, ev.latency_batch, device)
        small = measure(lambda sampler=sampler, y_small=y_small: model.sample(ev.latency_batch, sampler=sampler,
                                                                              y=y_small),
                        device=device, warmup=ev.timing_warmup, repeats=repeats)
        sweep = {}
        for b in (ev.batch_sweep if k == 0 else []):
            y_b = _labels_at(labels, 0, b, device)
            t = measure(lambda b=b, sampler=sampler, y_b=y_b: model.sample(b, sampler=sampler, y=y_b), device=device,
                        warmup=ev.timing_warmup, repeats=ev.sweep_repeats(nfe))
            sweep[str(b)] = b / t.median_s
        batch_ms, batch_iqr_ms, batch_se_ms = _timing_ms(big)
        lat_ms, lat_iqr_ms, lat_se_ms = _timing_ms(small)
        out[name] = SamplerResult(
            sampler_kwargs=sampler.settings(),
            sweep=sampler.sweep,
            sample_nfe=nfe,
            sample_throughput_batch=ev.throughput_batch,
            sample_batch_ms=batch_ms,
            sample_batch_iqr_ms=batch_iqr_ms,
            sample_batch_median_se_ms=batch_se_ms,
            sample_throughput_per_s=ev.throughput_batch / big.median_s,
            sample_us_per_sample=1e6 * big.median_s / ev.throughput_batch,
            sample_latency_batch=ev.latency_batch,
            sample_latency_ms=lat_ms,
            sample_latency_iqr_ms=lat_iqr_ms,
            sample_latency_median_se_ms=lat_se_ms,
            nfe_ms_at_throughput_batch=batch_ms / nfe,
            nfe_ms_at_latency_batch=lat_ms / nfe,
            n_samples=len(x),
            sample_timing_warmup=ev.timing_warmup,
            sample_timing_repeats=repeats,
            sample_peak_gpu_mem_gb=torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
            batch_sweep_per_s=sweep,
            guidance=None if labels is None else float(getattr(sampler, "guidance", 0.0)),
        )
    return out


def _labels_at(labels: torch.Tensor | None, start: int, n: int, device: torch.device | str) -> torch.Tensor | None:
    """``labels[start : start + n]``, cycling, on ``device``; ``None`` without labels."""
    if labels is None:
        return None
    return labels[torch.arange(start, start + n) % len(labels)].to(device)


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
    points (bounds: ``min(density_batch, bound_n)``), with ``ev.sampler_repeats(model.density_nfe())``
    timed calls (the diffusion ELBO's T network passes count as a slow call).
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
    repeats = ev.sampler_repeats(model.density_nfe())  # a density call of many NFE is timed like a slow sampler
    t = measure(lambda: fn(xb), device=device, warmup=ev.timing_warmup, repeats=repeats)
    ms, iqr, se = _timing_ms(t)
    return dataclasses.replace(out, likelihood_kind=caps.likelihood, density_batch=len(xb), density_batch_ms=ms,
                               density_batch_iqr_ms=iqr, density_batch_median_se_ms=se,
                               density_throughput_per_s=len(xb) / t.median_s, density_timing_repeats=repeats)


@torch.no_grad()
def latent_stage(model: models.GenerativeModel, ds: datasets.Dataset, ev: EvalConfig,
                 device: torch.device,
                 samplers: dict[str, Sampler] | None = None) -> LatentResult:
    """Latent inference x -> z (``to_latent``), timed, and the reconstruction x -> z -> x on test data.

    The reconstruction error is measured on the first ``ev.bound_n`` test points (the budget
    of the other per-point iterative evaluations), in data units: raw coordinates (2D) or
    pixel levels 0..255 (images). The timing is of ``to_latent`` on ``ev.density_batch`` test
    points, with ``ev.sampler_repeats(nfe)`` timed calls. A family without latent inference
    (``capabilities.latent is None``) gets ``latent_kind = "none"`` and no timing.
    """
    kind = model.capabilities.latent
    if kind is None:
        return LatentResult(latent_kind="none")
    # an inversion inverts the cell's first invertible sampler (DDIM), with its steps
    inverter = next((s for s in (samplers or {}).values() if hasattr(s, "invert")), None) \
        if kind == "inversion" else None
    xs = ds.test[: ev.bound_n].to(device)
    b = ev.density_batch
    kw = {"sampler": inverter} if inverter is not None else {}
    # a conditional model infers z given each test point's label
    ys = ds.test_labels[: ev.bound_n].to(device).split(b) if model.conditional else [None] * len(xs.split(b))
    lab = [{} if y is None else {"y": y} for y in ys]
    z = [model.to_latent(c, **kw, **lb) for c, lb in zip(xs.split(b), lab)]
    x_hat = torch.cat([model.from_latent(zc, **kw, **lb) for zc, lb in zip(z, lab)]).double().cpu()
    diff = (x_hat - xs.double().cpu()).flatten(1)
    l2 = diff.norm(dim=1)
    nfe = model.latent_nfe(**kw)
    repeats = ev.sampler_repeats(nfe)
    xb = xs[:b]
    t = measure(lambda: model.to_latent(xb, **kw, **lab[0]), device=device, warmup=ev.timing_warmup,
                repeats=repeats)
    ms, iqr, se = _timing_ms(t)
    return LatentResult(
        latent_kind=kind, latent_nfe=nfe, latent_dim=int(z[0].shape[1]), latent_n=len(xs),
        latent_recon_rmse=float(diff.pow(2).mean().sqrt()), latent_recon_l2=float(l2.mean()),
        latent_recon_l2_se=float(l2.std() / len(l2) ** 0.5) if len(l2) > 1 else None,
        latent_recon_max_abs=float(diff.abs().max()), latent_batch=len(xb), latent_batch_ms=ms,
        latent_batch_iqr_ms=iqr, latent_batch_median_se_ms=se, latent_throughput_per_s=len(xb) / t.median_s,
        latent_timing_warmup=ev.timing_warmup, latent_timing_repeats=repeats)


# --------------------------------------------------------------------------- cells
@dataclass
class ModelEval:
    """Everything that needs the model (``model_eval.json``): training facts, sampler timings, densities,
    latent inference."""

    train: TrainResult
    samplers: dict[str, SamplerResult] = field(default_factory=dict)
    density: DensityResult | None = None
    model_device: dict[str, Any] | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] | None = None  # the settings it was made with (model, train, data, eval)
    latent: LatentResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"train": part_to_dict(self.train), "samplers": {k: part_to_dict(v) for k, v in self.samplers.items()},
                "density": None if self.density is None else part_to_dict(self.density),
                "latent": None if self.latent is None else part_to_dict(self.latent),
                "model_device": self.model_device, "stage_seconds": self.stage_seconds, "config": self.config}

    def files(self) -> list[str]:
        """The artifacts of the model stage besides ``model_eval.json``: samples and the 2D density grid."""
        return [f"samples_{name}.npz" for name in self.samplers] + ["density_grid.npz"]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelEval:
        return cls(train=part_from_dict(TrainResult, d["train"], "model_eval.json: train."),
                   samplers={k: part_from_dict(SamplerResult, v, f"model_eval.json: samplers.{k}.")
                             for k, v in (d.get("samplers") or {}).items()},
                   density=None if d.get("density") is None else part_from_dict(DensityResult, d["density"],
                                                                                "model_eval.json: density."),
                   model_device=d.get("model_device"), stage_seconds=d.get("stage_seconds") or {},
                   config=d.get("config"),
                   latent=None if d.get("latent") is None else part_from_dict(LatentResult, d["latent"],
                                                                              "model_eval.json: latent."))


def model_stage(model: models.GenerativeModel, ds: datasets.Dataset, ev: EvalConfig, cell_dir: Path,
                device: torch.device, samplers: dict[str, Sampler] | None = None,
                ) -> tuple[dict[str, SamplerResult], DensityResult, dict, dict[str, float], LatentResult]:
    """Everything that needs the model: samples of each of ``samplers`` (default: the family's), sampling
    timings, densities, latent inference and their timings.

    Returns (samplers, density, model device, wall seconds of the "sample" and "density"
    parts, latent); the latent stage and the probability-flow ODE's likelihood
    (:func:`bench.evaluation.ode.ode_likelihood`, where the cell has a ``pf_ode`` sampler) count in the
    "density" part. The caller writes them to ``model_eval.json`` so that the evaluate stage can run
    elsewhere, from the samples alone.
    """
    labels = sample_labels(ds, ev.n_samples) if model.conditional else None
    with Stopwatch(device) as sampling:
        results = sample_stage(model, ev, cell_dir, device, samplers, labels)
    with Stopwatch(device) as densities:
        density = density_stage(model, ds, ev, device)
        mod = get_modality(model.modality)
        density = mod.model_extras(model, ds, ev, density, cell_dir, device)
        ode = ode_likelihood(model, ds, ev, device, samplers or model.default_samplers(), mod.closed_form_density)
        density = dataclasses.replace(density, **ode)
        latent = latent_stage(model, ds, ev, device, samplers)
    return (results, density, env.device_info(device), {"sample": sampling.seconds, "density": densities.seconds},
            latent)


@dataclass
class Cell:
    """One pending cell: its place in the run's list (1-based ``k``), dataset, family and seed."""

    k: int
    dataset: str
    family: str
    seed: int

    @property
    def cid(self) -> str:
        return cell_id(self.dataset, self.family, self.seed)


def new_record(suite: Suite, ds: datasets.Dataset, family: str, seed: int, run: RunDir,
                device: torch.device) -> CellRecord:
    entry = suite.family(ds.name, family)
    cls = models.get(entry.family or family, suite.modality)
    return CellRecord(
        suite=suite.name, run_id=run.run_id, dataset=ds.name, family=family, seed=seed, modality=suite.modality,
        registered_family=cls.family, lr_scale=entry.lr_scale,
        likelihood_kind=cls.capabilities.likelihood, capabilities=dataclasses.asdict(cls.capabilities),
        model_class=f"{cls.__module__}.{cls.__qualname__}", reference=cls.reference,
        textbook=dataclasses.asdict(cls.textbook) if cls.textbook else None,
        config=cell_config(suite, ds.name, family),
        git_sha=env.git_sha(), versions=env.versions(), device=env.device_info(device), dataset_info=ds.info,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))


def dataset_failed(suite: Suite, run: RunDir, dataset: str, family: str, seed: int, error: BaseException) -> CellRecord:
    """Write and return the record of a cell whose dataset failed to load (``status="failed"``, the reason
    ``dataset: <error>``): a missing dataset fails its cells, not the suite."""
    r = CellRecord(suite=suite.name, run_id=run.run_id, dataset=dataset, family=family, seed=seed,
                   modality=suite.modality, status="failed", reason=f"dataset: {type(error).__name__}: {error}")
    run.write_record(r)
    return r


def record_stopped(suite: Suite, run: RunDir, ds: datasets.Dataset, family: str, seed: int, device: torch.device,
                   reason: str, status: str = "failed", threads: int | None = None) -> CellRecord:
    """Write and return the record of a cell that its launcher saw stop without recording why (its worker
    process died, its Ray task was lost, it did not answer Ctrl-C in time): ``status`` (``"failed"`` or
    ``"interrupted"``) with ``reason``, keeping the stages its own last record says it finished. A cell
    whose own record already says ``ok`` (it finished just before) is returned as it is. ``threads``: the
    worker's torch threads, recorded in ``device.torch_threads`` (default: this process's)."""
    own = run.read_record(cell_id(ds.name, family, seed))
    if own is not None and own.ok:
        return own
    r = dataclasses.replace(new_record(suite, ds, family, seed, run, device), status=status, reason=reason,
                            stages_done=list(own.stages_done) if own is not None else [])
    if threads is not None and r.device is not None:
        r.device = {**r.device, "torch_threads": threads}
    r.finished_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    run.write_record(r)
    return r


def run_cell(suite: Suite, ds: datasets.Dataset, family: str, seed: int, run: RunDir, device: torch.device,
             stages: tuple[str, ...] = ("train", "sample", "evaluate"), progress: bool = True,
             estimate: CellEstimate | None = None) -> CellRecord:
    """Run one cell's stages and write its record.

    The record's status is ``ok`` once evaluated, ``partial`` when ``stages``
    stopped earlier, ``failed`` (with the reason) when anything raised, and
    ``interrupted`` on Ctrl-C, which is re-raised once the record is written.
    ``estimate`` (the plan's) is stored beside the measured ``stage_seconds``.

    Raises:
        KeyboardInterrupt: on Ctrl-C, after the record is written.
        StorageError: the results cannot be written (a full disk, a read-only folder); the
            failed record is written first where it still can be.
    """
    cid = cell_id(ds.name, family, seed)
    cell_dir = run.cell(cid)
    record = new_record(suite, ds, family, seed, run, device)
    record.estimate = estimate
    done: list[str] = []
    seconds: dict[str, float] = {}
    interrupted = False
    model_eval_path = cell_dir / "model_eval.json"
    with Stopwatch(device) as wall:
        try:
            cell_dir.mkdir(parents=True, exist_ok=True)
            if model_eval_path.exists():  # trained and sampled before (maybe on another machine)
                model_eval = ModelEval.from_dict(json.loads(model_eval_path.read_text()))
                done += ["train", "sample"]
                seconds.update(model_eval.stage_seconds)
            else:
                settings = stored_config(record.config)
                with Stopwatch(device) as clock:
                    model, train_info = train_stage(suite.family(ds.name, family), family, suite.modality, ds, seed,
                                                    cell_dir, device, progress,
                                                    config={k: settings[k] for k in ("model", "train", "data")},
                                                    ev=suite.eval, data=suite.data)
                done.append("train")
                seconds["train"] = clock.seconds
                model_eval = ModelEval(train=train_info)
                if "sample" in stages:
                    update_sums(cell_dir, remove=[n for n in read_sums(cell_dir) if n != "model.pt"])  # rewritten now
                    samplers, density, model_device, parts, latent = model_stage(
                        model, ds, suite.eval, cell_dir, device, suite.family(ds.name, family).samplers)
                    seconds.update(parts)
                    model_eval = ModelEval(train_info, samplers, density, model_device, dict(seconds),
                                           config=settings, latent=latent)
                    write_json(model_eval_path, model_eval.to_dict())
                    update_sums(cell_dir, add=[*model_eval.files(), model_eval_path.name])
                    done.append("sample")
            record = dataclasses.replace(record, train=model_eval.train, samplers=model_eval.samplers,
                                         density=model_eval.density, latent=model_eval.latent,
                                         model_device=model_eval.model_device,
                                         stages_done=list(done))
            if "evaluate" in stages:
                with Stopwatch(device) as clock:
                    result = get_modality(suite.modality).evaluate(ds, suite.eval, suite.data, record, cell_dir, device)
                done.append("evaluate")
                seconds["evaluate"] = clock.seconds
                record = dataclasses.replace(record, **result, stages_done=list(done))
            record.status = "ok" if "evaluate" in done else "partial"
        except KeyboardInterrupt:
            interrupted = True
            record = dataclasses.replace(record, status="interrupted", stages_done=list(done),
                                         reason=f"interrupted (Ctrl-C) after stages {done or ['none']}; "
                                                "resume the run to finish it")
        except Exception as e:  # one failing cell must not kill the suite (a full disk does: see below)
            full = storage_error(e)
            reason = str(full) if full else f"{type(e).__name__}: {e}".splitlines()[0]
            record = dataclasses.replace(record, status="failed", reason=reason, traceback=traceback.format_exc(),
                                         stages_done=list(done))
            if full:
                record.wall_seconds, record.stage_seconds = wall.elapsed, seconds
                record.finished_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                with contextlib.suppress(StorageError):  # the record too may not fit
                    run.write_record(record)
                raise full from e
    record.wall_seconds = wall.seconds
    record.stage_seconds = seconds
    record.finished_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    run.write_record(record)
    if interrupted:
        raise KeyboardInterrupt
    return record


def headline(r: CellRecord) -> str:
    if r.status == "failed":
        return f"FAILED ({r.reason})"
    took = f"{r.wall_seconds:.0f}s" if r.wall_seconds is not None else "?"
    if r.estimate is not None and r.estimate.est_total_seconds:
        took += f" (estimated {r.estimate.est_total_seconds:.0f}s)"
    d, parts = r.density or DensityResult(), [f"train {r.train.train_seconds:.1f}s"]
    if d.test_nll_nats is not None:
        parts.append(f"NLL {d.test_nll_nats:.3f} nats")
    if d.test_nll_bound_nats is not None:
        parts.append(f"NLL <= {d.test_nll_bound_nats:.3f} nats")
    _, first = r.primary()
    if first.sample_throughput_per_s is not None:
        parts.append(f"{first.sample_throughput_per_s:.3g} samples/s at NFE {first.sample_nfe}")
    return f"{took}: " + ", ".join(parts)
