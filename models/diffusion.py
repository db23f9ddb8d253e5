"""Diffusion family: DDPM with an MLP epsilon-network.

Trained with the simple epsilon-prediction loss of Ho et al. (2020). Samples by
ancestral sampling with all T steps, or by deterministic DDIM with fewer steps.
Its likelihood is the variational bound (ELBO), in nats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from models import register
from models.base import Capabilities, GenerativeModel
from models.nets import ConditionalMLP

LOG_2PI = math.log(2 * math.pi)


@dataclass
class DDPMConfig:
    """Options of :class:`DDPM`.

    Attributes:
        T: diffusion steps.
        beta_start, beta_end: linear beta schedule endpoints (Ho et al.: 1e-4, 0.02).
        hidden: width of the epsilon-network.
        layers: hidden layers of the epsilon-network.
        ddim_steps: DDIM step counts offered as extra samplers (``ddim<S>``).
    """

    T: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    hidden: int = 128
    layers: int = 3
    ddim_steps: tuple[int, ...] = (50,)


@register("diffusion", modality="vector")
class DDPM(GenerativeModel):
    """DDPM (epsilon-prediction, fixed reverse variance beta-tilde) for vector data.

    References: Ho et al., "Denoising Diffusion Probabilistic Models", 2020,
    arXiv:2006.11239; DDIM: Song et al., "Denoising Diffusion Implicit Models",
    2021, arXiv:2010.02502.

    Notation follows Ho et al.: beta_t, alpha_t = 1 - beta_t, alpha_bar_t =
    prod_{s<=t} alpha_s, posterior variance beta_tilde_t. Index ``t`` runs 0..T-1
    in code for the paper's 1..T.
    """

    reference = "Ho et al. 2020, arXiv:2006.11239; Song et al. 2021, arXiv:2010.02502"
    Config = DDPMConfig
    capabilities = Capabilities(sample=True, bound=True)
    train_defaults = {"lr": 2e-3, "ema": 0.995}

    def __init__(self, config: DDPMConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        (D,) = self.data_shape
        self.eps_net = ConditionalMLP(D, config.hidden, config.layers)
        beta = torch.linspace(config.beta_start, config.beta_end, config.T, dtype=torch.float64)
        alpha_bar = torch.cumprod(1 - beta, 0)
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        beta_tilde = beta * (1 - alpha_bar_prev) / (1 - alpha_bar)
        # beta_tilde_0 = 0; the decoder p(x_0|x_1) uses beta_tilde_1 instead (improved-diffusion's "clipped").
        log_var = torch.log(torch.cat([beta_tilde[1:2], beta_tilde[1:]]))
        for name, v in dict(beta=beta, alpha_bar=alpha_bar, alpha_bar_prev=alpha_bar_prev, log_var=log_var).items():
            self.register_buffer(name, v.float(), persistent=False)

    # ------------------------------------------------------------------ training
    def loss(self, x: Tensor) -> Tensor:
        """L_simple: mean squared error of the epsilon prediction (Ho et al. Eq. 14)."""
        t = torch.randint(0, self.config.T, (x.shape[0],), device=x.device)
        eps = torch.randn_like(x)
        ab = self.alpha_bar[t][:, None]
        x_t = ab.sqrt() * x + (1 - ab).sqrt() * eps
        return ((self.eps_net(x_t, t) - eps) ** 2).mean()

    # ------------------------------------------------------------------ reverse process
    def _p_mean(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Mean of p(x_{t-1} | x_t) from the predicted epsilon (Ho et al. Eq. 11)."""
        beta, ab = self.beta[t][:, None], self.alpha_bar[t][:, None]
        return (x_t - beta / (1 - ab).sqrt() * self.eps_net(x_t, t)) / (1 - beta).sqrt()

    def sampling_variants(self) -> dict[str, dict]:
        """``ancestral`` (T steps), then ``ddim<S>`` for each S in ``config.ddim_steps``."""
        out = {"ancestral": {"sampler": "ancestral"}}
        out.update({f"ddim{s}": {"sampler": "ddim", "steps": s} for s in self.config.ddim_steps})
        return out

    def sample_nfe(self, sampler: str = "ancestral", steps: int | None = None) -> int:
        return self.config.T if sampler == "ancestral" else int(steps)

    def sample(self, n: int, generator: torch.Generator | None = None, sampler: str = "ancestral",
               steps: int | None = None) -> Tensor:
        """(n, D) samples by ancestral sampling (T steps, Ho et al. Alg. 2) or DDIM (eta = 0).

        Raises:
            ValueError: unknown ``sampler``.
        """
        x = torch.randn(n, *self.data_shape, device=self.device, generator=generator)
        if sampler == "ancestral":
            for i in reversed(range(self.config.T)):
                t = torch.full((n,), i, device=x.device, dtype=torch.long)
                x = self._p_mean(x, t)
                if i > 0:
                    x = x + torch.exp(0.5 * self.log_var[i]) * torch.randn(x.shape, device=x.device, generator=generator)
            return x
        if sampler == "ddim":
            # Song et al. 2021, Eq. 12 with sigma = 0, on an evenly spaced sub-sequence of timesteps.
            ts = np.unique(np.linspace(0, self.config.T - 1, int(steps)).round().astype(int))[::-1]
            for j, i in enumerate(ts):
                t = torch.full((n,), int(i), device=x.device, dtype=torch.long)
                ab = self.alpha_bar[i]
                ab_prev = self.alpha_bar[ts[j + 1]] if j + 1 < len(ts) else torch.ones((), device=x.device)
                eps = self.eps_net(x, t)
                x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
                x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
            return x
        raise ValueError(f"unknown sampler {sampler!r}; expected 'ancestral' or 'ddim'")

    # ------------------------------------------------------------------ variational bound
    def log_prob_bounds(self, x: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``{"elbo": ...}``: the DDPM variational lower bound on log p(x), in nats, (N,).

        -ELBO = KL(q(x_T|x_0) || N(0, I)) + sum_{t>1} KL(q(x_{t-1}|x_t, x_0) || p(x_{t-1}|x_t))
        - log p(x_0|x_1), with a Gaussian decoder for continuous data (Ho et al. Eq. 5).
        Each KL term uses one draw of x_t; all T terms are summed (T network passes).
        """
        ab_T = self.alpha_bar[-1]
        prior_kl = 0.5 * ((1 - ab_T) + ab_T * x**2 - 1 - torch.log(1 - ab_T)).sum(-1)
        total = prior_kl
        for i in range(self.config.T):
            t = torch.full((x.shape[0],), i, device=x.device, dtype=torch.long)
            eps = torch.randn(x.shape, device=x.device, generator=generator)
            ab = self.alpha_bar[i]
            x_t = ab.sqrt() * x + (1 - ab).sqrt() * eps
            mean = self._p_mean(x_t, t)
            log_var = self.log_var[i]
            if i == 0:  # decoder term -log N(x_0; mu_theta(x_1, 1), sigma_1^2)
                total = total + 0.5 * (LOG_2PI + log_var + (x - mean) ** 2 / log_var.exp()).sum(-1)
            else:  # KL between Gaussians of equal variance beta_tilde_t: ||mu_tilde - mu_theta||^2 / (2 var)
                ab_prev, beta = self.alpha_bar_prev[i], self.beta[i]
                mu_tilde = (ab_prev.sqrt() * beta * x + (1 - beta).sqrt() * (1 - ab_prev) * x_t) / (1 - ab)
                total = total + ((mu_tilde - mean) ** 2).sum(-1) / (2 * log_var.exp())
        return {"elbo": -total}
