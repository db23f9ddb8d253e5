"""Where the FID Inception forward runs: the plain port, PyTorch's fast path, or ONNX Runtime on CPU.

Every backend computes the same function, :class:`~bench.evaluation.inception.net.InceptionV3Features`
on the verified fid-helper weights, in float32:

- ``reference``: the plain port (``conv2d -> batch_norm -> relu``, the TorchScript
  archive's ops in its order); features equal the TorchScript forward exactly.
- ``torch``: :func:`~bench.evaluation.inception.net.fast_inference_model` (BN folded in
  float64, channels_last, oneDNN fused conv + ReLU on CPU). No extra package.
- ``onnxruntime``: the BN-folded network exported once per process with
  ``torch.onnx.export`` (dynamo exporter, dynamic batch axis, no network needed) and
  run by ONNX Runtime's CPU execution provider with all graph optimisations (its
  NCHWc-blocked AVX-512 convolutions with the bias and ReLU fused), float32 throughout.
  Needs the optional extra: ``pip install -e '.[fast-cpu]'`` (onnxruntime, onnx, onnxscript).

Selection (:func:`resolve_backend`): the ``backend`` argument, else the environment
variable ``GENBENCH_INCEPTION_BACKEND``, else ``auto``: ``onnxruntime`` on CPU when
its packages are installed, otherwise ``torch``. The backend is part of the extractor
fingerprint (:func:`backend_fingerprint`), so caches and metric protocols say which
one computed the features; ``tests/test_inception_backends.py`` checks that each one's
features equal the reference to 1e-4 relative and its FID to 1e-6 relative.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import io
import os
from collections.abc import Callable

import torch
from torch import nn

from bench.evaluation.inception.net import fast_inference_model, load_inception

BACKENDS = ("reference", "torch", "onnxruntime")
ENV_VAR = "GENBENCH_INCEPTION_BACKEND"
FAST_CPU_EXTRA = "pip install -e '.[fast-cpu]'"
#: the Python packages each backend needs beyond genbench's dependencies
REQUIRES = {"reference": (), "torch": (), "onnxruntime": ("onnxruntime", "onnx", "onnxscript")}
ONNX_OPSET = 20


class BackendUnavailableError(RuntimeError):
    """An Inception backend was asked for but its optional packages are not installed."""


def missing_packages(backend: str) -> list[str]:
    """The packages ``backend`` needs that are not importable here (found without importing them)."""
    return [p for p in REQUIRES[backend] if importlib.util.find_spec(p) is None]


def resolve_backend(backend: str | None = None, device: str | torch.device = "cpu") -> str:
    """The backend to use: ``backend``, else ``$GENBENCH_INCEPTION_BACKEND``, else ``auto``.

    ``auto`` is ``onnxruntime`` on a CPU device when its packages are installed, else ``torch``.

    Raises:
        ValueError: an unknown name, or ``onnxruntime`` for a non-CPU device (one line
            naming where the name came from).
        BackendUnavailableError: the named backend's packages are missing (one line
            with the install command).
    """
    source = "backend argument"
    if backend is None:
        backend, source = os.environ.get(ENV_VAR, "auto"), f"environment variable {ENV_VAR}"
    device = torch.device(device)
    if backend == "auto":
        return "onnxruntime" if device.type == "cpu" and not missing_packages("onnxruntime") else "torch"
    if backend not in BACKENDS:
        raise ValueError(f"{source}: unknown Inception backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}")
    if backend == "onnxruntime" and device.type != "cpu":
        raise ValueError(f"{source}: the onnxruntime Inception backend runs on CPU only, not on {device}")
    missing = missing_packages(backend)
    if missing:
        raise BackendUnavailableError(
            f"{source}: Inception backend {backend!r} needs {', '.join(missing)}, not installed; {FAST_CPU_EXTRA}"
        )
    return backend


def backend_fingerprint(backend: str) -> dict:
    """The backend's part of the extractor fingerprint: its name and the versions that compute it."""
    out = {"name": backend}
    if backend == "onnxruntime":
        out.update({p: importlib.metadata.version(p) for p in ("onnxruntime", "onnxscript")},
                   onnx_opset=ONNX_OPSET, graph="bn-folded-float64")
    return out


def onnx_model(model: nn.Module, example: torch.Tensor) -> bytes:
    """``model`` as a serialized ONNX graph with a dynamic batch axis (input ``x``, output ``features``).

    Exported with ``torch.onnx.export(dynamo=True)`` at opset :data:`ONNX_OPSET`;
    ``example`` is a (N, 3, 299, 299) float32 batch with N >= 2 used for tracing.
    """
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes={"x": {0: batch}}, input_names=["x"],
                                output_names=["features"], opset_version=ONNX_OPSET, optimize=True, verbose=False)
    buffer = io.BytesIO()
    program.save(buffer)
    return buffer.getvalue()


@functools.lru_cache(maxsize=1)
def inception_onnx() -> bytes:
    """The verified weights' BN-folded network as ONNX (:func:`onnx_model`), exported once per process.

    Raises:
        InceptionWeightsError: see :func:`~bench.evaluation.inception.weights.verified_weights_path`.
    """
    return onnx_model(fast_inference_model(load_inception(), fused=False), torch.zeros(2, 3, 299, 299))


class OnnxRuntimeInception:
    """The Inception network in an ONNX Runtime CPU session: (N, 3, 299, 299) float32 -> (N, 2048) float32.

    Args:
        graph: a serialized ONNX graph with input ``x`` (default: :func:`inception_onnx`).
        threads: ONNX Runtime's intra-op threads (default: ``torch.get_num_threads()``).
            Idle threads do not spin, so the preprocessing between batches gets the cores.

    Raises:
        BackendUnavailableError: onnxruntime, onnx or onnxscript is missing.
    """

    def __init__(self, graph: bytes | None = None, threads: int | None = None):
        missing = missing_packages("onnxruntime")
        if missing:
            raise BackendUnavailableError(
                f"the onnxruntime Inception backend needs {', '.join(missing)}; {FAST_CPU_EXTRA}")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(graph or inception_onnx(), opts, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().to("cpu", torch.float32).contiguous()
        return torch.from_numpy(self.session.run(None, {"x": x.numpy()})[0])


def build_forward(backend: str, device: str | torch.device = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
    """The forward of ``backend`` (a name from :func:`resolve_backend`) on ``device`` with the verified weights.

    Returns:
        A callable (N, 3, 299, 299) float32 in [-1, 1] -> (N, 2048) float32 on ``device``
        (on the CPU for ``onnxruntime``).

    Raises:
        InceptionWeightsError: weights missing or not the expected file.
        BackendUnavailableError: see :class:`OnnxRuntimeInception`.
    """
    if backend == "onnxruntime":
        return OnnxRuntimeInception()
    model = load_inception()
    if backend == "reference":
        return model.to(device)
    fast = fast_inference_model(model).to(device)
    return lambda x: fast(x.contiguous(memory_format=torch.channels_last))
