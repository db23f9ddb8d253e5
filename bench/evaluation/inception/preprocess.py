"""The FID Inception input pipeline: uint8 images -> (N, 3, 299, 299) float32 in [-1, 1).

Reference: TF1's ``tf.image.resize_bilinear(align_corners=False)`` as used by the
original FID code (Heusel et al., 2017, arXiv:1706.08500); torch-fidelity keeps the
same arithmetic in ``interpolate_compat_tensorflow.py``.

:func:`preprocess`, uint8 in, float32 out:

1. uint8 (N, C, H, W) with C in {1, 3}; C = 1 is repeated to 3 channels.
2. Cast to float32 (values 0..255) and resize to 299x299 with TF1's
   ``tf.image.resize_bilinear(align_corners=False)`` (no half-pixel centres): output
   pixel ``i`` reads source coordinate ``i * in / out`` (float32, as TF computes
   it), interpolated between ``floor`` and ``floor + 1`` clamped to the last pixel.
   This is what fid-helper's default ``nv_bilinear`` grid_sample and torch-fidelity's
   ``interpolate_bilinear_2d_like_tensorflow1x`` compute. Skipped if already 299x299.
3. Scale ``(x - 128) / 128``, i.e. [0, 255] -> [-1, 0.9921875].
"""

from __future__ import annotations

import numpy as np
import torch

RESIZE_METHOD = "tf1-bilinear-align_corners=False-299x299"
INPUT_RANGE = "uint8 [0, 255] -> (x - 128) / 128"
INPUT_SIZE = 299


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
    _, _, h, w = x.shape
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
