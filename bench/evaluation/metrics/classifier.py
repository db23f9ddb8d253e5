"""Small image classifiers, one per labelled dataset, trained once on CPU and cached: their features give a
fast, domain-specific Fréchet distance, and their predictions the class histogram of a sample set.

* MNIST: a LeNet-style CNN (:class:`LeNet`), 3 epochs of Adam with a cosine learning-rate decay, about 90 s on
  two CPU cores; test accuracy at least 99%.
* CIFAR-10: a VGG-style CNN of six 3×3 convolutions with batch norm (:class:`CifarNet`, 73k parameters),
  6 epochs with random crops and horizontal flips, a few minutes on two CPU cores; test accuracy at least :data:`SPECS`
  ``["cifar10"].min_accuracy`` on the split it was trained for (here the JPEG-75 copy's test split).

Public API (issue 24's label agreement reuses it): :func:`available`, :func:`load_or_train` (the cached model and
its record: test accuracy, training seconds, the weights' SHA-256), :func:`features` (penultimate layer),
:func:`logits` and :func:`predict`. The Fréchet distance in these features is reported as ``fd_classifier``:
a cheap CPU metric in the spirit of FID, never reported as FID, and not comparable with FID's values. The
class histogram gives ``mode_kl_nats`` and ``modes_hit`` (:mod:`bench.evaluation.metrics.modes`).

Every input is uint8 images (N, C, H, W), 0..255; the models scale them to [0, 1] themselves and run on CPU.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.core.files import atomic_write, write_json
from bench.core.timing import Stopwatch

MIN_ACCURACY = 0.99  # MNIST (kept for the name's users; each dataset's floor is in SPECS)


class Classifier(nn.Module):
    """A classifier of uint8 images: :meth:`features` (N, ``feature_dim``) and class logits (N, 10)."""

    feature_dim = 128

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features of uint8 images (N, C, H, W): (N, ``feature_dim``) float32 (eval mode)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, 10) of uint8 images (N, C, H, W)."""
        return self.fc(self.features(x))


class LeNet(Classifier):
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


class CifarNet(Classifier):
    """Three blocks of two 3×3 Conv-BN-ReLU (16, 32, 64 channels), each followed by 2×2 max pooling, then
    global average pooling (the 64-d features) and a linear layer; (N, 3, 32, 32) pixels scaled to [0, 1]
    and normalized per channel by CIFAR-10's mean and std. 73k parameters."""

    MEAN = (0.491, 0.482, 0.447)
    STD = (0.247, 0.243, 0.262)

    def __init__(self, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for w in widths:
            for _ in range(2):
                layers += [nn.Conv2d(c_in, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                c_in = w
            layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, 10)
        self.feature_dim = c_in
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """64-d features (global average pool of the last block) of uint8 images (N, 3, 32, 32): (N, 64) float32."""
        h = (x.float() / 255.0 - self.mean) / self.std
        return self.body(h).mean((2, 3))


def _flip_crop(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random horizontal flip and a random 32×32 crop of the 4-pixel zero-padded images (uint8, (N, C, H, W))."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
    padded = F.pad(x, (4, 4, 4, 4))
    dy, dx = torch.randint(0, 9, (2,), generator=gen).tolist()  # one offset per batch: cheap, and enough here
    return padded[:, :, dy:dy + h, dx:dx + w]


@dataclass(frozen=True)
class Spec:
    """How one dataset's classifier is built and trained.

    Attributes:
        name: the classifier's name in records (``mnist-lenet``).
        build: its constructor.
        epochs, batch, lr: Adam with a cosine decay to 0 over ``epochs`` passes of ``batch`` images.
        augment: random flips and crops (CIFAR-10).
        min_accuracy: the test accuracy it must reach, else :func:`load_or_train` raises.
        prefix: the cache file's name before the training split's hash.
    """

    name: str
    build: Callable[[], Classifier]
    epochs: int
    batch: int
    lr: float
    augment: bool
    min_accuracy: float
    prefix: str


SPECS = {
    "mnist": Spec("mnist-lenet", LeNet, epochs=3, batch=128, lr=2e-3, augment=False, min_accuracy=MIN_ACCURACY,
                  prefix="mnist_lenet_bn"),
    "cifar10": Spec("cifar10-cnn", CifarNet, epochs=6, batch=128, lr=3e-3, augment=True, min_accuracy=0.70,
                    prefix="cifar10_cnn6"),
}


def available(dataset: str) -> bool:
    """Whether ``dataset`` (a dataset name) has a classifier here."""
    return dataset in SPECS


@torch.no_grad()
def accuracy(model: Classifier, x: torch.Tensor, y: torch.Tensor, batch: int = 2000) -> float:
    """Fraction of ``x`` (uint8 images) classified as ``y``."""
    model.eval()
    correct = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in zip(x.split(batch), y.split(batch)))
    return correct / len(x)


def train_classifier(x: torch.Tensor, y: torch.Tensor, *, epochs: int = 3, batch: int = 128, seed: int = 0,
                     spec: Spec | None = None) -> Classifier:
    """Train the classifier of ``spec`` (default: MNIST's :class:`LeNet`, ``epochs`` and ``batch`` as given) on
    uint8 images ``x`` (N, C, H, W) and labels ``y`` (N,), seeded; returns it in eval mode."""
    spec = spec or Spec("mnist-lenet", LeNet, epochs, batch, 2e-3, False, MIN_ACCURACY, "")
    torch.manual_seed(seed)
    model = spec.build()
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    steps = spec.epochs * -(-len(x) // spec.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(spec.epochs):
        for idx in torch.randperm(len(x), generator=gen).split(spec.batch):
            xb = _flip_crop(x[idx], gen) if spec.augment else x[idx]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), y[idx]).backward()
            opt.step()
            sched.step()
    return model.eval()


def training_step_seconds(dataset: str) -> float:
    """Seconds of one training step of ``dataset``'s classifier on this CPU (synthetic batch; the plan's probe)."""
    from bench.core.timing import measure

    spec = SPECS[dataset]
    net = spec.build()
    shape = (1, 28, 28) if dataset == "mnist" else (3, 32, 32)
    xb = torch.randint(0, 256, (spec.batch, *shape), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    yb = torch.randint(0, 10, (spec.batch,), generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(net.parameters())

    def step():
        opt.zero_grad()
        F.cross_entropy(net(xb), yb).backward()
        opt.step()

    return measure(step, warmup=1, repeats=3).median_s


def training_steps(dataset: str, n_train: int) -> int:
    """Optimisation steps of ``dataset``'s classifier on ``n_train`` images."""
    spec = SPECS[dataset]
    return spec.epochs * -(-n_train // spec.batch)


def cache_path(ds, cache_dir: Path) -> Path:
    """Where the classifier for ``ds`` is cached (keyed by the training split's content hash)."""
    return Path(cache_dir) / f"{SPECS[ds.name].prefix}_{ds.info['fingerprint']['train']['sha256'][:16]}.pt"


def _cached(path: Path, meta_path: Path, spec: Spec | None = None) -> tuple[Classifier, dict] | None:
    """The cached classifier of ``spec`` (default: MNIST's) if its weights' SHA-256 is the one its record
    holds and they load (``weights_only=True``); else ``None``, saying why on stderr when a cache was there."""
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
    model = (spec or SPECS["mnist"]).build()
    try:
        model.load_state_dict(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))
    except Exception as e:  # a foreign file that happens to match its own record
        print(f"genbench: classifier cache {path} does not load ({type(e).__name__}); training it again",
              file=sys.stderr)
        return None
    return model.eval(), meta


_LOADED: dict[str, tuple[Classifier, dict]] = {}


def load_or_train(ds, cache_dir: Path) -> tuple[Classifier, dict]:
    """The cached classifier for ``ds`` (MNIST or CIFAR-10), training it on first use.

    The cache key is the training split's content hash. The cached weights are used
    only if their SHA-256 is the one recorded beside them and they load with
    ``torch.load(weights_only=True)``; otherwise the classifier is trained again and
    the cache replaced. Held in memory once loaded. Returns the model (eval mode, CPU) and its record: name,
    test accuracy (on ``ds.test``), training seconds, feature dimension, weights SHA-256.

    Raises:
        KeyError: ``ds`` has no classifier (:func:`available`).
        RuntimeError: the trained classifier misses its dataset's minimum test accuracy.
    """
    spec = SPECS[ds.name]
    key = ds.info["fingerprint"]["train"]["sha256"][:16]
    path = cache_path(ds, cache_dir)
    if str(path) in _LOADED:
        return _LOADED[str(path)]
    meta_path = path.with_suffix(".json")
    cached = _cached(path, meta_path, spec)
    if cached is None:
        with Stopwatch() as clock:  # CPU training (the classifier never runs on CUDA)
            model = train_classifier(ds.train, ds.train_labels, spec=spec)
        acc = accuracy(model, ds.test, ds.test_labels)
        if acc < spec.min_accuracy:
            raise RuntimeError(f"the {ds.name} feature classifier reached {acc:.4f} test accuracy, below "
                               f"{spec.min_accuracy}")
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        atomic_write(path, lambda f: f.write(buf.getvalue()))
        meta = {"name": spec.name, "test_accuracy": acc, "train_seconds": clock.seconds,
                "feature_dim": model.feature_dim, "epochs": spec.epochs,
                "weights_sha256": hashlib.sha256(buf.getvalue()).hexdigest(), "train_fingerprint": key}
        write_json(meta_path, meta)
        cached = model, meta
    _LOADED[str(path)] = cached
    return cached


@torch.no_grad()
def features(model: Classifier, x: np.ndarray | torch.Tensor, batch: int = 1000) -> np.ndarray:
    """Classifier features of uint8 images (N, C, H, W): (N, ``model.feature_dim``) float64."""
    x = torch.as_tensor(np.asarray(x))
    return torch.cat([model.features(xb) for xb in x.split(batch)]).double().numpy()


@torch.no_grad()
def logits(model: Classifier, x: np.ndarray | torch.Tensor, batch: int = 1000) -> np.ndarray:
    """Class logits of uint8 images (N, C, H, W): (N, 10) float64."""
    x = torch.as_tensor(np.asarray(x))
    return torch.cat([model(xb) for xb in x.split(batch)]).double().numpy()


def predict(model: Classifier, x: np.ndarray | torch.Tensor, batch: int = 1000) -> np.ndarray:
    """Predicted classes of uint8 images (N, C, H, W): (N,) int64 in 0..9."""
    return logits(model, x, batch).argmax(1)
