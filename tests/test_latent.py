"""Latent inference: DDIM inversion against its closed form, and the runner's latent stage."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from bench.config.suite import DataConfig, EvalConfig
from bench.data import load
from bench.execution.cell import latent_stage
from models.samplers import DDIM
from tests.helpers import example_batch, tiny_model


class ZeroEps(nn.Module):
    """An epsilon-network that always predicts 0."""

    def forward(self, x_t, t):
        return torch.zeros_like(x_t)


def test_ddim_inversion_with_zero_epsilon_is_the_closed_form():
    # With eps = 0 every DDIM step rescales x_0 by sqrt(alpha_bar): the inversion ends at
    # z = sqrt(alpha_bar_{T-1}) x, and the sampler started there divides it back out.
    m = tiny_model("diffusion", "vector", T=100)
    m.eps_net = ZeroEps()
    x = example_batch("vector", 32)
    z = m.to_latent(x)  # the family's first DDIM sampler, ddim50
    torch.testing.assert_close(z, m.alpha_bar[-1].sqrt() * x)
    torch.testing.assert_close(m.from_latent(z), x)
    assert m.latent_nfe() == 50
    ddim5 = DDIM(steps=5)
    z5 = m.to_latent(x, sampler=ddim5)
    torch.testing.assert_close(z5, m.alpha_bar[-1].sqrt() * x)
    torch.testing.assert_close(m.from_latent(z5, sampler=ddim5), x)
    assert m.latent_nfe(ddim5) == 5
    with pytest.raises(ValueError, match="at most the model's T = 100"):
        m.to_latent(x, sampler=DDIM(steps=200))

@pytest.fixture(scope="module")
def toy():
    return load("8gaussians", DataConfig(n_train=500, n_val=100, n_test=300), 10**6)


def test_latent_stage_states_none_and_times_nothing(toy):
    out = latent_stage(tiny_model("gan", "vector"), toy, EvalConfig(n_samples=100, bound_n=50), torch.device("cpu"))
    assert out.latent_kind == "none"
    assert all(getattr(out, f.name) is None for f in dataclasses.fields(out) if f.name != "latent_kind")


def test_latent_stage_of_a_flow_reconstructs_to_float_precision(toy):
    ev = EvalConfig(n_samples=100, bound_n=200, density_batch=64, timing_repeats=5, timing_warmup=1)
    out = latent_stage(tiny_model("flow", "vector").eval(), toy, ev, torch.device("cpu"))
    assert (out.latent_kind, out.latent_nfe, out.latent_dim, out.latent_n, out.latent_batch) == ("exact", 1, 2, 200, 64)
    assert out.latent_recon_rmse < 1e-4 and out.latent_recon_max_abs < 1e-4
    assert out.latent_timing_repeats == 5 and out.latent_batch_ms > 0
    assert out.latent_throughput_per_s == pytest.approx(64 / (out.latent_batch_ms / 1e3))


def test_a_density_call_of_many_nfe_is_timed_like_a_slow_sampler(toy):
    from bench.execution.cell import density_stage

    ev = EvalConfig(n_samples=100, bound_n=20, density_batch=20, timing_repeats=5, timing_repeats_slow=2,
                    slow_sampler_nfe=10)
    ddpm = tiny_model("diffusion", "vector").eval()  # tiny T = 20: the ELBO makes 20 passes >= 10
    assert ddpm.density_nfe() == 20 and tiny_model("flow", "vector").density_nfe() == 1
    assert density_stage(ddpm, toy, ev, torch.device("cpu")).density_timing_repeats == 2
    assert density_stage(tiny_model("flow", "vector").eval(), toy, ev, torch.device("cpu")).density_timing_repeats == 5
