"""The public model API returns plain tensors (no autograd graph) unless the caller asks for gradients."""

from __future__ import annotations

import pytest
import torch

import models
from tests.helpers import example_batch, tiny_model, tiny_samplers

ENTRIES = models.entries()
DENSITY_ENTRIES = [(n, m) for n, m in ENTRIES if models.get(n, m).capabilities.likelihood != "none"]


def _outputs(m: models.GenerativeModel, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every public call the family declares, on ``x`` (bounds flattened by name)."""
    out = {"sample": m.sample(3, generator=torch.Generator().manual_seed(0),
                              sampler=next(iter(tiny_samplers(m.family, m.modality).values())))}
    caps = m.capabilities
    if caps.log_prob:
        out["log_prob"] = m.log_prob(x)
    if caps.bound:
        out.update({f"log_prob_bounds[{k}]": v for k, v in m.log_prob_bounds(x).items()})
    if caps.energy:
        out["energy"] = m.energy(x)
    return out


@pytest.mark.parametrize("name,modality", ENTRIES, ids=[f"{n}-{m}" for n, m in ENTRIES])
def test_outputs_are_plain_tensors_and_numpy_works(name, modality):
    m = tiny_model(name, modality).eval()
    x = example_batch(modality, n=4)
    for call, y in _outputs(m, x).items():
        assert not y.requires_grad and y.grad_fn is None, f"{name}/{modality}: {call} built an autograd graph"
        a = y.numpy()  # the README's use: fails on a tensor that requires grad
        assert a.shape[0] == (3 if call == "sample" else 4), call


@pytest.mark.parametrize("name,modality", DENSITY_ENTRIES, ids=[f"{n}-{m}" for n, m in DENSITY_ENTRIES])
def test_a_caller_who_asks_for_gradients_gets_them(name, modality):
    m = tiny_model(name, modality).eval()
    x = example_batch(modality, n=4)
    with models.gradients():
        densities = {k: v for k, v in _outputs(m, x).items() if k != "sample"}
    for call, y in densities.items():
        assert y.requires_grad, f"{name}/{modality}: {call} has no graph under models.gradients()"
    m.zero_grad(set_to_none=True)
    sum(y.sum() for y in densities.values()).backward()
    reached = [p for p in m.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert reached, f"{name}/{modality}: no parameter received a gradient"


def test_a_gan_generator_is_differentiable_on_request():
    m = tiny_model("gan", "vector").eval()
    assert not m.sample(4).requires_grad
    with models.gradients():
        x = m.sample(4)
    x.sum().backward()
    assert any(p.grad is not None for p in m.parameters())


def test_training_still_differentiates_through_public_calls_made_inside_loss():
    """A 2D flow's loss is -log_prob(x).mean(): the inner public call must keep the graph."""
    m = tiny_model("flow", "vector").train()
    loss = m.loss(example_batch("vector", n=16))
    assert loss.requires_grad
    loss.backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)


def test_langevin_samplers_still_differentiate_the_energy_inside_sample():
    """EBM sampling runs SGLD on grad_x E(x) under torch.enable_grad(); outside, the samples carry no graph."""
    m = tiny_model("energy", "vector").eval()
    m.prepare(example_batch("vector", n=64))
    x0 = m.sample(5, generator=torch.Generator().manual_seed(0), sampler=tiny_samplers("energy", "vector")["default"])
    assert not x0.requires_grad
    # SGLD moved the chains: the samples are not the uniform draws they started from
    start = m.uniform(5, torch.Generator().manual_seed(0))
    assert not torch.allclose(x0, start)


def test_gradients_is_scoped_to_its_block():
    m = tiny_model("flow", "vector").eval()
    x = example_batch("vector", n=4)
    with models.gradients():
        assert m.log_prob(x).requires_grad
    assert not m.log_prob(x).requires_grad


def _grad_modes(m: models.GenerativeModel, call) -> list[bool]:
    """``torch.is_grad_enabled()`` at every forward of one of ``m``'s modules while ``call()`` runs."""
    own, seen = set(map(id, m.modules())), []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda mod, args, out: seen.append(torch.is_grad_enabled()) if id(mod) in own else None)
    try:
        call()
    finally:
        hook.remove()
    return seen


@pytest.mark.parametrize("name,modality", ENTRIES, ids=[f"{n}-{m}" for n, m in ENTRIES])
def test_every_sampler_and_density_honours_models_gradients(name, modality):
    """Inside ``models.gradients()`` every network pass of ``sample`` (each sampler) and of the density calls
    records autograd; outside, the outputs are plain tensors. (No sampler may wrap itself in ``no_grad``.)"""
    m = tiny_model(name, modality).eval()
    x = example_batch(modality, n=4)
    m.prepare(example_batch(modality, n=64))
    calls = {f"sample[{k}]": (lambda s=s: m.sample(2, generator=torch.Generator().manual_seed(0), sampler=s))
             for k, s in tiny_samplers(name, modality).items()}
    caps = m.capabilities
    if caps.log_prob:
        calls["log_prob"] = lambda: m.log_prob(x)
    if caps.bound:
        calls["log_prob_bounds"] = lambda: m.log_prob_bounds(x)
    if caps.energy:
        calls["energy"] = lambda: m.energy(x)
    for call, fn in calls.items():
        with models.gradients():
            modes = _grad_modes(m, fn)
        assert modes and all(modes), f"{name}/{modality}: {call} ran {modes.count(False)} of {len(modes)} network " \
                                     "passes without autograd inside models.gradients()"
        out = fn()
        for y in (out.values() if isinstance(out, dict) else [out]):
            assert not y.requires_grad, f"{name}/{modality}: {call} returned a graph outside models.gradients()"
        if call.startswith("sample") and modality == "vector" and not caps.energy:  # SGLD detaches its chains
            with models.gradients():
                assert fn().requires_grad, f"{name}/{modality}: {call} gave no graph inside models.gradients()"
