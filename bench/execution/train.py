"""The training loop shared by every family.

It draws minibatches, calls the family's ``train_step``, schedules the learning
rate, keeps an optional EMA of the weights, stops at the step or wall-clock
budget, shows a progress bar, and raises :class:`DivergenceError` as soon as a
loss is not finite. A class-conditional model gets each minibatch's labels too.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from bench.core.timing import Stopwatch
from models.base import GenerativeModel, TrainConfig


class DivergenceError(RuntimeError):
    """A training loss became NaN or infinite; the message names the loss and the step."""


@dataclass
class TrainStats:
    """What a training run did.

    Attributes:
        steps: optimisation steps taken.
        seconds: wall-clock training time (synchronized), seconds.
        stopped_by: ``"steps"`` or ``"time"`` (the ``max_seconds`` budget).
        final_losses: mean of each logged loss over the last 10% of steps.
        history: ``{"step": k, "seconds": t, <loss>: value}`` about 50 times over the run; ``t`` is
            the wall time at the start of step k (unsynchronized on CUDA: within one step's
            queue of the truth), monitor time excluded. Entries the monitor evaluated also hold
            its values (e.g. ``val_mmd2``); the last entry is then the final step's.
        monitor_seconds: wall time spent in the monitor, excluded from ``seconds`` and ``t``.
    """

    steps: int
    seconds: float
    stopped_by: str
    final_losses: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    monitor_seconds: float = 0.0


def lr_factor(cfg: TrainConfig, progress: float, step: int) -> float:
    """Learning-rate multiplier at ``step`` and ``progress`` in [0, 1] of the budget."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if cfg.schedule == "cosine":
        return warm * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    if cfg.schedule == "constant":
        return warm
    raise ValueError(f"unknown schedule {cfg.schedule!r}; expected 'cosine' or 'constant'")


class EMA:
    """Exponential moving average of a model's parameters, with a warm-up of the decay.

    The decay at update n (0-based) is ``min(decay, (1 + n) / (10 + n))``, as in
    TensorFlow's ``ExponentialMovingAverage(num_updates=...)``: without it, a run of
    a few hundred steps with decay 0.999 ends with more than half the weight on the
    random initialisation (0.999^500 = 0.61). Buffers (e.g. batch-norm statistics)
    are not averaged; the model keeps its own.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = float(decay)
        self.updates = 0
        self.shadow = [p.detach().clone() for p in model.parameters()]

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        torch._foreach_lerp_(self.shadow, [p.detach() for p in model.parameters()], 1.0 - d)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        for p, s in zip(model.parameters(), self.shadow):
            p.copy_(s)


def train(
    model: GenerativeModel,
    x_train: torch.Tensor,
    cfg: TrainConfig,
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    desc: str = "train",
    progress: bool = True,
    monitor: Callable[[GenerativeModel], dict[str, float]] | None = None,
    monitor_points: int = 10,
    y_train: torch.Tensor | None = None,
) -> TrainStats:
    """Train ``model`` in place on ``x_train`` (N, *shape) with settings ``cfg``.

    A class-conditional model (``model.conditional``) trains on the labels ``y_train`` (int64 (N,) in [0, K)):
    each minibatch's labels go to ``train_step``, and the model's label prior is set to their frequencies
    (:meth:`models.base.GenerativeModel.set_label_prior`). An unconditional model ignores them, so its training
    is the same with or without labels.

    Minibatches are drawn with replacement from a generator seeded by ``seed``;
    the global torch seed is set to ``seed`` too, so a run is reproducible on CPU.
    With ``cfg.ema`` set, the model ends holding the EMA weights.

    ``monitor(model)`` (optional) returns validation quality values by name; it is called
    on about ``monitor_points`` evenly spaced history entries and after the last step (on the
    raw weights, not the EMA), in eval mode, with the global RNG state forked so that training
    is the same with or without it; its values join those history entries and its wall time
    is kept out of the training time.

    Raises:
        DivergenceError: a loss is NaN or infinite (checked every ``cfg.check_every`` steps).
        ValueError: a conditional model without labels, or labels that do not fit it.
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    model.to(device).train()
    if not model.conditional:
        y_train = None
    elif y_train is None:
        raise ValueError(f"family {model.family!r} is class-conditional (num_classes = {model.num_classes}): "
                         "training needs the labels y_train")
    else:
        if len(y_train) != len(x_train):
            raise ValueError(f"y_train holds {len(y_train)} labels for {len(x_train)} training examples")
        y_train = y_train.to(device)
        model.set_label_prior(y_train)
    model.amp_dtype = torch.bfloat16 if cfg.amp == "bf16" else None
    x_train = x_train.to(device)
    if cfg.channels_last and x_train.ndim == 4:
        model.to(memory_format=torch.channels_last)
        x_train = x_train.contiguous(memory_format=torch.channels_last)
    model.prepare(x_train)
    optimizers = model.configure_optimizers(cfg)
    base_lrs = [[g["lr"] for g in opt.param_groups] for opt in optimizers]
    ema = EMA(model, cfg.ema) if cfg.ema else None
    gen = torch.Generator(device).manual_seed(seed)
    log_every = max(1, cfg.steps // 50)
    history: list[dict[str, float]] = []
    tail: dict[str, list[float]] = {}
    tail_from = int(cfg.steps * 0.9)
    stopped_by = "steps"
    # under a time budget the bar counts seconds of the budget (a step count would promise hours)
    timed = cfg.max_seconds is not None
    bar = tqdm(total=cfg.max_seconds if timed else cfg.steps, desc=desc, disable=not progress, dynamic_ncols=True,
               mininterval=1.0, leave=False, unit="s" if timed else "it",
               bar_format=("{l_bar}{bar}| {n:.0f}/{total:.0f} s of the time budget [{elapsed}<{remaining}{postfix}]"
                           if timed else None))
    step = 0
    last_log = -math.inf
    recent: deque[dict[str, float]] = deque(maxlen=50)  # the last checked losses
    monitor_every = max(1, 50 // monitor_points) if monitor_points else 0  # in history entries
    monitor_clock = [0.0]

    def run_monitor() -> dict[str, float]:
        with Stopwatch(device) as watch, torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            model.eval()
            values = monitor(model)
            model.train()
        monitor_clock[0] += watch.seconds
        return values

    with Stopwatch(device) as clock:  # synchronized at both ends: queued CUDA work is counted
        for step in range(cfg.steps):
            elapsed = clock.elapsed - monitor_clock[0]  # unsynchronized: a budget check, not a measurement
            if cfg.max_seconds is not None and elapsed >= cfg.max_seconds:
                stopped_by = "time"
                break
            progress_frac = step / cfg.steps
            if cfg.max_seconds:
                progress_frac = max(progress_frac, elapsed / cfg.max_seconds)
            f = lr_factor(cfg, progress_frac, step)
            for opt, lrs in zip(optimizers, base_lrs):
                for g, lr in zip(opt.param_groups, lrs):
                    g["lr"] = lr * f
            idx = torch.randint(len(x_train), (cfg.batch_size,), device=device, generator=gen)
            logs = (model.train_step(x_train[idx], optimizers, cfg) if y_train is None
                    else model.train_step(x_train[idx], optimizers, cfg, y=y_train[idx]))
            if ema is not None:
                ema.update(model)
            # a budget in time logs by time too
            log_now = step % log_every == 0 or (
                cfg.max_seconds is not None and elapsed - last_log >= cfg.max_seconds / 50)
            if (step + 1) % cfg.check_every == 0 or step + 1 == cfg.steps or log_now or step >= tail_from:
                values = {k: float(v) for k, v in logs.items()}
                for k, v in values.items():
                    if not math.isfinite(v):
                        raise DivergenceError(f"training loss {k!r} became {v} at step {step + 1}")
                recent.append(values)
                if log_now:
                    last_log = elapsed
                    history.append({"step": step + 1, "seconds": elapsed, **values})
                    if monitor is not None and monitor_every and (len(history) - 1) % monitor_every == 0:
                        history[-1].update(run_monitor())
                    bar.set_postfix({**({"step": step + 1} if timed else {}),
                                     **{k: f"{v:.3g}" for k, v in values.items()}}, refresh=False)
                if step >= tail_from:
                    for k, v in values.items():
                        tail.setdefault(k, []).append(v)
            bar.update(min(clock.elapsed - monitor_clock[0], cfg.max_seconds) - bar.n if timed else 1)
        else:
            step = cfg.steps
        if monitor is not None and monitor_every:  # the final step's quality, the end of the curve
            end = clock.elapsed - monitor_clock[0]
            entry = {"step": step, "seconds": end, **(recent[-1] if recent else {})}
            if history and history[-1]["step"] == step:
                history.pop()
            history.append({**entry, **run_monitor()})
    seconds = clock.seconds - monitor_clock[0]
    bar.close()
    if ema is not None:
        ema.copy_to(model)
    if not tail and recent:  # stopped by time before the last 10% of steps: the last checked losses
        tail = {k: [v[k] for v in recent] for k in recent[-1]}
    final = {k: sum(v) / len(v) for k, v in tail.items()}
    model.amp_dtype = None
    model.eval()
    return TrainStats(steps=step, seconds=seconds, stopped_by=stopped_by, final_losses=final, history=history,
                      monitor_seconds=monitor_clock[0])
