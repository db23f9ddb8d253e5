"""The common interface every generative family implements.

A family is an ``nn.Module`` subclass of :class:`GenerativeModel`. It declares
what it can do in :attr:`GenerativeModel.capabilities`; the bench asks for those
capabilities instead of catching ``NotImplementedError``.

Conventions shared by every family:

* Vector data (modality ``"vector"``): ``x`` is a float32 tensor of shape
  ``(N, D)``; for the 2D suite ``D == 2``, raw coordinates, no rescaling.
* Image data (modality ``"image"``): ``x`` is a **uint8** tensor of shape
  ``(N, C, H, W)`` with values 0..255, both as input to ``loss``/densities and as
  the output of ``sample``. Each family maps pixels to its own working range.
  Densities of images are of the discrete 8-bit data: ``log_prob(x)`` is log P(x)
  in nats summed over all C*H*W dimensions (bits/dim = -log_prob / (C*H*W ln 2));
  a flow on uniformly dequantized data reports E_u log p(x + u) over unit-width
  bins, which bounds log P(x) from below (Theis et al. 2016, arXiv:1511.01844).
* Log-densities, bounds and energies are per example, shape ``(N,)``, in nats.
* Model code never times itself; ``bench.core.timing`` does that.
* The public calls ``sample``, ``log_prob``, ``log_prob_bounds`` and ``energy`` return
  plain tensors: they run under ``torch.no_grad()`` and record no autograd graph, so
  ``.numpy()`` works on their output and memory does not grow with NFE. A caller who
  wants gradients asks for them with :func:`gradients`::

      with models.gradients():
          nll = -model.log_prob(x)          # differentiable: nll.mean().backward() works

  Inside a family (its ``loss``, ``train_step``, ``prepare``, or one public call made
  from another) calls keep the caller's autograd mode, so training and Langevin
  samplers that differentiate the energy or score with ``torch.enable_grad()`` work as
  written.
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import dataclasses
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from models.fields import Range, check_fields
from models.samplers import build_samplers, expand_entries

LATENT_KINDS = ("amortized", "exact", "inversion")


@dataclass(frozen=True)
class Capabilities:
    """What a family can compute, as the bench sees it.

    Attributes:
        sample: ``sample(n)`` draws from the model.
        log_prob: ``log_prob(x)`` gives the exact log-density in nats.
        bound: ``log_prob_bounds(x)`` gives lower bounds on log p(x) in nats (ELBO, IWAE).
        energy: ``energy(x)`` gives an unnormalized energy E(x), p(x) ∝ exp(-E(x)).
        latent: how ``to_latent(x)`` infers a latent z from x, with ``from_latent(z)`` mapping it back
            (one of :data:`LATENT_KINDS`): ``"amortized"`` (an encoder network, e.g. a VAE's posterior
            mean, 1 NFE), ``"exact"`` (a bijection, a flow's forward map), ``"inversion"`` (an
            iterative inversion of a deterministic sampler, e.g. DDIM, NFE = its steps); ``None``:
            the family has no latent inference (GAN, autoregressive, EBM).
        conditional: the family can be built class-conditional (its ``Config`` has ``num_classes``):
            ``loss(x, y)``, ``sample(n, y=...)`` and its densities take labels (docs/conditional.md).
        guidance: its samplers take a classifier-free guidance scale (``guidance`` setting; Ho & Salimans
            2021, arXiv:2207.12598): the family trains with the label dropped with probability
            ``config.p_uncond`` so that one network gives both p(x|c) and p(x).

    Raises:
        ValueError: ``latent`` outside :data:`LATENT_KINDS` and ``None``.
    """

    sample: bool = True
    log_prob: bool = False
    bound: bool = False
    energy: bool = False
    latent: str | None = None
    conditional: bool = False
    guidance: bool = False

    def __post_init__(self):
        if self.guidance and not self.conditional:
            raise ValueError("guidance needs a conditional family (conditional=True)")
        if self.latent is not None and self.latent not in LATENT_KINDS:
            raise ValueError(f"latent must be one of {LATENT_KINDS} or None, got {self.latent!r}")

    @property
    def likelihood(self) -> str:
        """The likelihood kind: ``"exact"``, ``"bound"``, ``"unnormalized"`` or ``"none"``."""
        if self.log_prob:
            return "exact"
        if self.bound:
            return "bound"
        if self.energy:
            return "unnormalized"
        return "none"


LIKELIHOOD_KINDS = ("exact", "bound", "unnormalized", "none")
SAMPLING_SPEEDS = ("fast", "slow")
TRAINING_CLAIMS = ("stable", "fragile")


@dataclass(frozen=True)
class Textbook:
    """What the textbook taxonomy claims about a family; the report tests each claim against measurements.

    The taxonomy (e.g. Bond-Taylor et al., "Deep Generative Modelling: A Comparative
    Review", 2021, arXiv:2103.04922, Table 1) gives each family a likelihood kind and a
    sampling speed. A family declares its row once, on its class(es); a family without
    one (``textbook = None``) is reported as having "no textbook claim".

    Attributes:
        likelihood: the claimed kind, one of ``LIKELIHOOD_KINDS`` (what
            :attr:`Capabilities.likelihood` reports when the claim holds).
        sampling: ``"fast"`` or ``"slow"``.
        likelihood_text: the table's wording (default: ``likelihood``), e.g. ``"ELBO bound"``.
        sampling_text: the table's wording (default: ``sampling``), e.g. ``"slow (sequential)"``.
        training: ``"stable"`` or ``"fragile"`` where the texts say so (T14: GANs fragile; T15: autoregressive,
            VAE and diffusion training stable), else ``None``: no text makes a training claim about flows,
            score-based or energy-based models.
        sample_quality: ``"excellent"`` where the taxonomy singles the family out (diffusion), else ``None``.
        expressiveness: ``"restricted"`` where the taxonomy says the architecture pays for its
            tractability (flows: invertible maps with tractable Jacobians), else ``None``.
        claims: the numbered claims of ``shared/claims.md`` (``"T1"`` ... ``"T30"``,
            :data:`bench.analysis.claims.CLAIMS`) the texts make about this family, in order; every field
            above is one of them (the likelihood kind T1-T4, the sampling speed T7-T13, training T14/T15,
            sample quality T19, expressiveness T21).

    Raises:
        ValueError: a kind, speed or claim outside the allowed values, or a claim id not of the form ``T<n>``,
            1 <= n <= 30.
    """

    likelihood: str
    sampling: str
    likelihood_text: str = ""
    sampling_text: str = ""
    training: str | None = None
    sample_quality: str | None = None
    expressiveness: str | None = None
    claims: tuple[str, ...] = ()

    def __post_init__(self):
        for c in self.claims:
            if not (isinstance(c, str) and c[:1] == "T" and c[1:].isdigit() and 1 <= int(c[1:]) <= 30):
                raise ValueError(f"claims: {c!r} is not a claim id T1-T30 (shared/claims.md)")
        if self.likelihood not in LIKELIHOOD_KINDS:
            raise ValueError(f"likelihood must be one of {LIKELIHOOD_KINDS}, got {self.likelihood!r}")
        if self.sampling not in SAMPLING_SPEEDS:
            raise ValueError(f"sampling must be one of {SAMPLING_SPEEDS}, got {self.sampling!r}")
        for name, allowed in (("training", TRAINING_CLAIMS), ("sample_quality", ("excellent",)),
                              ("expressiveness", ("restricted",))):
            if getattr(self, name) not in (*allowed, None):
                raise ValueError(f"{name} must be one of {allowed} or None, got {getattr(self, name)!r}")
        object.__setattr__(self, "likelihood_text", self.likelihood_text or self.likelihood)
        object.__setattr__(self, "sampling_text", self.sampling_text or self.sampling)


_Beta = Annotated[float, Range(ge=0, lt=1)]


@dataclass
class TrainConfig:
    """Optimisation settings, shared by every family.

    Attributes:
        steps: number of optimisation steps (for a GAN: generator steps).
        batch_size: examples per step.
        lr: peak learning rate of Adam.
        betas: Adam's (beta1, beta2), each in [0, 1).
        schedule: ``"constant"`` or ``"cosine"`` decay to 0 over ``steps``.
        warmup_steps: linear learning-rate warm-up.
        grad_clip: global gradient-norm clip; ``None`` disables it.
        ema: decay of an exponential moving average of the weights that is used for
            evaluation (Ho et al. 2020 use 0.9999); ``None`` disables it.
        max_seconds: wall-clock budget; training stops at ``steps`` or at this time,
            whichever comes first. ``None`` means steps only.
        check_every: steps between checks that the loss is finite (1 on CPU is free).
        amp: ``"bf16"`` runs the forward passes under bfloat16 autocast on CUDA (ignored on
            CPU); ``None`` trains in float32.
        channels_last: store image models and batches in channels-last memory format.

    Each numeric field declares its allowed values (:class:`Range`) with its type.

    Raises:
        ValueError: a value outside its range or choices (:func:`check_fields`).
    """

    steps: Annotated[int, Range(ge=1, le=10**9)] = 2000
    batch_size: Annotated[int, Range(ge=1, le=2**20)] = 256
    lr: Annotated[float, Range(gt=0, le=10)] = 1e-3
    betas: tuple[_Beta, _Beta] = (0.9, 0.999)
    schedule: Literal["constant", "cosine"] = "cosine"
    warmup_steps: Annotated[int, Range(ge=0, le=10**9)] = 0
    grad_clip: Annotated[float, Range(gt=0)] | None = None
    ema: Annotated[float, Range(ge=0, lt=1)] | None = None
    max_seconds: Annotated[float, Range(gt=0)] | None = None
    check_every: Annotated[int, Range(ge=1, le=10**9)] = 1
    amp: Literal["bf16"] | None = None
    channels_last: bool = False

    def __post_init__(self):
        check_fields(self)


def ladder_steps(levels: int, batch_size: int, miss: float = 1e-6) -> int:
    """Training steps after which each of ``levels`` noise levels, drawn uniformly ``batch_size`` times a step,
    has been drawn at least once with probability >= 1 - ``miss``: the first n draws with
    levels (1 - 1/levels)^n <= miss (a union bound), in steps. Example: 100 levels at batch 512: 1833 draws,
    4 steps.
    """
    if levels <= 1:
        return 1
    draws = math.log(miss / levels) / math.log1p(-1 / levels)
    return max(1, math.ceil(draws / batch_size))


# --------------------------------------------------------------------------- autograd of the public API
# no autograd graph unless asked for
PUBLIC_CALLS = ("sample", "log_prob", "log_prob_bounds", "energy", "to_latent", "from_latent")
INTERNAL_CALLS = ("loss", "train_step", "prepare", "generate")  # keep the caller's autograd mode (training)
_DEPTH = contextvars.ContextVar("genbench_model_call_depth", default=0)
_GRADIENTS = contextvars.ContextVar("genbench_model_gradients", default=False)


@contextlib.contextmanager
def gradients() -> Iterator[None]:
    """Inside this block the public calls (``sample``, ``log_prob``, ``log_prob_bounds``, ``energy``,
    ``to_latent``, ``from_latent``) record autograd graphs, as plain ``nn.Module`` calls would.

    Outside it they run under ``torch.no_grad()`` and return tensors with
    ``requires_grad == False``. Example::

        with models.gradients():
            loss = -model.log_prob(x).mean()
        loss.backward()
    """
    token = _GRADIENTS.set(True)
    try:
        yield
    finally:
        _GRADIENTS.reset(token)


def _wrap(fn, public: bool):
    """``fn`` run as a model call: the outermost public call disables autograd unless :func:`gradients`
    is active; nested calls (from ``loss``, ``train_step`` or another public call) pass through."""

    @functools.wraps(fn)
    def call(self, *args, **kwargs):
        depth = _DEPTH.get()
        token = _DEPTH.set(depth + 1)
        try:
            if public and depth == 0 and not _GRADIENTS.get():
                with torch.no_grad():
                    return fn(self, *args, **kwargs)
            return fn(self, *args, **kwargs)
        finally:
            _DEPTH.reset(token)

    call.__genbench_wrapped__ = True
    return call


class GenerativeModel(nn.Module, abc.ABC):
    """Base class of every family: training objective, sampling and densities.

    Subclasses set ``Config`` (a dataclass of model options, every field declaring its allowed values:
    :mod:`models.fields`; constraints that need the data's shape go in :meth:`check_data_shape`), ``capabilities``,
    ``reference``, ``textbook`` (the taxonomy's claims, or ``None``) and ``tiny`` (the
    ``Config`` options that shrink the model to test size, used by the contract tests),
    and ``samplers`` (their sampler entries; default: the ``native`` one), and implement the
    abstract ``loss``, ``generate`` where they declare a ``native`` sampler, plus whichever
    density methods their capabilities declare. ``family`` and ``modality`` are set by
    :func:`models.register`, which refuses a class that leaves ``loss`` abstract or declares a
    ``native`` sampler without ``generate``. Callers draw samples with :meth:`sample`, which runs
    a sampler object (:mod:`models.samplers`) on the model.

    Args:
        config: an instance of ``type(self).Config``.
        data_shape: shape of one example, e.g. ``(2,)`` or ``(1, 28, 28)``.
    """

    family: ClassVar[str] = ""
    modality: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    Config: ClassVar[type] = object
    capabilities: ClassVar[Capabilities] = Capabilities()
    textbook: ClassVar[Textbook | None] = None
    tiny: ClassVar[dict[str, Any]] = {}
    train_defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        for names, public in ((PUBLIC_CALLS, True), (INTERNAL_CALLS, False)):
            for name in names:
                fn = cls.__dict__.get(name)
                if callable(fn) and not getattr(fn, "__isabstractmethod__", False) \
                        and not getattr(fn, "__genbench_wrapped__", False):
                    setattr(cls, name, _wrap(fn, public))

    def __init__(self, config: Any, data_shape: tuple[int, ...]):
        super().__init__()
        self.config = config
        self.data_shape = tuple(int(s) for s in data_shape)
        type(self).check_data_shape(config, self.data_shape)
        self.amp_dtype: torch.dtype | None = None  # set by the training loop
        self.num_classes: int | None = getattr(config, "num_classes", None)
        if self.num_classes is not None:
            if not type(self).capabilities.conditional:
                raise ValueError(f"num_classes: {self.num_classes} is not allowed ({type(self).__name__} cannot be "
                                 "conditioned: its capabilities say conditional=False)")
            # pi_c, the training labels' frequencies (set by the training loop): y=None draws from it
            self.register_buffer("label_prior", torch.full((self.num_classes,), 1.0 / self.num_classes))

    @classmethod
    def check_data_shape(cls, config: Any, data_shape: tuple[int, ...]) -> None:
        """Refuse a ``config`` that cannot model data of ``data_shape`` (one example's shape), before any
        network is built: the constraints that only the data can tell, e.g. H and W divisible by 2^levels.

        ``Config`` checks its own fields (:mod:`models.fields`); this checks them against the data. The
        constructor calls it, and ``bench.config.suite`` calls it for every dataset of a suite when the
        suite is loaded, so that a bad value is one line naming the file and the key. The default
        allows every shape.

        Raises:
            ValueError: ``"<field>: <value> is not allowed (...)"``, naming the field and the data's shape.
        """

    def autocast(self) -> contextlib.AbstractContextManager:
        """Context for training forward passes: bf16 autocast when enabled and on CUDA, else a no-op."""
        dev = self.device
        if self.amp_dtype is None or dev.type != "cuda":
            return contextlib.nullcontext()
        return torch.autocast(dev.type, dtype=self.amp_dtype)

    # ----------------------------------------------------------------- labels (class-conditional models)
    @property
    def conditional(self) -> bool:
        """Whether this model was built class-conditional (``config.num_classes`` set)."""
        return self.num_classes is not None

    @property
    def null_label(self) -> int:
        """K, the extra label index meaning "no label" (the unconditional model of classifier-free guidance)."""
        if self.num_classes is None:
            raise ValueError(f"family {self.family!r} was built unconditional (num_classes = None): it has no labels")
        return self.num_classes

    def check_labels(self, y: Tensor | None, n: int | None = None) -> Tensor | None:
        """``y`` checked and moved to the model's device: ``None``, or int64 labels of shape (n,) in [0, K).

        Raises:
            ValueError: labels given to an unconditional model (``num_classes = None``), or labels that are not
                an int64 tensor of shape (n,), or a label outside [0, K); the message names the problem.
        """
        if y is None:
            return None
        if self.num_classes is None:
            raise ValueError(f"family {self.family!r} was built unconditional (num_classes = None): it takes no "
                             "labels y; build it with num_classes = K")
        if not isinstance(y, Tensor) or y.dtype != torch.int64 or y.dim() != 1 or (n is not None and len(y) != n):
            what = f"{y.dtype} tensor of shape {tuple(y.shape)}" if isinstance(y, Tensor) else type(y).__name__
            raise ValueError(f"labels y must be an int64 tensor of shape ({'n' if n is None else n},), got {what}")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
            raise ValueError(f"label {bad} is out of range: labels y must lie in [0, {self.num_classes})")
        return y.to(self.device)

    def set_label_prior(self, y_train: Tensor) -> None:
        """pi_c = the frequency of label c in ``y_train`` (int64 (N,)): what ``sample`` with ``y=None`` draws
        labels from, and the weights of the marginal densities."""
        y = self.check_labels(y_train)
        self.label_prior = torch.bincount(y, minlength=self.num_classes).to(self.label_prior) / len(y)

    def draw_labels(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` labels drawn from :attr:`label_prior` with ``generator``: int64 (n,) on the model's device."""
        return torch.multinomial(self.label_prior, n, replacement=True, generator=generator)

    def drop_labels(self, y: Tensor) -> Tensor:
        """``y`` with each label replaced by :attr:`null_label` with probability ``config.p_uncond`` (global RNG):
        the label dropout of classifier-free guidance training (Ho & Salimans 2021, arXiv:2207.12598, Alg. 1)."""
        drop = torch.rand(y.shape, device=y.device) < self.config.p_uncond
        return torch.where(drop, torch.full_like(y, self.null_label), y)

    def marginal(self, per_label: Any, n: int) -> Any:
        """log p(x) = log sum_c pi_c exp(v_c) from per-label values v_c = ``per_label(y_c)`` (y_c the label c
        repeated, int64 (n,)): each (n,) tensor, or a dict of them (bounds, each kept a lower bound).

        What a conditional model's density calls return for ``y=None``: the marginal under the training
        labels' frequencies :attr:`label_prior` (K network passes)."""
        log_pi = self.label_prior.log()
        outs = [per_label(torch.full((n,), c, dtype=torch.long, device=self.device))
                for c in range(self.num_classes)]

        def mix(values: list[Tensor]) -> Tensor:
            return torch.logsumexp(torch.stack(values) + log_pi.to(values[0])[:, None], 0)

        if isinstance(outs[0], dict):
            return {k: mix([o[k] for o in outs]) for k in outs[0]}
        return mix(outs)

    # ----------------------------------------------------------------- training
    def prepare(self, x_train: Tensor) -> None:
        """Data-dependent set-up before training (e.g. the EBM's bounding box).

        Anything it sets must live in buffers so that checkpoints carry it.
        """

    @abc.abstractmethod
    def loss(self, x: Tensor) -> Tensor:
        """Scalar training objective to minimise on a batch ``x`` of shape (B, *data_shape).

        Conditional families take ``loss(x, y)`` with labels y int64 (B,) in [0, K); guided families drop
        them with probability ``config.p_uncond`` (:meth:`drop_labels`)."""

    def configure_optimizers(self, train: TrainConfig) -> list[torch.optim.Optimizer]:
        """Optimisers used by :meth:`train_step`; one Adam over all parameters by default."""
        return [torch.optim.Adam(self.parameters(), lr=train.lr, betas=tuple(train.betas))]

    def train_step(self, x: Tensor, optimizers: list[torch.optim.Optimizer], train: TrainConfig,
                   y: Tensor | None = None) -> dict[str, Tensor]:
        """One optimisation step on batch ``x`` (with its labels ``y`` for a conditional model); returns
        detached scalar losses by name.

        The default minimises :meth:`loss` with the single optimiser. Adversarial
        families override it.
        """
        (opt,) = optimizers
        opt.zero_grad(set_to_none=True)
        with self.autocast():
            loss = self.loss(x) if y is None else self.loss(x, y)
        loss.backward()
        if train.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.parameters(), train.grad_clip)
        opt.step()
        return {"loss": loss.detach()}

    def schedule_steps(self, train: TrainConfig) -> dict[str, int]:
        """Training steps after which each step-dependent schedule of this model has reached its end, by name.

        A regression gate sees a schedule's end (and what follows it) only when its budget runs that far
        (``tests/test_schedules.py`` checks the 2D ci profile). The base class counts the training loop's
        own: the learning-rate warm-up (``train.warmup_steps``) and the warm-up of the EMA decay
        (:class:`bench.execution.train.EMA`: ``min(ema, (1 + n) / (10 + n))`` at update n reaches ``ema`` at
        n = ceil((10 ema - 1) / (1 - ema)), training step n + 1: step 81 for 0.9, 1791 for 0.995). A
        cosine learning-rate decay ends with the step budget itself and is not listed. Families add theirs
        (KL warm-up, replay buffer, noise ladders, critic steps).
        """
        out = {}
        if train.warmup_steps:
            out["learning-rate warm-up"] = train.warmup_steps
        if train.ema:
            out["EMA decay warm-up"] = max(1, math.ceil((10 * train.ema - 1) / (1 - train.ema) - 1e-9)) + 1
        return out

    # ----------------------------------------------------------------- sampling
    # The family's samplers, by name: settings as suites write them (``families.<name>.samplers``), each
    # with a ``kind`` of :data:`models.samplers.KINDS`; a list-valued setting is a sweep. The first is the
    # default. A suite's block is merged over these.
    samplers: ClassVar[dict[str, dict[str, Any]]] = {"default": {"kind": "native"}}
    # Sampler settings that shrink the default samplers to test size (like ``tiny`` for the config).
    tiny_samplers: ClassVar[dict[str, dict[str, Any]]] = {}
    # Config keys of older checkpoints that are sampler settings now (genbench 0.1 kept them in the model
    # config); :func:`models.load_checkpoint` drops them, so old runs keep loading.
    legacy_config_keys: ClassVar[tuple[str, ...]] = ()

    def sample(self, n: int, generator: torch.Generator | None = None, sampler: Any = None,
               y: Tensor | None = None) -> Tensor:
        """Draw ``n`` samples of shape (n, *data_shape): float32 vectors, or uint8 images 0..255.

        Args:
            n: number of samples.
            generator: source of all randomness (on the model's device): a fixed seed gives the same samples.
            sampler: a :class:`models.samplers.Sampler` of one of this family's kinds; ``None`` is the
                family's default (the first of :attr:`samplers`). Its ``guidance`` setting (where it has one)
                is the classifier-free guidance scale w.
            y: class labels, int64 (n,) in [0, K), for a conditional model: sample i is drawn from p(x | y_i)
                (with guidance w > 0, from the guided sampler). ``None`` on a conditional model draws the labels
                from :attr:`label_prior` first (the marginal p(x)); an unconditional model takes none.

        Raises:
            ValueError: a sampler of a kind this family does not offer, settings that do not fit it, guidance
                asked of a family or model without it, or bad labels (:meth:`check_labels`).
        """
        sampler = self.resolve_sampler(sampler)
        y = self.check_labels(y, n)
        if y is None and self.conditional:
            y = self.draw_labels(n, generator)
        return sampler.draw(self, n, generator) if y is None else sampler.draw(self, n, generator, y=y)

    @classmethod
    def default_samplers(cls) -> dict[str, Any]:
        """The family's samplers (:attr:`samplers`) as objects, by name; the first is the default."""
        return build_samplers(cls.samplers)

    @classmethod
    def sampler_kinds(cls) -> set[str]:
        """The sampler kinds this family can run: those of its declared :attr:`samplers`."""
        return {e["kind"] for e in expand_entries(cls.samplers).values()}

    def resolve_sampler(self, sampler: Any = None) -> Any:
        """``sampler``, checked against this family and model, or the default sampler when ``None``.

        Raises:
            ValueError: an unsupported kind (the message names the family's kinds) or settings that do not
                fit the model (:meth:`models.samplers.Sampler.check`).
        """
        if sampler is None:
            return next(iter(self.default_samplers().values()))
        if sampler.kind not in self.sampler_kinds():
            raise ValueError(f"family {self.family!r} has no sampler of kind {sampler.kind!r} (it offers: "
                             f"{', '.join(sorted(self.sampler_kinds()))})")
        sampler.check(self.config)
        self.check_guidance(sampler, self.config)
        return sampler

    @classmethod
    def check_guidance(cls, sampler: Any, config: Any) -> None:
        """Refuse a sampler with classifier-free guidance (``guidance`` > 0) where it cannot run: a family whose
        capabilities say ``guidance=False``, or a model built unconditional (``config.num_classes`` None).

        Raises:
            ValueError: ``"guidance: <w> is not allowed (...)"``, naming the family and why.
        """
        w = getattr(sampler, "guidance", 0.0) or 0.0
        if not w:
            return
        if not cls.capabilities.guidance:
            raise ValueError(f"guidance: {w:g} is not allowed (family {cls.family or cls.__name__!r} has no "
                             "classifier-free guidance: it is not trained with label dropout; only families whose "
                             "capabilities say guidance=True take a guidance scale)")
        if getattr(config, "num_classes", None) is None:
            raise ValueError(f"guidance: {w:g} is not allowed (classifier-free guidance needs a class-conditional "
                             "model: set model.num_classes, or the suite's conditional block)")

    def sample_nfe(self, sampler: Any = None) -> int:
        """Sequential network function evaluations (NFE) one call of ``sample`` makes with ``sampler``
        (``None``: the default)."""
        return self.resolve_sampler(sampler).nfe(self)

    def generate(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """The family's own sampling procedure (the ``native`` sampler): ``n`` samples of shape (n, *data_shape).

        A conditional family takes ``generate(n, generator, y=labels)`` (int64 (n,), checked by :meth:`sample`);
        one with guidance also ``guidance=w`` (logit space for the autoregressive family).

        Families whose samplers are all of another kind (diffusion, score, energy) leave it out;
        :func:`models.register` refuses a family that declares a ``native`` sampler without it.
        """
        raise NotImplementedError

    def generate_nfe(self) -> int:
        """Sequential network function evaluations one call of :meth:`generate` makes."""
        return 1

    # ----------------------------------------------------------------- densities
    def log_prob(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Exact log-density log p(x) in nats, shape (N,). Needs ``capabilities.log_prob``.

        ``generator`` feeds any randomness the estimate needs (a flow's dequantization
        noise on images); deterministic families ignore it.
        """
        raise NotImplementedError

    def log_prob_bounds(self, x: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Lower bounds on log p(x) in nats, shape (N,) each, by name (``"elbo"``, ...).

        The first entry is the family's standard bound. Needs ``capabilities.bound``.
        """
        raise NotImplementedError

    def energy(self, x: Tensor) -> Tensor:
        """Unnormalized energy E(x) in nats, p(x) ∝ exp(-E(x)), shape (N,). Needs ``capabilities.energy``."""
        raise NotImplementedError

    def density_nfe(self) -> int:
        """Sequential network function evaluations one density call (``log_prob``, ``log_prob_bounds`` or
        ``energy``) makes: 1 unless the family iterates (the diffusion ELBO: T)."""
        return 1

    # ----------------------------------------------------------------- latent inference
    def to_latent(self, x: Tensor) -> Tensor:
        """Infer a latent z from data x (N, *data_shape): (N, latent_dim) float32. Needs ``capabilities.latent``.

        Deterministic: the posterior mean of an amortized encoder, a flow's forward map, or
        a DDIM inversion. ``from_latent(to_latent(x))`` reconstructs x (exactly for a flow).
        """
        raise NotImplementedError

    def from_latent(self, z: Tensor) -> Tensor:
        """Map latents z (N, latent_dim) back to data (N, *data_shape), the modality's dtype and range.

        Needs ``capabilities.latent``; deterministic (a decoder's mean or mode, a flow's inverse,
        the DDIM sampler started at z).
        """
        raise NotImplementedError

    def latent_nfe(self) -> int:
        """Sequential network function evaluations (NFE) one call of ``to_latent`` makes."""
        return 1

    def support(self) -> tuple[float, float] | None:
        """The box [lo, hi]^D the density lives on, or ``None`` for all of R^D."""
        return None

    # ----------------------------------------------------------------- helpers
    @property
    def device(self) -> torch.device:
        """The device of the first parameter or buffer (CPU for an empty module)."""
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    def config_dict(self) -> dict[str, Any]:
        """The model config as a plain dict (what checkpoints and results store)."""
        return dataclasses.asdict(self.config)



# The base class's own public calls are wrapped like a family's (``__init_subclass__`` sees subclasses only).
GenerativeModel.sample = _wrap(GenerativeModel.sample, public=True)

class MissingDependencyError(ImportError):
    """A family needs an optional package that is not installed."""

def require(module: str, needed_for: str):
    """Import ``module`` or raise :class:`MissingDependencyError` saying what needs it and how to get it.

    Offline machines (e.g. a GPU box without network) can install the packages from
    a wheelhouse built where there is network: see docs/guides/gpu-staging.md.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        dist = module.split(".")[0]  # the distributions needed here (diffusers, zuko) are named like their modules
        raise MissingDependencyError(
            f"{needed_for} needs the package {dist!r}, which is not importable here ({e}); "
            f"`pip install {dist}`, or offline `pip install --no-index --find-links wheelhouse {dist}` "
            "(see docs/guides/gpu-staging.md)") from e
