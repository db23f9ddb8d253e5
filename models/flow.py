"""Normalizing-flow family: a neural spline flow built from zuko.

Exact log-likelihood by the change of variables; sampling inverts the flow.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import zuko
from torch import Tensor

from models import register
from models.base import Capabilities, GenerativeModel


@dataclass
class NSFConfig:
    """Options of :class:`SplineFlow`.

    Attributes:
        transforms: number of autoregressive rational-quadratic spline transforms.
        bins: spline bins per transform (on [-5, 5]; identity outside).
        hidden: width of each transform's masked MLP.
        layers: hidden layers of each masked MLP.
    """

    transforms: int = 4
    bins: int = 8
    hidden: int = 64
    layers: int = 2


@register("flow", modality="vector")
class SplineFlow(GenerativeModel):
    """Neural spline flow (``zuko.flows.NSF``): exact log-likelihood.

    Reference: Durkan et al., "Neural Spline Flows", 2019, arXiv:1906.04032.

    Each transform is masked-autoregressive, so its inverse takes D passes of its
    hyper-network; for D = 2 this equals a coupling layer.

    Example:
        >>> f = SplineFlow(NSFConfig(transforms=2), (2,))
        >>> f.log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """

    reference = "Durkan et al. 2019, arXiv:1906.04032"
    Config = NSFConfig
    capabilities = Capabilities(sample=True, log_prob=True)
    train_defaults = {"lr": 3e-3}

    def __init__(self, config: NSFConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        (D,) = self.data_shape
        self.flow = zuko.flows.NSF(
            D, transforms=config.transforms, bins=config.bins, hidden_features=[config.hidden] * config.layers
        )

    def transform(self) -> zuko.transforms.Transform:
        """The bijection x -> z (data to base); ``.inv`` maps z -> x."""
        return self.flow().transform

    def log_prob(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Exact log p(x) in nats, (N,), for x of shape (N, D)."""
        return self.flow().log_prob(x)

    def loss(self, x: Tensor) -> Tensor:
        """Mean NLL in nats."""
        return -self.log_prob(x).mean()

    def sample_nfe(self, **variant) -> int:
        return self.data_shape[0]  # each masked transform inverts in D sequential passes

    def sample(self, n: int, generator: torch.Generator | None = None, **variant) -> Tensor:
        """(n, D) samples: z ~ N(0, I) pushed through the inverse flow."""
        z = torch.randn(n, self.data_shape[0], device=self.device, generator=generator)
        return self.transform().inv(z)
