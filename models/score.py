"""Score-based family: a noise-conditional score network (NCSN).

Trained by denoising score matching over a geometric ladder of noise levels and
sampled by annealed Langevin dynamics. It gives no explicit likelihood.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from models import register
from models.base import Capabilities, GenerativeModel
from models.nets import ConditionalMLP


@dataclass
class NCSNConfig:
    """Options of :class:`NCSN`.

    Attributes:
        n_sigmas: noise levels L, geometric from sigma_max down to sigma_min.
        sigma_min: smallest noise level.
        sigma_max: largest noise level; ``None`` sets it in :meth:`NCSN.prepare` to the
            largest pairwise distance in the training data (Song & Ermon 2020, technique 1).
        hidden: width of the score network.
        layers: hidden layers of the score network.
        steps_per_sigma: Langevin steps T at each noise level.
        step_eps: epsilon of the step size alpha_i = epsilon * sigma_i^2 / sigma_L^2.
        denoise: finish with one Tweedie denoising step x + sigma_L^2 s(x, sigma_L).
    """

    n_sigmas: int = 10
    sigma_min: float = 0.01
    sigma_max: float | None = None
    hidden: int = 128
    layers: int = 3
    steps_per_sigma: int = 100
    step_eps: float = 2e-5
    denoise: bool = True


@register("score", modality="vector")
class NCSN(GenerativeModel):
    """NCSN: denoising score matching over noise levels, annealed Langevin sampling.

    References: Song & Ermon, "Generative Modeling by Estimating Gradients of the Data
    Distribution", 2019, arXiv:1907.05600 (Alg. 1); Song & Ermon, "Improved Techniques
    for Training Score-Based Generative Models", 2020, arXiv:2006.09011.

    The network output is divided by sigma (NCSNv2's s(x, sigma) = s(x) / sigma).
    """

    reference = "Song & Ermon 2019, arXiv:1907.05600; Song & Ermon 2020, arXiv:2006.09011"
    Config = NCSNConfig
    capabilities = Capabilities(sample=True)
    train_defaults = {"lr": 2e-3, "ema": 0.995}

    def __init__(self, config: NCSNConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        (D,) = self.data_shape
        self.net = ConditionalMLP(D, config.hidden, config.layers)
        self.register_buffer("sigmas", self._ladder(config.sigma_max or 1.0))

    def _ladder(self, sigma_max: float) -> Tensor:
        c = self.config
        return torch.exp(torch.linspace(math.log(sigma_max), math.log(c.sigma_min), c.n_sigmas))

    def prepare(self, x_train: Tensor) -> None:
        """Set sigma_max to the largest pairwise distance in (a subset of) the data."""
        if self.config.sigma_max is None:
            sub = x_train[:2000]
            self.sigmas = self._ladder(torch.cdist(sub, sub).max().item()).to(self.sigmas.device)

    def score(self, x: Tensor, sigma: Tensor) -> Tensor:
        """Score estimate s(x, sigma) ≈ grad_x log p_sigma(x), (N, D), for sigma of shape (N,)."""
        return self.net(x, torch.log(sigma)) / sigma[:, None]

    def loss(self, x: Tensor) -> Tensor:
        """Denoising score matching, weighted by sigma^2 (Song & Ermon 2019, Eq. 5-6)."""
        sigma = self.sigmas[torch.randint(len(self.sigmas), (x.shape[0],), device=x.device)]
        noise = torch.randn_like(x)
        x_tilde = x + sigma[:, None] * noise
        # sigma * s(x~, sigma) should equal -(x~ - x) / sigma = -noise
        return 0.5 * ((sigma[:, None] * self.score(x_tilde, sigma) + noise) ** 2).sum(-1).mean()

    def sample_nfe(self, **variant) -> int:
        c = self.config
        return c.n_sigmas * c.steps_per_sigma + int(c.denoise)

    def sample(self, n: int, generator: torch.Generator | None = None, **variant) -> Tensor:
        """(n, D) samples by annealed Langevin dynamics from N(0, sigma_max^2 I)."""
        c = self.config
        x = self.sigmas[0] * torch.randn(n, *self.data_shape, device=self.device, generator=generator)
        for sigma in self.sigmas:
            alpha = c.step_eps * (sigma / self.sigmas[-1]) ** 2
            s = sigma.expand(n)
            for _ in range(c.steps_per_sigma):
                z = torch.randn(x.shape, device=x.device, generator=generator)
                x = x + 0.5 * alpha * self.score(x, s) + alpha.sqrt() * z
        if c.denoise:
            s = self.sigmas[-1].expand(n)
            x = x + self.sigmas[-1] ** 2 * self.score(x, s)
        return x
