"""Energy-based family: an MLP (vectors) or conv-net (images) energy trained by contrastive divergence.

p(x) = exp(-E(x)) / Z on a bounded box; Z is unknown to the model (unnormalized).
Negative samples come from short-run SGLD chains kept in a replay buffer.
In 2D the bench can normalize it by numerical quadrature (``bench.quadrature``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models import register
from models.base import Capabilities, GenerativeModel, Textbook
from models.imaging import ResBlock, from_centered, to_centered
from models.nets import mlp

# The taxonomy's row for this family (README; bench/verdicts.py tests it).
TEXTBOOK = Textbook(likelihood="unnormalized", sampling="slow", sampling_text="slow (MCMC)")


@dataclass
class EBMConfig:
    """Options of :class:`MLPEnergy`.

    Attributes:
        hidden: MLP width.
        layers: hidden layers.
        sgld_steps: SGLD steps per training iteration (short-run chains).
        sgld_step_size: Langevin step epsilon of the training chains:
            x <- x - eps/2 * grad E(x) + sqrt(eps) * xi.
        sample_steps: SGLD steps of a fresh chain when sampling after training.
        sample_step_start, sample_step_end: the fresh chain's step size decays geometrically
            between these (decreasing steps, as in Welling & Teh 2011): large steps first to
            cross between modes, small ones last so the chain settles into p(x).
        buffer_size: replay-buffer capacity.
        reinit_prob: chance that a chain restarts from uniform noise on the box.
        reg: weight alpha of the energy-magnitude penalty alpha * (E(x+)^2 + E(x-)^2).
        box_margin: the box is the training data's bounding square, widened by this.
    """

    hidden: int = 128
    layers: int = 3
    sgld_steps: int = 10
    sgld_step_size: float = 1e-2
    sample_steps: int = 500
    sample_step_start: float = 0.3
    sample_step_end: float = 1e-3
    buffer_size: int = 10_000
    reinit_prob: float = 0.05
    reg: float = 0.1
    box_margin: float = 1.0


@register("energy", modality="vector")
class MLPEnergy(GenerativeModel):
    """EBM with an MLP energy, contrastive divergence, SGLD and a replay buffer.

    Reference: Du & Mordatch, "Implicit Generation and Generalization in Energy-Based
    Models", 2019, arXiv:1903.08689. SGLD: Welling & Teh 2011.

    The model lives on the box [lo, hi]^D set by :meth:`prepare`; SGLD chains are
    clipped to it, and quadrature normalizes over it.
    """

    reference = "Du & Mordatch 2019, arXiv:1903.08689"
    textbook = TEXTBOOK
    tiny = {"hidden": 16, "sgld_steps": 3, "sample_steps": 5, "buffer_size": 64}  # test size (tests/test_contract.py)
    Config = EBMConfig
    capabilities = Capabilities(sample=True, energy=True)
    train_defaults = {"lr": 1e-3, "betas": (0.0, 0.999)}

    def __init__(self, config: EBMConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        (D,) = self.data_shape
        self.net = mlp(D, config.hidden, config.layers, 1)
        self.register_buffer("box", torch.tensor([-4.0, 4.0]))  # [lo, hi], set from data in prepare()
        self.register_buffer("replay", torch.empty(0, D), persistent=False)

    def prepare(self, x_train: Tensor) -> None:
        """Set the box to the data's bounding square widened by ``box_margin``."""
        m = x_train.abs().max().item() + self.config.box_margin
        self.box = torch.tensor([-m, m], device=self.box.device)

    def support(self) -> tuple[float, float]:
        """The box [lo, hi]^D: SGLD chains are clipped to it and p(x) = 0 outside."""
        return float(self.box[0]), float(self.box[1])

    def energy(self, x: Tensor) -> Tensor:
        """E(x) in nats, (N,), for x of shape (N, D); p(x) ∝ exp(-E(x)) on the box."""
        return self.net(x)[:, 0]

    def _uniform(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        lo, hi = self.box[0], self.box[1]
        return lo + (hi - lo) * torch.rand(n, *self.data_shape, device=self.box.device, generator=generator)

    def langevin(self, x: Tensor, step_sizes: list[float], generator: torch.Generator | None = None) -> Tensor:
        """SGLD from ``x``, one step per entry of ``step_sizes``: x <- clip(x - eps/2 grad E(x) + sqrt(eps) xi)."""
        lo, hi = self.box[0], self.box[1]
        with torch.enable_grad():
            for eps in step_sizes:
                x = x.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(self.energy(x).sum(), x)
                noise = torch.randn(x.shape, device=x.device, generator=generator)
                x = (x - 0.5 * eps * grad + eps**0.5 * noise).clamp(lo, hi)
        return x.detach()

    def loss(self, x: Tensor) -> Tensor:
        """Contrastive divergence: E(x+) - E(x-) + alpha (E(x+)^2 + E(x-)^2), batch mean.

        x- are SGLD samples started from the replay buffer (fresh uniform noise with
        probability ``reinit_prob``); the buffer is refreshed with them.
        """
        n = x.shape[0]
        if len(self.replay) < n:
            start = self._uniform(n)
        else:
            start = self.replay[torch.randint(len(self.replay), (n,), device=x.device)]
            fresh = torch.rand(n, device=x.device) < self.config.reinit_prob
            start = torch.where(fresh[:, None], self._uniform(n), start)
        requires = [p.requires_grad for p in self.parameters()]
        self.requires_grad_(False)
        x_neg = self.langevin(start, [self.config.sgld_step_size] * self.config.sgld_steps)
        for p, r in zip(self.parameters(), requires):
            p.requires_grad_(r)
        self.replay = torch.cat([x_neg, self.replay])[: self.config.buffer_size]
        e_pos, e_neg = self.energy(x), self.energy(x_neg)
        return (e_pos - e_neg).mean() + self.config.reg * (e_pos**2 + e_neg**2).mean()

    def sample_nfe(self, **variant) -> int:
        return self.config.sample_steps  # one energy gradient (forward + backward) per SGLD step

    def sample_step_sizes(self) -> list[float]:
        """Step sizes of a fresh sampling chain: geometric from ``sample_step_start`` to ``sample_step_end``."""
        c = self.config
        k = max(c.sample_steps - 1, 1)
        return [c.sample_step_start * (c.sample_step_end / c.sample_step_start) ** (i / k) for i in range(c.sample_steps)]

    def sample(self, n: int, generator: torch.Generator | None = None, **variant) -> Tensor:
        """(n, D) samples: ``sample_steps`` of SGLD with decreasing steps from uniform noise on the box."""
        return self.langevin(self._uniform(n, generator), self.sample_step_sizes(), generator)


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
        sample_steps: SGLD steps of a fresh chain when sampling after training.
        buffer_size: replay-buffer capacity (chains kept between iterations).
        reinit_prob: chance that a chain restarts from uniform noise on [-1, 1]^D.
        reg: weight alpha of the energy-magnitude penalty alpha * (E(x+)^2 + E(x-)^2).
    """

    channels: tuple[int, ...] = (32, 64, 128)
    sgld_steps: int = 20
    step_size: float = 1.0
    noise: float = 0.01
    grad_clip: float | None = None
    sample_steps: int = 200
    buffer_size: int = 10_000
    reinit_prob: float = 0.05
    reg: float = 1.0


@register("energy", modality="image")
class ConvEnergy(GenerativeModel):
    """Convolutional EBM: Swish ResNet energy, contrastive divergence, SGLD from a replay buffer.

    Reference: Du & Mordatch, "Implicit Generation and Generalization in Energy-Based
    Models", 2019, arXiv:1903.08689. The sampler is their practical SGLD, with step
    size and noise decoupled (as also in JEM, Grathwohl et al. 2020, arXiv:1912.03263),
    on the centered scale [-1, 1]:

        x_{k+1} = clamp(x_k - lambda * clip(grad_x E(x_k), -c, c) + sigma * xi_k, -1, 1),

    xi_k ~ N(0, I), lambda = ``step_size``, sigma = ``noise``, c = ``grad_clip`` (no clip
    when ``None``). With sigma^2 != 2 lambda this is not an exact Langevin discretization.
    The density p(x) ∝ exp(-E(x)) lives on [-1, 1]^D (pixels 0..255); ``energy`` takes
    uint8 images at the pixel values' points k / 127.5 - 1.

    Energy network: 3x3 stem, per level a stride-2 conv (except the first) and a
    ResBlock with Swish (SiLU), then a sum over positions and a linear map to E(x).

    Example:
        >>> e = ConvEnergy(ConvEBMConfig(channels=(8,), sample_steps=2), (1, 8, 8))
        >>> e.energy(torch.zeros(3, 1, 8, 8, dtype=torch.uint8)).shape
        torch.Size([3])
    """

    reference = "Du & Mordatch 2019, arXiv:1903.08689"
    textbook = TEXTBOOK
    tiny = {"channels": (8, 16), "sgld_steps": 2, "sample_steps": 3, "buffer_size": 64}  # test size (tests/test_contract.py)
    Config = ConvEBMConfig
    capabilities = Capabilities(sample=True, energy=True)
    train_defaults = {"lr": 1e-4, "betas": (0.0, 0.999)}

    def __init__(self, config: ConvEBMConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        ch = list(config.channels)
        layers: list[nn.Module] = [nn.Conv2d(self.data_shape[0], ch[0], 3, padding=1)]
        for lvl, c in enumerate(ch):
            if lvl:
                layers += [nn.SiLU(), nn.Conv2d(ch[lvl - 1], c, 3, stride=2, padding=1)]
            layers.append(ResBlock(c, act=nn.SiLU))
        self.features = nn.Sequential(*layers, nn.SiLU())
        self.head = nn.Linear(ch[-1], 1)
        self.register_buffer("replay", torch.empty(0, *self.data_shape), persistent=False)

    def support(self) -> tuple[float, float]:
        """The pixel range [0, 255]: the chains live on the centered box [-1, 1]^D."""
        return 0.0, 255.0

    def energy_centered(self, x: Tensor) -> Tensor:
        """E(x) in nats, (N,) float32, for float images x (N, C, H, W) on the centered scale."""
        return self.head(self.features(x).sum((2, 3)))[:, 0].float()

    def energy(self, x: Tensor) -> Tensor:
        """E(x) in nats, (N,), for uint8 images x (N, C, H, W); p(x) ∝ exp(-E(x))."""
        return self.energy_centered(to_centered(x))

    def _uniform(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return 2 * torch.rand(n, *self.data_shape, device=self.device, generator=generator) - 1

    def langevin(self, x: Tensor, steps: int, generator: torch.Generator | None = None) -> Tensor:
        """``steps`` SGLD updates from centered images x (see the class docstring for the update)."""
        c = self.config
        with torch.enable_grad():
            for _ in range(steps):
                x = x.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(self.energy_centered(x).sum(), x)
                if c.grad_clip is not None:
                    grad = grad.clamp(-c.grad_clip, c.grad_clip)
                noise = torch.randn(x.shape, device=x.device, generator=generator)
                x = (x - c.step_size * grad + c.noise * noise).clamp(-1, 1)
        return x.detach()

    def loss(self, x: Tensor) -> Tensor:
        """Contrastive divergence E(x+) - E(x-) + alpha (E(x+)^2 + E(x-)^2), batch mean, nats.

        x- are ``sgld_steps`` SGLD steps from replay-buffer chains (each restarted from
        uniform noise with probability ``reinit_prob``); the buffer keeps them. x is uint8.
        """
        n, c = x.shape[0], self.config
        if len(self.replay) < n:
            start = self._uniform(n)
        else:
            start = self.replay[torch.randint(len(self.replay), (n,), device=x.device)]
            fresh = torch.rand(n, device=x.device) < c.reinit_prob
            start = torch.where(fresh[:, None, None, None], self._uniform(n), start)
        requires = [p.requires_grad for p in self.parameters()]
        self.requires_grad_(False)
        x_neg = self.langevin(start, c.sgld_steps)
        for p, r in zip(self.parameters(), requires):
            p.requires_grad_(r)
        self.replay = torch.cat([x_neg, self.replay])[: c.buffer_size]
        e_pos, e_neg = self.energy(x), self.energy_centered(x_neg)
        return (e_pos - e_neg).mean() + c.reg * (e_pos**2 + e_neg**2).mean()

    def sample_nfe(self, **variant) -> int:
        return self.config.sample_steps  # one energy gradient (forward + backward) per SGLD step

    def sample(self, n: int, generator: torch.Generator | None = None, **variant) -> Tensor:
        """(n, C, H, W) uint8 samples: ``sample_steps`` SGLD steps of a fresh chain from uniform noise."""
        return from_centered(self.langevin(self._uniform(n, generator), self.config.sample_steps, generator))
