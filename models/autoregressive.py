"""Autoregressive family: MADE with mixture-of-Gaussians conditionals.

p(x) = prod_d p(x_d | x_<d), each conditional a K-component Gaussian mixture whose
parameters come from one masked MLP (MADE; Germain et al. 2015, arXiv:1502.03509).
Sampling is sequential: D network passes for D dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models import register
from models.base import Capabilities, GenerativeModel


@dataclass
class MADEConfig:
    """Options of :class:`MADE`.

    Attributes:
        hidden: width of the masked hidden layers.
        layers: number of masked hidden layers.
        components: Gaussian components K per conditional.
        min_log_scale: floor on each component's log standard deviation (nats).
    """

    hidden: int = 128
    layers: int = 2
    components: int = 10
    min_log_scale: float = -7.0


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed 0/1 ``mask`` (out, in)."""

    def __init__(self, mask: Tensor):
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.float())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


@register("autoregressive", modality="vector")
class MADE(GenerativeModel):
    """MADE with mixture-of-Gaussians conditionals; exact log-likelihood, D-pass sampling.

    Reference: Germain et al., "MADE: Masked Autoencoder for Distribution Estimation",
    2015, arXiv:1502.03509. Mixture conditionals as in MADE-MoG (Papamakarios et al.
    2017, arXiv:1705.07057).

    Example:
        >>> m = MADE(MADEConfig(hidden=32), (2,))
        >>> m.log_prob(torch.zeros(5, 2)).shape
        torch.Size([5])
    """

    reference = "Germain et al. 2015, arXiv:1502.03509"
    Config = MADEConfig
    capabilities = Capabilities(sample=True, log_prob=True)
    train_defaults = {"lr": 3e-3}

    def __init__(self, config: MADEConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        (D,) = self.data_shape
        K, H = config.components, config.hidden
        # Degrees: inputs 1..D, hidden cycle over 1..max(D-1, 1), outputs 1..D.
        # A unit of degree k sees inputs 1..k; output d sees hidden units of degree < d.
        d_in = torch.arange(1, D + 1)
        d_hid = torch.arange(H) % max(D - 1, 1) + 1
        d_out = torch.arange(1, D + 1).repeat_interleave(3 * K)
        layers: list[nn.Module] = []
        prev = d_in
        for _ in range(config.layers):
            layers += [MaskedLinear(d_hid[:, None] >= prev[None, :]), nn.ReLU()]
            prev = d_hid
        layers.append(MaskedLinear(d_out[:, None] > prev[None, :]))
        self.net = nn.Sequential(*layers)
        with torch.no_grad():  # spread the initial means so components start apart
            self.net[-1].bias.view(D, K, 3)[..., 1].copy_(torch.linspace(-3, 3, K).expand(D, K))

    def _params(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mixture logits, means and log-scales, each (N, D, K)."""
        (D,) = self.data_shape
        h = self.net(x).view(x.shape[0], D, self.config.components, 3)
        log_scale = h[..., 2].clamp(min=self.config.min_log_scale)
        return h[..., 0], h[..., 1], log_scale

    def log_prob(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Exact log p(x) in nats, (N,), for x of shape (N, D)."""
        logits, mean, log_scale = self._params(x)
        z = (x[..., None] - mean) * torch.exp(-log_scale)
        log_normal = -0.5 * z**2 - log_scale - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(F.log_softmax(logits, dim=-1) + log_normal, dim=-1).sum(-1)

    def loss(self, x: Tensor) -> Tensor:
        """Mean NLL in nats."""
        return -self.log_prob(x).mean()

    def sample_nfe(self, **variant) -> int:
        return self.data_shape[0]

    def sample(self, n: int, generator: torch.Generator | None = None, **variant) -> Tensor:
        """(n, D) samples, drawn one dimension at a time (D sequential network passes)."""
        (D,) = self.data_shape
        x = torch.zeros(n, D, device=self.device)
        for d in range(D):
            logits, mean, log_scale = self._params(x)
            k = torch.multinomial(F.softmax(logits[:, d], dim=-1), 1, generator=generator)[:, 0]
            eps = torch.randn(n, device=x.device, generator=generator)
            rows = torch.arange(n, device=x.device)
            x[:, d] = mean[rows, d, k] + torch.exp(log_scale[rows, d, k]) * eps
        return x
