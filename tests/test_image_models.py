"""The image families checked against numbers a reader can verify by hand.

Discrete likelihoods sum to 1 over the 256 bins; a uniform model scores 8 bits/dim;
the PixelCNN is causal and its banded sampler equals the full one; the flow inverts
and its log-determinant is the Jacobian's; the DDPM and VAE bounds stay below
log-likelihoods computed independently.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import models
from models import imaging
from models.glow import squeeze
from models.imaging import (
    DiscretizedLogisticMixture,
    bits_per_dim,
    dequantize,
    discretized_gaussian_log_prob,
    discretized_logistic_log_prob,
    dmol_param_count,
    quantize,
)
from tests.helpers import example_batch, tiny_model, tiny_samplers

ALL_PIXELS = torch.arange(256, dtype=torch.uint8)


# --------------------------------------------------------------------------- discrete likelihoods
@pytest.mark.parametrize("log_prob", [discretized_logistic_log_prob, discretized_gaussian_log_prob])
def test_discretized_likelihoods_sum_to_one_over_the_256_bins(log_prob):
    mean = torch.tensor([-1.5, -1.0, -0.3, 0.0, 0.2, 1.0, 1.7])[:, None, None]
    log_scale = torch.tensor([-7.0, -4.0, -1.0, 0.0, 2.0])[None, :, None]
    lp = log_prob(ALL_PIXELS[None, None, :], mean, log_scale)  # (means, scales, 256)
    assert torch.isfinite(lp).all()
    torch.testing.assert_close(lp.double().exp().sum(-1), torch.ones(7, 5, dtype=torch.float64), atol=1e-5, rtol=0)


def test_discretized_likelihoods_match_the_cdf_differences():
    """Pixel 100 sits at c = 100 / 127.5 - 1 with bin [c - 1/255, c + 1/255]; pixels 0 and 255 take the tails."""
    mu, s = 0.1, 0.2
    c = 100 / 127.5 - 1
    x = torch.tensor([100, 0, 255], dtype=torch.uint8)
    logistic = lambda v: 1 / (1 + math.exp(-(v - mu) / s))  # noqa: E731
    normal = lambda v: 0.5 * (1 + math.erf((v - mu) / (s * math.sqrt(2))))  # noqa: E731
    for fn, cdf in ((discretized_logistic_log_prob, logistic), (discretized_gaussian_log_prob, normal)):
        got = fn(x, torch.tensor(mu), torch.tensor(math.log(s))).double().exp()
        want = [cdf(c + 1 / 255) - cdf(c - 1 / 255), cdf(-1 + 1 / 255), 1 - cdf(1 - 1 / 255)]
        torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-5, atol=0)


def test_discretized_likelihoods_are_finite_far_in_the_tails():
    """Bins 40 standard deviations from the mean: exact log-space evaluation, no clamping at 1e-12."""
    x = torch.tensor([255, 200], dtype=torch.uint8)
    lp = discretized_gaussian_log_prob(x, torch.tensor(-1.0), torch.tensor(math.log(0.04)))
    assert torch.isfinite(lp).all() and (lp < math.log(1e-12)).all()


def _dmol(C: int, K: int, seed: int = 0, log_scale: float | None = None) -> DiscretizedLogisticMixture:
    g = torch.Generator().manual_seed(seed)
    params = torch.randn(1, dmol_param_count(C, K), 1, 1, generator=g)
    if log_scale is not None:  # concentrate each channel on a few bins
        params[:, K + K * C : K + 2 * K * C] = log_scale
    return DiscretizedLogisticMixture(params, C, K)


@pytest.mark.slow  # 16.7 million colours (~8 s)
def test_channel_coupled_mixture_sums_to_one_over_all_256_cubed_colours():
    mix = _dmol(C=3, K=2)
    assert mix.coeff.abs().min() > 0.05  # the channels really are coupled
    g1, g2 = torch.meshgrid(ALL_PIXELS, ALL_PIXELS, indexing="ij")
    total = 0.0
    for r in range(256):
        x = torch.stack([torch.full_like(g1, r), g1, g2]).reshape(3, -1).T[:, :, None, None]  # (65536, 3, 1, 1)
        total += mix.log_prob(x).double().exp().sum().item()
    assert abs(total - 1.0) < 1e-5


def test_mixture_sampling_matches_its_probabilities():
    """Empirical joint histogram of 100,000 two-channel draws vs the coupled pmf: total variation < 0.025.

    Scales of half a pixel value keep the support to about 100 colours, so the sampling
    noise in the total variation is about 0.01; a wrong coupling would put it near 1.
    """
    C, K, n = 2, 2, 100_000
    mix = _dmol(C, K, seed=1, log_scale=-5.5)
    params = torch.cat([mix.logits, mix.mean.flatten(1, 2), mix.log_scale.flatten(1, 2),
                        torch.atanh(mix.coeff).flatten(1, 2)], dim=1).expand(n, -1, -1, -1)
    draws = DiscretizedLogisticMixture(params, C, K).sample(torch.Generator().manual_seed(0))[:, :, 0, 0].long()
    counts = torch.bincount(draws[:, 0] * 256 + draws[:, 1], minlength=256 * 256).double() / n
    g0, g1 = torch.meshgrid(ALL_PIXELS, ALL_PIXELS, indexing="ij")
    grid = torch.stack([g0, g1]).reshape(2, -1).T[:, :, None, None]
    pmf = DiscretizedLogisticMixture(params[:1].expand(len(grid), -1, -1, -1), C, K).log_prob(grid).double().exp()
    assert abs(pmf.sum().item() - 1) < 1e-5
    assert 0.5 * (counts - pmf.flatten()).abs().sum() < 0.025


# --------------------------------------------------------------------------- bits/dim and dequantization
def test_a_uniform_model_over_256_levels_scores_exactly_8_bits_per_dim():
    D = 3 * 32 * 32
    uniform = torch.tensor(-D * math.log(256), dtype=torch.float64)
    assert bits_per_dim(uniform, D).item() == pytest.approx(8.0, abs=1e-12)
    # a PixelCNN whose head outputs all-zero logits is that uniform model
    m = tiny_model("autoregressive", "image", data_shape=(1, 8, 8))
    torch.nn.init.zeros_(m.head[-1].weight)
    torch.nn.init.zeros_(m.head[-1].bias)
    x = example_batch("image", 8, shape=(1, 8, 8))
    with torch.no_grad():
        torch.testing.assert_close(bits_per_dim(m.log_prob(x), 64), torch.full((8,), 8.0), atol=1e-5, rtol=0)


def test_flow_preprocessing_jacobian_gives_8_bits_per_dim_for_the_uniform_density():
    """With alpha = 0, a standard logistic density on s = logit(v / 256) is the uniform density on [0, 256)."""
    m = tiny_model("flow", "image", logit_alpha=0.0)
    v = 256 * torch.rand(16, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    s, logdet = m.preprocess(v)
    log_logistic = (-s - 2 * F.softplus(-s)).flatten(1).sum(1)
    torch.testing.assert_close(bits_per_dim(log_logistic + logdet, 3 * 64),
                               torch.full((16,), 8.0, dtype=torch.float64), atol=1e-9, rtol=0)


def test_dequantization_stays_in_its_bins_and_is_uniform():
    x = ALL_PIXELS.repeat(400)  # every value, pixels 0 and 255 included
    v = dequantize(x, torch.Generator().manual_seed(0))
    assert v.dtype == torch.float32
    assert (v >= x.float()).all() and (v < x.float() + 1).all() and v.max() < 256
    assert torch.equal(quantize(v), x)
    u = v - x.float()
    assert abs(u.mean().item() - 0.5) < 4 * math.sqrt(1 / 12 / len(u))  # U[0, 1): mean 1/2, var 1/12


# --------------------------------------------------------------------------- PixelCNN
def _pixelcnn(C: int, **kw) -> models.GenerativeModel:
    return tiny_model("autoregressive", "image", data_shape=(C, 10, 10), **kw)


@pytest.mark.parametrize("C", [1, 3])
def test_pixelcnn_is_causal_without_blind_spot(C):
    m = _pixelcnn(C, layers=2, first_kernel=3, kernel=3)
    assert m.output == ("softmax" if C == 1 else "dmol") and m.receptive_rows == 4
    i, j = 6, 4
    xc = torch.randn(1, C, 10, 10, requires_grad=True)
    m.network(xc)[0, :, i, j].sum().backward()
    seen = xc.grad.abs().sum(1)[0] > 0  # (10, 10): inputs the output at (i, j) depends on
    raster = torch.arange(100).reshape(10, 10)
    assert not seen[raster >= i * 10 + j].any()  # pixel (i, j) and everything after it
    assert not seen[: i - m.receptive_rows].any()  # rows above the receptive field
    assert seen[i - m.receptive_rows].any()  # ... which is tight
    # the left neighbour, the pixel above, and the upper-right pixels a PixelCNN's blind spot hides
    for p in [(i, j - 1), (i, j - 3), (i - 1, j), (i - 1, j + 1), (i - 1, j + 3), (i - 2, j + 3)]:
        assert seen[p], p


@pytest.mark.parametrize("C", [1, 3])
def test_pixelcnn_distribution_of_a_pixel_ignores_later_pixels(C):
    m = _pixelcnn(C, layers=1)
    x = example_batch("image", 1, shape=(C, 10, 10))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for j in [0, 9, 37, 55, 99]:
            y = x.clone().flatten(2)
            y[:, :, j:] = torch.randint(0, 256, y[:, :, j:].shape, generator=g, dtype=torch.uint8)
            a = m.network(imaging.to_centered(x))[..., j // 10, j % 10]
            b = m.network(imaging.to_centered(y.reshape(x.shape)))[..., j // 10, j % 10]
            assert torch.equal(a, b)
            if j > 0:  # and it does depend on the earlier ones
                y[:, :, j - 1] = 255 - x.flatten(2)[:, :, j - 1]
                assert not torch.equal(a, m.network(imaging.to_centered(y.reshape(x.shape)))[..., j // 10, j % 10])


@pytest.mark.parametrize("C", [1, 3])
def test_banded_sampling_equals_full_image_sampling(C):
    m = _pixelcnn(C, layers=1, first_kernel=3).eval()
    R = m.receptive_rows
    assert R == 3 < 10 - 1  # the band really is a crop
    band = m.generate(6, torch.Generator().manual_seed(0), band=True)
    full = m.generate(6, torch.Generator().manual_seed(0), band=False)
    assert torch.equal(band, full)
    # on the band the output of row i is the full image's; one row fewer changes it
    xc = imaging.to_centered(example_batch("image", 4, shape=(C, 10, 10)))
    with torch.no_grad():
        whole = m.network(xc)
        for i in range(R, 10):
            torch.testing.assert_close(m.network(xc[:, :, i - R : i + 1])[:, :, -1], whole[:, :, i], atol=1e-5, rtol=0)
            assert (m.network(xc[:, :, i - R + 1 : i + 1])[:, :, -1] - whole[:, :, i]).abs().max() > 1e-3


# --------------------------------------------------------------------------- Glow
def _trained_glow(shape=(3, 8, 8)) -> models.GenerativeModel:
    m = tiny_model("flow", "image", data_shape=shape, steps=2)
    x = example_batch("image", 64, shape=shape)
    m.prepare(x)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(10):  # away from the near-identity initialisation
        opt.zero_grad()
        m.loss(x).backward()
        opt.step()
    return m.eval().double(), x


def test_glow_inverts_before_quantization():
    m, x = _trained_glow()
    with torch.no_grad():
        v = dequantize(x, torch.Generator().manual_seed(0)).double()
        zs, logdet, _ = m.forward_flow(v)
        assert (logdet - m.preprocess(v)[1]).abs().min() > 1e-2  # the flow layers are not the identity
        v_back = m.inverse_flow(zs)
    torch.testing.assert_close(v_back, v, atol=1e-8, rtol=0)
    assert torch.equal(quantize(v_back), x)


def test_glow_log_det_matches_the_autograd_jacobian():
    m, x = _trained_glow(shape=(1, 4, 4))
    v = dequantize(x[:3], torch.Generator().manual_seed(0)).double()
    for vi in v:
        flat = lambda u: torch.cat([z.flatten() for z in m.forward_flow(u.reshape(1, 1, 4, 4))[0]])  # noqa: E731
        jac = torch.autograd.functional.jacobian(flat, vi.flatten())
        _, logdet, _ = m.forward_flow(vi[None])
        assert jac.shape == (16, 16)
        assert math.isclose(logdet.item(), torch.linalg.slogdet(jac).logabsdet.item(), abs_tol=1e-8)


def test_glow_actnorm_initialisation_standardises_the_data():
    m = tiny_model("flow", "image")
    x = example_batch("image", 256)
    m.prepare(x)
    first = m.levels[0][0].layers[0]  # the first actnorm sees the squeezed logits
    assert bool(first.initialized)
    with torch.no_grad():
        h, _ = first(squeeze(m.preprocess(dequantize(x, torch.Generator().manual_seed(0)))[0]))
    assert h.mean((0, 2, 3)).abs().max() < 0.05 and (h.std((0, 2, 3)) - 1).abs().max() < 0.05


# --------------------------------------------------------------------------- diffusion
P_WHITE = 0.3  # pixels are 255 with probability 0.3, else 0, independently


def _optimal_image_ddpm(T: int = 1000) -> models.GenerativeModel:
    """An image DDPM whose epsilon-network is E[eps | x_t] for pixels iid on {-1, +1} (centered)."""
    m = tiny_model("diffusion", "image", data_shape=(1, 4, 4), T=T)

    class EpsStar(torch.nn.Module):
        def forward(self, x_t, t):
            ab = m.alpha_bar[t].reshape(-1, 1, 1, 1)
            # P(x0 = +1 | x_t) = sigmoid(logit(p) + 2 sqrt(ab) x_t / (1 - ab)); E[x0 | x_t] = 2 P - 1
            x0 = torch.tanh(0.5 * (math.log(P_WHITE / (1 - P_WHITE)) + 2 * ab.sqrt() * x_t / (1 - ab)))
            return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()

    m.eps_net = EpsStar()
    return m


def expected_elbo_per_pixel(m) -> float:
    """E[ELBO] per pixel of the optimal network for pixels iid on {-1, +1}, by Gauss-Hermite quadrature.

    As for Gaussian data (tests/test_diffusion_vae_bounds.py), each KL term is
    a_t^2 E[Var(x_0 | x_t)] / (2 beta_tilde_t) with a_t = sqrt(ab_{t-1}) beta_t / (1 - ab_t);
    here Var(x_0 | x_t) = 1 - E[x_0 | x_t]^2. The decoder term is the discretized Gaussian's
    edge bin: P(x_0 = -1 | x_1) = Phi((-1 + 1/255 - mu) / sigma_1), mu = E[x_0 | x_1].
    """
    from scipy.special import log_ndtr

    beta, ab, ab_prev, log_var = (v.double().numpy() for v in (m.beta, m.alpha_bar, m.alpha_bar_prev, m.log_var))
    nodes, weights = np.polynomial.hermite_e.hermegauss(201)
    weights = weights / weights.sum()  # E over N(0, 1)
    logit = math.log(P_WHITE / (1 - P_WHITE))
    kl, decoder = 0.0, 0.0
    for x0, p in ((1.0, P_WHITE), (-1.0, 1 - P_WHITE)):
        x_t = np.sqrt(ab)[:, None] * x0 + np.sqrt(1 - ab)[:, None] * nodes[None]  # (T, nodes)
        mean = np.tanh(0.5 * (logit + 2 * np.sqrt(ab)[:, None] * x_t / (1 - ab)[:, None]))  # E[x0 | x_t]
        a = np.sqrt(ab_prev) * beta / (1 - ab)
        sq_err = ((x0 - mean) ** 2 * weights).sum(1)
        kl += p * (a[1:] ** 2 * sq_err[1:] / (2 * np.exp(log_var[1:]))).sum()
        sigma = np.exp(0.5 * log_var[0])
        log_edge = log_ndtr((1 / 255 - 1 + x0 * mean[0]) / sigma)  # mirror image for x0 = +1
        decoder += p * -(log_edge * weights).sum()
    prior = 0.5 * ((1 - ab[-1]) + ab[-1] - 1 - math.log(1 - ab[-1]))
    return -(prior + kl + decoder)


@pytest.mark.slow  # a T-term bound on images (~4 s)
def test_image_ddpm_bound_matches_its_closed_form_and_is_below_the_exact_log_likelihood():
    """E_data[ELBO] <= E_data[log P_model] <= -H(data) (Gibbs), H = 16 h(0.3) nats for 16 iid binary pixels.

    A continuous Gaussian density in place of the discretized decoder breaks it: the density
    of a point mass can exceed 1, so its "bound" climbs above -H.
    """
    m = _optimal_image_ddpm()
    g = torch.Generator().manual_seed(0)
    x = 255 * (torch.rand(2000, 1, 4, 4, generator=g) < P_WHITE).to(torch.uint8)
    neg_entropy = 16 * (P_WHITE * math.log(P_WHITE) + (1 - P_WHITE) * math.log(1 - P_WHITE))
    with torch.no_grad():
        elbo = m.log_prob_bounds(x, generator=torch.Generator().manual_seed(1))["elbo"].double()
    se = (elbo.std() / math.sqrt(len(elbo))).item()
    expected = 16 * expected_elbo_per_pixel(m)
    assert abs(elbo.mean().item() - expected) < 4 * se
    assert expected < neg_entropy  # about 5.9 nats below: 0.34 nats per pixel from the decoder's edge bin
    # the density decoder of the vector form would claim more than the entropy allows
    dense = models.get("diffusion", "vector").decoder_log_prob
    m.decoder_log_prob = lambda xx, mean, log_var: dense(m, imaging.to_centered(xx).flatten(1), mean.flatten(1),
                                                         log_var)
    with torch.no_grad():
        elbo_dense = m.log_prob_bounds(x[:200], generator=torch.Generator().manual_seed(1))["elbo"]
    assert elbo_dense.mean().item() > neg_entropy + 10


def test_image_ddpm_samplers_and_their_nfe():
    m = models.get("diffusion", "image")(models.get("diffusion", "image").Config(), (1, 28, 28))
    samplers = m.default_samplers()
    assert list(samplers) == ["ancestral", "ddim10", "ddim20", "ddim50", "ddim100", "pf_ode"]
    assert [m.sample_nfe(s) for s in samplers.values()] == [1000, 10, 20, 50, 100, 50]  # pf_ode: 25 Heun steps
    assert {s.sweep for s in samplers.values()} == {None, "DDIM (η = 0)", "probability-flow ODE (heun)"}


# --------------------------------------------------------------------------- VAE
def test_image_vae_bounds_match_quadrature_and_stay_below_log_likelihood():
    """With one latent, log P(x) = log ∫ p(x|z) N(z; 0, 1) dz and the ELBO = E_q[log p(x, z) / q(z|x)]
    are 1D integrals, done by the midpoint rule on [-8, 8] (4000 points)."""
    m = tiny_model("vae", "image", data_shape=(1, 4, 4), latent=1, channels=(8,), iwae_k=128)
    x = example_batch("image", 16, shape=(1, 4, 4))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        m.loss(x).backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        z = torch.linspace(-8, 8, 4001)
        z, dz = (z[1:] + z[:-1]) / 2, 16 / 4000
        log_px_z = torch.stack([m._log_px_z(xi.expand(len(z), -1, -1, -1), z[:, None]) for xi in x]).double()
        log_joint = log_px_z - 0.5 * z.double() ** 2 - 0.5 * math.log(2 * math.pi)  # (16, 4000)
        log_p = torch.logsumexp(log_joint, 1) + math.log(dz)
        mu, log_var = (v.double() for v in m.encode(x))
        log_q = -0.5 * ((z.double() - mu) ** 2 / log_var.exp() + log_var + math.log(2 * math.pi))
        elbo_exact = (log_q.exp() * (log_joint - log_q)).sum(1) * dz
        draws = [m.log_prob_bounds(x, generator=torch.Generator().manual_seed(s)) for s in range(10)]
    elbo = torch.stack([b["elbo"] for b in draws]).double()  # (10 seeds, 16)
    iwae = torch.stack([b["iwae_k128"] for b in draws]).double()
    assert (iwae >= elbo - 1e-4).all()  # log-mean-exp >= mean, per example and draw
    assert (elbo_exact < log_p).all()  # the gap is KL(q || posterior) > 0
    # the Monte Carlo ELBO is unbiased for the quadrature ELBO
    se = elbo.std() / math.sqrt(elbo.numel())
    assert abs(elbo.mean() - elbo_exact.mean()) < 4 * se
    # E[IWAE_128] <= log P, and it is much tighter than the ELBO
    assert iwae.mean() < log_p.mean() + 4 * iwae.std() / math.sqrt(iwae.numel())
    assert (log_p - iwae.mean(0)).mean() < 0.5 * (log_p - elbo_exact).mean()


# --------------------------------------------------------------------------- score, energy
def test_ncsn_sigma_max_is_the_largest_pairwise_distance():
    """An all-black and an all-white 1x4x4 image are sqrt(16) = 4 apart on the [0, 1] scale."""
    m = tiny_model("score", "image", data_shape=(1, 4, 4), channels=(8,), n_sigmas=5, sigma_min=0.01)
    x = torch.stack([torch.zeros(1, 4, 4), torch.full((1, 4, 4), 255.0)]).to(torch.uint8)
    m.prepare(x)
    torch.testing.assert_close(m.sigmas, torch.tensor([4.0, 4.0 * 400**-0.25, 0.2, 0.01 * 400**0.25, 0.01]))


def test_ebm_sgld_step_is_the_documented_update():
    """E(x) = sum(a * x): one step is x - lambda * clip(a, -c, c) + sigma * xi, clamped to [-1, 1]."""
    m = tiny_model("energy", "image", data_shape=(1, 2, 2), step_size=0.5, noise=0.01, grad_clip=0.3)
    a = torch.tensor([0.1, -0.2, 1.0, -1.0]).reshape(1, 1, 2, 2)
    m.working_energy = lambda x: (a * x).flatten(1).sum(1)
    x0 = torch.tensor([0.0, 0.0, 0.5, 0.9]).reshape(1, 1, 2, 2)
    x1 = m.chains(x0, m.chain_schedule(1), torch.Generator().manual_seed(0))
    xi = torch.randn(1, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    expected = (x0 - 0.5 * a.clamp(-0.3, 0.3) + 0.01 * xi).clamp(-1, 1)
    torch.testing.assert_close(x1, expected)
    assert x1.flatten()[3] == 1.0  # 0.9 + 0.15 clamped


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "autoregressive" else n
                                  for n in models.names("image")])  # AR: one forward per pixel (~6 s a shape)
def test_every_image_family_handles_mnist_and_cifar_shapes(name, shape):
    m = tiny_model(name, "image", data_shape=shape)
    x = example_batch("image", 4, shape=shape)
    m.prepare(x)
    assert torch.isfinite(m.loss(x))
    sampler = next(iter(tiny_samplers(name, "image").values()))
    s = m.eval().sample(2, generator=torch.Generator().manual_seed(0), sampler=sampler)
    assert s.shape == (2, *shape) and s.dtype == torch.uint8


@pytest.mark.parametrize("name,overrides", [("flow", {"levels": 3}), ("vae", {"channels": (8, 8, 8)}), ("gan", {}),
                                            ("diffusion", {"channels": (8, 8, 8, 8)})])
def test_image_families_reject_sizes_they_cannot_downsample(name, overrides):
    with pytest.raises(ValueError, match="divisible"):
        tiny_model(name, "image", data_shape=(1, 28, 30) if name == "gan" else (1, 28, 28), **overrides)


@pytest.mark.parametrize("family", ["autoregressive", "vae", "gan", "flow", "diffusion", "energy", "score"])
def test_the_gpu_training_options_work_on_cpu(family, monkeypatch):
    """The GPU profiles' bf16 autocast and channels_last, exercised on the CPU.

    ``GenerativeModel.autocast`` is a no-op off CUDA; here it is made to return CPU
    bf16 autocast so that every family's training step really runs under it (dtype
    mismatches, float32-only parts such as a flow's log-determinant, ...).
    """
    from bench.execution.train import train
    from models.base import GenerativeModel, TrainConfig

    def cpu_autocast(self):
        assert self.amp_dtype is torch.bfloat16  # the training loop set it from TrainConfig.amp
        return torch.autocast("cpu", dtype=torch.bfloat16)

    monkeypatch.setattr(GenerativeModel, "autocast", cpu_autocast)
    model = tiny_model(family, "image")
    x = example_batch("image", 32)
    stats = train(model, x, TrainConfig(steps=2, batch_size=8, amp="bf16", channels_last=True), progress=False)
    assert stats.steps == 2 and all(math.isfinite(v) for v in stats.final_losses.values())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model.amp_dtype is None  # evaluation runs in float32
    s = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert s.dtype == torch.uint8 and s.shape == (3, *x.shape[1:])
