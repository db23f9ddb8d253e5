"""The CI profile reaches the end of every schedule: each family's step-dependent schedules (learning-rate and
EMA warm-ups, the VAE's KL warm-up, the EBM's replay buffer, noise ladders, critic steps), read from the
resolved ci config of suites/toy2d.yaml, end by 90% of its step budget, so that a change to a schedule's end,
or to what follows it, reaches the regression gate. The schedule lengths are checked by hand first."""

from __future__ import annotations

import pytest

import models
from bench.config.suite import load_suite
from bench.core.env import ROOT
from models.base import TrainConfig, ladder_steps
from tests.helpers import tiny_model

SCHEDULE_END = 0.9  # every schedule ends by this fraction of the ci budget: the rest trains what follows it


def test_schedule_lengths_by_hand():
    # EMA decay min(d, (1 + n) / (10 + n)): d = 0.9 at update n = 80 (81 / 90), training step 81; 0.995 at 1790
    base = tiny_model("autoregressive", "vector")
    assert base.schedule_steps(TrainConfig(ema=0.9)) == {"EMA decay warm-up": 81}
    assert base.schedule_steps(TrainConfig(ema=0.995))["EMA decay warm-up"] == 1791
    assert base.schedule_steps(TrainConfig(warmup_steps=200)) == {"learning-rate warm-up": 200}
    assert base.schedule_steps(TrainConfig()) == {}
    assert tiny_model("vae", "vector", kl_warmup_steps=60).schedule_steps(TrainConfig()) == {"KL warm-up": 60}
    # the replay buffer holds 10,000 chains, 256 arrive a step: full after ceil(39.06) = 40 steps
    ebm = tiny_model("energy", "vector", buffer_size=10_000)
    assert ebm.schedule_steps(TrainConfig(batch_size=256)) == {"replay buffer full": 40}
    # 100 levels, 512 draws a step: 100 (0.99)^n <= 1e-6 from n = 1833 draws, 4 steps; 10 levels: 161 draws, 1 step
    assert ladder_steps(100, 512) == 4 and ladder_steps(10, 512) == 1 and ladder_steps(1, 512) == 1
    assert tiny_model("diffusion", "vector", T=100).schedule_steps(TrainConfig(batch_size=512)) == \
        {"noise ladder covered": 4}
    assert tiny_model("gan", "vector").schedule_steps(TrainConfig()) == {"1 critic step(s) per generator step": 1}


@pytest.mark.parametrize("family", list(load_suite(ROOT / "suites" / "toy2d.yaml", profile="ci").families))
def test_the_ci_profile_reaches_every_schedules_end(family):
    suite = load_suite(ROOT / "suites" / "toy2d.yaml", profile="ci")
    for name in suite.datasets:
        entry = suite.family(name, family)
        train = entry.train
        # a step budget: the cosine decay reaches 0 on the last step, and the steps do not depend on the machine
        assert train.max_seconds is None, f"{name}/{family}: a time budget"
        model = models.build(family, suite.modality, entry.model, (2,))
        for schedule, steps in model.schedule_steps(train).items():
            assert steps <= SCHEDULE_END * train.steps, \
                f"{name}/{family}: {schedule} ends at step {steps} of {train.steps}"


def test_the_default_profile_trains_ar_and_the_flow_for_equal_steps_at_matched_size():
    # the expressiveness claim (T21) compares the flow with the autoregressive model at equal compute: equal
    # training steps (a step budget, the same on every machine) at parameter counts within 1%
    suite = load_suite(ROOT / "suites" / "toy2d.yaml", profile="default")
    ar, flow = (suite.family("8gaussians", f) for f in ("autoregressive", "flow"))
    assert ar.train.max_seconds is None and flow.train.max_seconds is None
    assert ar.train.steps == flow.train.steps
    sizes = [sum(p.numel() for p in models.build(f, "vector", e.model, (2,)).parameters())
             for f, e in (("autoregressive", ar), ("flow", flow))]
    assert abs(sizes[1] / sizes[0] - 1) < 0.01, sizes
