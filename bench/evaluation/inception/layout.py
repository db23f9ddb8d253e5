"""Key maps between this Inception port and torchvision's layout (pytorch-fid, torch-fidelity)."""

from __future__ import annotations

import torch

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
