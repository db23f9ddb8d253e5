"""Datasets by name. Each suite names its datasets; :func:`load` returns the splits.

2D mixtures (modality ``"vector"``): ``8gaussians``, ``25gaussians``, ``imbalanced``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bench.data.toy2d import MIXTURES, SPLIT_SEEDS, GaussianMixture


@dataclass
class Dataset:
    """Splits of one dataset, as float32 tensors on the CPU.

    Attributes:
        name: registry name.
        modality: ``"vector"`` or ``"image"``.
        train, val, test: (N, *shape) float32 tensors.
        true: the closed-form mixture for synthetic 2D data, else ``None``.
        info: facts recorded with every result (sizes, seeds, true entropy, ...).
    """

    name: str
    modality: str
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    true: GaussianMixture | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])


def names() -> list[str]:
    """Registered dataset names."""
    return sorted(MIXTURES)


def modality(name: str) -> str:
    """``"vector"`` for the 2D mixtures."""
    return "vector"


def load(name: str, cfg: Any, entropy_mc: int = 1_000_000) -> Dataset:
    """Load dataset ``name`` with sizes from ``cfg`` (a :class:`bench.config.DataConfig`).

    For the 2D mixtures this draws the splits from :data:`SPLIT_SEEDS` and computes
    the true entropy by Monte Carlo with ``entropy_mc`` samples.

    Raises:
        KeyError: unknown name.
    """
    mix = MIXTURES[name]()
    splits = {}
    for split, n in (("train", cfg.n_train), ("val", cfg.n_val), ("test", cfg.n_test)):
        x, _ = mix.sample(n, SPLIT_SEEDS[split])
        splits[split] = torch.from_numpy(x.astype(np.float32))
    h, h_se = mix.entropy(entropy_mc)
    info = {
        "name": name,
        "n_train": cfg.n_train,
        "n_val": cfg.n_val,
        "n_test": cfg.n_test,
        "split_seeds": dict(SPLIT_SEEDS),
        "components": mix.k,
        "true_entropy_nats": h,
        "true_entropy_se_nats": h_se,
        "entropy_mc_samples": entropy_mc,
    }
    return Dataset(name, "vector", true=mix, info=info, **splits)
