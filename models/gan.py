"""GAN family: MLP generator and discriminator (vectors), DCGAN (images).

No likelihood of any kind: the model is only a sampler. Both forms share the
adversarial algorithm in :class:`AdversarialNetwork`: one Adam each for the generator
and the discriminator, ``critic_steps`` discriminator updates per generator update,
the non-saturating loss (and, for vectors, WGAN-GP), and sampling G(z), z ~ N(0, I).
They differ in the networks and in the data space (raw vectors; images scaled to
[-1, 1]).

Class-conditional forms (``num_classes`` = K) are conditional GANs (Mirza & Osindero 2014, arXiv:1411.1784): the
one-hot label is concatenated to z at the generator's input and to the discriminator's input (as K constant
channel maps for images); fakes are drawn with the real batch's labels. No guidance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models import register
from models.base import Capabilities, GenerativeModel, Textbook, TrainConfig
from models.fields import Range, check_fields
from models.imaging import check_divisible, from_centered, to_centered
from models.nets import mlp, one_hot

_NumClasses = Annotated[int, Range(ge=2, le=100_000)]

# The taxonomy's row for this family (README; bench/verdicts.py tests it).
TEXTBOOK = Textbook(likelihood="none", sampling="fast", training="fragile",
                    claims=("T3", "T8", "T14", "T17", "T18", "T19", "T20"))


class AdversarialNetwork(GenerativeModel):
    """A generator G and a discriminator D trained against each other; sampling is G(z), z ~ N(0, I).

    References: Goodfellow et al., "Generative Adversarial Nets", 2014, arXiv:1406.2661
    (the non-saturating loss); Gulrajani et al., "Improved Training of Wasserstein GANs",
    2017, arXiv:1704.00028 (WGAN-GP).

    Subclasses set ``generator`` (z of shape (N, ``config.latent``) -> working space) and
    ``discriminator`` (working space -> logits (N, 1)), and the data maps
    :meth:`encode_data` and :meth:`decode_data`. ``config`` has ``latent`` and
    ``critic_steps``; :attr:`gan_loss` picks the loss. Logits are taken in float32, so
    the losses are float32 under bf16 autocast.
    """

    capabilities = Capabilities(sample=True, conditional=True)
    gan_loss: str = "ns"  # "ns" (non-saturating) or "wgan-gp"
    gp_weight: float = 0.0  # lambda of the gradient penalty, with "wgan-gp"

    # ------------------------------------------------------------------ hooks
    def encode_data(self, x: Tensor) -> Tensor:
        """Data -> the generator's output space."""
        return x

    def decode_data(self, y: Tensor) -> Tensor:
        """The generator's output -> data (dtype and range of the modality)."""
        return y

    # ------------------------------------------------------------------ the game
    def configure_optimizers(self, train: TrainConfig) -> list[torch.optim.Optimizer]:
        """``[generator Adam, discriminator Adam]``."""
        betas = tuple(train.betas)
        return [
            torch.optim.Adam(self.generator.parameters(), lr=train.lr, betas=betas),
            torch.optim.Adam(self.discriminator.parameters(), lr=train.lr, betas=betas),
        ]

    def _labelled(self, t: Tensor, labels: Tensor | None) -> Tensor:
        """``t`` with the one-hot labels concatenated: on axis 1 of a batch (N, d), or as K constant channel maps
        of an image batch (N, C, H, W); ``t`` itself without labels."""
        if labels is None:
            return t
        c = one_hot(labels, self.num_classes).to(t.dtype)
        if t.dim() == 4:
            c = c[:, :, None, None].expand(-1, -1, *t.shape[2:])
        return torch.cat([t, c], dim=1)

    def _fake(self, n: int, device: torch.device, generator: torch.Generator | None = None,
              labels: Tensor | None = None) -> Tensor:
        """G(z), z ~ N(0, I) of shape (n, latent), in the working space (G(z, y) given labels (n,))."""
        z = torch.randn(n, self.config.latent, device=device, generator=generator)
        return self.generator(z) if labels is None else self.generator(self._labelled(z, labels))

    def _logits(self, y: Tensor, labels: Tensor | None = None) -> Tensor:
        """D(y), (N, 1), in float32 (D(y, labels) for a conditional discriminator)."""
        return self.discriminator(self._labelled(y, labels)).float()

    def _d_loss(self, real: Tensor, fake: Tensor, labels: Tensor | None = None) -> Tensor:
        """Discriminator loss, batch means: NS -log D(x) - log(1 - D(G(z))), or the WGAN-GP critic loss."""
        d_real, d_fake = self._logits(real, labels), self._logits(fake, labels)
        if self.gan_loss == "ns":
            return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        # WGAN-GP: critic loss plus lambda * (||grad D(x_hat)|| - 1)^2 on interpolates.
        a = torch.rand(real.shape[0], *[1] * (real.dim() - 1), device=real.device)
        x_hat = (a * real + (1 - a) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self._logits(x_hat, labels).sum(), x_hat, create_graph=True)
        gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        return d_fake.mean() - d_real.mean() + self.gp_weight * gp

    def _g_loss(self, fake: Tensor, labels: Tensor | None = None) -> Tensor:
        """Generator loss, batch mean: NS -log D(G(z)), or -D(G(z)) for WGAN-GP."""
        d_fake = self._logits(fake, labels)
        return F.softplus(-d_fake).mean() if self.gan_loss == "ns" else -d_fake.mean()

    def _train_labels(self, y: Tensor | None, n: int) -> Tensor | None:
        y = self.check_labels(y, n)
        if self.conditional and y is None:
            raise ValueError("a conditional GAN trains on labels: train_step(x, optimizers, train, y)")
        return y

    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Discriminator loss plus generator loss on batch ``x`` (for monitoring only; labels ``y`` for a
        conditional GAN)."""
        y = self._train_labels(y, len(x))
        fake = self._fake(x.shape[0], x.device, labels=y)
        return self._d_loss(self.encode_data(x), fake, y) + self._g_loss(fake, y)

    def train_step(self, x: Tensor, optimizers: list[torch.optim.Optimizer], train: TrainConfig,
                   y: Tensor | None = None) -> dict[str, Tensor]:
        """``critic_steps`` discriminator updates, then one generator update (fakes drawn with the real batch's
        labels ``y`` for a conditional GAN)."""
        y = self._train_labels(y, len(x))
        opt_g, opt_d = optimizers
        real = self.encode_data(x)
        for _ in range(self.config.critic_steps):
            with torch.no_grad(), self.autocast():
                fake = self._fake(x.shape[0], x.device, labels=y)
            opt_d.zero_grad(set_to_none=True)
            with self.autocast():
                d_loss = self._d_loss(real, fake, y)
            d_loss.backward()
            opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        with self.autocast():
            g_loss = self._g_loss(self._fake(x.shape[0], x.device, labels=y), y)
        g_loss.backward()
        opt_g.step()
        return {"loss_d": d_loss.detach(), "loss_g": g_loss.detach()}

    def schedule_steps(self, train: TrainConfig) -> dict[str, int]:
        """The loop's schedules (:meth:`models.base.GenerativeModel.schedule_steps`) and the critic steps: every
        training step runs its ``critic_steps`` discriminator updates, then the generator's, so the cycle
        ends with each step."""
        return {**super().schedule_steps(train), f"{self.config.critic_steps} critic step(s) per generator step": 1}

    def generate(self, n: int, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        """(n, *data_shape) samples G(z), z ~ N(0, I) (G(z, y) given labels ``y``): one generator pass
        (differentiable in G's parameters inside :func:`models.gradients`; no autograd graph otherwise)."""
        return self.decode_data(self._fake(n, self.device, generator, labels=y))


# =========================================================================== vectors
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
        gp_weight: gradient-penalty weight lambda for ``"wgan-gp"`` (Gulrajani et al.: 10).
        num_classes: number of classes for a conditional GAN (one-hot label concatenated to z and to the
            discriminator's input); ``None``: unconditional.

    Raises:
        ValueError: a value outside its declared range or choices (:func:`models.fields.check_fields`).
    """

    latent: Annotated[int, Range(ge=1, le=1024)] = 8
    hidden: Annotated[int, Range(ge=1, le=2048)] = 128
    layers: Annotated[int, Range(ge=1, le=64)] = 3
    loss: Literal["ns", "wgan-gp"] = "ns"
    critic_steps: Annotated[int, Range(ge=1, le=100)] = 1
    gp_weight: Annotated[float, Range(ge=0, le=1000)] = 0.1
    num_classes: _NumClasses | None = None

    def __post_init__(self):
        check_fields(self)


@register("gan", modality="vector")
class MLPGAN(AdversarialNetwork):
    """MLP GAN, non-saturating or WGAN-GP. Samples in one generator pass.

    References: Goodfellow et al., "Generative Adversarial Nets", 2014,
    arXiv:1406.2661; Gulrajani et al., "Improved Training of Wasserstein GANs",
    2017, arXiv:1704.00028.

    The game is :class:`AdversarialNetwork`'s, on raw coordinates. Samples are (n, D) float32.
    """

    reference = "Goodfellow et al. 2014, arXiv:1406.2661; Gulrajani et al. 2017, arXiv:1704.00028"
    textbook = TEXTBOOK
    tiny = {"hidden": 16}  # test size (tests/test_contract.py)
    Config = GANConfig
    train_defaults = {"lr": 1e-3, "betas": (0.5, 0.999)}

    def __init__(self, config: GANConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        (D,) = self.data_shape
        K = config.num_classes or 0
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        self.generator = mlp(config.latent + K, config.hidden, config.layers, D, act=nn.ReLU)
        self.discriminator = mlp(D + K, config.hidden, config.layers, 1, act=act)
        self.gan_loss, self.gp_weight = config.loss, config.gp_weight


# =========================================================================== images
@dataclass
class DCGANConfig:
    """Options of :class:`DCGAN`.

    Attributes:
        latent: dimension of the generator's Gaussian input z.
        channels: base width c; the generator runs at 4c (H/4), 2c (H/2), c (H), the
            discriminator at c (H/2), 2c (H/4), 4c (H/4).
        critic_steps: discriminator steps per generator step.
        num_classes: number of classes for a conditional DCGAN (one-hot label concatenated to z, and as K
            constant channel maps to the discriminator's input); ``None``: unconditional.

    Raises:
        ValueError: a value outside its declared range (:func:`models.fields.check_fields`).
    """

    latent: Annotated[int, Range(ge=1, le=1024)] = 100
    channels: Annotated[int, Range(ge=1, le=256)] = 64
    critic_steps: Annotated[int, Range(ge=1, le=100)] = 1
    num_classes: _NumClasses | None = None

    def __post_init__(self):
        check_fields(self)


@register("gan", modality="image")
class DCGAN(AdversarialNetwork):
    """DCGAN with the non-saturating loss; one generator pass per sample.

    References: Radford et al., "Unsupervised Representation Learning with Deep
    Convolutional Generative Adversarial Networks", 2016, arXiv:1511.06434;
    Goodfellow et al. 2014, arXiv:1406.2661 (non-saturating loss).

    Generator: z -> linear -> 4c x H/4 x W/4 (7x7 for MNIST, 8x8 for 32x32) -> two
    stride-2 transposed convs -> 3x3 conv -> tanh, with BatchNorm and ReLU.
    Discriminator: stride-2 convs with LeakyReLU(0.2) and BatchNorm (none on the first
    layer) -> linear logit. H and W must be divisible by 4. The game is
    :class:`AdversarialNetwork`'s, on the centered scale [-1, 1]; samples use the
    generator's BatchNorm running statistics in eval mode and are rounded to the
    nearest pixel value, uint8.

    Example:
        >>> g = DCGAN(DCGANConfig(latent=8, channels=8), (1, 8, 8))
        >>> g.eval().sample(2).dtype
        torch.uint8
    """

    reference = "Radford et al. 2016, arXiv:1511.06434"
    textbook = TEXTBOOK
    tiny = {"latent": 8, "channels": 8}  # test size (tests/test_contract.py)
    Config = DCGANConfig
    train_defaults = {"lr": 2e-4, "betas": (0.5, 0.999)}

    @classmethod
    def check_data_shape(cls, config: DCGANConfig, data_shape: tuple[int, ...]) -> None:
        """Two stride-2 stages: H and W must be divisible by 4 (MNIST and CIFAR-10 are; no option changes it)."""
        check_divisible(data_shape, 4, "DCGAN")

    def __init__(self, config: DCGANConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        C, H, W = self.data_shape
        c = config.channels
        K = config.num_classes or 0
        self.bottom = (4 * c, H // 4, W // 4)
        n_flat = 4 * c * (H // 4) * (W // 4)
        self.generator = nn.Sequential(
            nn.Linear(config.latent + K, n_flat, bias=False), nn.Unflatten(1, self.bottom),
            nn.BatchNorm2d(4 * c), nn.ReLU(),
            nn.ConvTranspose2d(4 * c, 2 * c, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * c), nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, C, 3, padding=1), nn.Tanh(),
        )
        lrelu = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        self.discriminator = nn.Sequential(
            nn.Conv2d(C + K, c, 4, stride=2, padding=1), lrelu(),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * c), lrelu(),
            nn.Conv2d(2 * c, 4 * c, 3, padding=1, bias=False), nn.BatchNorm2d(4 * c), lrelu(),
            nn.Flatten(), nn.Linear(n_flat, 1),
        )
        for m in self.modules():  # DCGAN's initialisation: N(0, 0.02) weights, BatchNorm scales N(1, 0.02)
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)

    def encode_data(self, x: Tensor) -> Tensor:
        """uint8 pixels -> [-1, 1]."""
        return to_centered(x)

    def decode_data(self, y: Tensor) -> Tensor:
        """[-1, 1] -> uint8 pixels, nearest value."""
        return from_centered(y)
