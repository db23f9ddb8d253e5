"""The public model API returns plain tensors (no autograd graph) unless the caller asks for gradients."""

from __future__ import annotations

import pytest
import torch

import models
from tests.helpers import example_batch, tiny_model

ENTRIES = models.entries()
DENSITY_ENTRIES = [(n, m) for n, m in ENTRIES if models.get(n, m).capabilities.likelihood != "none"]


def _outputs(m: models.GenerativeModel, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every public call the family declares, on ``x`` (bounds flattened by name)."""
    out = {"sample": m.sample(3, generator=torch.Generator().manual_seed(0))}
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
    x0 = m.sample(5, generator=torch.Generator().manual_seed(0))
    assert not x0.requires_grad
    # SGLD moved the chains: the samples are not the uniform draws they started from
    start = m._uniform(5, torch.Generator().manual_seed(0))
    assert not torch.allclose(x0, start)


def test_gradients_is_scoped_to_its_block():
    m = tiny_model("flow", "vector").eval()
    x = example_batch("vector", n=4)
    with models.gradients():
        assert m.log_prob(x).requires_grad
    assert not m.log_prob(x).requires_grad
