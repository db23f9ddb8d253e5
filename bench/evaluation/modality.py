"""The two modalities, vectors (the 2D mixtures) and images, as objects: everything that differs between them.

The runner, the plan, the preflight and the report ask the suite's :class:`Modality` (``modality(suite.modality)``)
instead of branching on its name: how a cell is evaluated, whether training is monitored, what synthetic data
the plan's probes use, the memory a cell's evaluation needs, and the facts the report draws with (the
likelihood column and its label, the quality metric of the sampler sweeps).

* :data:`VECTOR`: the data density is known in closed form (:mod:`bench.evaluation.vector`): training is
  monitored against it (fidelity, mode coverage, MMD², KL), densities are normalized by quadrature and
  drawn on grids, and samples are scored on their coordinates.
* :data:`IMAGE`: 8-bit images (:mod:`bench.evaluation.image`): samples are scored through Inception features
  (FID, KID, precision/recall, density/coverage) and a small dataset classifier (its Fréchet distance and
  class histogram, which also monitor training), likelihoods are in bits/dim, and sample grids are saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.config.suite import DataConfig, EvalConfig
from bench.evaluation import image as images
from bench.evaluation import vector as vectors
from bench.evaluation.inception.extractor import FEATURE_DIM
from bench.store.schema import CellRecord, DensityResult
from models.samplers import Sampler

__all__ = ["Modality", "VECTOR", "IMAGE", "modality"]

GRID_PNG_BYTES = 200 * 1024  # a saved sample grid (images)


@dataclass(frozen=True)
class Modality:
    """What a modality does differently; subclasses implement the methods.

    Attributes:
        name: ``"vector"`` or ``"image"`` (a suite's ``modality``).
        closed_form_density: the data density is known (2D): training is monitored against it, model
            densities are normalized by quadrature and drawn on grids, KL to the truth exists.
        inception: samples are scored through Inception features, so evaluation needs its weights.
        nll_column, bound_column: the record columns of an exact likelihood and of an upper bound on it
            (nats for vectors, bits/dim for images).
        nll_label: the axis label of those columns.
        no_nll_text: how the report lists a family without one ("no likelihood", "no bits/dim").
        sweep_quality: the quality metric the sampler-sweep figure draws against NFE.
        sweep_figure: that figure's file name.
    """

    name: str
    closed_form_density: bool
    inception: bool
    nll_column: str
    bound_column: str
    nll_label: str
    no_nll_text: str
    sweep_quality: str
    sweep_figure: str

    def synthetic(self, shape: tuple[int, ...], n: int) -> torch.Tensor:
        """``n`` examples of ``shape`` for the plan's probes (float32 vectors or uint8 images), seeded."""
        raise NotImplementedError

    def training_monitor(self, ds: Any, ev: EvalConfig, device: torch.device,
                         samplers: dict[str, Sampler] | None = None, data: DataConfig | None = None,
                         capabilities: Any = None):
        """The training monitor's callable (validation quality at checkpoints), or ``None`` where there is none.

        ``data`` locates the data root's cache (the image classifier); the 2D monitor needs none.
        ``capabilities`` (the model's :class:`~models.Capabilities`, where known) lets a monitor leave out what
        the model cannot give (images: no bits/dim without an exact density).
        """
        return None

    def model_extras(self, model: Any, ds: Any, ev: EvalConfig, density: DensityResult, cell_dir: Path,
                     device: torch.device) -> DensityResult:
        """Model-dependent evaluation beyond the density stage (2D: quadrature, normalization, density grid)."""
        return density

    def evaluate(self, ds: Any, ev: EvalConfig, data: DataConfig, record: CellRecord, cell_dir: Path,
                 device: torch.device) -> dict[str, Any]:
        """The evaluate stage from stored samples: the record's fields to set."""
        raise NotImplementedError

    def memory_parts(self, ev: EvalConfig, n_train: int, n_test: int, dims: int, itemsize: int) -> dict[str, int]:
        """Bytes a cell's evaluation holds at once beyond the dataset, by part (the preflight's memory check)."""
        raise NotImplementedError

    def evaluate_disk_bytes(self, ev: EvalConfig, n_samplers: int) -> int:
        """Bytes the evaluate stage writes per cell (cached features, sample grids)."""
        return 0


@dataclass(frozen=True)
class _Vector(Modality):
    def synthetic(self, shape: tuple[int, ...], n: int) -> torch.Tensor:
        return 2 * torch.randn(n, *shape, generator=torch.Generator().manual_seed(0))

    def training_monitor(self, ds, ev, device, samplers=None, data=None, capabilities=None):
        if not ev.monitor_points or len(ds.val) <= 1:
            return None
        return vectors.training_monitor(ds, ev, device, samplers)

    def model_extras(self, model, ds, ev, density, cell_dir, device):
        return vectors.model_extras(model, ds, ev, density, cell_dir, device)

    def evaluate(self, ds, ev, data, record, cell_dir, device):
        return vectors.evaluate(ds, ev, record, cell_dir, images.cache_dir(data) if data is not None else None)

    def memory_parts(self, ev, n_train, n_test, dims, itemsize):
        n = ev.n_samples
        return {"distance blocks": 3 * 2048 * n * 8 + 2 * n * dims * 8}


@dataclass(frozen=True)
class _Image(Modality):
    def synthetic(self, shape: tuple[int, ...], n: int) -> torch.Tensor:
        return torch.randint(0, 256, (n, *shape), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)

    def training_monitor(self, ds, ev, device, samplers=None, data=None, capabilities=None):
        return images.training_monitor(ds, ev, device, samplers, data or DataConfig(), capabilities)

    def model_extras(self, model, ds, ev, density, cell_dir, device):
        return images.model_extras(model, ds, ev, density, device)

    def evaluate(self, ds, ev, data, record, cell_dir, device):
        return images.evaluate(ds, ev, data, record, cell_dir, device)

    def memory_parts(self, ev, n_train, n_test, dims, itemsize):
        n = ev.n_samples
        n_ref = min(n_test if ev.fid_reference[0] == "test" else n_train, ev.fid_reference_n or 10**12)
        return {"features": (n + n_ref) * FEATURE_DIM * (4 + 8),
                "distance blocks": 3 * min(2048, n_ref) * min(n, n_ref) * 8,
                "novelty": 4 * (n + n_train) * dims}

    def evaluate_disk_bytes(self, ev, n_samplers):
        return n_samplers * (4 * ev.n_samples * FEATURE_DIM + GRID_PNG_BYTES)


VECTOR = _Vector("vector", closed_form_density=True, inception=False, nll_column="test_nll_nats",
                 bound_column="test_nll_bound_nats", nll_label="test NLL (nats, lower is better)",
                 no_nll_text="no likelihood", sweep_quality="mmd2", sweep_figure="mmd_vs_nfe.png")
IMAGE = _Image("image", closed_form_density=False, inception=True, nll_column="test_bpd",
               bound_column="test_bpd_bound", nll_label="test bits/dim (lower is better)",
               no_nll_text="no bits/dim", sweep_quality="fid", sweep_figure="fid_vs_nfe.png")
_BY_NAME = {m.name: m for m in (VECTOR, IMAGE)}


def modality(name: str) -> Modality:
    """The :class:`Modality` named ``name`` (``"vector"`` or ``"image"``).

    Raises:
        KeyError: an unknown name.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown modality {name!r}; expected one of {', '.join(_BY_NAME)}") from None
