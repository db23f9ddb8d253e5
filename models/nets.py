"""Small building blocks shared by the vector (2D) families."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def mlp(d_in: int, hidden: int, layers: int, d_out: int, act: type[nn.Module] = nn.SiLU) -> nn.Sequential:
    """``layers`` hidden layers of width ``hidden`` with activation ``act``, then a linear output."""
    dims = [d_in] + [hidden] * layers
    mods: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        mods += [nn.Linear(a, b), act()]
    mods.append(nn.Linear(dims[-1], d_out))
    return nn.Sequential(*mods)


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Transformer-style sinusoidal embedding of scalars ``t`` (shape (N,)) -> (N, dim).

    As in DDPM (Ho et al. 2020, arXiv:2006.11239) and improved-diffusion's ``timestep_embedding``.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class ConditionalMLP(nn.Module):
    """MLP on ``[x, embedding(c)]`` for a scalar condition ``c`` (a timestep or a noise level).

    Args:
        d: data dimension D; ``forward(x, c)`` takes x (N, D) and c (N,) and returns (N, D).
    """

    def __init__(self, d: int, hidden: int, layers: int, embed: int = 32):
        super().__init__()
        self.embed = embed
        self.net = mlp(d + embed, hidden, layers, d)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        return self.net(torch.cat([x, sinusoidal_embedding(c, self.embed)], dim=-1))
