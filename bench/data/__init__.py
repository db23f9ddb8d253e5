"""Datasets by name. Each suite names its datasets; :func:`load` returns the splits.

* 2D mixtures (modality ``"vector"``): ``8gaussians``, ``25gaussians``, ``imbalanced``;
  float32 coordinates, labelled by the mixture component that drew each point.
* images (modality ``"image"``): ``mnist``, ``cifar10``; uint8 tensors (N, C, H, W), values 0..255, with their
  class labels.

Every dataset has K classes (:func:`num_classes`), the labels of class-conditional models.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.core.files import read_json_dict, write_json
from bench.data import toy2d
from bench.data.images import (
    MNIST_SHA256,
    DatasetError,
    array_fingerprint,
    data_root,
    ensure_mnist,
    load_cifar10,
    mnist_fingerprint,
    read_mnist,
)
from bench.data.toy2d import MIXTURES, SPLIT_SEEDS, GaussianMixture

IMAGE_DATASETS = ("mnist", "cifar10")


@dataclass
class Dataset:
    """Splits of one dataset, on the CPU.

    Attributes:
        name: registry name.
        modality: ``"vector"`` or ``"image"``.
        train, val, test: (N, *shape) tensors: float32 coordinates (vector) or uint8
            pixels 0..255 (image). ``val`` may be empty (MNIST has no official one).
        true: the closed-form mixture for synthetic 2D data, else ``None``.
        train_labels, val_labels, test_labels: class labels (N,) int64 in [0, K): the image classes, or the
            mixture component that drew each 2D point.
        info: facts recorded with every result (sizes, seeds, fingerprints, ...).
    """

    name: str
    modality: str
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    true: GaussianMixture | None = None
    train_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)
    val_labels: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])


def names() -> list[str]:
    """Registered dataset names."""
    return sorted(MIXTURES) + list(IMAGE_DATASETS)


def modality(name: str) -> str:
    """``"vector"`` for the 2D mixtures, ``"image"`` for image datasets."""
    return "image" if name in IMAGE_DATASETS else "vector"


def num_classes(name: str) -> int:
    """K, the number of classes of dataset ``name`` (known without loading it): a mixture's components, or 10
    for MNIST and CIFAR-10.

    Raises:
        KeyError: unknown name.
    """
    return 10 if name in IMAGE_DATASETS else MIXTURES[name]().k


ENTROPY_CACHE_FOLDER = "entropy2d"


def entropy_cache_path(name: str, n: int, cache: Path) -> Path:
    """Where :func:`true_entropy` keeps H(p_data) of mixture ``name``: ``<cache>/entropy2d/<name>_<key>.json``, the
    key a SHA-256 of the mixture's parameters, ``n``, the entropy seed, the source of ``bench/data/toy2d.py``
    (which computes it) and the NumPy and SciPy versions, so that a stored value never outlives what made it."""
    import scipy

    mix, h = MIXTURES[name](), hashlib.sha256()
    for a in (mix.weights, mix.means, mix.covs):
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    key = {"dataset": name, "params": h.hexdigest(), "n": n, "seed": SPLIT_SEEDS["entropy"],
           "code": toy2d.source_digest(), "numpy": np.__version__,
           "scipy": scipy.__version__}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return Path(cache) / ENTROPY_CACHE_FOLDER / f"{name}_{digest[:20]}.json"


@functools.cache
def true_entropy(name: str, n: int, cache: Path | None = None) -> tuple[float, float]:
    """H(p_data) of the 2D mixture ``name`` in nats and its standard error, by Monte Carlo with ``n``
    samples from the fixed entropy seed (:meth:`GaussianMixture.entropy`).

    Deterministic, so computed once per process and, with ``cache`` (``<data root>/cache``), once per data root
    (:func:`entropy_cache_path`; 1-4 s a mixture at n = 10^6 on a 2-core CPU). A damaged cache file is computed
    again and replaced; a data root that cannot be written only loses the cache.
    """
    path = None if cache is None else entropy_cache_path(name, n, cache)
    if path is not None:
        stored = read_json_dict(path)
        if isinstance(stored.get("nats"), float) and isinstance(stored.get("se_nats"), float):
            return stored["nats"], stored["se_nats"]
    h, se = MIXTURES[name]().entropy(n)
    if path is not None:
        try:
            write_json(path, {"dataset": name, "n": n, "nats": h, "se_nats": se})
        except OSError:
            pass
    return h, se


@dataclass(frozen=True)
class Layout:
    """What a dataset holds, known without loading it (for plans and preflight checks).

    Attributes:
        shape: shape of one example.
        itemsize: bytes per value (1 for uint8 images, 4 for float32 coordinates).
        n_train, n_test: split sizes.
        prepared: loading it writes nothing (its files are already under the data root).
        prepare_bytes: bytes the first load writes under the data root (0 once prepared).
    """

    shape: tuple[int, ...]
    itemsize: int
    n_train: int
    n_test: int
    prepared: bool = True
    prepare_bytes: int = 0

    @property
    def dims(self) -> int:
        return int(np.prod(self.shape))


_MNIST_RAW_BYTES = 47_040_016 + 60_008 + 7_840_016 + 10_008  # the four uncompressed IDX files
_CIFAR_ARRAY_BYTES = 60_000 * 3 * 32 * 32 + 60_000 * 8  # decoded JPEG-75 copy: pixels and int64 labels


def layout(name: str, cfg: Any) -> Layout:
    """The :class:`Layout` of dataset ``name`` under the settings ``cfg`` (a :class:`bench.config.suite.DataConfig`)."""
    if name == "mnist":
        raw = data_root(cfg.root) / "MNIST" / "raw"
        prepared = all((raw / f).exists() for f in MNIST_SHA256)
        return Layout((1, 28, 28), 1, 60_000, 10_000, prepared, 0 if prepared else _MNIST_RAW_BYTES)
    if name == "cifar10":
        root = data_root(cfg.root)
        prepared = (root / "cifar-10-batches-py").is_dir() or any((root / "cifar10-jpeg75").glob("arrays_*.npz"))
        return Layout((3, 32, 32), 1, 50_000, 10_000, prepared, 0 if prepared else _CIFAR_ARRAY_BYTES)
    return Layout((2,), 4, cfg.n_train, cfg.n_test)


def load(name: str, cfg: Any, entropy_mc: int = 1_000_000) -> Dataset:
    """Load dataset ``name`` with settings from ``cfg`` (a :class:`bench.config.suite.DataConfig`).

    For the 2D mixtures this draws the splits from :data:`SPLIT_SEEDS` and computes
    the true entropy by Monte Carlo with ``entropy_mc`` samples. For MNIST it reads
    the verified files under ``cfg.root`` (see :mod:`bench.data.images`).

    Raises:
        KeyError: unknown name.
        DatasetError: an image dataset is missing or corrupt.
    """
    if name == "mnist":
        return load_mnist(cfg.root)
    if name == "cifar10":
        return load_cifar(cfg.root)
    mix = MIXTURES[name]()
    splits = {}
    for split, n in (("train", cfg.n_train), ("val", cfg.n_val), ("test", cfg.n_test)):
        x, labels = mix.sample(n, SPLIT_SEEDS[split])
        splits[split] = torch.from_numpy(x.astype(np.float32))
        splits[f"{split}_labels"] = torch.from_numpy(labels.astype(np.int64))
    h, h_se = true_entropy(name, entropy_mc, data_root(cfg.root) / "cache")
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


def load_mnist(root: str) -> Dataset:
    """MNIST: 60,000 training and 10,000 test images, (N, 1, 28, 28) uint8, verified by SHA-256."""
    raw = ensure_mnist(root)
    x_train, y_train = read_mnist(root, train=True)
    x_test, y_test = read_mnist(root, train=False)
    info = {
        "name": "mnist",
        "variant": "mnist",
        "shape": list(x_train.shape[1:]),
        "n_train": len(x_train),
        "n_test": len(x_test),
        "fingerprint": {"train": mnist_fingerprint(raw, True, len(x_train)),
                        "test": mnist_fingerprint(raw, False, len(x_test))},
        "comparable_to_published": True,
    }
    return Dataset("mnist", "image", x_train, x_train[:0], x_test, train_labels=y_train, test_labels=y_test, info=info,
                   val_labels=y_train[:0])


def load_cifar(root: str) -> Dataset:
    """CIFAR-10: 50,000 training and 10,000 test images, (N, 3, 32, 32) uint8 (see :func:`load_cifar10`)."""
    splits, provenance = load_cifar10(root)
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    variant = provenance["variant"]
    info = {
        "name": "cifar10",
        "shape": list(x_train.shape[1:]),
        "n_train": len(x_train),
        "n_test": len(x_test),
        **provenance,
        "fingerprint": {"train": array_fingerprint("cifar10", variant, "train", x_train),
                        "test": array_fingerprint("cifar10", variant, "test", x_test)},
    }
    return Dataset("cifar10", "image", x_train, x_train[:0], x_test, train_labels=y_train, test_labels=y_test,
                   info=info, val_labels=y_train[:0])


__all__ = ["Dataset", "DatasetError", "Layout", "layout", "load", "modality", "names", "num_classes"]
