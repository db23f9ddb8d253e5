"""Building blocks shared by the image families: pixel maps, discrete likelihoods, a ResNet block.

Pixels are uint8 tensors of shape (N, C, H, W) with values 0..255 (see
:mod:`models.base`). Families work in one of three float ranges:

* centered, [-1, 1]: pixel k sits at k / 127.5 - 1, the centre of a bin of width
  2/255 (PixelCNN++, improved-diffusion); :func:`to_centered`, :func:`from_centered`.
* unit, [0, 1]: pixel k sits at k / 255 (NCSN, Du & Mordatch's EBM); :func:`to_unit`,
  :func:`from_unit`.
* dequantized, [0, 256): pixel k is spread uniformly over [k, k + 1) (RealNVP, Glow);
  :func:`dequantize`, :func:`quantize`.

The discretized likelihoods return log P(x) of the 8-bit value, in nats per
dimension; they are exact probability mass functions over the 256 bins (the two
edge bins take the tails), evaluated in log space without clamping, so that sums
of them are valid lower bounds or exact log-likelihoods.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.base import require
from models.fields import FieldConflict, Length, Range

BINS = 256
LN2 = math.log(2.0)


# --------------------------------------------------------------------------- pixel maps
def to_centered(x: Tensor) -> Tensor:
    """uint8 pixels (any shape) -> float32 in [-1, 1], pixel k at k / 127.5 - 1."""
    return x.float() / 127.5 - 1.0


def from_centered(y: Tensor) -> Tensor:
    """Float in [-1, 1] -> uint8 pixels: the nearest bin centre k / 127.5 - 1, clamped to 0..255."""
    return ((y.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def to_unit(x: Tensor) -> Tensor:
    """uint8 pixels (any shape) -> float32 in [0, 1], pixel k at k / 255."""
    return x.float() / 255.0


def from_unit(y: Tensor) -> Tensor:
    """Float in [0, 1] -> uint8 pixels: round(255 y), clamped to 0..255."""
    return (y.float() * 255.0).round().clamp(0, 255).to(torch.uint8)


def dequantize(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Uniform dequantization: uint8 pixels k -> k + u, u ~ U[0, 1), float32 in [0, 256).

    Theis et al. 2016 (arXiv:1511.01844): for any density p on [0, 256)^D,
    E_u log p(x + u) <= log P(x) with P(x) the mass p puts on x's unit cube.
    """
    u = torch.rand(x.shape, device=x.device, generator=generator)
    return x.float() + u


def quantize(v: Tensor) -> Tensor:
    """Dequantized values in [0, 256) -> uint8 pixels: floor, clamped to 0..255."""
    return v.floor().clamp(0, 255).to(torch.uint8)


def bits_per_dim(log_prob: Tensor, dims: int) -> Tensor:
    """Bits/dim = -log P / (dims ln 2) for log-likelihoods ``log_prob`` in nats (any shape).

    A uniform model over the 256 levels (log P = -dims ln 256) gives exactly 8.
    """
    return -log_prob / (dims * LN2)


# --------------------------------------------------------------------------- discrete likelihoods
def _log1mexp(d: Tensor) -> Tensor:
    """log(1 - exp(-d)) for d > 0; floored at the smallest normal float so gradients stay finite."""
    return torch.log((-torch.expm1(-d)).clamp_min(torch.finfo(d.dtype).tiny))


def _log_sub_sigmoid(b: Tensor, a: Tensor) -> Tensor:
    """log(sigmoid(b) - sigmoid(a)) for a < b, stable in both tails.

    sigmoid(b) - sigmoid(a) = sigmoid(b) sigmoid(-a) (1 - exp(-(b - a))).
    """
    return F.logsigmoid(b) + F.logsigmoid(-a) + _log1mexp(b - a)


def _log_sub_ndtr(b: Tensor, a: Tensor) -> Tensor:
    """log(Phi(b) - Phi(a)) for a < b, Phi the standard normal CDF, stable in both tails.

    Uses Phi(b) - Phi(a) = Phi(-a) - Phi(-b) to stay in the lower tail, where log_ndtr
    is accurate, and log(Phi(b) - Phi(a)) = log Phi(b) + log(1 - exp(log Phi(a) - log Phi(b))).
    """
    flip = a > 0
    hi, lo = torch.where(flip, -a, b), torch.where(flip, -b, a)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return log_hi + _log1mexp(log_hi - log_lo)


def _bin_edges(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Centered bin edges (lower, upper) of uint8 pixels ``x`` and edge-bin masks (k == 0, k == 255).

    Pixel k covers [(2k - 256) / 255, (2k - 254) / 255], computed from integers so that the
    upper edge of k is bit-identical to the lower edge of k + 1 (no gaps, no overlaps).
    """
    k2 = 2 * x.float()
    return (k2 - 256) / 255, (k2 - 254) / 255, x == 0, x == BINS - 1


def discretized_logistic_log_prob(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """log P(x) of uint8 pixels under a discretized logistic, in nats, elementwise.

    Reference: Salimans et al., "PixelCNN++", 2017, arXiv:1701.05517, Eq. 2. The
    logistic(mean, exp(log_scale)) lives on the centered scale; pixel k gets its mass
    on [c_k - 1/255, c_k + 1/255], c_k = k / 127.5 - 1, and pixels 0 and 255 take
    the tails, so the 256 probabilities sum to 1.

    Args:
        x: uint8 pixels, any shape.
        mean, log_scale: float tensors broadcastable to ``x``, on the centered scale.

    Returns:
        float32 log-probabilities (nats) of the shape of ``x`` broadcast with the parameters.
    """
    lo, hi, first, last = _bin_edges(x)
    mean, inv_s = mean.float(), torch.exp(-log_scale.float())
    a, b = (lo - mean) * inv_s, (hi - mean) * inv_s
    return torch.where(first, F.logsigmoid(b), torch.where(last, F.logsigmoid(-a), _log_sub_sigmoid(b, a)))


def discretized_gaussian_log_prob(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """log P(x) of uint8 pixels under a discretized Gaussian, in nats, elementwise.

    The decoder p(x_0 | x_1) of DDPM (Ho et al. 2020, arXiv:2006.11239, Eq. 13) as in
    improved-diffusion's ``discretized_gaussian_log_likelihood`` (Nichol & Dhariwal 2021,
    arXiv:2102.09672): N(mean, exp(log_scale)^2) on the centered scale, bins of width
    2/255, edge bins take the tails. Unlike improved-diffusion it uses the exact normal
    CDF in log space rather than a tanh approximation with probabilities clamped at 1e-12,
    so the 256 probabilities are exact and sum to 1.

    Args:
        x: uint8 pixels, any shape.
        mean, log_scale: float tensors broadcastable to ``x``; ``log_scale`` is log sigma.

    Returns:
        float32 log-probabilities (nats).
    """
    lo, hi, first, last = _bin_edges(x)
    mean, inv_s = mean.float(), torch.exp(-log_scale.float())
    a, b = (lo - mean) * inv_s, (hi - mean) * inv_s
    log_cdf_b, log_sf_a = torch.special.log_ndtr(b), torch.special.log_ndtr(-a)
    return torch.where(first, log_cdf_b, torch.where(last, log_sf_a, _log_sub_ndtr(b, a)))


def dmol_param_count(channels: int, components: int) -> int:
    """Output channels per pixel of a discretized logistic mixture: K * (1 + 2C + C(C-1)/2).

    K logits, K*C means, K*C log-scales and K*C(C-1)/2 channel coupling coefficients
    (PixelCNN++ for C = 3: 10 K).
    """
    return components * (1 + 2 * channels + channels * (channels - 1) // 2)


class DiscretizedLogisticMixture:
    """A per-pixel mixture of discretized logistics with PixelCNN++'s linear channel coupling.

    Reference: Salimans et al., "PixelCNN++", 2017, arXiv:1701.05517, Sec. 2.1-2.2.
    Component k gives channel c the mean mu_kc + sum_{c' < c} a_kcc' x_c' (x on the
    centered scale), so the C channels of a pixel are modelled jointly; the mixture
    weights are shared by the channels of a pixel.

    Args:
        params: (N, dmol_param_count(C, K), H, W) network output, any float dtype.
        channels: C.
        components: K.
        min_log_scale: floor on the log-scales (PixelCNN++: -7).
    """

    def __init__(self, params: Tensor, channels: int, components: int, min_log_scale: float = -7.0):
        n, _, h, w = params.shape
        C, K = channels, components
        p = params.float()
        self.C, self.K = C, K
        self.logits = p[:, :K]  # (N, K, H, W)
        self.mean = p[:, K : K + K * C].reshape(n, K, C, h, w)
        self.log_scale = p[:, K + K * C : K + 2 * K * C].reshape(n, K, C, h, w).clamp(min=min_log_scale)
        self.coeff = torch.tanh(p[:, K + 2 * K * C :].reshape(n, K, C * (C - 1) // 2, h, w))

    def _means(self, xc: Tensor) -> Tensor:
        """Coupled means (N, K, C, H, W) given centered pixels ``xc`` (N, C, H, W)."""
        means = [self.mean[:, :, 0]]
        j = 0
        for c in range(1, self.C):
            m = self.mean[:, :, c]
            for c_prev in range(c):
                m = m + self.coeff[:, :, j] * xc[:, None, c_prev]
                j += 1
            means.append(m)
        return torch.stack(torch.broadcast_tensors(*means), dim=2)

    def log_prob(self, x: Tensor) -> Tensor:
        """log P(pixel) summed over the C channels, in nats, (N, H, W), for uint8 ``x`` (N, C, H, W)."""
        means = self._means(to_centered(x))
        per_channel = discretized_logistic_log_prob(x[:, None], means, self.log_scale).sum(2)
        return torch.logsumexp(F.log_softmax(self.logits, dim=1) + per_channel, dim=1)

    def mode(self) -> Tensor:
        """A deterministic decode, uint8 (N, C, H, W): per pixel the most probable component's
        location, each channel given the earlier ones, snapped to the nearest bin."""
        n, _, h, w = self.logits.shape
        k = self.logits.argmax(1).reshape(n, 1, 1, h, w)
        pick = lambda t: t.gather(1, k.expand(n, 1, t.shape[2], h, w))[:, 0]  # noqa: E731
        return self._channels(pick(self.mean), pick(self.coeff))

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """One uint8 draw (N, C, H, W): a component, then each channel given the earlier ones.

        Rounding a logistic draw to the nearest bin centre (edge bins taking the tails)
        is an exact draw from the discretized logistic.
        """
        n, _, h, w = self.logits.shape
        probs = F.softmax(self.logits, dim=1).permute(0, 2, 3, 1).reshape(-1, self.K)
        k = torch.multinomial(probs, 1, generator=generator).reshape(n, 1, 1, h, w)
        pick = lambda t: t.gather(1, k.expand(n, 1, t.shape[2], h, w))[:, 0]  # noqa: E731
        mean, log_scale, coeff = pick(self.mean), pick(self.log_scale), pick(self.coeff)
        u = torch.rand(mean.shape, device=mean.device, generator=generator).clamp(1e-5, 1 - 1e-5)
        noise = torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))  # logistic(0, s)
        return self._channels(mean, coeff, noise)

    def _channels(self, mean: Tensor, coeff: Tensor, noise: Tensor | None = None) -> Tensor:
        """uint8 (N, C, H, W) from one component's per-pixel ``mean`` (N, C, H, W) and channel
        coefficients, channel by channel: each value (plus its ``noise``, if drawn) snapped to the
        bin centre, so later channels condition on the value actually produced."""
        out: list[Tensor] = []
        j = 0
        for c in range(self.C):
            m = mean[:, c]
            for c_prev in range(c):
                m = m + coeff[:, j] * out[c_prev]
                j += 1
            if noise is not None:
                m = m + noise[:, c]
            out.append(to_centered(from_centered(m)))
        return from_centered(torch.stack(out, dim=1))


# --------------------------------------------------------------------------- networks
class ResBlock(nn.Module):
    """Pre-activation residual block: x + conv3x3(act(conv3x3(act(x)))), shape preserving.

    Reference: He et al., "Identity Mappings in Deep Residual Networks", 2016,
    arXiv:1603.05027. Optional GroupNorm before each activation.

    Args:
        channels: input and output channels.
        act: activation class (default SiLU).
        groups: GroupNorm groups; 0 disables normalization.
    """

    def __init__(self, channels: int, act: type[nn.Module] = nn.SiLU, groups: int = 0):
        super().__init__()
        norm = (lambda: nn.GroupNorm(groups, channels)) if groups else nn.Identity
        self.body = nn.Sequential(
            norm(), act(), nn.Conv2d(channels, channels, 3, padding=1),
            norm(), act(), nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def check_divisible(data_shape: tuple[int, ...], factor: int, what: str) -> None:
    """Raise ValueError unless H and W of ``data_shape`` (C, H, W) are divisible by ``factor``."""
    if len(data_shape) != 3:
        raise ValueError(f"image data_shape must be (C, H, W), got {data_shape}")
    _, h, w = data_shape
    if h % factor or w % factor:
        raise ValueError(f"{what} needs H and W divisible by {factor}, got data_shape {tuple(data_shape)}")


def check_halvings(data_shape: tuple[int, ...], halvings: int, field: str, value: object) -> None:
    """Refuse a config whose ``halvings`` stride-2 stages (set by ``field`` = ``value``) do not divide the
    data's H and W: they must be divisible by 2^halvings.

    Raises:
        ValueError: ``"<field>: <value> is not allowed (...)"`` naming the data's shape (C, H, W).
    """
    _, h, w = data_shape
    if h % 2**halvings or w % 2**halvings:
        shown = list(value) if isinstance(value, tuple) else value
        raise ValueError(f"{field}: {shown!r} is not allowed ({halvings} halvings of H and W need them divisible by "
                         f"2^{halvings} = {2**halvings}; the data is {h} x {w})")


# U-Net widths per level, highest resolution first (the image diffusion and score families)
UNetChannels = Annotated[tuple[Annotated[int, Range(ge=1, le=512)], ...], Length(ge=1, le=6)]


def check_norm_groups(config) -> None:
    """GroupNorm needs ``norm_groups`` to divide every U-Net width (``channels``).

    Raises:
        FieldConflict: naming ``norm_groups`` and ``channels``.
    """
    if any(c % config.norm_groups for c in config.channels):
        shown = list(config.channels)
        raise FieldConflict({
            "norm_groups": f"{config.norm_groups} is not allowed (must divide every entry of channels = {shown})",
            "channels": f"{shown} is not allowed (every entry must be divisible by norm_groups = "
                        f"{config.norm_groups})"})


def check_unet_shape(config, data_shape: tuple[int, ...]) -> None:
    """A U-Net with L levels downsamples L - 1 times: H and W must be divisible by 2 ** (len(channels) - 1)."""
    check_halvings(data_shape, len(config.channels) - 1, "channels", config.channels)


def unet(channels: int, data_shape: tuple[int, ...], block_channels: tuple[int, ...], layers_per_block: int,
         attention: bool, norm_groups: int, dropout: float = 0.0, attention_head_dim: int = 32,
         num_classes: int | None = None) -> nn.Module:
    """A diffusers ``UNet2DModel`` mapping (N, C, H, W) and a timestep (N,) to (N, C, H, W).

    Reference: Ronneberger et al. 2015 (U-Net), in the DDPM form of Ho et al. 2020,
    arXiv:2006.11239 (ResNet blocks, GroupNorm, sinusoidal time embedding).

    With ``num_classes`` = K the U-Net is class-conditional: diffusers' class embedding (K + 1 rows, row K the
    null label of classifier-free guidance) is added to the time embedding, and every ResNet block applies it
    by adaptive group normalization, GroupNorm(h) * (1 + scale) + shift with (scale, shift) a linear map of the
    embedding (``resnet_time_scale_shift="scale_shift"``; FiLM, Perez et al. 2018, arXiv:1709.07871; AdaGN,
    Dhariwal & Nichol 2021, arXiv:2105.05233). Call it with ``class_labels`` int64 (N,) in [0, K].

    Args:
        channels: C, input and output channels.
        data_shape: (C, H, W); H and W must be divisible by 2 ** (len(block_channels) - 1).
        block_channels: feature maps per resolution level, highest resolution first.
        layers_per_block: ResNet blocks per level.
        attention: self-attention at the lowest resolution level and in the middle block.
        norm_groups: GroupNorm groups; must divide every entry of ``block_channels``.
        dropout: dropout in the ResNet blocks.
        attention_head_dim: channels per attention head (at most the lowest level's width).

    Raises:
        ValueError: H or W not divisible, or ``norm_groups`` does not divide the widths.
    """
    UNet2DModel = require("diffusers", "the image diffusion and score families (UNet2DModel)").UNet2DModel

    check_divisible(tuple(data_shape), 2 ** (len(block_channels) - 1), f"a UNet with {len(block_channels)} levels")
    if any(c % norm_groups for c in block_channels):
        raise ValueError(f"norm_groups {norm_groups} must divide every block width {tuple(block_channels)}")
    n = len(block_channels)
    down, up = ["DownBlock2D"] * n, ["UpBlock2D"] * n
    if attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=tuple(data_shape[1:]), in_channels=channels, out_channels=channels,
        block_out_channels=tuple(block_channels), layers_per_block=layers_per_block,
        down_block_types=tuple(down), up_block_types=tuple(up), add_attention=attention,
        norm_num_groups=norm_groups, dropout=dropout, attention_head_dim=min(attention_head_dim, block_channels[-1]),
        **({"num_class_embeds": num_classes + 1, "resnet_time_scale_shift": "scale_shift"} if num_classes else {}),
    )
