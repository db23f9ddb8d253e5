"""Autoregressive family: MADE for vectors, Gated PixelCNN for images.

p(x) = prod_d p(x_d | x_<d), with every conditional computed by one masked network
pass, so the log-likelihood is exact and cheap while sampling is sequential: one
network pass per dimension (vectors) or per pixel (images).

* vector: MADE (Germain et al. 2015, arXiv:1502.03509) with K-component Gaussian
  mixture conditionals.
* image: Gated PixelCNN (van den Oord et al. 2016, arXiv:1606.05328) with a 256-way
  softmax or PixelCNN++'s discretized logistic mixture (Salimans et al. 2017,
  arXiv:1701.05517) per pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models import register
from models.base import Capabilities, GenerativeModel, Textbook
from models.fields import Range, check_fields
from models.imaging import BINS, DiscretizedLogisticMixture, dmol_param_count, to_centered

# The taxonomy's row for this family (README; bench/verdicts.py tests it).
TEXTBOOK = Textbook(likelihood="exact", sampling="slow", sampling_text="slow (sequential)",
                    training="stable", claims=("T1", "T5", "T7", "T15"))


@dataclass
class MADEConfig:
    """Options of :class:`MADE`.

    Attributes:
        hidden: width of the masked hidden layers.
        layers: number of masked hidden layers.
        components: Gaussian components K per conditional.
        min_log_scale: floor on each component's log standard deviation (log of data units).

    Raises:
        ValueError: a value outside its declared range (:func:`models.fields.check_fields`).
    """

    hidden: Annotated[int, Range(ge=1, le=4096)] = 128
    layers: Annotated[int, Range(ge=1, le=64)] = 2
    components: Annotated[int, Range(ge=1, le=100)] = 10
    min_log_scale: Annotated[float, Range(ge=-20, le=0)] = -7.0

    def __post_init__(self):
        check_fields(self)


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
    textbook = TEXTBOOK
    # test size (tests/test_contract.py)
    tiny = {"hidden": 16, "components": 3}
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

    def generate_nfe(self) -> int:
        return self.data_shape[0]

    def generate(self, n: int, generator: torch.Generator | None = None) -> Tensor:
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


# =========================================================================== images
@dataclass
class PixelCNNConfig:
    """Options of :class:`GatedPixelCNN`.

    Attributes:
        channels: feature maps p of each stack (the gates see 2p).
        layers: gated layers after the first one.
        kernel: kernel size k of those layers (odd, 3 to 15): the vertical stack uses
            (k//2 + 1) x k, the horizontal one 1 x (k//2 + 1).
        first_kernel: kernel size of the first gated layer (odd, 3 to 15; van den Oord et al.: 7).
        head_channels: width of the 1x1-conv output head.
        output: ``"softmax"`` (256-way, needs C == 1), ``"dmol"`` (discretized logistic
            mixture with PixelCNN++'s channel coupling, any C) or ``"auto"`` (softmax
            for C == 1, dmol otherwise).
        components: mixture components K of ``"dmol"``.
        min_log_scale: floor on the dmol log-scales (centered [-1, 1] pixel scale).

    Raises:
        ValueError: a value outside its declared range or choices, or an even kernel size.
    """

    channels: Annotated[int, Range(ge=1, le=512)] = 64
    layers: Annotated[int, Range(ge=0, le=64)] = 10
    kernel: Annotated[int, Range(ge=3, le=15)] = 3
    first_kernel: Annotated[int, Range(ge=3, le=15)] = 7
    head_channels: Annotated[int, Range(ge=1, le=2048)] = 256
    output: Literal["auto", "softmax", "dmol"] = "auto"
    components: Annotated[int, Range(ge=1, le=100)] = 10
    min_log_scale: Annotated[float, Range(ge=-20, le=0)] = -7.0

    def __post_init__(self):
        check_fields(self)
        for name in ("kernel", "first_kernel"):
            k = getattr(self, name)
            if k % 2 == 0:
                raise ValueError(f"{name}: {k} is not allowed (must be odd: the causal crop keeps k // 2 rows "
                                 "above and columns left)")


class GatedLayer(nn.Module):
    """One Gated PixelCNN layer: vertical and horizontal stacks, no blind spot.

    Reference: van den Oord et al. 2016, arXiv:1606.05328, Fig. 2. Causality comes from
    padding and cropping rather than weight masks:

    * vertical stack: a (k//2 + 1) x k conv over rows [i - k//2, i]; it may see its own
      row because the horizontal stack only receives it shifted down by one row;
    * horizontal stack: a 1 x (k//2 + 1) conv over columns [j - k//2, j], or, in the
      first layer, a 1 x k//2 conv over [j - k//2, j - 1] (excluding pixel j itself,
      all channels: mask "A");
    * gates tanh(a) * sigmoid(b) on both stacks; a 1x1 conv carries the vertical
      stack into the horizontal one; residual connection on the horizontal stack
      (not in the first layer, whose input is the image).

    ``forward(v, h)`` takes and returns two (N, c, H, W) maps.
    """

    def __init__(self, c_in: int, c: int, k: int, first: bool):
        super().__init__()
        self.r, self.first = k // 2, first
        self.v_conv = nn.Conv2d(c_in, 2 * c, (self.r + 1, k))
        self.h_conv = nn.Conv2d(c_in, 2 * c, (1, self.r if first else self.r + 1))
        self.v_to_h = nn.Conv2d(2 * c, 2 * c, 1)
        self.h_out = nn.Conv2d(c, c, 1)

    @staticmethod
    def _gate(a: Tensor) -> Tensor:
        u, g = a.chunk(2, dim=1)
        return torch.tanh(u) * torch.sigmoid(g)

    def forward(self, v: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        r = self.r
        v_pre = self.v_conv(F.pad(v, (r, r, r, 0)))  # row i sees rows [i - r, i]
        h_pre = self.h_conv(F.pad(h, (r, 0, 0, 0)))  # column j sees [j - r, j]
        if self.first:
            h_pre = h_pre[..., :-1]  # width r kernel: column j sees [j - r, j - 1]
        v_down = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]  # row i receives row i - 1
        h_new = self.h_out(self._gate(h_pre + self.v_to_h(v_down)))
        return self._gate(v_pre), h_new if self.first else h + h_new


@register("autoregressive", modality="image")
class GatedPixelCNN(GenerativeModel):
    """Gated PixelCNN: exact log-likelihood of 8-bit images, H*W-pass sampling.

    References: van den Oord et al., "Conditional Image Generation with PixelCNN
    Decoders", 2016, arXiv:1606.05328 (gated layers, vertical/horizontal stacks);
    Salimans et al., "PixelCNN++", 2017, arXiv:1701.05517 (discretized logistic
    mixture with linear channel coupling).

    Pixels are generated in raster order; the C channels of a pixel are drawn jointly
    (softmax for C == 1, or the coupled mixture), so one network pass per pixel. The
    network input is the image on the centered scale [-1, 1]. Any H, W >= 1 works.

    Banded sampling: the output at row i depends only on input rows
    [i - R, i] (R = :attr:`receptive_rows`), so while sampling row i the network runs
    on that band alone. The result equals running it on the whole image.

    Example:
        >>> m = GatedPixelCNN(PixelCNNConfig(channels=8, layers=2), (1, 8, 8))
        >>> m.log_prob(torch.zeros(2, 1, 8, 8, dtype=torch.uint8)).shape
        torch.Size([2])
    """

    reference = "van den Oord et al. 2016, arXiv:1606.05328; Salimans et al. 2017, arXiv:1701.05517"
    textbook = TEXTBOOK
    # test size (tests/test_contract.py)
    tiny = {"channels": 8, "layers": 2, "first_kernel": 3, "head_channels": 16, "components": 2}
    Config = PixelCNNConfig
    capabilities = Capabilities(sample=True, log_prob=True)
    train_defaults = {"lr": 1e-3, "grad_clip": 1.0}

    @classmethod
    def check_data_shape(cls, config: PixelCNNConfig, data_shape: tuple[int, ...]) -> None:
        """``output: softmax`` models one channel: refused for data with C > 1."""
        if config.output == "softmax" and data_shape[0] != 1:
            raise ValueError(f"output: 'softmax' is not allowed (it models one channel and the data has C = "
                             f"{data_shape[0]}: use 'dmol' or 'auto')")

    def __init__(self, config: PixelCNNConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        C = self.data_shape[0]
        output = config.output if config.output != "auto" else ("softmax" if C == 1 else "dmol")
        self.output = output
        c = config.channels
        self.layers = nn.ModuleList(
            [GatedLayer(C, c, config.first_kernel, first=True)]
            + [GatedLayer(c, c, config.kernel, first=False) for _ in range(config.layers)]
        )
        n_out = BINS if output == "softmax" else dmol_param_count(C, config.components)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(c, config.head_channels, 1), nn.ReLU(),
                                  nn.Conv2d(config.head_channels, n_out, 1))

    @property
    def receptive_rows(self) -> int:
        """R: the output at row i depends on input rows [i - R, i] only.

        The vertical stack reaches first_kernel//2 + layers * kernel//2 rows up, plus
        one row for the shift into the horizontal stack.
        """
        c = self.config
        return c.first_kernel // 2 + c.layers * (c.kernel // 2) + 1

    def network(self, xc: Tensor) -> Tensor:
        """Per-pixel output parameters (N, P, h, W) for centered pixels ``xc`` (N, C, h, W).

        P = 256 logits (softmax) or the mixture parameters (dmol). Output at (i, j)
        depends only on pixels before (i, j) in raster order.
        """
        v = h = xc
        for layer in self.layers:
            v, h = layer(v, h)
        return self.head(h)

    def _pixel_log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """log P(x_ij | x_<ij) summed over channels, (N, H, W), nats, in float32."""
        if self.output == "softmax":
            logp = F.log_softmax(params.float(), dim=1)
            return logp.gather(1, x.long())[:, 0]
        C = self.data_shape[0]
        return DiscretizedLogisticMixture(params, C, self.config.components, self.config.min_log_scale).log_prob(x)

    def log_prob(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Exact log P(x) in nats, (N,), for uint8 images x (N, C, H, W)."""
        return self._pixel_log_prob(x, self.network(to_centered(x))).sum((1, 2))

    def loss(self, x: Tensor) -> Tensor:
        """Mean NLL in nats per dimension (bits/dim times ln 2)."""
        return -self.log_prob(x).mean() / x[0].numel()

    def generate_nfe(self) -> int:
        _, H, W = self.data_shape
        return H * W

    def _draw(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        """One pixel (n, C) uint8 from its parameters (n, P)."""
        if self.output == "softmax":
            return torch.multinomial(F.softmax(params.float(), dim=-1), 1, generator=generator).to(torch.uint8)
        C = self.data_shape[0]
        mix = DiscretizedLogisticMixture(params[:, :, None, None], C, self.config.components,
                                         self.config.min_log_scale)
        return mix.sample(generator)[:, :, 0, 0]

    def generate(self, n: int, generator: torch.Generator | None = None, band: bool = True) -> Tensor:
        """(n, C, H, W) uint8 samples, one pixel at a time in raster order (H*W network passes).

        Args:
            n: number of images.
            generator: source of all randomness.
            band: run the network on rows [i - R, i] only while sampling row i (exactly
                equal to ``band=False``, which runs it on the whole image; faster).
        """
        C, H, W = self.data_shape
        x = torch.zeros(n, C, H, W, dtype=torch.uint8, device=self.device)
        R = self.receptive_rows
        for i in range(H):
            top = max(0, i - R) if band else 0
            rows = x[:, :, top : i + 1] if band else x
            for j in range(W):
                params = self.network(to_centered(rows))[:, :, i - top, j]
                x[:, :, i, j] = self._draw(params, generator)
        return x
