"""Likelihood bounds and samplers checked in closed form.

For data x_0 ~ N(0, s^2 I) every quantity of a DDPM with the optimal epsilon-network
is Gaussian, so the expected ELBO and the variance of each sampler's output have
closed forms (derived in the helpers below) that the implementation must match.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

import models
from models.diffusion import DDPM, DDPMConfig
from models.samplers import build_samplers

S = 0.5  # data standard deviation


def _optimal_ddpm(s: float, T: int) -> DDPM:
    """A DDPM whose epsilon-network is the exact optimum E[eps | x_t] for data N(0, s^2 I)."""
    m = DDPM(DDPMConfig(T=T, hidden=8, layers=1), (2,))

    class EpsStar(torch.nn.Module):
        def forward(self, x_t, t):
            ab = m.alpha_bar[t][:, None]
            return (1 - ab).sqrt() * x_t / (ab * s**2 + 1 - ab)

    m.eps_net = EpsStar()
    return m


def _schedule(m: DDPM):
    f = lambda v: v.double().numpy()  # noqa: E731
    return f(m.beta), f(m.alpha_bar), f(m.alpha_bar_prev), f(m.log_var)


def expected_elbo_per_dim(m: DDPM, s: float) -> float:
    """E_x0[ELBO] per dimension, for the optimal network. Each KL term of Ho et al. Eq. 5 is
    a_t^2 Var(x_0 | x_t) / (2 beta_tilde_t), with a_t = sqrt(ab_{t-1}) beta_t / (1 - ab_t) the
    x_0-coefficient of the posterior mean and Var(x_0 | x_t) = s^2 (1 - ab_t) / (ab_t s^2 + 1 - ab_t)."""
    beta, ab, ab_prev, log_var = _schedule(m)
    var_post = s**2 * (1 - ab) / (ab * s**2 + 1 - ab)
    a = np.sqrt(ab_prev) * beta / (1 - ab)
    kl_terms = (a[1:] ** 2 * var_post[1:] / (2 * np.exp(log_var[1:]))).sum()
    decoder = 0.5 * (math.log(2 * math.pi) + log_var[0] + var_post[0] / math.exp(log_var[0]))
    prior = 0.5 * ((1 - ab[-1]) + ab[-1] * s**2 - 1 - math.log(1 - ab[-1]))
    return -(prior + kl_terms + decoder)


def test_ddpm_elbo_matches_its_closed_form_and_is_below_log_likelihood():
    m = _optimal_ddpm(S, T=1000)
    x = S * torch.randn(4000, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        elbo = m.log_prob_bounds(x, generator=torch.Generator().manual_seed(1))["elbo"].double()
    se = float(elbo.std() / len(elbo) ** 0.5)
    expected = 2 * expected_elbo_per_dim(m, S)
    log_lik = 2 * (-0.5 * math.log(2 * math.pi * S**2) - 0.5)  # E[log N(x; 0, s^2)] per 2 dims
    assert abs(float(elbo.mean()) - expected) < 4 * se
    assert expected < log_lik  # a bound: about 1.2 nats loose with fixed variances beta_tilde
    assert log_lik - expected < 1.5


def _sampler_std(m: DDPM, s: float, sampler: str, steps: int | None = None) -> float:
    """Closed-form std of the sampler's output (per dimension), starting from N(0, 1).

    With the optimal network, E[x_0 | x_t] = sqrt(ab_t) s^2 / v_t x_t, v_t = ab_t s^2 + 1 - ab_t.
    Ancestral: x_{t-1} = m_t x_t + sqrt(beta_tilde_t) z, with m_t the mean's coefficient.
    DDIM: x_prev = (sqrt(ab_prev ab_t) s^2 + sqrt((1 - ab_prev)(1 - ab_t))) / v_t x_t.
    """
    beta, ab, ab_prev, log_var = _schedule(m)
    v = ab * s**2 + 1 - ab
    var = 1.0
    if sampler == "ancestral":
        for t in reversed(range(len(beta))):
            x0_coef = np.sqrt(ab[t]) * s**2 / v[t]
            mean_coef = ((np.sqrt(ab_prev[t]) * beta[t] * x0_coef + np.sqrt(1 - beta[t]) * (1 - ab_prev[t]))
                         / (1 - ab[t]))
            var = mean_coef**2 * var + (np.exp(log_var[t]) if t > 0 else 0.0)
        return math.sqrt(var)
    ts = np.unique(np.linspace(0, len(beta) - 1, steps).round().astype(int))[::-1]
    for j, t in enumerate(ts):
        abp = ab[ts[j + 1]] if j + 1 < len(ts) else 1.0
        var *= ((np.sqrt(abp * ab[t]) * s**2 + np.sqrt((1 - abp) * (1 - ab[t]))) / v[t]) ** 2
    return math.sqrt(var)


def test_samplers_match_the_closed_form_output_variance():
    m = _optimal_ddpm(S, T=1000)
    n = 20_000
    with torch.no_grad():
        for name, sampler in build_samplers({"ancestral": {}, "ddim": {"steps": [10, 50]}}).items():
            x = m.sample(n, generator=torch.Generator().manual_seed(0), sampler=sampler)
            expected = _sampler_std(m, S, sampler.kind, getattr(sampler, "steps", None))
            se = expected / math.sqrt(2 * 2 * n)  # std of a sample std, 2 dims
            assert abs(float(x.std()) - expected) < 4 * se, (name, float(x.std()), expected)
    # DDIM shrinks the variance at few steps (Cauchy-Schwarz on the update): 10 steps < 50 < data.
    assert _sampler_std(m, S, "ddim", 10) < _sampler_std(m, S, "ddim", 50) < S


def test_vae_iwae_is_at_least_the_elbo():
    cls = models.get("vae", "vector")
    torch.manual_seed(0)
    m = cls(dataclasses.replace(cls.Config(), hidden=16, iwae_k=128), (2,))
    x = torch.randn(256, 2)
    with torch.no_grad():
        b = m.log_prob_bounds(x, generator=torch.Generator().manual_seed(0))
    assert float(b["iwae_k128"].mean()) > float(b["elbo"].mean())
    assert (b["iwae_k128"] >= b["elbo"] - 1e-5).all()  # log-mean-exp >= mean, per example (Jensen)
