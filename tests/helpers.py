"""Test helpers: tiny model configs so the contract tests run in seconds on CPU."""

from __future__ import annotations

import dataclasses

import torch

import models

# Image tests use 3 channels, so that the channel-coupled likelihoods are exercised; every
# image family also accepts (1, 28, 28) and (3, 32, 32) (tests/test_image_models.py).
DATA_SHAPES = {"vector": (2,), "image": (3, 8, 8)}


def tiny_model(name: str, modality: str, seed: int = 0, data_shape: tuple[int, ...] | None = None,
               **overrides) -> models.GenerativeModel:
    """A small, freshly initialised model of family ``name`` (seeded), optionally for another shape.

    The family's own ``tiny`` options shrink it to test size; ``overrides`` go on top.
    """
    cls = models.get(name, modality)
    cfg = dataclasses.replace(cls.Config(), **{**cls.tiny, **overrides})
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


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: restore SIGINT's default action.

    A shell that starts a job in the background (``cmd &``, ``nohup``) starts it with SIGINT ignored,
    and the ignore is inherited down to the child, where Python then installs no KeyboardInterrupt
    handler: the test's Ctrl-C would be lost. CI may run the suite that way.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
