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


def one_hot(y: Tensor, num_classes: int) -> Tensor:
    """Labels y (N,) int64 in [0, num_classes) -> (N, num_classes) float32 one-hot rows (the label embedding that
    families concatenate to an input or a latent)."""
    return nn.functional.one_hot(y, num_classes).float()


class ConditionalMLP(nn.Module):
    """MLP on ``[x, embedding(c)]`` for a scalar condition ``c`` (a timestep or a noise level), and, with
    ``num_classes``, a learned class embedding concatenated too: ``[x, embedding(c), E[y]]``.

    The class embedding has K + 1 rows: row K is the null label of classifier-free guidance (Ho & Salimans 2021,
    arXiv:2207.12598), used for ``y=None``. Without ``num_classes`` the network is built exactly as before (same
    parameters, same initialisation).

    Args:
        d: data dimension D; ``forward(x, c, y=None)`` takes x (N, D), c (N,) and labels y int64 (N,) in [0, K]
            (K: the null label) and returns (N, D).
        num_classes: K, or ``None`` for an unconditional network.
    """

    def __init__(self, d: int, hidden: int, layers: int, embed: int = 32, num_classes: int | None = None):
        super().__init__()
        self.embed = embed
        self.net = mlp(d + embed + (embed if num_classes else 0), hidden, layers, d)
        self.num_classes = num_classes
        self.label = nn.Embedding(num_classes + 1, embed) if num_classes else None

    def forward(self, x: Tensor, c: Tensor, y: Tensor | None = None) -> Tensor:
        if self.label is None:
            return self.net(torch.cat([x, sinusoidal_embedding(c, self.embed)], dim=-1))
        if y is None:
            y = torch.full((x.shape[0],), self.num_classes, dtype=torch.long, device=x.device)
        return self.net(torch.cat([x, sinusoidal_embedding(c, self.embed), self.label(y)], dim=-1))

