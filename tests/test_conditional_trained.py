"""Trained conditional 2D models respect their labels (slow tier): every family, conditioned on the 8-Gaussians
component, puts at least 90% of its samples nearest the requested component (the true mixture's Bayes classifier,
which gives the real test points back their own component 99.6% of the time; chance is 12.5%).

The energy model is the exception at this budget: measured 0.505 (600 steps, 10 SGLD steps per chain from a
replay buffer whose chains carry the labels they were drawn for), four times chance but far from the others; its
floor here is 0.4, and the conditional report's T24 verdict gives its measured agreement."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import models
from bench.config.suite import DataConfig
from bench.data import load
from bench.execution.train import train
from models.base import TrainConfig

pytestmark = pytest.mark.slow

# Budgets that train each family in a few seconds on 2 CPU cores (the conditional default profile's or less).
BUDGETS = {
    "autoregressive": ({}, {"steps": 1500, "lr": 3e-3}),
    "vae": ({"kl_warmup_steps": 300}, {"steps": 1500, "lr": 2e-3}),
    "gan": ({}, {"steps": 1500, "lr": 1e-3, "betas": (0.5, 0.999)}),
    "flow": ({}, {"steps": 600, "lr": 5e-3, "batch_size": 1024}),
    "diffusion": ({"T": 100}, {"steps": 1500, "lr": 2e-3, "ema": 0.995}),
    "energy": ({}, {"steps": 600, "lr": 1e-3, "betas": (0.0, 0.999)}),
    "score": ({}, {"steps": 1500, "lr": 2e-3, "ema": 0.995}),
}

FLOORS = {"energy": 0.4}  # measured 0.505 at the budget above (see the module docstring); the others 0.9


@pytest.fixture(scope="module")
def data():
    return load("8gaussians", DataConfig(n_train=20_000, n_val=10, n_test=2000))


@pytest.mark.parametrize("family", sorted(BUDGETS))
def test_a_trained_conditional_model_puts_90_percent_of_its_samples_at_the_requested_component(family, data):
    cls = models.get(family, "vector")
    model_kw, train_kw = BUDGETS[family]
    model = cls(dataclasses.replace(cls.Config(), num_classes=8, **model_kw), (2,))
    cfg = TrainConfig(**{"batch_size": 512, **cls.train_defaults, **train_kw})
    train(model, data.train, cfg, seed=0, progress=False, y_train=data.train_labels)
    y = torch.arange(2000) % 8
    x = model.sample(2000, generator=torch.Generator().manual_seed(0), y=y).double().numpy()
    ok = np.isfinite(x).all(1)
    nearest = np.full(len(x), -1)
    nearest[ok] = data.true.component_log_prob(x[ok]).argmax(1)
    agreement = float((nearest == y.numpy()).mean())
    floor = FLOORS.get(family, 0.9)
    assert agreement >= floor, f"{family}: {agreement:.3f} of the samples at the requested component (< {floor})"
