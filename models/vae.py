"""VAE family: an MLP VAE with a Gaussian decoder.

The likelihood is bounded, not exact: the ELBO, and the tighter importance-weighted
bound (IWAE) with k samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

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
        activation: ``"relu"`` or ``"silu"``.
        kl_warmup_steps: training steps over which the KL term's weight rises linearly from
            0 to 1 (Bowman et al. 2016, arXiv:1511.06349; Sønderby et al. 2016,
            arXiv:1602.02282); it prevents posterior collapse. Bounds always use weight 1.
    """

    latent: int = 2
    hidden: int = 128
    layers: int = 3
    iwae_k: int = 128
    min_log_var: float = -12.0
    kl_warmup_steps: int = 1000
    activation: str = "relu"

    def __post_init__(self):
        if self.activation not in ("relu", "silu"):
            raise ValueError(f"activation must be 'relu' or 'silu', got {self.activation!r}")


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
        act = {"relu": nn.ReLU, "silu": nn.SiLU}[config.activation]
        self.encoder = mlp(D, config.hidden, config.layers, 2 * config.latent, act=act)
        self.decoder = mlp(config.latent, config.hidden, config.layers, 2 * D, act=act)
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))

    def _decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_var = self.decoder(z).chunk(2, dim=-1)
        return mean, log_var.clamp(min=self.config.min_log_var)

    def _log_weights(self, x: Tensor, k: int, generator: torch.Generator | None = None,
                     kl_weight: float = 1.0) -> Tensor:
        """log p(x|z) + w (log p(z) - log q(z|x)) for k draws z ~ q(z|x): shape (k, N), nats.

        With the KL weight w = 1 these are the importance log-weights log p(x, z) / q(z|x).
        """
        mu, log_var = self.encoder(x).chunk(2, dim=-1)
        eps = torch.randn((k, *mu.shape), device=x.device, generator=generator)
        z = mu + torch.exp(0.5 * log_var) * eps
        x_mean, x_log_var = self._decode(z)
        log_px_z = gaussian_log_prob(x, x_mean, x_log_var)
        log_pz = gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))
        log_qz = gaussian_log_prob(z, mu, log_var)
        return log_px_z + kl_weight * (log_pz - log_qz)

    def loss(self, x: Tensor) -> Tensor:
        """Negative ELBO in nats (KL weight warming up to 1), one reparameterised sample, batch mean."""
        w = 1.0
        if self.training:
            w = min(1.0, (float(self.steps_seen) + 1) / max(1, self.config.kl_warmup_steps))
            self.steps_seen += 1
        return -self._log_weights(x, 1, kl_weight=w).mean()

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
