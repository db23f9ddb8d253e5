"""The contract every registered family honours (parametrized over the whole registry)."""

from __future__ import annotations

import math

import pytest
import torch

import models
from models.base import TrainConfig
from tests.helpers import DATA_SHAPES, example_batch, tiny_model, tiny_samplers

ENTRIES = models.entries()


@pytest.mark.parametrize("name,modality", ENTRIES)
def test_sample_shape_and_dtype(name, modality):
    m = tiny_model(name, modality)
    m.prepare(example_batch(modality, 256))
    for sampler in tiny_samplers(name, modality).values():
        with torch.no_grad():
            x = m.sample(7, generator=torch.Generator().manual_seed(0), sampler=sampler)
        assert x.shape == (7, *DATA_SHAPES[modality])
        if modality == "image":  # 8-bit pixels, 0..255 by the dtype
            assert x.dtype == torch.uint8
        else:
            assert x.dtype == torch.float32
            assert torch.isfinite(x).all()
        assert m.sample_nfe(sampler) == sampler.nfe(m) >= 1


@pytest.mark.parametrize("name,modality", ENTRIES)
def test_train_step_finite_and_reaches_every_parameter(name, modality):
    m = tiny_model(name, modality)
    x = example_batch(modality, 64)
    m.prepare(x)
    cfg = TrainConfig(lr=1e-3)
    opts = m.configure_optimizers(cfg)
    before = {k: p.detach().clone() for k, p in m.named_parameters()}
    logs = m.train_step(x, opts, cfg)
    assert logs and all(math.isfinite(float(v)) for v in logs.values()), logs
    for k, p in m.named_parameters():
        assert p.grad is not None, f"{k} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{k} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{k} has an all-zero gradient"
        assert not torch.equal(p.detach(), before[k]), f"{k} did not change after one step"


@pytest.mark.parametrize("name,modality", ENTRIES)
def test_declared_densities_have_the_documented_shape(name, modality):
    m = tiny_model(name, modality)
    x = example_batch(modality, 16)
    m.prepare(x)
    caps = m.capabilities
    with torch.no_grad():
        if caps.log_prob:
            assert m.log_prob(x).shape == (16,)
        if caps.bound:
            bounds = m.log_prob_bounds(x, generator=torch.Generator().manual_seed(0))
            assert bounds and all(v.shape == (16,) and torch.isfinite(v).all() for v in bounds.values())
        if caps.energy:
            assert m.energy(x).shape == (16,)
    assert caps.likelihood in ("exact", "bound", "unnormalized", "none")


@pytest.mark.parametrize("name,modality", ENTRIES)
def test_checkpoint_round_trip_gives_same_samples_and_densities(name, modality, tmp_path):
    m = tiny_model(name, modality)
    x = example_batch(modality, 32)
    m.prepare(x)
    cfg = TrainConfig(lr=1e-2)
    opts = m.configure_optimizers(cfg)
    for _ in range(3):  # move away from the initialisation
        m.train_step(x, opts, cfg)
    m.eval()
    models.save_checkpoint(m, tmp_path / "model.pt", note="test")
    loaded = models.load_checkpoint(tmp_path / "model.pt")
    assert type(loaded) is type(m) and loaded.checkpoint_extra == {"note": "test"}
    with torch.no_grad():
        for sampler in tiny_samplers(name, modality).values():
            a = m.sample(5, generator=torch.Generator().manual_seed(3), sampler=sampler)
            b = loaded.sample(5, generator=torch.Generator().manual_seed(3), sampler=sampler)
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        if m.capabilities.log_prob:  # a seeded generator: image flows dequantize with random noise
            a = m.log_prob(x, generator=torch.Generator().manual_seed(1))
            b = loaded.log_prob(x, generator=torch.Generator().manual_seed(1))
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        if m.capabilities.bound:
            a = m.log_prob_bounds(x, generator=torch.Generator().manual_seed(1))
            b = loaded.log_prob_bounds(x, generator=torch.Generator().manual_seed(1))
            for k in a:
                torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
        if m.capabilities.energy:
            torch.testing.assert_close(m.energy(x), loaded.energy(x), rtol=0, atol=0)
            assert m.support() == loaded.support()


@pytest.mark.parametrize("name,modality", ENTRIES)
def test_latent_inference_round_trips_or_is_declared_absent(name, modality):
    """Every family either maps x -> z -> x with a finite reconstruction error, or declares no latent."""
    m = tiny_model(name, modality)
    x = example_batch(modality, 16)
    m.prepare(x)
    m.eval()
    kind = m.capabilities.latent
    if kind is None:
        assert type(m).to_latent is models.GenerativeModel.to_latent  # none declared, none implemented
        return
    kw = {"sampler": next(s for s in tiny_samplers(name, modality).values() if hasattr(s, "invert"))} \
        if kind == "inversion" else {}
    z = m.to_latent(x, **kw)
    assert z.dim() == 2 and z.shape[0] == 16 and z.dtype == torch.float32 and not z.requires_grad
    assert torch.isfinite(z).all()
    x_hat = m.from_latent(z, **kw)
    assert x_hat.shape == x.shape and x_hat.dtype == x.dtype
    err = (x_hat.double() - x.double()).flatten(1).norm(dim=1)
    assert torch.isfinite(err).all()
    assert m.latent_nfe(**kw) >= 1
    if kind == "exact":  # a bijection: 2D to float precision, 8-bit images exactly after quantization
        assert float(err.max()) < (1e-4 if modality == "vector" else 0.5)
