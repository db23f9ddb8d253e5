"""The training loop's EMA and its loss record under a time budget."""

from __future__ import annotations

import math

import pytest
import torch

from bench.execution.train import EMA


def test_ema_follows_the_warmed_up_decay_by_hand():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.999)
    expected = 0.0
    for n in range(600):
        with torch.no_grad():
            model.weight.fill_(1.0)  # the live weight jumps to 1 and stays there
        ema.update(model)
        d = min(0.999, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * 1.0
    assert ema.shadow[0].item() == pytest.approx(expected, rel=1e-5)
    # the initial weight's share is the product of the decays (~1e-20), where a plain EMA keeps 0.999^600 = 0.55
    assert math.prod(min(0.999, (1 + n) / (10 + n)) for n in range(600)) < 1e-15
    assert ema.shadow[0].item() > 0.999999
    ema.copy_to(model)
    assert model.weight.item() == pytest.approx(expected, rel=1e-6)
