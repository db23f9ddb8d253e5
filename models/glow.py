"""Glow: the image form of the normalizing-flow family (its vector form, the spline flow, is in :mod:`models.flow`).

Multi-scale Glow on uniformly dequantized, logit-transformed pixels, with its layers:
:func:`squeeze`, :class:`ActNorm`, :class:`InvConv1x1`, :class:`AffineCoupling`,
:class:`FlowStep` and :class:`SplitPrior`. Exact log-density of the dequantized
pixels, which bounds the discrete log P(x) from below (Theis et al. 2016); sampling
inverts the flow in one pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models import register
from models.base import Capabilities, GenerativeModel
from models.fields import Range, check_fields
from models.flow import TEXTBOOK
from models.imaging import BINS, ResBlock, check_halvings, dequantize, quantize
from models.nets import one_hot

LOG_2PI = math.log(2 * math.pi)


@dataclass
class GlowConfig:
    """Options of :class:`Glow`.

    Attributes:
        levels: scales L; each squeezes (C, H, W) -> (4C, H/2, W/2) and all but the last
            factor out half of the channels, so H and W must be divisible by 2 ** levels.
        steps: flow steps K per level (actnorm, invertible 1x1 conv, affine coupling).
        hidden: feature maps of each coupling's conditioner network.
        res_blocks: residual blocks in each conditioner.
        logit_alpha: alpha of the logit pre-processing s = logit(alpha + (1 - 2 alpha) v / 256), in
            [0, 0.5) (Dinh et al. 2017, Sec. 4.1: 0.05 for CIFAR-10, 1e-6 for MNIST); its Jacobian is
            counted, so it changes the model, not the units.
        actnorm_init_examples: training examples used for actnorm's data-dependent initialisation
            (at least 2: a standard deviation over one example of a 1 x 1 level is undefined).
        num_classes: number of classes for a class-conditional Glow (the top prior and the split priors take the
            one-hot label: mean and log-scale shifted by a zero-initialised linear map of it, as Glow's
            class-conditional prior); ``None``: unconditional.

    Raises:
        ValueError: a value outside its declared range (:func:`models.fields.check_fields`).
    """

    levels: Annotated[int, Range(ge=1, le=6)] = 2
    steps: Annotated[int, Range(ge=1, le=64)] = 8
    hidden: Annotated[int, Range(ge=1, le=512)] = 128
    res_blocks: Annotated[int, Range(ge=0, le=16)] = 1
    logit_alpha: Annotated[float, Range(ge=0, lt=0.5)] = 0.05
    actnorm_init_examples: Annotated[int, Range(ge=2, le=10**5)] = 512
    num_classes: Annotated[int, Range(ge=2, le=100_000)] | None = None

    def __post_init__(self):
        check_fields(self)


def _no_autocast(x: Tensor):
    """Context that runs the exact bijection parts in the input's precision under any autocast."""
    return torch.autocast(x.device.type, enabled=False)


def squeeze(x: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, 4C, H/2, W/2): each 2x2 patch becomes 4 channels (volume preserving)."""
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze(x: Tensor) -> Tensor:
    """Inverse of :func:`squeeze`: (N, 4C, H, W) -> (N, C, 2H, 2W)."""
    n, c4, h, w = x.shape
    x = x.reshape(n, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(n, c4 // 4, 2 * h, 2 * w)


class ActNorm(nn.Module):
    """Per-channel affine y = (x + b) * exp(s), initialised from data (Kingma & Dhariwal 2018, Sec. 3.1).

    While ``initializing`` is set, a forward pass sets b and s so that the output has
    zero mean and unit variance per channel on that batch. The ``initialized`` buffer
    goes into checkpoints. log|det| = H W sum(s).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.initializing = False

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.initializing and not self.initialized:
            with torch.no_grad():
                mean = x.mean((0, 2, 3), keepdim=True)
                std = x.std((0, 2, 3), keepdim=True)
                self.bias.copy_(-mean)
                self.log_scale.copy_(-torch.log(std + 1e-6))
                self.initialized.fill_(True)
        y = (x + self.bias) * torch.exp(self.log_scale)
        return y, self.log_scale.sum().expand(x.shape[0]) * (x.shape[2] * x.shape[3])

    def inverse(self, y: Tensor) -> Tensor:
        return y * torch.exp(-self.log_scale) - self.bias


class InvConv1x1(nn.Module):
    """Invertible 1x1 convolution, LU-parameterised: W = P L (U + diag(sign * exp(log_s))).

    Reference: Kingma & Dhariwal 2018, arXiv:1807.03039, Sec. 3.2. Initialised at a
    random rotation. log|det| = H W sum(log_s). Runs in the input's precision (float32)
    even under autocast.
    """

    def __init__(self, channels: int):
        super().__init__()
        w = torch.linalg.qr(torch.randn(channels, channels))[0]
        P, L, U = torch.linalg.lu(w)
        s = torch.diagonal(U)
        self.register_buffer("P", P)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("mask", torch.tril(torch.ones(channels, channels), -1))
        self.lower = nn.Parameter(L)
        self.upper = nn.Parameter(torch.triu(U, 1))
        self.log_s = nn.Parameter(torch.log(s.abs()))

    def weight(self) -> Tensor:
        """The (C, C) matrix W."""
        eye = torch.eye(len(self.log_s), device=self.log_s.device, dtype=self.log_s.dtype)
        L = self.lower * self.mask + eye
        U = self.upper * self.mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.P @ L @ U

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        with _no_autocast(x):
            y = F.conv2d(x, self.weight().to(x.dtype)[:, :, None, None])
        return y, self.log_s.sum().expand(x.shape[0]) * (x.shape[2] * x.shape[3])

    def inverse(self, y: Tensor) -> Tensor:
        with _no_autocast(y):
            w_inv = torch.linalg.inv(self.weight().double()).to(y.dtype)
            return F.conv2d(y, w_inv[:, :, None, None])


class AffineCoupling(nn.Module):
    """Affine coupling: x_b -> (x_b + t(x_a)) * sigmoid(r(x_a) + 2), x_a unchanged.

    References: Dinh et al. 2017, arXiv:1605.08803 (affine coupling); the sigmoid scale
    is Glow's (Kingma & Dhariwal 2018). x_a is the first C//2 channels. The conditioner
    (3x3 conv, ``res_blocks`` ResBlocks, 3x3 conv initialised near zero) may run in bf16
    under autocast; the affine map itself runs in the input's precision.
    """

    def __init__(self, channels: int, hidden: int, res_blocks: int):
        super().__init__()
        self.c_a = channels // 2
        c_b = channels - self.c_a
        out = nn.Conv2d(hidden, 2 * c_b, 3, padding=1)
        nn.init.normal_(out.weight, std=1e-3)  # near the identity, yet every conditioner weight gets a gradient
        nn.init.zeros_(out.bias)
        self.net = nn.Sequential(nn.Conv2d(self.c_a, hidden, 3, padding=1),
                                 *[ResBlock(hidden) for _ in range(res_blocks)], nn.SiLU(), out)

    def _shift_scale(self, x_a: Tensor) -> tuple[Tensor, Tensor]:
        shift, raw = self.net(x_a).to(x_a.dtype).chunk(2, dim=1)
        return shift, F.logsigmoid(raw + 2.0)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x_a, x_b = x[:, : self.c_a], x[:, self.c_a :]
        shift, log_scale = self._shift_scale(x_a)
        y_b = (x_b + shift) * torch.exp(log_scale)
        return torch.cat([x_a, y_b], dim=1), log_scale.sum((1, 2, 3))

    def inverse(self, y: Tensor) -> Tensor:
        y_a, y_b = y[:, : self.c_a], y[:, self.c_a :]
        shift, log_scale = self._shift_scale(y_a)
        return torch.cat([y_a, y_b * torch.exp(-log_scale) - shift], dim=1)


class FlowStep(nn.Module):
    """One Glow step: actnorm, invertible 1x1 conv, affine coupling."""

    def __init__(self, channels: int, hidden: int, res_blocks: int):
        super().__init__()
        self.layers = nn.ModuleList([ActNorm(channels), InvConv1x1(channels),
                                     AffineCoupling(channels, hidden, res_blocks)])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logdet = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, y: Tensor) -> Tensor:
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return y


class SplitPrior(nn.Module):
    """Glow's learned prior for factored-out channels: p(z | h) = N(mu(h), diag(exp(2 log_sigma(h)))).

    A zero-initialised 3x3 conv of the kept half h gives mu and log_sigma, so it starts at N(0, I). With
    ``num_classes`` = K a zero-initialised linear map of the one-hot label y (N, K) shifts both per channel:
    p(z | h, y).
    """

    def __init__(self, c_keep: int, c_out: int, num_classes: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(c_keep, 2 * c_out, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        if num_classes:
            self.label = nn.Linear(num_classes, 2 * c_out)
            nn.init.zeros_(self.label.weight)
            nn.init.zeros_(self.label.bias)

    def forward(self, h: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        out = self.conv(h)
        if y is not None:
            out = out + self.label(y)[:, :, None, None]
        mean, log_sigma = out.to(h.dtype).chunk(2, dim=1)
        return mean, log_sigma


def _gaussian_log_prob(z: Tensor, mean: Tensor | float = 0.0, log_sigma: Tensor | float = 0.0) -> Tensor:
    """log N(z; mean, exp(log_sigma)^2) summed over all but the batch axis, nats, (N,)."""
    log_sigma = torch.as_tensor(log_sigma, dtype=z.dtype, device=z.device)
    lp = -0.5 * (LOG_2PI + ((z - mean) * torch.exp(-log_sigma)) ** 2) - log_sigma
    return lp.expand_as(z).flatten(1).sum(1)


@register("flow", modality="image")
class Glow(GenerativeModel):
    """Multi-scale Glow on dequantized, logit-transformed pixels: exact log-density.

    References: Dinh et al., "Density estimation using Real NVP", 2017, arXiv:1605.08803
    (multi-scale architecture, squeeze, factor-out, logit pre-processing); Kingma &
    Dhariwal, "Glow", 2018, arXiv:1807.03039 (actnorm, invertible 1x1 conv, split prior).

    The density is of v = x + u, u ~ U[0, 1)^D, on [0, 256)^D (unit-width bins):
    log p(v) = log p_base(z) + log|det dz/dv|, counting every Jacobian term: the
    scaling v / 256, the logit pre-processing, actnorm, 1x1 convs and couplings.
    So -log p / (D ln 2) is the standard dequantized bits/dim, and E_u log p(x + u)
    <= log P(x). Per level: squeeze, ``steps`` flow steps, then (except at the top)
    half the channels leave with the split prior. The top is N(0, I).

    Sampling draws the latents, inverts the flow, and quantizes:
    floor of the [0, 256) value, clamped to 0..255. One pass, so sample_nfe = 1.
    Latent inference is exact: ``to_latent`` maps the bin centres x + 1/2 through the
    flow and concatenates every level's latent; ``from_latent`` inverts and quantizes.

    Example:
        >>> f = Glow(GlowConfig(levels=2, steps=1, hidden=8), (1, 8, 8))
        >>> f.log_prob(torch.zeros(2, 1, 8, 8, dtype=torch.uint8)).shape
        torch.Size([2])
    """

    reference = "Dinh et al. 2017, arXiv:1605.08803; Kingma & Dhariwal 2018, arXiv:1807.03039"
    textbook = TEXTBOOK
    tiny = {"levels": 2, "steps": 1, "hidden": 8}  # test size (tests/test_contract.py)
    Config = GlowConfig
    capabilities = Capabilities(sample=True, log_prob=True, latent="exact", conditional=True)
    train_defaults = {"lr": 1e-3, "warmup_steps": 200, "grad_clip": 50.0}

    @classmethod
    def check_data_shape(cls, config: GlowConfig, data_shape: tuple[int, ...]) -> None:
        """Each level squeezes 2 x 2 patches: H and W must be divisible by 2 ** levels."""
        check_halvings(data_shape, config.levels, "levels", config.levels)

    def __init__(self, config: GlowConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        c = self.data_shape[0]
        self.levels = nn.ModuleList()
        self.priors = nn.ModuleList()
        self.z_channels: list[int] = []
        for lvl in range(config.levels):
            c *= 4
            self.levels.append(nn.ModuleList([FlowStep(c, config.hidden, config.res_blocks)
                                              for _ in range(config.steps)]))
            if lvl < config.levels - 1:
                self.priors.append(SplitPrior(c - c // 2, c // 2, config.num_classes))
                self.z_channels.append(c // 2)
                c -= c // 2
        self.z_channels.append(c)
        if config.num_classes:  # the class-conditional top prior N(mu(y), sigma(y)^2), N(0, I) at initialisation
            self.top_prior = nn.Linear(config.num_classes, 2 * c)
            nn.init.zeros_(self.top_prior.weight)
            nn.init.zeros_(self.top_prior.bias)

    def _top(self, y: Tensor | None) -> tuple[Tensor | float, Tensor | float]:
        """(mean, log_sigma) of the top latent's prior, per channel (N, C, 1, 1): (0, 0) without labels."""
        if y is None:
            return 0.0, 0.0
        mean, log_sigma = self.top_prior(y).chunk(2, dim=1)
        return mean[:, :, None, None], log_sigma[:, :, None, None]

    def _onehot(self, y: Tensor | None) -> Tensor | None:
        return None if y is None else one_hot(y, self.num_classes)

    # ------------------------------------------------------------------ pre-processing
    def preprocess(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """v in [0, 256)^D -> s = logit(alpha + (1 - 2 alpha) v / 256) and log|det ds/dv|, (N,), nats."""
        a = self.config.logit_alpha
        p = a + (1 - 2 * a) * v / BINS
        s = torch.log(p) - torch.log1p(-p)
        logdet = (math.log(1 - 2 * a) - math.log(BINS) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
        return s, logdet

    def postprocess(self, s: Tensor) -> Tensor:
        """Inverse of :meth:`preprocess`: s -> v in [0, 256) (up to the logit's range)."""
        a = self.config.logit_alpha
        return (torch.sigmoid(s) - a) / (1 - 2 * a) * BINS

    # ------------------------------------------------------------------ the bijection
    def forward_flow(self, v: Tensor, y: Tensor | None = None) -> tuple[list[Tensor], Tensor, Tensor]:
        """v (N, C, H, W) in [0, 256) -> latents, log|det dz/dv| and log p_base(z) (given labels y (N,) for a
        conditional prior).

        Returns:
            zs: the factored-out latents, level 0 first and the top last.
            logdet: (N,) nats, all Jacobian terms including the pre-processing.
            log_base: (N,) nats, split priors plus the N(0, I) top.
        """
        zs, kept, logdet = self._bijection(v)
        return zs, logdet, self._log_base(zs, kept, logdet, y)

    def _bijection(self, v: Tensor) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """The flow itself: latents (level 0 first, the top last), each split prior's input (the kept half) and
        log|det dz/dv| (N,) in nats. It does not depend on labels."""
        x, logdet = self.preprocess(v)
        zs, kept = [], []
        for lvl, steps in enumerate(self.levels):
            x = squeeze(x)
            for step in steps:
                x, ld = step(x)
                logdet = logdet + ld
            if lvl < len(self.priors):
                z, x = x[:, : self.z_channels[lvl]], x[:, self.z_channels[lvl] :]
                zs.append(z)
                kept.append(x)
        zs.append(x)
        return zs, kept, logdet

    def _log_base(self, zs: list[Tensor], kept: list[Tensor], like: Tensor, y: Tensor | None = None) -> Tensor:
        """log p_base of the latents in nats, (N,): the split priors given the kept halves, then the top (given
        labels ``y`` for a conditional prior)."""
        c = self._onehot(y)
        log_base = torch.zeros_like(like)
        for lvl, (z, h) in enumerate(zip(zs, kept)):
            log_base = log_base + _gaussian_log_prob(z, *self.priors[lvl](h, c))
        return log_base + _gaussian_log_prob(zs[-1], *self._top(c))

    def inverse_flow(self, zs: list[Tensor | None], generator: torch.Generator | None = None,
                     n: int | None = None, y: Tensor | None = None) -> Tensor:
        """Latents -> v (N, C, H, W), the inverse of :meth:`forward_flow` (before quantization).

        An entry ``None`` in ``zs`` is drawn from its prior (given the levels above, and the labels ``y`` of a
        conditional prior) with ``generator``; ``n`` is the batch size when the top latent is ``None``.
        """
        C, H, W = self.data_shape
        L = len(self.levels)
        c = self._onehot(y)
        top = zs[-1]
        if top is None:
            shape = (n, self.z_channels[-1], H >> L, W >> L)
            top = torch.randn(shape, device=self.device, generator=generator)
            if c is not None:
                mean, log_sigma = self._top(c)
                top = mean + torch.exp(log_sigma) * top
        x = top
        for lvl in reversed(range(L)):
            if lvl < len(self.priors):
                z = zs[lvl]
                if z is None:
                    mean, log_sigma = self.priors[lvl](x, c)
                    z = mean + torch.exp(log_sigma) * torch.randn(mean.shape, device=x.device, generator=generator)
                x = torch.cat([z, x], dim=1)
            for step in reversed(self.levels[lvl]):
                x = step.inverse(x)
            x = unsqueeze(x)
        return self.postprocess(x)

    # ------------------------------------------------------------------ the family interface
    def prepare(self, x_train: Tensor) -> None:
        """Data-dependent actnorm initialisation on the first ``actnorm_init_examples`` images."""
        acts = [m for m in self.modules() if isinstance(m, ActNorm)]
        if all(bool(a.initialized) for a in acts):
            return
        v = dequantize(x_train[: self.config.actnorm_init_examples].to(self.device),
                       torch.Generator(self.device).manual_seed(0))
        for a in acts:
            a.initializing = True
        try:
            with torch.no_grad():
                self.forward_flow(v)
        finally:
            for a in acts:
                a.initializing = False

    def log_prob(self, x: Tensor, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        """log p(x + u) in nats, (N,), one dequantization draw u ~ U[0, 1)^D per image (from ``generator``).

        x is uint8 (N, C, H, W). A lower bound on log P(x) in expectation over u. Given labels ``y`` (int64
        (N,)) the density of a conditional Glow is log p(x + u | y); with ``y=None`` it is the marginal
        log sum_c pi_c p(x + u | c) (one dequantization draw shared by the classes, :meth:`marginal`).
        """
        y = self.check_labels(y, len(x))
        if self.conditional and y is None:
            zs, kept, logdet = self._bijection(dequantize(x, generator))
            return self.marginal(lambda yc: self._log_base(zs, kept, logdet, yc) + logdet, len(x))
        _, logdet, log_base = self.forward_flow(dequantize(x, generator), y)
        return log_base + logdet

    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Mean NLL of the dequantized data in nats per dimension (bits/dim times ln 2); of log p(x + u | y) given
        the labels ``y`` of a conditional Glow, which it needs.

        Raises:
            ValueError: a conditional Glow without labels, or bad labels.
        """
        y = self.check_labels(y, len(x))
        if self.conditional and y is None:
            raise ValueError("a conditional Glow trains on labels: loss(x, y)")
        return -self.log_prob(x, y=y).mean() / x[0].numel()

    def _latent_shapes(self) -> list[tuple[int, int, int]]:
        """(C, H, W) of each level's latent, level 0 first and the top last."""
        _, H, W = self.data_shape
        L = len(self.levels)
        return [(c, H >> min(lvl + 1, L), W >> min(lvl + 1, L)) for lvl, c in enumerate(self.z_channels)]

    def to_latent(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Every level's latent of the bin centres v = x + 1/2, flattened and concatenated: (N, C*H*W) float32.

        x is uint8 (N, C, H, W). No dequantization noise, so the map is deterministic. The bijection does not
        depend on labels: a conditional Glow's ``y`` (checked) changes only the priors.
        """
        self.check_labels(y, len(x))
        zs, _, _ = self.forward_flow(x.float() + 0.5)
        return torch.cat([z.float().flatten(1) for z in zs], dim=1)

    def from_latent(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Inverse of :meth:`to_latent`: split z (N, C*H*W) by level, invert the flow, quantize to uint8 (labels
        ``y`` checked, unused: the bijection does not depend on them)."""
        self.check_labels(y, len(z))
        shapes = self._latent_shapes()
        parts = z.split([c * h * w for c, h, w in shapes], dim=1)
        zs: list[Tensor | None] = [p.reshape(-1, *s) for p, s in zip(parts, shapes)]
        return quantize(self.inverse_flow(zs))

    def generate(self, n: int, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        """(n, C, H, W) uint8 samples: latents from the priors (given labels ``y`` for a conditional Glow), inverse
        flow, floor clamped to 0..255."""
        zs: list[Tensor | None] = [None] * len(self.z_channels)
        return quantize(self.inverse_flow(zs, generator, n, y))
