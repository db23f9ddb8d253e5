"""TF-Inception-v3 (2015-12-05) up to pool3 as plain nn.Modules, and its BN-folded fast form.

Reference: Szegedy et al., "Rethinking the Inception Architecture for Computer
Vision", 2015, arXiv:1512.00567, as released by TensorFlow on 2015-12-05; the FID
network of Heusel et al., 2017, arXiv:1706.08500.

The modules' state_dict keys are those of fid-helper's ``default_1.pt`` (minus the
``net.`` prefix; see :mod:`bench.evaluation.inception.weights`); the forward follows
the archive's TorchScript ``.code`` line by line:

- every conv is ``conv2d (no bias) -> batch_norm(eps=0.001, no scale) -> relu``;
- 3x3 average pools use ``padding=1, count_include_pad=False`` (TF's SAME pooling);
- the last Inception-E block (``mixed_10``) uses a 3x3 *max* pool in its pool branch,
  as the TF graph does;
- pool3 is an 8x8 average pool over the 8x8 map, reshaped to (N, 2048).

The fast path (:func:`fast_inference_model`) folds each batch norm into its conv
(``W' = W / sqrt(var + eps)``, ``b' = beta - mean / sqrt(var + eps)``, computed in
float64), uses channels_last memory and runs under ``torch.inference_mode``; it is
mathematically the same function, and the benchmark
``python -m bench.evaluation.inception.benchmark`` measures it against the TorchScript
forward.
"""

from __future__ import annotations

import copy
import os
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from bench.evaluation.inception.weights import fid_helper_state_dict

FEATURE_DIM = 2048
BN_EPS = 1e-3


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

    def folded(self, fused: bool = False) -> FoldedConv:
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
    except (RuntimeError, AttributeError, NotImplementedError):  # op missing in this build, or not on this CPU
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

