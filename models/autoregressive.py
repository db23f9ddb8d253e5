"""Autoregressive family: MADE for vectors, Gated PixelCNN for images.

p(x) = prod_d p(x_d | x_<d), with every conditional computed by one masked network
pass, so the log-likelihood is exact and cheap while sampling is sequential: one
network pass per dimension (vectors) or per pixel (images).

* vector: MADE (Germain et al. 2015, arXiv:1502.03509) with K-component Gaussian
  mixture conditionals.
* image: Gated PixelCNN (van den Oord et al. 2016, arXiv:1606.05328) with a 256-way
  softmax or PixelCNN++'s discretized logistic mixture (Salimans et al. 2017,
  arXiv:1701.05517) per pixel.

Class-conditional forms (``num_classes`` = K): MADE gets the label as a context input of degree 0, seen by every
hidden unit of its first layer and directly by every output (the first coordinate's conditional has no hidden
unit to see it through; Germain et al. 2015, Sec. 4); the PixelCNN is the conditional PixelCNN of van den
Oord et al. 2016 (Eq. 4: a class-dependent bias V^T h on every gate). Training drops the label with probability
``p_uncond``, so the model gives p(x_d | x_<d, c) and p(x_d | x_<d), and sampling can guide each conditional in
log-probability ("logit") space: p~(x_d | x_<d, c) ∝ p(x_d | x_<d, c)^(1+w) p(x_d | x_<d)^(-w).
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
from models.imaging import (
    BINS,
    DiscretizedLogisticMixture,
    discretized_logistic_log_prob,
    dmol_param_count,
    to_centered,
)
from models.nets import one_hot
from models.samplers import guided

_NumClasses = Annotated[int, Range(ge=2, le=100_000)]
_PUncond = Annotated[float, Range(ge=0, lt=1)]

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
        num_classes: number of classes for a class-conditional model (a one-hot context input to the first
            hidden layer and to the outputs); ``None``: unconditional.
        p_uncond: probability that training drops a label (the null label), for classifier-free guidance.
        guidance_grid: points of the 1D grid on which a guided conditional
            p(x_d | x_<d, c)^(1+w) p(x_d | x_<d)^(-w) is normalized and sampled (per sample and dimension,
            spanning the conditional mixture's components' means ± 8 standard deviations).

    Raises:
        ValueError: a value outside its declared range (:func:`models.fields.check_fields`).
    """

    hidden: Annotated[int, Range(ge=1, le=2048)] = 128
    layers: Annotated[int, Range(ge=1, le=64)] = 2
    components: Annotated[int, Range(ge=1, le=100)] = 10
    min_log_scale: Annotated[float, Range(ge=-20, le=0)] = -7.0
    num_classes: _NumClasses | None = None
    p_uncond: _PUncond = 0.1
    guidance_grid: Annotated[int, Range(ge=16, le=1_000_000)] = 512

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
    capabilities = Capabilities(sample=True, log_prob=True, conditional=True, guidance=True)
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
        if config.num_classes:  # the label is a context input of degree 0: every hidden unit and output may see it
            self.context = nn.Linear(config.num_classes + 1, H, bias=False)
            self.context_out = nn.Linear(config.num_classes + 1, D * 3 * K, bias=False)  # x_1's output sees no unit

    def _params(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Mixture logits, means and log-scales, each (N, D, K); a conditional model takes labels y (N,) in
        [0, K] (K, the null label, for ``y=None``)."""
        (D,) = self.data_shape
        if self.num_classes is None:
            h = self.net(x)
        else:
            if y is None:
                y = torch.full((x.shape[0],), self.null_label, dtype=torch.long, device=x.device)
            c = one_hot(y, self.num_classes + 1)
            h = self.net[-1](self.net[1:-1](self.net[0](x) + self.context(c))) + self.context_out(c)
        h = h.view(x.shape[0], D, self.config.components, 3)
        log_scale = h[..., 2].clamp(min=self.config.min_log_scale)
        return h[..., 0], h[..., 1], log_scale

    @staticmethod
    def _mixture_log_pdf(pts: Tensor, logits: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
        """log sum_k softmax(logits)_k N(pts; mean_k, exp(log_scale_k)^2) for points pts (N, ...) and mixture
        parameters (N, ..., K) (nats)."""
        z = (pts[..., None] - mean) * torch.exp(-log_scale)
        log_normal = -0.5 * z**2 - log_scale - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(F.log_softmax(logits, dim=-1) + log_normal, dim=-1)

    def log_prob(self, x: Tensor, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        """Exact log p(x) in nats, (N,), for x of shape (N, D); log p(x|y) given labels ``y`` (int64 (N,)), and
        for a conditional model with ``y=None`` the marginal log sum_c pi_c p(x|c) (:meth:`marginal`)."""
        y = self.check_labels(y, len(x))
        if self.conditional and y is None:
            return self.marginal(lambda yc: self.log_prob(x, y=yc), len(x))
        return self._log_prob(x, y)

    def _log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """log p(x | y) in nats, (N,), labels y in [0, K] unchecked (K: the null label, p(x))."""
        logits, mean, log_scale = self._params(x, y)
        return self._mixture_log_pdf(x, logits, mean, log_scale).sum(-1)

    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Mean NLL in nats; a conditional model needs the labels ``y`` (int64 (B,)), each dropped to the null
        label with probability ``p_uncond``.

        Raises:
            ValueError: a conditional model without labels, or bad labels.
        """
        y = self.check_labels(y, len(x))
        if self.conditional and y is None:
            raise ValueError("a conditional autoregressive model trains on labels: loss(x, y)")
        return -self.log_prob(x).mean() if y is None else -self._log_prob(x, self.drop_labels(y)).mean()

    def generate_nfe(self) -> int:
        return self.data_shape[0]

    def _tilted_draw(self, cond: tuple[Tensor, Tensor, Tensor], uncond: tuple[Tensor, Tensor, Tensor], w: float,
                     generator: torch.Generator | None, log_post: Tensor) -> tuple[Tensor, Tensor]:
        """One coordinate (n,) from p~ ∝ p_c^(1+w) p_u'^(-w), each p a 1D Gaussian mixture given as (logits, mean,
        log-scale), each (n, K), and the log-ratio log p_c(x_d) - log p_u'(x_d) at the drawn value (n,).

        p_u' = max(p_u, P(c | x_<d) p_c) is the unconditional conditional floored at the bound the true one obeys,
        p(x_d | x_<d) = sum_k P(k | x_<d) p(x_d | x_<d, k) >= P(c | x_<d) p(x_d | x_<d, c), with the model's own
        posterior P(c | x_<d) (``log_post``, (n,), nats: log pi_c plus the log-ratios of the coordinates drawn so
        far). Learned mixtures break that bound in their tails, where p_c^(1+w) / p_u^w then grows without limit and
        draws the samples away from every class; with the floor p_c / p_u' <= 1 / P(c | x_<d). The density is
        normalized on ``guidance_grid`` cells spanning the conditional mixture's components (mean ± 8 standard
        deviations; components of weight below 1e-3 left out), a cell is drawn from it, then a uniform point in it.
        """
        logits, mean, log_scale = cond
        keep = F.softmax(logits, dim=-1) > 1e-3
        r = 8 * torch.exp(log_scale)
        inf = torch.full_like(mean, math.inf)
        lo, hi = torch.where(keep, mean - r, inf).amin(-1), torch.where(keep, mean + r, -inf).amax(-1)
        G = self.config.guidance_grid
        width = (hi - lo)[:, None]
        pts = lo[:, None] + width * (torch.arange(G, device=lo.device) + 0.5) / G  # (n, G) cell midpoints
        floor = log_post.clamp(max=0.0)[:, None]
        log_c = self._mixture_log_pdf(pts, *(p[:, None] for p in cond))
        log_u = torch.maximum(self._mixture_log_pdf(pts, *(p[:, None] for p in uncond)), floor + log_c)
        cell = torch.multinomial(F.softmax(guided(log_c, log_u, w), dim=-1), 1, generator=generator)[:, 0]
        u = torch.rand(len(lo), device=lo.device, generator=generator)
        x = lo + (hi - lo) * (cell + u) / G
        at_c = self._mixture_log_pdf(x[:, None], *(p[:, None] for p in cond))[:, 0]
        at_u = torch.maximum(self._mixture_log_pdf(x[:, None], *(p[:, None] for p in uncond))[:, 0],
                             floor[:, 0] + at_c)
        return x, at_c - at_u

    def generate(self, n: int, generator: torch.Generator | None = None, y: Tensor | None = None,
                 guidance: float = 0.0) -> Tensor:
        """(n, D) samples, drawn one dimension at a time (D sequential network passes); given labels ``y`` for a
        conditional model, and with ``guidance`` w > 0 each conditional guided in log-density space,
        p~(x_d | x_<d, c) ∝ p(x_d | x_<d, c)^(1+w) p(x_d | x_<d)^(-w), sampled on a 1D grid, the unconditional
        factor floored at P(c | x_<d) p(x_d | x_<d, c) (:meth:`_tilted_draw`; both passes in one batch of 2n)."""
        if guidance and y is None:
            raise ValueError("guidance needs labels y")
        (D,) = self.data_shape
        x = torch.zeros(n, D, device=self.device)
        rows = torch.arange(n, device=x.device)
        null = None if y is None else torch.full_like(y, self.null_label)
        log_post = None if y is None else self.label_prior.log()[y]  # log P(c | x_<d), the model's posterior
        for d in range(D):
            if guidance:
                both = self._params(torch.cat([x, x]), torch.cat([y, null]))
                cond, uncond = zip(*(p[:, d].chunk(2) for p in both))
                x[:, d], ratio = self._tilted_draw(cond, uncond, guidance, generator, log_post)
                log_post = log_post + ratio
                continue
            logits, mean, log_scale = self._params(x) if y is None else self._params(x, y)
            k = torch.multinomial(F.softmax(logits[:, d], dim=-1), 1, generator=generator)[:, 0]
            eps = torch.randn(n, device=x.device, generator=generator)
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
        num_classes: number of classes for a class-conditional PixelCNN (a class-dependent bias on every gate,
            van den Oord et al. 2016, Eq. 4); ``None``: unconditional.
        p_uncond: probability that training drops a label (the null label), for classifier-free guidance.

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
    num_classes: _NumClasses | None = None
    p_uncond: _PUncond = 0.1

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
      (not in the first layer, whose input is the image);
    * with ``num_classes`` = K, the conditional PixelCNN's class bias (Eq. 4): a learned vector per label
      (K + 1 rows, row K the null label) added to both stacks' gate inputs, the same at every position.

    ``forward(v, h, y=None)`` takes and returns two (N, c, H, W) maps (labels y (N,) for a conditional layer).
    """

    def __init__(self, c_in: int, c: int, k: int, first: bool, num_classes: int | None = None):
        super().__init__()
        self.r, self.first = k // 2, first
        self.v_conv = nn.Conv2d(c_in, 2 * c, (self.r + 1, k))
        self.h_conv = nn.Conv2d(c_in, 2 * c, (1, self.r if first else self.r + 1))
        self.v_to_h = nn.Conv2d(2 * c, 2 * c, 1)
        self.h_out = nn.Conv2d(c, c, 1)
        if num_classes:
            self.v_label, self.h_label = nn.Embedding(num_classes + 1, 2 * c), nn.Embedding(num_classes + 1, 2 * c)
            for e in (self.v_label, self.h_label):  # start near the unconditional model
                nn.init.normal_(e.weight, std=0.01)

    @staticmethod
    def _gate(a: Tensor) -> Tensor:
        u, g = a.chunk(2, dim=1)
        return torch.tanh(u) * torch.sigmoid(g)

    def forward(self, v: Tensor, h: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r = self.r
        v_pre = self.v_conv(F.pad(v, (r, r, r, 0)))  # row i sees rows [i - r, i]
        h_pre = self.h_conv(F.pad(h, (r, 0, 0, 0)))  # column j sees [j - r, j]
        if self.first:
            h_pre = h_pre[..., :-1]  # width r kernel: column j sees [j - r, j - 1]
        if y is not None:  # the class bias V^T h of Eq. 4, the same at every position
            v_pre = v_pre + self.v_label(y)[:, :, None, None].to(v_pre.dtype)
            h_pre = h_pre + self.h_label(y)[:, :, None, None].to(h_pre.dtype)
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
    capabilities = Capabilities(sample=True, log_prob=True, conditional=True, guidance=True)
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
        K = config.num_classes
        self.layers = nn.ModuleList(
            [GatedLayer(C, c, config.first_kernel, first=True, num_classes=K)]
            + [GatedLayer(c, c, config.kernel, first=False, num_classes=K) for _ in range(config.layers)]
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

    def network(self, xc: Tensor, y: Tensor | None = None) -> Tensor:
        """Per-pixel output parameters (N, P, h, W) for centered pixels ``xc`` (N, C, h, W) (and labels y (N,) in
        [0, K] for a conditional model; ``None``: the null label K).

        P = 256 logits (softmax) or the mixture parameters (dmol). Output at (i, j)
        depends only on pixels before (i, j) in raster order.
        """
        if self.num_classes is not None and y is None:
            y = torch.full((xc.shape[0],), self.null_label, dtype=torch.long, device=xc.device)
        v = h = xc
        for layer in self.layers:
            v, h = layer(v, h) if y is None else layer(v, h, y)
        return self.head(h)

    def _pixel_log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """log P(x_ij | x_<ij) summed over channels, (N, H, W), nats, in float32."""
        if self.output == "softmax":
            logp = F.log_softmax(params.float(), dim=1)
            return logp.gather(1, x.long())[:, 0]
        C = self.data_shape[0]
        return DiscretizedLogisticMixture(params, C, self.config.components, self.config.min_log_scale).log_prob(x)

    def log_prob(self, x: Tensor, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        """Exact log P(x) in nats, (N,), for uint8 images x (N, C, H, W); log P(x|y) given labels ``y`` (int64
        (N,)), and for a conditional model with ``y=None`` the marginal log sum_c pi_c P(x|c) (:meth:`marginal`)."""
        y = self.check_labels(y, len(x))
        if self.conditional and y is None:
            return self.marginal(lambda yc: self.log_prob(x, y=yc), len(x))
        return self._pixel_log_prob(x, self.network(to_centered(x), y)).sum((1, 2))

    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Mean NLL in nats per dimension (bits/dim times ln 2); a conditional model needs the labels ``y``
        (int64 (B,)), each dropped to the null label with probability ``p_uncond``.

        Raises:
            ValueError: a conditional model without labels, or bad labels.
        """
        y = self.check_labels(y, len(x))
        if self.conditional and y is None:
            raise ValueError("a conditional PixelCNN trains on labels: loss(x, y)")
        nll = -self.log_prob(x) if y is None else \
            -self._pixel_log_prob(x, self.network(to_centered(x), self.drop_labels(y))).sum((1, 2))
        return nll.mean() / x[0].numel()

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

    def _draw_guided(self, cond: Tensor, uncond: Tensor, w: float, generator: torch.Generator | None) -> Tensor:
        """One pixel (n, C) uint8 from p~(x_ij | .) ∝ p(x_ij | ., c)^(1+w) p(x_ij | .)^(-w), computed in logit space
        from the conditional and unconditional parameters (n, P): the 256-way log-softmax (softmax output), or
        channel by channel the dmol's 256-bin log-probabilities given the channels already drawn
        (:func:`guided_dmol_draw`)."""
        if self.output == "softmax":
            logits = guided(F.log_softmax(cond.float(), dim=-1), F.log_softmax(uncond.float(), dim=-1), w)
            return torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator).to(torch.uint8)
        C = self.data_shape[0]
        mixes = [DiscretizedLogisticMixture(p[:, :, None, None], C, self.config.components, self.config.min_log_scale)
                 for p in (cond, uncond)]
        return guided_dmol_draw(*mixes, w, generator)

    def generate(self, n: int, generator: torch.Generator | None = None, band: bool = True,
                 y: Tensor | None = None, guidance: float = 0.0) -> Tensor:
        """(n, C, H, W) uint8 samples, one pixel at a time in raster order (H*W network passes).

        Args:
            n: number of images.
            generator: source of all randomness.
            band: run the network on rows [i - R, i] only while sampling row i (exactly
                equal to ``band=False``, which runs it on the whole image; faster).
            y: labels int64 (n,) in [0, K) for a conditional model.
            guidance: classifier-free guidance scale w of each pixel's conditional in logit space
                (:meth:`_draw_guided`); both passes run as one batch of 2n.
        """
        if guidance and y is None:
            raise ValueError("guidance needs labels y")
        C, H, W = self.data_shape
        x = torch.zeros(n, C, H, W, dtype=torch.uint8, device=self.device)
        R = self.receptive_rows
        both = None if not guidance else torch.cat([y, torch.full_like(y, self.null_label)])
        for i in range(H):
            top = max(0, i - R) if band else 0
            rows = x[:, :, top : i + 1] if band else x
            for j in range(W):
                if guidance:
                    cond, uncond = self.network(to_centered(torch.cat([rows, rows])), both)[:, :, i - top, j].chunk(2)
                    x[:, :, i, j] = self._draw_guided(cond, uncond, guidance, generator)
                    continue
                params = (self.network(to_centered(rows)) if y is None else self.network(to_centered(rows), y)
                          )[:, :, i - top, j]
                x[:, :, i, j] = self._draw(params, generator)
        return x


def guided_dmol_draw(cond: DiscretizedLogisticMixture, uncond: DiscretizedLogisticMixture, w: float,
                     generator: torch.Generator | None = None) -> Tensor:
    """One guided draw per pixel from two discretized logistic mixtures of shape (n, ., 1, 1): uint8 (n, C).

    Channel c is drawn from p~(x_c | x_<c) ∝ p_cond(x_c | x_<c)^(1+w) p_uncond(x_c | x_<c)^(-w) over its 256 values,
    each p the mixture's exact conditional: sum_k q_k P_k(x_c | x_<c), with P_k the component's discretized
    logistic (its mean coupled to the channels drawn so far, PixelCNN++'s coupling) and q_k the posterior over
    components given those channels (prior: the mixture weights). w = 0 draws exactly from p_cond.
    """
    values = torch.arange(BINS, device=cond.logits.device, dtype=torch.uint8)
    n = cond.logits.shape[0]
    posts = [F.log_softmax(m.logits[:, :, 0, 0].float(), dim=1) for m in (cond, uncond)]  # (n, K) each
    drawn: list[Tensor] = []
    for c in range(cond.C):
        log_pk = []
        for m in (cond, uncond):
            mean = m.mean[:, :, c, 0, 0]  # (n, K)
            j0 = c * (c - 1) // 2  # the coupling coefficients of channel c start here (j runs over c' < c)
            for c_prev in range(c):
                mean = mean + m.coeff[:, :, j0 + c_prev, 0, 0] * to_centered(drawn[c_prev])[:, None]
            log_pk.append(discretized_logistic_log_prob(values[None, None, :], mean[..., None],
                                                        m.log_scale[:, :, c, 0, 0][..., None]))  # (n, K, 256)
        log_p = [torch.logsumexp(q[:, :, None] + lp, dim=1) for q, lp in zip(posts, log_pk)]  # (n, 256)
        v = torch.multinomial(F.softmax(guided(log_p[0], log_p[1], w), dim=-1), 1, generator=generator)[:, 0]
        drawn.append(v.to(torch.uint8))
        rows = torch.arange(n, device=v.device)
        posts = [F.log_softmax(q + lp[rows, :, v], dim=1) for q, lp in zip(posts, log_pk)]
    return torch.stack(drawn, dim=1)
