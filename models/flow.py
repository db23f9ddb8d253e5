"""Normalizing-flow family: a neural spline flow built from zuko (vectors), multi-scale Glow (images).

Exact log-likelihood by the change of variables; sampling inverts the flow. On
images the density is of uniformly dequantized pixels, which bounds the discrete
log P(x) from below (Theis et al. 2016).

This module holds the family's textbook claims and the vector form, the neural
spline flow; the image form, Glow and its layers, is in :mod:`models.glow`. The two
share no code: zuko provides the spline flow whole.

Class-conditional forms (``num_classes`` = K): the spline flow takes the one-hot label as zuko's context (every
transform's hyper-network sees it, Durkan et al. 2019; zuko's ``context``); Glow's top prior and split priors
take it (a class-conditional prior, Kingma & Dhariwal 2018, Sec. 5). No guidance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from torch import Tensor

from models import register
from models.base import Capabilities, GenerativeModel, Textbook, require
from models.fields import Range, check_fields
from models.nets import one_hot

# The taxonomy's row for this family (README; bench/verdicts.py tests it).
TEXTBOOK = Textbook(likelihood="exact", sampling="fast", expressiveness="restricted",
                    claims=("T1", "T9", "T21", "T22"))


@dataclass
class NSFConfig:
    """Options of :class:`SplineFlow`.

    Attributes:
        transforms: number of autoregressive rational-quadratic spline transforms.
        bins: spline bins per transform (on [-5, 5]; identity outside).
        hidden: width of each transform's masked MLP.
        layers: hidden layers of each masked MLP.
        num_classes: number of classes for a class-conditional flow (the one-hot label as zuko's context);
            ``None``: unconditional.

    Raises:
        ValueError: a value outside its declared range (:func:`models.fields.check_fields`).
    """

    transforms: Annotated[int, Range(ge=1, le=64)] = 4
    bins: Annotated[int, Range(ge=1, le=256)] = 8
    hidden: Annotated[int, Range(ge=1, le=2048)] = 64
    layers: Annotated[int, Range(ge=1, le=64)] = 2
    num_classes: Annotated[int, Range(ge=2, le=100_000)] | None = None

    def __post_init__(self):
        check_fields(self)


@register("flow", modality="vector")
class SplineFlow(GenerativeModel):
    """Neural spline flow (``zuko.flows.NSF``): exact log-likelihood.

    Reference: Durkan et al., "Neural Spline Flows", 2019, arXiv:1906.04032.

    Each transform is masked-autoregressive, so its inverse takes D passes of its
    hyper-network; for D = 2 this equals a coupling layer. Latent inference is exact:
    ``to_latent`` is the forward map x -> z (one pass), ``from_latent`` its inverse.

    Example:
        >>> f = SplineFlow(NSFConfig(transforms=2), (2,))
        >>> f.log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """

    reference = "Durkan et al. 2019, arXiv:1906.04032"
    textbook = TEXTBOOK
    tiny = {"transforms": 2, "hidden": 16}  # test size (tests/test_contract.py)
    Config = NSFConfig
    capabilities = Capabilities(sample=True, log_prob=True, latent="exact", conditional=True)
    train_defaults = {"lr": 3e-3}

    def __init__(self, config: NSFConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        (D,) = self.data_shape
        zuko = require("zuko", "the 2D flow family (neural spline flow)")
        self.flow = zuko.flows.NSF(
            D, transforms=config.transforms, bins=config.bins, hidden_features=[config.hidden] * config.layers,
            **({"context": config.num_classes} if config.num_classes else {}),
        )

    def _context(self, y: Tensor | None, n: int, what: str) -> Tensor | None:
        """The one-hot context (n, K) of labels ``y`` (checked), ``None`` for an unconditional flow."""
        y = self.check_labels(y, n)
        if self.conditional and y is None:
            raise ValueError(f"{what} of a conditional flow needs the labels y")
        return None if y is None else one_hot(y, self.num_classes)

    def transform(self, context: Tensor | None = None):
        """The bijection x -> z (data to base), given the one-hot ``context`` (N, K) of a conditional flow;
        ``.inv`` maps z -> x."""
        return self.flow().transform if context is None else self.flow(context).transform

    def log_prob(self, x: Tensor, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        """Exact log p(x) in nats, (N,), for x of shape (N, D); log p(x|y) given labels ``y`` (int64 (N,)), and
        for a conditional flow with ``y=None`` the marginal log sum_c pi_c p(x|c) (:meth:`marginal`)."""
        if self.conditional and y is None:
            return self.marginal(lambda yc: self.log_prob(x, y=yc), len(x))
        ctx = self._context(y, len(x), "the density")
        return self.flow().log_prob(x) if ctx is None else self.flow(ctx).log_prob(x)

    def to_latent(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """z = f(x), (N, D): the flow's forward map to its N(0, I) base (given labels ``y`` if conditional)."""
        return self.transform(self._context(y, len(x), "latent inference"))(x)

    def from_latent(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """x = f^{-1}(z), (N, D): the inverse map (D sequential passes per transform; labels ``y`` if conditional)."""
        return self.transform(self._context(y, len(z), "the inverse map")).inv(z)

    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Mean NLL in nats (of log p(x|y) given the labels ``y`` of a conditional flow, which it needs)."""
        ctx = self._context(y, len(x), "training")
        return -(self.flow().log_prob(x) if ctx is None else self.flow(ctx).log_prob(x)).mean()

    def generate_nfe(self) -> int:
        return self.data_shape[0]  # each masked transform inverts in D sequential passes

    def generate(self, n: int, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        """(n, D) samples: z ~ N(0, I) pushed through the inverse flow (given labels ``y`` if conditional)."""
        z = torch.randn(n, self.data_shape[0], device=self.device, generator=generator)
        return self.transform(None if y is None else one_hot(y, self.num_classes)).inv(z)
