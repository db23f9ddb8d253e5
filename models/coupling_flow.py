"""Coupling-flow family: a coupling neural spline flow built from zuko (vectors).

The flow the textbooks mean when they say "flows sample fast": each coupling layer splits
x into (x_a, x_b), leaves x_a unchanged and transforms x_b elementwise by a monotonic
rational-quadratic spline whose parameters a network computes from x_a (Dinh et al. 2017,
arXiv:1605.08803; Durkan et al. 2019, arXiv:1906.04032, "RQ-NSF (C)"). The inverse needs
the same single network pass per layer as the forward, so sampling is one pass through the
whole flow, however large D is. The ``flow`` family's spline flow is masked-autoregressive
instead (its inverse takes D passes per layer); both appear as rows, so the report can tell
"flows sample fast" (this family) from "autoregressive flows invert sequentially" (``flow``).

Its image counterpart is Glow (:mod:`models.glow`, the ``flow`` family's image form), itself a
coupling flow; this family has a vector form only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from models import register
from models.base import Capabilities, GenerativeModel, require
from models.fields import Range, check_fields
from models.flow import TEXTBOOK, SplineFlow


@dataclass
class CouplingNSFConfig:
    """Options of :class:`CouplingSplineFlow`.

    Attributes:
        transforms: coupling layers; their masks alternate, so every coordinate is transformed in every
            second layer.
        bins: spline bins per transform (on [-5, 5]; identity outside).
        hidden: width of each layer's conditioner MLP.
        layers: hidden layers of each conditioner MLP.
        num_classes: number of classes for a class-conditional flow (the one-hot label as zuko's context of
            every conditioner); ``None``: unconditional.

    Raises:
        ValueError: a value outside its declared range (:func:`models.fields.check_fields`).
    """

    transforms: Annotated[int, Range(ge=1, le=64)] = 6
    bins: Annotated[int, Range(ge=2, le=256)] = 8
    hidden: Annotated[int, Range(ge=1, le=2048)] = 64
    layers: Annotated[int, Range(ge=1, le=64)] = 2
    num_classes: Annotated[int, Range(ge=2, le=100_000)] | None = None

    def __post_init__(self):
        check_fields(self)


@register("coupling_flow", modality="vector")
class CouplingSplineFlow(SplineFlow):
    """Coupling neural spline flow (``zuko.flows.NICE`` with rational-quadratic splines): exact log-likelihood,
    one-pass sampling.

    References: Dinh et al., "Density estimation using Real NVP", 2017, arXiv:1605.08803 (coupling layers);
    Durkan et al., "Neural Spline Flows", 2019, arXiv:1906.04032 (the spline coupling transform).

    Layer i transforms the coordinates with ``index % 2 != i % 2`` given the others. Densities, latent maps,
    the loss, sampling and conditioning are :class:`models.flow.SplineFlow`'s (the same zuko interface); only the
    network and the NFE differ. Latent inference is exact:
    ``to_latent`` is the forward map x -> z, ``from_latent`` its inverse; both one pass.

    Example:
        >>> f = CouplingSplineFlow(CouplingNSFConfig(transforms=2), (2,))
        >>> f.log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """

    reference = "Dinh et al. 2017, arXiv:1605.08803; Durkan et al. 2019, arXiv:1906.04032"
    textbook = TEXTBOOK
    tiny = {"transforms": 2, "hidden": 16}  # test size (tests/test_contract.py)
    Config = CouplingNSFConfig
    capabilities = Capabilities(sample=True, log_prob=True, latent="exact", conditional=True)
    train_defaults = {"lr": 3e-3}

    def __init__(self, config: CouplingNSFConfig, data_shape: tuple[int, ...]):
        GenerativeModel.__init__(self, config, data_shape)  # the coupling network below, not SplineFlow's MAF
        (D,) = self.data_shape
        if D < 2:
            raise ValueError(f"a coupling flow needs at least 2 dimensions, got data_shape {self.data_shape}")
        zuko = require("zuko", "the coupling-flow family (coupling neural spline flow)")
        bins = config.bins
        self.flow = zuko.flows.NICE(
            D, transforms=config.transforms, univariate=zuko.transforms.MonotonicRQSTransform,
            shapes=[(bins,), (bins,), (bins - 1,)], hidden_features=[config.hidden] * config.layers,
            **({"context": config.num_classes} if config.num_classes else {}),
        )

    def generate_nfe(self) -> int:
        return 1  # every coupling layer inverts in one pass of its conditioner: one pass through the flow
