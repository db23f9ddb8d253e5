"""The shared math of the GAN, score and energy families, checked in both modalities against hand-computed values.

Each family's 2D and image forms run one base class (``models.gan.AdversarialNetwork``,
``models.score.NoiseConditionalScore``, ``models.energy.ContrastiveDivergenceEBM``); these
tests replace the networks by functions whose answer is known in closed form.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from models.samplers import AnnealedLangevin
from tests.helpers import example_batch, tiny_model

IMAGE = (1, 8, 8)


# --------------------------------------------------------------------------- GAN
@pytest.mark.parametrize("modality", ["vector", "image"])
def test_gan_losses_of_an_undecided_discriminator_are_log_2(modality):
    """D(x) = 0 everywhere: -log D(x) - log(1 - D(G(z))) = 2 ln 2 and -log D(G(z)) = ln 2, so loss = 3 ln 2."""
    m = tiny_model("gan", modality, data_shape=IMAGE if modality == "image" else None)
    last = m.discriminator[-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    x = example_batch(modality, 16, shape=IMAGE)
    torch.testing.assert_close(m.loss(x), torch.tensor(3 * math.log(2)))


def test_wgan_gp_loss_of_a_linear_critic():
    """D(x) = a.x + b has gradient a everywhere: loss_D + loss_G = -mean D(x_real) + lambda (|a| - 1)^2."""
    m = tiny_model("gan", "vector", loss="wgan-gp", gp_weight=0.1)
    m.discriminator = nn.Linear(2, 1)
    with torch.no_grad():
        m.discriminator.weight.copy_(torch.tensor([[3.0, 4.0]]))  # |a| = 5, penalty (5 - 1)^2 = 16
        m.discriminator.bias.fill_(0.5)
    x = example_batch("vector", 32)
    expected = -(x @ torch.tensor([3.0, 4.0]) + 0.5).mean() + 0.1 * 16
    torch.testing.assert_close(m.loss(x), expected)


# --------------------------------------------------------------------------- score
def _shape(modality):
    return (2,) if modality == "vector" else IMAGE


def _sigma(sigma, x):
    return sigma.reshape(-1, *[1] * (x.dim() - 1))


@pytest.mark.parametrize("modality", ["vector", "image"])
def test_dsm_loss_is_zero_for_the_exact_score_of_a_point_mass(modality):
    """Data all at x0: p_sigma = N(x0, sigma^2 I), whose score -(x - x0) / sigma^2 makes sigma s + z vanish."""
    m = tiny_model("score", modality, data_shape=_shape(modality), sigma_max=5.0, n_sigmas=4)
    x = example_batch(modality, 1, shape=IMAGE).expand(32, *_shape(modality))
    x0 = m.encode_data(x[:1])
    m.score_net = lambda xt, sigma: -(xt - x0) / _sigma(sigma, xt)  # u = sigma * score
    assert float(m.loss(x)) < 1e-10


@pytest.mark.parametrize("modality", ["vector", "image"])
def test_dsm_loss_of_a_zero_score_is_half_the_noise_energy(modality):
    """s = 0 leaves ||z||^2 / 2: D / 2 = 1 nat per 2D example, 1/2 per dimension for images (the reductions)."""
    n = 4096 if modality == "vector" else 512
    m = tiny_model("score", modality, data_shape=_shape(modality), sigma_max=5.0, n_sigmas=4)
    m.score_net = lambda xt, sigma: torch.zeros_like(xt)
    torch.manual_seed(0)
    loss = float(m.loss(example_batch(modality, n, shape=IMAGE)))
    expected, se = (1.0, 0.5 * 2 / math.sqrt(n)) if modality == "vector" else (0.5, 0.5 * math.sqrt(2 / (n * 64)))
    assert abs(loss - expected) < 5 * se, (loss, expected, se)


@pytest.mark.parametrize("modality", ["vector", "image"])
def test_annealed_langevin_with_the_exact_score_of_a_gaussian_gives_the_closed_form_variance(modality):
    """Target N(mu, s^2 I), exact score -(x - mu) / (s^2 + sigma^2) at every level: each step is linear-Gaussian.

    A Langevin step x <- x + a/2 score + sqrt(a) z maps the mean's offset from mu by
    d -> r d and the variance by V -> r^2 V + a, r = 1 - a / (2 (s^2 + sigma^2)); the Tweedie
    step multiplies both the offset and the deviation by s^2 / (s^2 + sigma_L^2) = 0.96
    (s = 0.05, sigma_L = 0.01), which this test resolves (at about 10 standard errors).
    Vectors: mu = 1, start N(0, sigma_1^2). Images on the [0, 1] scale: mu = 0.5, start
    U[0, 1] + N(0, sigma_1^2), and rounding to pixels adds 1/12 pixel^2.
    """
    mu, s = (1.0, 0.05) if modality == "vector" else (0.5, 0.05)
    eps, steps = 2e-5, 100
    m = tiny_model("score", modality, data_shape=_shape(modality), sigma_max=10.0 * s, sigma_min=0.01, n_sigmas=10)
    m.score_net = lambda x, sigma: -(x - mu) * _sigma(sigma, x) / (s**2 + _sigma(sigma, x) ** 2)
    sigmas = m.sigmas.double().tolist()
    d = 0.0 - mu if modality == "vector" else 0.0  # the start's mean offset and variance
    var = sigmas[0] ** 2 + (0.0 if modality == "vector" else 1 / 12)
    for sigma in sigmas:
        a = eps * (sigma / sigmas[-1]) ** 2
        r = 1 - a / (2 * (s**2 + sigma**2))
        for _ in range(steps):
            d, var = r * d, r**2 * var + a
    tweedie = s**2 / (s**2 + sigmas[-1] ** 2)
    mean, var = mu + tweedie * d, tweedie**2 * var
    n = 16000 if modality == "vector" else 500
    sampler = AnnealedLangevin(steps_per_sigma=steps, step_eps=eps)
    x = m.sample(n, generator=torch.Generator().manual_seed(0), sampler=sampler).double()
    if modality == "image":
        mean, var = mean * 255, var * 255**2 + 1 / 12  # pixel units
    std, se = math.sqrt(var), math.sqrt(var / (2 * x.numel()))
    assert abs(x.mean().item() - mean) < 5 * std / math.sqrt(x.numel())
    assert abs(x.std().item() - std) < 5 * se, (x.std().item(), std, se)


# --------------------------------------------------------------------------- energy
def test_vector_ebm_sgld_step_is_the_documented_langevin_update():
    """E(x) = a.x, step eps: one step is x - eps/2 a + sqrt(eps) xi, clamped to the box from prepare."""
    m = tiny_model("energy", "vector", sgld_step_size=0.04, box_margin=0.0)
    m.prepare(torch.tensor([[1.0, -1.0]]))  # box [-1, 1]^2
    a = torch.tensor([2.0, -1.0])
    m.working_energy = lambda x: x @ a
    x0 = torch.tensor([[0.0, 0.0], [0.99, -0.99]])
    x1 = m.chains(x0, m.chain_schedule(1), torch.Generator().manual_seed(0))
    xi = torch.randn(2, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x1, (x0 - 0.02 * a + 0.2 * xi).clamp(-1, 1))
    sgld = m.default_samplers()["default"]  # the sampler's first step: exact Langevin at step_start
    assert sgld.schedule(m)[0] == (0.5 * sgld.step_start, sgld.step_start**0.5) == (0.15, 0.3**0.5)
