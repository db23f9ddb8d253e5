"""GAN family: an MLP generator and discriminator.

No likelihood of any kind: the model is only a sampler.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models import register
from models.base import Capabilities, GenerativeModel, TrainConfig
from models.nets import mlp


@dataclass
class GANConfig:
    """Options of :class:`MLPGAN`.

    Attributes:
        latent: dimension of the generator's Gaussian input z.
        hidden: width of generator and discriminator.
        layers: hidden layers of each.
        loss: ``"ns"`` (non-saturating; Goodfellow et al. 2014) or ``"wgan-gp"``
            (Gulrajani et al. 2017).
        critic_steps: discriminator steps per generator step.
        gp_weight: gradient-penalty weight lambda for ``"wgan-gp"``.
    """

    latent: int = 8
    hidden: int = 128
    layers: int = 3
    loss: str = "ns"
    critic_steps: int = 1
    gp_weight: float = 0.1

    def __post_init__(self):
        if self.loss not in ("ns", "wgan-gp"):
            raise ValueError(f"loss must be 'ns' or 'wgan-gp', got {self.loss!r}")


@register("gan", modality="vector")
class MLPGAN(GenerativeModel):
    """MLP GAN, non-saturating or WGAN-GP. Samples in one generator pass.

    References: Goodfellow et al., "Generative Adversarial Nets", 2014,
    arXiv:1406.2661; Gulrajani et al., "Improved Training of Wasserstein GANs",
    2017, arXiv:1704.00028.
    """

    reference = "Goodfellow et al. 2014, arXiv:1406.2661; Gulrajani et al. 2017, arXiv:1704.00028"
    Config = GANConfig
    capabilities = Capabilities(sample=True)
    train_defaults = {"lr": 1e-3, "betas": (0.5, 0.999)}

    def __init__(self, config: GANConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        (D,) = self.data_shape
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        self.generator = mlp(config.latent, config.hidden, config.layers, D, act=nn.ReLU)
        self.discriminator = mlp(D, config.hidden, config.layers, 1, act=act)

    def configure_optimizers(self, train: TrainConfig) -> list[torch.optim.Optimizer]:
        """``[generator Adam, discriminator Adam]``."""
        betas = tuple(train.betas)
        return [
            torch.optim.Adam(self.generator.parameters(), lr=train.lr, betas=betas),
            torch.optim.Adam(self.discriminator.parameters(), lr=train.lr, betas=betas),
        ]

    def _d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        d_real, d_fake = self.discriminator(real), self.discriminator(fake)
        if self.config.loss == "ns":
            return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        # WGAN-GP: critic loss plus lambda * (||grad D(x_hat)|| - 1)^2 on interpolates.
        a = torch.rand(real.shape[0], 1, device=real.device)
        x_hat = (a * real + (1 - a) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.discriminator(x_hat).sum(), x_hat, create_graph=True)
        gp = ((grad.norm(dim=1) - 1) ** 2).mean()
        return d_fake.mean() - d_real.mean() + self.config.gp_weight * gp

    def _g_loss(self, fake: Tensor) -> Tensor:
        d_fake = self.discriminator(fake)
        return F.softplus(-d_fake).mean() if self.config.loss == "ns" else -d_fake.mean()

    def loss(self, x: Tensor) -> Tensor:
        """Discriminator loss plus generator loss on batch ``x`` (for monitoring only)."""
        fake = self.generator(torch.randn(x.shape[0], self.config.latent, device=x.device))
        return self._d_loss(x, fake) + self._g_loss(fake)

    def train_step(self, x: Tensor, optimizers: list[torch.optim.Optimizer], train: TrainConfig) -> dict[str, Tensor]:
        """``critic_steps`` discriminator updates, then one generator update."""
        opt_g, opt_d = optimizers
        for _ in range(self.config.critic_steps):
            with torch.no_grad(), self.autocast():
                fake = self.generator(torch.randn(x.shape[0], self.config.latent, device=x.device))
            opt_d.zero_grad(set_to_none=True)
            with self.autocast():
                d_loss = self._d_loss(x, fake)
            d_loss.backward()
            opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        with self.autocast():
            g_loss = self._g_loss(self.generator(torch.randn(x.shape[0], self.config.latent, device=x.device)))
        g_loss.backward()
        opt_g.step()
        return {"loss_d": d_loss.detach(), "loss_g": g_loss.detach()}

    def sample(self, n: int, generator: torch.Generator | None = None, **variant) -> Tensor:
        """(n, D) samples G(z), z ~ N(0, I): one generator pass."""
        return self.generator(torch.randn(n, self.config.latent, device=self.device, generator=generator))
