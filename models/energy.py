"""Energy-based family: an MLP (vectors) or conv-net (images) energy trained by contrastive divergence.

p(x) = exp(-E(x)) / Z on a bounded box; Z is unknown to the model (unnormalized).
Negative samples come from short-run SGLD chains kept in a replay buffer.
In 2D the bench can normalize it by numerical quadrature (``bench.evaluation.quadrature``).

Both forms share the algorithm in :class:`ContrastiveDivergenceEBM`: the SGLD loop
clamped to the model's box, the replay buffer with random restarts, the
contrastive-divergence loss with its energy-magnitude penalty, and sampling by a
fresh chain from uniform noise. They differ on purpose in the SGLD step schedule:
the vector EBM takes exact Langevin steps (noise sqrt(eps) for a gradient step
eps/2) with decreasing steps when sampling, the image EBM Du & Mordatch's practical
SGLD with step and noise decoupled, a constant schedule and an optional gradient
clip; and in the box (the data's bounding square; the centered pixel range [-1, 1]).

Class-conditional forms (``num_classes`` = K): an energy E(x, c) with the one-hot label concatenated to the
input (as K constant channel maps for images), p(x | c) ∝ exp(-E(x, c)), one partition function per class;
training chains run given the labels (replay-buffer chains keep theirs). ``energy(x)`` without labels is the JEM
marginal -log sum_c exp(-E(x, c)) (Grathwohl et al. 2020, arXiv:1912.03263). No guidance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
from torch import Tensor, nn

from models import register
from models.base import Capabilities, GenerativeModel, Textbook, TrainConfig
from models.fields import Length, Range, check_fields
from models.imaging import ResBlock, from_centered, to_centered
from models.nets import mlp, one_hot
from models.samplers import langevin

_NumClasses = Annotated[int, Range(ge=2, le=100_000)]

# The taxonomy's row for this family (README; bench/verdicts.py tests it).
TEXTBOOK = Textbook(likelihood="unnormalized", sampling="slow", sampling_text="slow (MCMC)",
                    claims=("T4", "T12"))


class ContrastiveDivergenceEBM(GenerativeModel):
    """An energy E(x) trained by contrastive divergence against SGLD chains from a replay buffer.

    Reference: Du & Mordatch, "Implicit Generation and Generalization in Energy-Based
    Models", 2019, arXiv:1903.08689 (Alg. 1: replay buffer, restarts, the regulariser);
    SGLD: Welling & Teh, "Bayesian Learning via Stochastic Gradient Langevin Dynamics", 2011.

    An SGLD step k of a chain is

        x_{k+1} = clamp(x_k - lambda_k * clip(grad_x E(x_k), -c, c) + sigma_k * xi_k, lo, hi),

    xi_k ~ N(0, I), on the box [lo, hi]^D of :meth:`chain_box` (no clip when
    ``sgld_grad_clip`` is None). With sigma_k^2 = 2 lambda_k it is the Langevin
    discretization with step 2 lambda_k. Subclasses define the energy on the working
    space :meth:`working_energy`, the data maps :meth:`encode_data` and
    :meth:`decode_data`, the box, and the (lambda_k, sigma_k) schedule of training
    chains (:meth:`chain_schedule`). Sampling is a fresh chain from uniform noise on the box
    (:class:`models.samplers.SGLD`, whose settings are the sampler's). ``config`` has ``sgld_steps``,
    ``buffer_size``, ``reinit_prob`` and ``reg``.
    """

    capabilities = Capabilities(sample=True, energy=True, conditional=True)
    samplers = {"default": {"kind": "sgld", "steps": 500, "step_start": 0.3, "step_end": 1e-3}}
    legacy_config_keys = ("sample_steps", "sample_step_start", "sample_step_end")
    sgld_grad_clip: float | None = None  # c: clip each entry of grad E to [-c, c] in SGLD; None: no clip

    def __init__(self, config, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        self.register_buffer("replay", torch.empty(0, *self.data_shape), persistent=False)
        if self.conditional:  # each replay chain's label
            self.register_buffer("replay_y", torch.empty(0, dtype=torch.long), persistent=False)

    def schedule_steps(self, train: TrainConfig) -> dict[str, int]:
        """The loop's schedules (:meth:`models.base.GenerativeModel.schedule_steps`) and the replay buffer's
        filling: chains restart from noise until it holds a batch, and it evicts its oldest chains only once
        it holds ``buffer_size``, after ceil(buffer_size / batch_size) steps."""
        return {**super().schedule_steps(train),
                "replay buffer full": math.ceil(self.config.buffer_size / train.batch_size)}

    # ------------------------------------------------------------------ hooks
    def encode_data(self, x: Tensor) -> Tensor:
        """Data -> the working space the energy and the chains live in."""
        return x

    def decode_data(self, x: Tensor) -> Tensor:
        """A chain's final state -> data (dtype and range of the modality)."""
        return x

    def working_energy(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """E(x) in nats, (N,) float32, for x in the working space (E(x, y) given labels y (N,) of a conditional
        model)."""
        raise NotImplementedError

    def _labelled(self, x: Tensor, y: Tensor | None) -> Tensor:
        """``x`` with the one-hot labels concatenated on axis 1 (as constant channel maps for images)."""
        if y is None:
            return x
        c = one_hot(y, self.num_classes).to(x.dtype)
        if x.dim() == 4:
            c = c[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return torch.cat([x, c], dim=1)

    def chain_box(self) -> tuple[Tensor | float, Tensor | float]:
        """(lo, hi): the chains are clamped to [lo, hi]^D and restart from uniform noise on it."""
        raise NotImplementedError

    def chain_schedule(self, steps: int) -> list[tuple[float, float]]:
        """(lambda_k, sigma_k) of ``steps`` SGLD steps of a training chain."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the algorithm
    def energy(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """E(x) in nats, (N,), for data x (N, *data_shape); p(x) ∝ exp(-E(x)) on the box.

        A conditional model gives E(x, y) for labels ``y`` (int64 (N,)), p(x|y) ∝ exp(-E(x, y)); for ``y=None``
        the JEM marginal energy -log sum_c exp(-E(x, c)) (Grathwohl et al. 2020, arXiv:1912.03263), p(x) ∝
        sum_c exp(-E(x, c)), which is the model's p(x) when the classes' partition functions are equal.
        """
        y = self.check_labels(y, len(x))
        if self.conditional and y is None:
            xw = self.encode_data(x)
            per = torch.stack([-self.working_energy(xw, torch.full((len(x),), c, dtype=torch.long, device=x.device))
                               for c in range(self.num_classes)])
            return -torch.logsumexp(per, 0)
        return self.working_energy(self.encode_data(x)) if y is None else self.working_energy(self.encode_data(x), y)

    def uniform(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws from the uniform distribution on the box, (n, *data_shape)."""
        lo, hi = self.chain_box()
        return lo + (hi - lo) * torch.rand(n, *self.data_shape, device=self.device, generator=generator)

    def energy_drift(self, x: Tensor, k: int = 0, y: Tensor | None = None) -> Tensor:
        """-clip(grad_x E(x), -c, c) at x (working space): the drift of the SGLD chains, x's shape, no graph
        (of E(x, y) given labels ``y``)."""
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            e = self.working_energy(xg) if y is None else self.working_energy(xg, y)
            (grad,) = torch.autograd.grad(e.sum(), xg)
        if self.sgld_grad_clip is not None:
            grad = grad.clamp(-self.sgld_grad_clip, self.sgld_grad_clip)
        return -grad

    def chains(self, x: Tensor, schedule: list[tuple[float, float]],
               generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        """SGLD from ``x`` (working space), one step per (lambda_k, sigma_k) of ``schedule`` (class docstring),
        by the shared integrator :func:`models.samplers.langevin`, clamped to :meth:`chain_box` (on
        E(x, y) given labels ``y``: chains of p(x | y))."""
        drift = self.energy_drift if y is None else (lambda x, k: self.energy_drift(x, k, y))
        return langevin(x, drift, schedule, generator, clamp=self.chain_box())

    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Contrastive divergence E(x+) - E(x-) + alpha (E(x+)^2 + E(x-)^2), batch mean, nats.

        x- are ``sgld_steps`` SGLD steps from replay-buffer chains (each restarted from
        uniform noise on the box with probability ``reinit_prob``; all of them while the
        buffer holds fewer than a batch); the buffer keeps the newest ``buffer_size``.
        The energy's parameters get no gradient from the chains. A conditional model needs the labels ``y``
        (int64 (B,)): E(x+, y) against chains of p(x | y-), y- the label a replayed chain kept (the batch's label
        for a fresh one).

        Raises:
            ValueError: a conditional model without labels, or bad labels.
        """
        y = self.check_labels(y, len(x))
        if self.conditional and y is None:
            raise ValueError("a conditional EBM trains on labels: loss(x, y)")
        n, c = x.shape[0], self.config
        y_neg = y
        if len(self.replay) < n:
            start = self.uniform(n)
        else:
            idx = torch.randint(len(self.replay), (n,), device=x.device)
            start = self.replay[idx]
            fresh = torch.rand(n, device=x.device) < c.reinit_prob
            start = torch.where(fresh.reshape(-1, *[1] * len(self.data_shape)), self.uniform(n), start)
            if y is not None:
                y_neg = torch.where(fresh, y, self.replay_y[idx])
        requires = [p.requires_grad for p in self.parameters()]
        self.requires_grad_(False)
        x_neg = self.chains(start, self.chain_schedule(c.sgld_steps)) if y is None else \
            self.chains(start, self.chain_schedule(c.sgld_steps), y=y_neg)
        for p, r in zip(self.parameters(), requires):
            p.requires_grad_(r)
        self.replay = torch.cat([x_neg, self.replay])[: c.buffer_size]
        if y is None:
            e_pos, e_neg = self.energy(x), self.working_energy(x_neg)
        else:
            self.replay_y = torch.cat([y_neg, self.replay_y])[: c.buffer_size]
            e_pos, e_neg = self.energy(x, y), self.working_energy(x_neg, y_neg)
        return (e_pos - e_neg).mean() + c.reg * (e_pos**2 + e_neg**2).mean()



# the training chains' options both forms share
_ChainSteps = Annotated[int, Range(ge=1, le=1000)]  # SGLD steps per training iteration: short-run chains
_Buffer = Annotated[int, Range(ge=1, le=10**6)]
_Probability = Annotated[float, Range(ge=0, le=1)]
_Reg = Annotated[float, Range(ge=0, le=100)]


# =========================================================================== vectors
@dataclass
class EBMConfig:
    """Options of :class:`MLPEnergy`.

    Attributes:
        hidden: MLP width.
        layers: hidden layers.
        sgld_steps: SGLD steps per training iteration (short-run chains).
        sgld_step_size: Langevin step epsilon of the training chains:
            x <- x - eps/2 * grad E(x) + sqrt(eps) * xi.
        buffer_size: replay-buffer capacity.
        reinit_prob: chance that a chain restarts from uniform noise on the box.
        reg: weight alpha of the energy-magnitude penalty alpha * (E(x+)^2 + E(x-)^2).
        box_margin: the box is the training data's bounding square, widened by this.
        num_classes: number of classes for a conditional energy E(x, c) (one-hot label concatenated to the
            input); ``None``: unconditional.

    Raises:
        ValueError: a value outside its declared range (:func:`models.fields.check_fields`).
    """

    hidden: Annotated[int, Range(ge=1, le=2048)] = 128
    layers: Annotated[int, Range(ge=1, le=64)] = 3
    sgld_steps: _ChainSteps = 10
    sgld_step_size: Annotated[float, Range(ge=1e-8, le=10)] = 1e-2
    buffer_size: _Buffer = 10_000
    reinit_prob: _Probability = 0.05
    reg: _Reg = 0.1
    box_margin: Annotated[float, Range(ge=0, le=100)] = 1.0
    num_classes: _NumClasses | None = None

    def __post_init__(self):
        check_fields(self)


@register("energy", modality="vector")
class MLPEnergy(ContrastiveDivergenceEBM):
    """EBM with an MLP energy, contrastive divergence, SGLD and a replay buffer.

    Reference: Du & Mordatch, "Implicit Generation and Generalization in Energy-Based
    Models", 2019, arXiv:1903.08689. SGLD: Welling & Teh 2011.

    The algorithm is :class:`ContrastiveDivergenceEBM`'s, on raw coordinates. The model
    lives on the box [lo, hi]^D set by :meth:`prepare`; SGLD chains are clamped to it,
    and quadrature normalizes over it. Its SGLD steps are exact Langevin steps,
    x <- clamp(x - eps/2 grad E(x) + sqrt(eps) xi): constant eps = ``sgld_step_size`` in
    training; its default sampler decreases eps geometrically from 0.3 to 1e-3 over 500 steps
    (:class:`models.samplers.SGLD`). Samples are (n, D) float32.
    """

    reference = "Du & Mordatch 2019, arXiv:1903.08689"
    textbook = TEXTBOOK
    tiny = {"hidden": 16, "sgld_steps": 3, "buffer_size": 64}  # test size (tests/test_contract.py)
    tiny_samplers = {"default": {"steps": 5}}
    Config = EBMConfig
    train_defaults = {"lr": 1e-3, "betas": (0.0, 0.999)}

    def __init__(self, config: EBMConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        (D,) = self.data_shape
        self.net = mlp(D + (config.num_classes or 0), config.hidden, config.layers, 1)
        self.register_buffer("box", torch.tensor([-4.0, 4.0]))  # [lo, hi], set from data in prepare()

    def prepare(self, x_train: Tensor) -> None:
        """Set the box to the data's bounding square widened by ``box_margin``."""
        m = x_train.abs().max().item() + self.config.box_margin
        self.box = torch.tensor([-m, m], device=self.box.device)

    def support(self) -> tuple[float, float]:
        """The box [lo, hi]^D: SGLD chains are clipped to it and p(x) = 0 outside."""
        return float(self.box[0]), float(self.box[1])

    def working_energy(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """E(x) in nats, (N,), for x of shape (N, D); p(x) ∝ exp(-E(x)) on the box (E(x, y) given labels y)."""
        return self.net(self._labelled(x, y))[:, 0]

    def chain_box(self) -> tuple[Tensor, Tensor]:
        """The box from :meth:`prepare`, as 0-dim tensors."""
        return self.box[0], self.box[1]

    def chain_schedule(self, steps: int) -> list[tuple[float, float]]:
        """``steps`` Langevin steps of eps = ``sgld_step_size``: (eps / 2, sqrt(eps)) each."""
        eps = self.config.sgld_step_size
        return [(0.5 * eps, eps**0.5)] * steps



# =========================================================================== images
@dataclass
class ConvEBMConfig:
    """Options of :class:`ConvEnergy`.

    Attributes:
        channels: feature maps per level of the energy network; each level but the first
            starts with a stride-2 conv (any H, W work).
        sgld_steps: SGLD steps K per training iteration (short-run chains).
        step_size: lambda, the step on the energy gradient (centered [-1, 1] pixel scale).
        noise: sigma, the standard deviation of the Gaussian noise added per step.
        grad_clip: clip each entry of the energy gradient to [-c, c] before the step;
            ``None`` disables it.
        buffer_size: replay-buffer capacity (chains kept between iterations).
        reinit_prob: chance that a chain restarts from uniform noise on [-1, 1]^D.
        reg: weight alpha of the energy-magnitude penalty alpha * (E(x+)^2 + E(x-)^2).
        num_classes: number of classes for a conditional energy E(x, c) (one-hot label as K constant channel maps
            of the input); ``None``: unconditional.

    Raises:
        ValueError: a value outside its declared range (:func:`models.fields.check_fields`).
    """

    channels: Annotated[tuple[Annotated[int, Range(ge=1, le=512)], ...], Length(ge=1, le=8)] = (32, 64, 128)
    sgld_steps: _ChainSteps = 20
    step_size: Annotated[float, Range(ge=1e-8, le=100)] = 1.0
    noise: Annotated[float, Range(ge=0, le=10)] = 0.01
    grad_clip: Annotated[float, Range(ge=1e-8, le=1000)] | None = None
    buffer_size: _Buffer = 10_000
    reinit_prob: _Probability = 0.05
    reg: _Reg = 1.0
    num_classes: _NumClasses | None = None

    def __post_init__(self):
        check_fields(self)


@register("energy", modality="image")
class ConvEnergy(ContrastiveDivergenceEBM):
    """Convolutional EBM: Swish ResNet energy, contrastive divergence, SGLD from a replay buffer.

    Reference: Du & Mordatch, "Implicit Generation and Generalization in Energy-Based
    Models", 2019, arXiv:1903.08689. The algorithm is :class:`ContrastiveDivergenceEBM`'s
    with their practical SGLD, step size and noise decoupled (as also in JEM, Grathwohl
    et al. 2020, arXiv:1912.03263), on the centered scale [-1, 1]:

        x_{k+1} = clamp(x_k - lambda * clip(grad_x E(x_k), -c, c) + sigma * xi_k, -1, 1),

    xi_k ~ N(0, I), lambda = ``step_size``, sigma = ``noise``, c = ``grad_clip`` (no clip
    when ``None``), the same in training and sampling chains. With sigma^2 != 2 lambda
    this is not an exact Langevin discretization. The density p(x) ∝ exp(-E(x)) lives on
    [-1, 1]^D (pixels 0..255); ``energy`` takes uint8 images at the pixel values' points
    k / 127.5 - 1. Samples are rounded to the nearest pixel value, uint8.

    Energy network: 3x3 stem, per level a stride-2 conv (except the first) and a
    ResBlock with Swish (SiLU), then a sum over positions and a linear map to E(x).

    Example:
        >>> e = ConvEnergy(ConvEBMConfig(channels=(8,)), (1, 8, 8))
        >>> e.energy(torch.zeros(3, 1, 8, 8, dtype=torch.uint8)).shape
        torch.Size([3])
    """

    reference = "Du & Mordatch 2019, arXiv:1903.08689"
    textbook = TEXTBOOK
    # test size (tests/test_contract.py)
    tiny = {"channels": (8, 16), "sgld_steps": 2, "buffer_size": 64}
    tiny_samplers = {"default": {"steps": 3}}
    samplers = {"default": {"kind": "sgld", "steps": 200}}  # the training chains' constant schedule
    Config = ConvEBMConfig
    train_defaults = {"lr": 1e-4, "betas": (0.0, 0.999)}

    def __init__(self, config: ConvEBMConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        ch = list(config.channels)
        layers: list[nn.Module] = [nn.Conv2d(self.data_shape[0] + (config.num_classes or 0), ch[0], 3, padding=1)]
        for lvl, c in enumerate(ch):
            if lvl:
                layers += [nn.SiLU(), nn.Conv2d(ch[lvl - 1], c, 3, stride=2, padding=1)]
            layers.append(ResBlock(c, act=nn.SiLU))
        self.features = nn.Sequential(*layers, nn.SiLU())
        self.head = nn.Linear(ch[-1], 1)
        self.sgld_grad_clip = config.grad_clip

    def support(self) -> tuple[float, float]:
        """The pixel range [0, 255]: the chains live on the centered box [-1, 1]^D."""
        return 0.0, 255.0

    def encode_data(self, x: Tensor) -> Tensor:
        """uint8 pixels -> [-1, 1]."""
        return to_centered(x)

    def decode_data(self, x: Tensor) -> Tensor:
        """[-1, 1] -> uint8 pixels, nearest value."""
        return from_centered(x)

    def working_energy(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """E(x) in nats, (N,) float32, for float images x (N, C, H, W) on the centered scale (E(x, y) given
        labels y)."""
        return self.head(self.features(self._labelled(x, y)).sum((2, 3)))[:, 0].float()

    def chain_box(self) -> tuple[float, float]:
        """The centered pixel range (-1, 1)."""
        return -1.0, 1.0

    def chain_schedule(self, steps: int) -> list[tuple[float, float]]:
        """``steps`` SGLD steps of (lambda, sigma) = (``step_size``, ``noise``)."""
        return [(self.config.step_size, self.config.noise)] * steps

