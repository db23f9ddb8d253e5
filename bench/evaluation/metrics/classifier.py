"""A small MNIST classifier whose features give a fast, domain-specific Fréchet distance.

The harness trains it once (a LeNet-style CNN, 3 epochs of Adam with a cosine
learning-rate decay, a few minutes on two CPU cores), checks its test accuracy
(at least 99%), and caches the weights. The Fréchet distance between generated and test images in its 128-d penultimate
layer is reported as ``fd_classifier``: a cheap CPU metric in the spirit of FID.
It is never reported as FID, and its values are not comparable to FID's.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.core.files import atomic_write, write_json
from bench.core.timing import Stopwatch

MIN_ACCURACY = 0.99


class LeNet(nn.Module):
    """Conv(32)-BN -> Conv(64)-BN -> FC(128) -> FC(10) on (N, 1, 28, 28) pixels scaled to [0, 1]."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(64)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """128-d penultimate features of uint8 images (N, 1, 28, 28): (N, 128) float32 (eval mode)."""
        h = x.float() / 255.0
        h = F.max_pool2d(F.relu(self.bn1(self.conv1(h))), 2)
        h = F.max_pool2d(F.relu(self.bn2(self.conv2(h))), 2)
        return F.relu(self.fc1(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, 10)."""
        return self.fc2(self.features(x))


@torch.no_grad()
def accuracy(model: LeNet, x: torch.Tensor, y: torch.Tensor, batch: int = 2000) -> float:
    """Fraction of ``x`` (uint8 images) classified as ``y``."""
    model.eval()
    correct = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in zip(x.split(batch), y.split(batch)))
    return correct / len(x)


def train_classifier(x: torch.Tensor, y: torch.Tensor, *, epochs: int = 3, batch: int = 128, seed: int = 0) -> LeNet:
    """Train :class:`LeNet` on uint8 images ``x`` (N, 1, 28, 28) and labels ``y`` (N,)."""
    torch.manual_seed(seed)
    model = LeNet()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    steps = epochs * -(-len(x) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(batch):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
    return model.eval()


def cache_path(ds, cache_dir: Path) -> Path:
    """Where the classifier for ``ds`` is cached (keyed by the training split's content hash)."""
    return Path(cache_dir) / f"mnist_lenet_bn_{ds.info['fingerprint']['train']['sha256'][:16]}.pt"


def _cached(path: Path, meta_path: Path) -> tuple[LeNet, dict] | None:
    """The cached classifier if its weights' SHA-256 is the one its record holds and they load
    (``weights_only=True``); else ``None``, saying why on stderr when a cache was there."""
    try:
        meta = json.loads(meta_path.read_text())
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        print(f"genbench: classifier cache {meta_path} unreadable ({e}); training it again", file=sys.stderr)
        return None
    digest = hashlib.sha256(data).hexdigest()
    if not isinstance(meta, dict) or meta.get("weights_sha256") != digest:
        print(f"genbench: classifier cache {path}: its SHA-256 ({digest[:16]}...) is not the one recorded in "
              f"{meta_path.name}; training it again", file=sys.stderr)
        return None
    model = LeNet()
    try:
        model.load_state_dict(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))
    except Exception as e:  # a foreign file that happens to match its own record
        print(f"genbench: classifier cache {path} does not load ({type(e).__name__}); training it again",
              file=sys.stderr)
        return None
    return model.eval(), meta


def load_or_train(ds, cache_dir: Path) -> tuple[LeNet, dict]:
    """The cached classifier for ``ds`` (MNIST), training it on first use.

    The cache key is the training split's content hash. The cached weights are used
    only if their SHA-256 is the one recorded beside them and they load with
    ``torch.load(weights_only=True)``; otherwise the classifier is trained again and
    the cache replaced. Returns the model and its record (test accuracy, weights
    SHA-256, training seconds).

    Raises:
        RuntimeError: the trained classifier misses :data:`MIN_ACCURACY` on the test set.
    """
    key = ds.info["fingerprint"]["train"]["sha256"][:16]
    path = cache_path(ds, cache_dir)
    meta_path = path.with_suffix(".json")
    cached = _cached(path, meta_path)
    if cached is not None:
        return cached
    with Stopwatch() as clock:  # CPU training (the classifier never runs on CUDA)
        model = train_classifier(ds.train, ds.train_labels)
    acc = accuracy(model, ds.test, ds.test_labels)
    if acc < MIN_ACCURACY:
        raise RuntimeError(f"the MNIST feature classifier reached {acc:.4f} test accuracy, below {MIN_ACCURACY}")
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    atomic_write(path, lambda f: f.write(buf.getvalue()))
    meta = {"name": "mnist-lenet", "test_accuracy": acc, "train_seconds": clock.seconds, "feature_dim": 128,
            "weights_sha256": hashlib.sha256(buf.getvalue()).hexdigest(), "train_fingerprint": key}
    write_json(meta_path, meta)
    return model, meta


@torch.no_grad()
def features(model: LeNet, x: np.ndarray | torch.Tensor, batch: int = 1000) -> np.ndarray:
    """Classifier features of uint8 images (N, 1, 28, 28): (N, 128) float64."""
    x = torch.as_tensor(np.asarray(x))
    return torch.cat([model.features(xb) for xb in x.split(batch)]).double().numpy()
