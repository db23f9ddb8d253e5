"""The contract every registered family honours (parametrized over the whole registry).

Every test takes ``(name, modality)`` only: ``tests/test_new_family.py`` runs each of them on a family
written in one file and found through ``GENBENCH_FAMILIES``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing

import pytest
import torch

import models
from models.base import TrainConfig
from models.fields import FieldConflict, edge_values, undeclared
from models.samplers import KINDS
from tests.helpers import DATA_SHAPES, example_batch, tiny_model, tiny_samplers

ENTRIES = models.entries()


def _check_declared(dataclass: type, what: str) -> None:
    """Every field of ``dataclass`` declares its allowed values; each value at a bound is allowed alone (or refused
    by a whole-config check that names the field), each value beyond one is refused naming the field."""
    missing = undeclared(dataclass)
    assert not missing, f"{what} must declare the allowed values of every field (models/fields.py): {missing}"
    hints = typing.get_type_hints(dataclass, include_extras=True)
    for f in dataclasses.fields(dataclass):
        if not f.init:
            continue
        for value, allowed in edge_values(hints[f.name]):
            if allowed:
                try:
                    dataclass(**{f.name: value})
                except FieldConflict as e:  # e.g. beta_start = 0.999 above the default beta_end
                    assert f.name in e.problems, (f.name, value, str(e))
            else:
                with pytest.raises(ValueError, match=rf"^{re.escape(f.name)}(\[\d+\])?: "):
                    dataclass(**{f.name: value})


@pytest.mark.parametrize("name,modality", ENTRIES)
def test_every_config_field_and_sampler_setting_declares_its_allowed_values(name, modality):
    """``Annotated[int, Range(...)]`` with both bounds, ``Literal`` choices, bools, tuples with a ``Length``: the
    suite refuses a value outside them as one line naming the file and the key, and the fuzzer draws from them."""
    cls = models.get(name, modality)
    _check_declared(cls.Config, f"{cls.__module__}.{cls.Config.__qualname__} (family {name!r}, {modality})")
    cls.Config(**cls.tiny)  # the test size is allowed
    for kind in sorted(cls.sampler_kinds()):
        _check_declared(KINDS[kind], f"sampler kind {kind!r} (models/samplers.py)")


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
