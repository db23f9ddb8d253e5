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
    ("autoregressive", "image"): {"channels": 8, "layers": 2, "first_kernel": 3, "head_channels": 16,
                                  "components": 2},
    ("vae", "image"): {"latent": 4, "channels": (8, 16), "components": 2, "iwae_k": 8, "iwae_chunk": 4},
    ("gan", "image"): {"latent": 8, "channels": 8},
    ("flow", "image"): {"levels": 2, "steps": 1, "hidden": 8},
    ("diffusion", "image"): {"T": 20, "channels": (8, 16), "layers_per_block": 1, "norm_groups": 4,
                             "ddim_steps": (5,)},
    ("energy", "image"): {"channels": (8, 16), "sgld_steps": 2, "sample_steps": 3, "buffer_size": 64},
    ("score", "image"): {"n_sigmas": 3, "steps_per_sigma": 2, "channels": (8, 16), "layers_per_block": 1,
                         "norm_groups": 4},
}

# Image tests use 3 channels, so that the channel-coupled likelihoods are exercised; every
# image family also accepts (1, 28, 28) and (3, 32, 32) (tests/test_image_models.py).
DATA_SHAPES = {"vector": (2,), "image": (3, 8, 8)}


def tiny_model(name: str, modality: str, seed: int = 0, data_shape: tuple[int, ...] | None = None,
               **overrides) -> models.GenerativeModel:
    """A small, freshly initialised model of family ``name`` (seeded), optionally for another shape."""
    cls = models.get(name, modality)
    cfg = dataclasses.replace(cls.Config(), **{**TINY.get((name, modality), {}), **overrides})
    torch.manual_seed(seed)
    return cls(cfg, data_shape or DATA_SHAPES[modality])


def example_batch(modality: str, n: int = 64, seed: int = 0, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """A batch of data: points of the 8-Gaussians mixture for vectors, random uint8 images for images.

    The images mimic MNIST's saturation: about 40% of the pixels are 0 and 10% are 255
    (the edge bins of the discrete likelihoods), the rest uniform on 0..255.
    """
    if modality == "image":
        g = torch.Generator().manual_seed(seed)
        shape = (n, *(shape or DATA_SHAPES["image"]))
        x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
        u = torch.rand(shape, generator=g)
        return x.masked_fill(u < 0.4, 0).masked_fill(u > 0.9, 255)
    from bench.data.toy2d import eight_gaussians

    x, _ = eight_gaussians().sample(n, seed)
    return torch.from_numpy(x).float()
