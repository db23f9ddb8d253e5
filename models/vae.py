"""VAE family: an MLP VAE with a Gaussian decoder.

The likelihood is bounded, not exact: the ELBO, and the tighter importance-weighted
bound (IWAE) with k samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from models import register
from models.base import Capabilities, GenerativeModel
from models.nets import mlp

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(x: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    """log N(x; mean, diag(exp(log_var))) in nats, summed over the last axis."""
    return -0.5 * (LOG_2PI + log_var + (x - mean) ** 2 * torch.exp(-log_var)).sum(-1)


@dataclass
class VAEConfig:
    """Options of :class:`GaussianVAE`.

    Attributes:
        latent: latent dimension.
        hidden: MLP width of encoder and decoder.
        layers: hidden layers of encoder and decoder.
        iwae_k: importance samples per example for the IWAE bound (Burda et al.: k >= 100).
        min_log_var: floor on the decoder's log-variance.
    """

    latent: int = 2
    hidden: int = 128
    layers: int = 2
    iwae_k: int = 128
    min_log_var: float = -12.0


@register("vae", modality="vector")
class GaussianVAE(GenerativeModel):
    """MLP VAE with a diagonal Gaussian decoder p(x|z) and prior N(0, I).

    Reference: Kingma & Welling, "Auto-Encoding Variational Bayes", 2014,
    arXiv:1312.6114; IWAE bound from Burda et al. 2016, arXiv:1509.00519.

    Sampling draws z ~ N(0, I), then x ~ p(x|z), decoder noise included.
    """

    reference = "Kingma & Welling 2014, arXiv:1312.6114; Burda et al. 2016, arXiv:1509.00519"
    Config = VAEConfig
    capabilities = Capabilities(sample=True, bound=True)
    train_defaults = {"lr": 2e-3}

    def __init__(self, config: VAEConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        (D,) = self.data_shape
        self.encoder = mlp(D, config.hidden, config.layers, 2 * config.latent)
        self.decoder = mlp(config.latent, config.hidden, config.layers, 2 * D)

    def _decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_var = self.decoder(z).chunk(2, dim=-1)
        return mean, log_var.clamp(min=self.config.min_log_var)

    def _log_weights(self, x: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        """log p(x, z) - log q(z|x) for k draws z ~ q(z|x): shape (k, N), in nats."""
        mu, log_var = self.encoder(x).chunk(2, dim=-1)
        eps = torch.randn((k, *mu.shape), device=x.device, generator=generator)
        z = mu + torch.exp(0.5 * log_var) * eps
        x_mean, x_log_var = self._decode(z)
        log_px_z = gaussian_log_prob(x, x_mean, x_log_var)
        log_pz = gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))
        log_qz = gaussian_log_prob(z, mu, log_var)
        return log_px_z + log_pz - log_qz

    def loss(self, x: Tensor) -> Tensor:
        """Negative ELBO in nats, one reparameterised sample per example, batch mean."""
        return -self._log_weights(x, 1).mean()

    def log_prob_bounds(self, x: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``{"elbo": ..., "iwae_k<k>": ...}``: lower bounds on log p(x) in nats, (N,) each.

        Both come from the same k = ``config.iwae_k`` draws: the ELBO as the mean of the
        log-weights, IWAE as log of their mean (tighter; Burda et al. 2016).
        """
        k = self.config.iwae_k
        log_w = self._log_weights(x, k, generator)
        return {"elbo": log_w.mean(0), f"iwae_k{k}": torch.logsumexp(log_w, 0) - math.log(k)}

    def sample(self, n: int, generator: torch.Generator | None = None, **variant) -> Tensor:
        """(n, D) samples x ~ p(x|z), z ~ N(0, I)."""
        z = torch.randn(n, self.config.latent, device=self.device, generator=generator)
        mean, log_var = self._decode(z)
        return mean + torch.exp(0.5 * log_var) * torch.randn(mean.shape, device=mean.device, generator=generator)
