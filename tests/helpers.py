"""Test helpers: tiny model configs so the contract tests run in seconds on CPU."""

from __future__ import annotations

import dataclasses

import torch

import models

# Per (family, modality): options that shrink a model to test size. Families not
# listed here are tested with their defaults, so a new family is covered anyway.
TINY = {
    ("autoregressive", "vector"): {"hidden": 16, "components": 3},
    ("vae", "vector"): {"hidden": 16, "iwae_k": 8},
    ("gan", "vector"): {"hidden": 16},
    ("flow", "vector"): {"transforms": 2, "hidden": 16},
    ("diffusion", "vector"): {"T": 20, "hidden": 16, "ddim_steps": (5,)},
    ("energy", "vector"): {"hidden": 16, "sgld_steps": 3, "sample_steps": 5, "buffer_size": 64},
    ("score", "vector"): {"hidden": 16, "n_sigmas": 3, "steps_per_sigma": 2},
}

DATA_SHAPES = {"vector": (2,)}


def tiny_model(name: str, modality: str, seed: int = 0) -> models.GenerativeModel:
    """A small, freshly initialised model of family ``name`` (seeded)."""
    cls = models.get(name, modality)
    cfg = dataclasses.replace(cls.Config(), **TINY.get((name, modality), {}))
    torch.manual_seed(seed)
    return cls(cfg, DATA_SHAPES[modality])


def example_batch(modality: str, n: int = 64, seed: int = 0) -> torch.Tensor:
    """A batch of data: points of the 8-Gaussians mixture for vectors."""
    from bench.data.toy2d import eight_gaussians

    x, _ = eight_gaussians().sample(n, seed)
    return torch.from_numpy(x).float()
