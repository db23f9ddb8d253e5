"""Score-based family: a noise-conditional score network (NCSN), an MLP (vectors) or a U-Net (images).

Trained by denoising score matching over a geometric ladder of noise levels and
sampled by annealed Langevin dynamics. It gives no explicit likelihood; its probability-flow
ODE (:class:`models.samplers.ProbabilityFlow`) gives an exact one at the cost of integrating
the ODE (its NFE, each with a backward pass for the divergence), and samples too.

Both forms share the math in :class:`NoiseConditionalScore`: the sigma ladder and
its data-set sigma_max, the sigma^2-weighted denoising score-matching loss,
annealed Langevin dynamics and the final Tweedie denoising step. They differ in
the network and how it is told sigma, in the data space (raw vectors; images
scaled to [0, 1]), in where the sampler starts, and in the loss's reduction
(per example for vectors, per dimension for images).

Class-conditional forms (``num_classes`` = K): the network also sees the label (a learned embedding
concatenated to the MLP's input; adaptive group normalization in the U-Net), trained with the label dropped
with probability ``p_uncond``; annealed Langevin then follows the guided score
(1 + w) s(x, sigma, c) - w s(x, sigma, ∅) (Ho & Salimans 2021, arXiv:2207.12598).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
from torch import Tensor

from models import register
from models.base import Capabilities, GenerativeModel, Textbook, TrainConfig, ladder_steps
from models.fields import Range, check_fields, check_order
from models.imaging import UNetChannels, check_norm_groups, check_unet_shape, from_unit, to_unit, unet
from models.nets import ConditionalMLP
from models.samplers import guided

# The taxonomy's row for this family (README; bench/verdicts.py tests it).
TEXTBOOK = Textbook(likelihood="none", sampling="slow", likelihood_text="none explicit", sampling_text="slow (SDE/ODE)",
                    claims=("T3", "T13"))


class NoiseConditionalScore(GenerativeModel):
    """NCSN math on tensors of any shape: sigma ladder, DSM loss, annealed Langevin, Tweedie denoising.

    References: Song & Ermon, "Generative Modeling by Estimating Gradients of the Data
    Distribution", 2019, arXiv:1907.05600 (Eq. 5-6, Alg. 1); Song & Ermon, "Improved
    Techniques for Training Score-Based Generative Models", 2020, arXiv:2006.09011
    (technique 1: sigma_max; technique 3: s(x, sigma) = u(x, sigma) / sigma).

    The noise levels sigma_1 > ... > sigma_L are the buffer ``sigmas``, geometric from
    sigma_max to ``config.sigma_min``. Subclasses call :meth:`_init_sigmas` and define
    the network output :meth:`score_net` (the score is that divided by sigma), the data
    maps :meth:`encode_data` and :meth:`decode_data`, and the sampler's start
    :meth:`initial`. ``config`` has ``n_sigmas``, ``sigma_min`` and ``sigma_max``. Sampling is
    annealed Langevin dynamics (:class:`models.samplers.AnnealedLangevin`), whose settings are the
    sampler's, not the model's.
    """

    capabilities = Capabilities(sample=True, conditional=True, guidance=True)
    samplers = {"default": {"kind": "annealed_langevin", "steps_per_sigma": 100, "step_eps": 2e-5, "denoise": True},
                "pf_ode": {"steps": 25, "method": "heun"}}
    legacy_config_keys = ("steps_per_sigma", "step_eps", "denoise")
    loss_per_dimension: bool = False  # DSM loss summed over dimensions (False) or averaged (True)
    pf_prior_mean: float = 0.0  # the probability-flow ODE's prior N(pf_prior_mean, sigma_max^2 I) at sigma_max

    def _init_sigmas(self, placeholder_sigma_max: float) -> None:
        """Register the ladder ``sigmas`` from ``config.sigma_max``, or the placeholder until :meth:`prepare`."""
        self.register_buffer("sigmas", self._ladder(self.config.sigma_max or placeholder_sigma_max))

    def _ladder(self, sigma_max: float) -> Tensor:
        c = self.config
        return torch.exp(torch.linspace(math.log(sigma_max), math.log(c.sigma_min), c.n_sigmas))

    # ------------------------------------------------------------------ hooks
    def encode_data(self, x: Tensor) -> Tensor:
        """Data -> the float space the score lives in."""
        return x

    def decode_data(self, x: Tensor) -> Tensor:
        """The sampler's final x -> data (dtype and range of the modality)."""
        return x

    def score_net(self, x: Tensor, sigma: Tensor, y: Tensor | None = None) -> Tensor:
        """The network's output u(x, sigma), float32 of x's shape, for sigma of shape (N,) (and, for a
        conditional model, labels y (N,) in [0, K], K the null label)."""
        raise NotImplementedError

    def initial(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """The sampler's start x_0, (n, *data_shape) in the working space; the default is N(0, sigma_1^2 I)."""
        return self.sigmas[0] * torch.randn(n, *self.data_shape, device=self.device, generator=generator)

    def schedule_steps(self, train: TrainConfig) -> dict[str, int]:
        """The loop's schedules (:meth:`models.base.GenerativeModel.schedule_steps`) and the sigma ladder:
        every one of the ladder's n_sigmas levels has been drawn for training (levels are drawn
        uniformly, ``batch_size`` per step) with probability at least 1 - 1e-6: after
        ceil(L ln(L / 1e-6) / batch_size) steps, L the number of levels (a union bound)."""
        return {**super().schedule_steps(train),
                "noise ladder covered": ladder_steps(self.config.n_sigmas, train.batch_size)}

    # ------------------------------------------------------------------ the math
    def prepare(self, x_train: Tensor) -> None:
        """Set sigma_max to the largest pairwise Euclidean distance between (up to 2000) training examples.

        Song & Ermon 2020, technique 1; distances are in the working space. Only when
        ``config.sigma_max`` is None.
        """
        if self.config.sigma_max is None:
            sub = self.encode_data(x_train[:2000]).flatten(1)
            self.sigmas = self._ladder(torch.cdist(sub, sub).max().item()).to(self.sigmas.device)

    def score(self, x: Tensor, sigma: Tensor, y: Tensor | None = None, guidance: float = 0.0) -> Tensor:
        """Score estimate s(x, sigma) = u(x, sigma) / sigma ≈ grad_x log p_sigma(x), x's shape, for sigma (N,).

        With labels ``y`` (int64 (N,) in [0, K)) it is s(x, sigma, y); with ``guidance`` w > 0 the classifier-free
        guided (1 + w) s(x, sigma, y) - w s(x, sigma, ∅) (Ho & Salimans 2021, Eq. 6), one pass on a batch of 2N.
        """
        if y is None:
            u = self.score_net(x, sigma)
        elif not guidance:
            u = self.score_net(x, sigma, y)
        else:
            null = torch.full_like(y, self.null_label)
            u_c, u_u = self.score_net(torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([y, null])).chunk(2)
            u = guided(u_c, u_u, guidance)
        return u / sigma.reshape(-1, *[1] * (x.dim() - 1))

    # ------------------------------------------------------------------ probability-flow ODE
    # The hooks of models.samplers.ProbabilityFlow: the variance-exploding ODE dy/dsigma = -sigma s(y, sigma)
    # (Song et al. 2021, arXiv:2011.13456, Eq. 13 with g^2 = d sigma^2 / dt) in the working space, between the
    # ladder's ends; the network, trained on the ladder, is evaluated at the noise levels in between.
    def pf_sigma_range(self) -> tuple[float, float]:
        """(sigma_min, sigma_max): the ends of the ladder."""
        return float(self.sigmas[-1]), float(self.sigmas[0])

    def pf_drift(self, y: Tensor, sigma: float, labels: Tensor | None = None, guidance: float = 0.0) -> Tensor:
        """dy/dsigma = -sigma s(y, sigma), y's shape, float32 (s(y, sigma, labels) for a conditional model, guided
        at ``guidance``: :meth:`score`)."""
        s = torch.full((y.shape[0],), sigma, device=y.device)
        return -sigma * self.score(y, s, labels, guidance)

    def pf_prior_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """N(pf_prior_mean, sigma_max^2 I), (n, *data_shape): the data blurred at sigma_max, its spread neglected."""
        sigma_max = self.pf_sigma_range()[1]
        return self.pf_prior_mean + sigma_max * torch.randn(n, *self.data_shape, device=self.device,
                                                            generator=generator)

    def pf_prior_log_prob(self, y: Tensor) -> Tensor:
        """log N(y; pf_prior_mean, sigma_max^2 I) in nats, (N,)."""
        var = self.pf_sigma_range()[1] ** 2
        z2 = (y.double() - self.pf_prior_mean) ** 2 / var
        return -0.5 * (math.log(2 * math.pi) + math.log(var) + z2).flatten(1).sum(1).float()

    def pf_from_data(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(y at sigma_min, log|dy/dx| per example, nats): vectors are themselves (0)."""
        return self.encode_data(x).float(), torch.zeros(x.shape[0], device=x.device)

    def pf_to_data(self, y: Tensor) -> Tensor:
        """y at sigma_min -> data (:meth:`decode_data`)."""
        return self.decode_data(y)

    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Denoising score matching weighted by sigma^2 (Song & Ermon 2019, Eq. 5-6), batch mean.

        0.5 * ||sigma s(x + sigma z, sigma) + z||^2 with sigma drawn uniformly from the
        ladder, summed over dimensions, or averaged with ``loss_per_dimension``. A conditional model needs the
        labels ``y`` (int64 (B,)), each dropped to the null label with probability ``p_uncond``.

        Raises:
            ValueError: a conditional model without labels, or bad labels.
        """
        y = self.check_labels(y, len(x))
        if self.conditional and y is None:
            raise ValueError("a conditional score model trains on labels: loss(x, y)")
        x = self.encode_data(x)
        sigma = self.sigmas[torch.randint(len(self.sigmas), (x.shape[0],), device=x.device)]
        noise = torch.randn_like(x)
        sigma_x = sigma.reshape(-1, *[1] * (x.dim() - 1))
        x_tilde = x + sigma_x * noise
        # sigma * s(x~, sigma) should equal -(x~ - x) / sigma = -noise
        score = self.score(x_tilde, sigma) if y is None else self.score(x_tilde, sigma, self.drop_labels(y))
        sq = (sigma_x * score + noise) ** 2
        return 0.5 * (sq.mean() if self.loss_per_dimension else sq.flatten(1).sum(1).mean())


# the ladder both forms share: L >= 2 levels (a ladder has two ends), sigma_min < sigma_max (in float32)
_NSigmas = Annotated[int, Range(ge=2, le=5000)]
_Sigma = Annotated[float, Range(ge=1e-5, le=1e4)]


def _check_ladder(config) -> None:
    """Fields in range, and a ladder that falls: sigma_min < sigma_max when sigma_max is given."""
    check_fields(config)
    check_order(config, "sigma_min", "sigma_max")


# =========================================================================== vectors
@dataclass
class NCSNConfig:
    """Options of :class:`NCSN`.

    Attributes:
        n_sigmas: noise levels L, geometric from sigma_max down to sigma_min, 2 to 5000.
        sigma_min: smallest noise level, in [1e-5, 10^4] (data units).
        sigma_max: largest noise level, above sigma_min; ``None`` sets it in :meth:`NCSN.prepare` to the
            largest pairwise distance in the training data (Song & Ermon 2020, technique 1).
        hidden: width of the score network.
        layers: hidden layers of the score network.
        num_classes: K for a class-conditional model (a label embedding concatenated to the network's input);
            ``None``: unconditional.
        p_uncond: probability that training drops a label (the null label), for classifier-free guidance.

    Raises:
        ValueError: a value outside its declared range, or sigma_min >= sigma_max
            (:class:`models.fields.FieldConflict`).
    """

    n_sigmas: _NSigmas = 10
    sigma_min: _Sigma = 0.01
    sigma_max: _Sigma | None = None
    hidden: Annotated[int, Range(ge=1, le=2048)] = 128
    layers: Annotated[int, Range(ge=1, le=64)] = 3
    num_classes: Annotated[int, Range(ge=2, le=100_000)] | None = None
    p_uncond: Annotated[float, Range(ge=0, lt=1)] = 0.1

    def __post_init__(self):
        _check_ladder(self)


@register("score", modality="vector")
class NCSN(NoiseConditionalScore):
    """NCSN: denoising score matching over noise levels, annealed Langevin sampling.

    References: Song & Ermon, "Generative Modeling by Estimating Gradients of the Data
    Distribution", 2019, arXiv:1907.05600 (Alg. 1); Song & Ermon, "Improved Techniques
    for Training Score-Based Generative Models", 2020, arXiv:2006.09011.

    The math is :class:`NoiseConditionalScore`'s, on raw coordinates: the MLP sees
    (x, log sigma) and its output is divided by sigma (NCSNv2's s(x, sigma) = s(x) / sigma);
    the DSM loss is summed over the D coordinates; sampling starts from N(0, sigma_max^2 I).
    Samples are (n, D) float32.
    """

    reference = "Song & Ermon 2019, arXiv:1907.05600; Song & Ermon 2020, arXiv:2006.09011"
    textbook = TEXTBOOK
    tiny = {"hidden": 16, "n_sigmas": 3}  # test size (tests/test_contract.py)
    tiny_samplers = {"default": {"steps_per_sigma": 2}, "pf_ode": {"steps": 2}}
    Config = NCSNConfig
    train_defaults = {"lr": 2e-3, "ema": 0.995}

    def __init__(self, config: NCSNConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        (D,) = self.data_shape
        self.net = ConditionalMLP(D, config.hidden, config.layers, num_classes=config.num_classes)
        self._init_sigmas(1.0)

    def score_net(self, x: Tensor, sigma: Tensor, y: Tensor | None = None) -> Tensor:
        """MLP(x, log sigma[, E[y]]), (N, D)."""
        return self.net(x, torch.log(sigma)) if y is None else self.net(x, torch.log(sigma), y)


# =========================================================================== images
@dataclass
class ImageNCSNConfig:
    """Options of :class:`ImageNCSN`.

    Attributes:
        n_sigmas: noise levels L, geometric from sigma_max down to sigma_min (NCSNv2
            technique 2 gives L ~ 100 for MNIST's D = 784 at sigma_max / sigma_min ~ 2000).
        sigma_min: smallest noise level (pixel scale [0, 1]; NCSNv2: 0.01).
        sigma_max: largest noise level; ``None`` sets it in :meth:`ImageNCSN.prepare` to
            the largest pairwise Euclidean distance between (up to 2000) training images
            (NCSNv2 technique 1).
        channels: U-Net feature maps per resolution level (diffusers' ``block_out_channels``);
            H and W must be divisible by 2 ** (len(channels) - 1).
        layers_per_block: ResNet blocks per level.
        attention: self-attention at the lowest resolution and in the middle block.
        norm_groups: GroupNorm groups (must divide every entry of ``channels``).
        dropout: dropout probability in the ResNet blocks, in [0, 1).
        num_classes: K for a class-conditional U-Net (class embedding by adaptive group normalization,
            :func:`models.imaging.unet`); ``None``: unconditional.
        p_uncond: probability that training drops a label (the null label), for classifier-free guidance.

    The sampler's defaults follow NCSNv2: 5 Langevin steps per level, step epsilon 1e-5 (technique
    4 at MNIST's ladder ratio), and the final Tweedie denoising step.

    Raises:
        ValueError: a value outside its declared range, sigma_min >= sigma_max, or ``norm_groups``
            not dividing ``channels`` (:class:`models.fields.FieldConflict`).
    """

    n_sigmas: _NSigmas = 100
    sigma_min: _Sigma = 0.01
    sigma_max: _Sigma | None = None
    channels: UNetChannels = (64, 128, 128)
    layers_per_block: Annotated[int, Range(ge=1, le=8)] = 2
    attention: bool = True
    norm_groups: Annotated[int, Range(ge=1, le=512)] = 32
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0
    num_classes: Annotated[int, Range(ge=2, le=100_000)] | None = None
    p_uncond: Annotated[float, Range(ge=0, lt=1)] = 0.1

    def __post_init__(self):
        _check_ladder(self)
        check_norm_groups(self)


@register("score", modality="image")
class ImageNCSN(NoiseConditionalScore):
    """NCSNv2 on 8-bit images: U-Net score network, DSM over a sigma ladder, annealed Langevin.

    References: Song & Ermon, "Generative Modeling by Estimating Gradients of the Data
    Distribution", 2019, arXiv:1907.05600 (Alg. 1); Song & Ermon, "Improved Techniques
    for Training Score-Based Generative Models", 2020, arXiv:2006.09011.

    The math is :class:`NoiseConditionalScore`'s, with pixels scaled to [0, 1] (pixel k
    at k / 255), as in NCSNv2. The score is s(x, sigma) = u(x, c(sigma)) / sigma
    (NCSNv2's technique 3, with the U-Net u also told the noise level through its
    timestep embedding at c(sigma) = 999 log(sigma_max / sigma) / log(sigma_max / sigma_min),
    i.e. 0 at sigma_max and 999 at sigma_min). The DSM loss is averaged over the C*H*W
    dimensions. Sampling starts from U[0, 1]^D + sigma_max * N(0, I), a proxy of the
    data blurred at sigma_max; samples are rounded to the nearest pixel value, uint8.

    Example:
        >>> m = ImageNCSN(ImageNCSNConfig(n_sigmas=3, channels=(8, 16), norm_groups=4), (1, 8, 8))
        >>> m.sample(2, sampler=AnnealedLangevin(steps_per_sigma=1)).dtype
        torch.uint8
    """

    reference = "Song & Ermon 2019, arXiv:1907.05600; Song & Ermon 2020, arXiv:2006.09011"
    textbook = TEXTBOOK
    # test size (tests/test_contract.py)
    tiny = {"n_sigmas": 3, "channels": (8, 16), "layers_per_block": 1, "norm_groups": 4}
    tiny_samplers = {"default": {"steps_per_sigma": 2}, "pf_ode": {"steps": 2}}
    samplers = {"default": {"kind": "annealed_langevin", "steps_per_sigma": 5, "step_eps": 1e-5, "denoise": True},
                "pf_ode": {"steps": 25, "method": "heun"}}
    Config = ImageNCSNConfig
    train_defaults = {"lr": 2e-4, "ema": 0.999, "warmup_steps": 200, "grad_clip": 1.0}
    loss_per_dimension = True  # a loss per dimension, like the image DDPM's, so learning rates carry over
    pf_prior_mean = 0.5  # the middle of [0, 1]

    @classmethod
    def check_data_shape(cls, config: ImageNCSNConfig, data_shape: tuple[int, ...]) -> None:
        check_unet_shape(config, data_shape)

    def __init__(self, config: ImageNCSNConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        self.net = unet(self.data_shape[0], self.data_shape, config.channels, config.layers_per_block,
                        config.attention, config.norm_groups, config.dropout, num_classes=config.num_classes)
        self._init_sigmas(50.0)

    def encode_data(self, x: Tensor) -> Tensor:
        """uint8 pixels -> [0, 1]."""
        return to_unit(x)

    def decode_data(self, x: Tensor) -> Tensor:
        """[0, 1] -> uint8 pixels, nearest value."""
        return from_unit(x)

    def pf_from_data(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """uint8 pixels k -> k + u, u ~ U[0, 1) (``generator``), mapped to [0, 1] by (v - 0.5) / 255 (pixel k at
        k / 255, as :func:`to_unit`), and the log-Jacobian -D log 255 per example (nats)."""
        v = x.float() + torch.rand(x.shape, device=x.device, generator=generator)
        return (v - 0.5) / 255.0, torch.full((x.shape[0],), -x[0].numel() * math.log(255.0), device=x.device)

    def score_net(self, x: Tensor, sigma: Tensor, y: Tensor | None = None) -> Tensor:
        """U-Net u(x, c(sigma)[, y]) in float32, (N, C, H, W); a conditional U-Net takes ``y=None`` as the null
        label."""
        s_max, s_min = self.sigmas[0], self.sigmas[-1]
        c_noise = 999 * torch.log(s_max / sigma) / torch.log(s_max / s_min)
        if self.num_classes is None:
            return self.net(x, c_noise).sample.float()
        if y is None:
            y = torch.full((x.shape[0],), self.null_label, dtype=torch.long, device=x.device)
        return self.net(x, c_noise, class_labels=y).sample.float()

    def initial(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """U[0, 1]^D + sigma_max * N(0, I), (n, C, H, W)."""
        shape = (n, *self.data_shape)
        x = torch.rand(shape, device=self.device, generator=generator)
        return x + self.sigmas[0] * torch.randn(shape, device=self.device, generator=generator)
