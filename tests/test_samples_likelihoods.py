"""The measures behind the sample and likelihood claims: the probability-flow ODE likelihood (checked against
quadrature with an exact score), the DDIM step as its Euler step, the decoder-mean sampler, the coupling flow's
one-pass sampling, blur, the multi-scale MMD, Theis et al.'s noise mixture and the simple estimators."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.data.toy2d import MIXTURES
from bench.evaluation import image as image_eval
from bench.evaluation import simple_estimators as simple
from bench.evaluation.metrics import blur, mmd_multiscale
from bench.evaluation.metrics.kid import mmd2_unbiased
from bench.evaluation.quadrature import log_partition
from models.coupling_flow import CouplingNSFConfig, CouplingSplineFlow
from models.diffusion import DDPM, DDPMConfig
from models.flow import NSFConfig, SplineFlow
from models.imaging import DiscretizedLogisticMixture
from models.samplers import DecoderMean, ProbabilityFlow, build_samplers, ddim_step, divergence
from models.vae import ConvVAE, ConvVAEConfig, GaussianVAE, VAEConfig, mixture_mean


# --------------------------------------------------------------------------- the probability-flow ODE
class ExactMixtureVE:
    """The variance-exploding probability flow of a 2D Gaussian mixture with its exact score: p_sigma is the
    mixture with sigma² added to every covariance, and the prior at sigma_max is p_sigma_max itself."""

    data_shape = (2,)
    device = torch.device("cpu")

    def __init__(self, mix, sigma_min: float = 0.01, sigma_max: float = 20.0):
        self.w, self.mu = torch.tensor(mix.weights).log(), torch.tensor(mix.means)
        self.cov = torch.tensor(mix.covs)
        self.range = (sigma_min, sigma_max)

    def log_p(self, y: torch.Tensor, sigma: float) -> torch.Tensor:
        cov = self.cov + sigma**2 * torch.eye(2, dtype=torch.float64)
        comp = torch.distributions.MultivariateNormal(self.mu, covariance_matrix=cov)
        return torch.logsumexp(comp.log_prob(y.double()[:, None, :]) + self.w, 1)

    def pf_sigma_range(self):
        return self.range

    def pf_drift(self, y, sigma):
        with torch.enable_grad():
            yy = y if y.requires_grad else y.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.log_p(yy, sigma).sum(), yy, create_graph=True)
        return (-sigma * g).float()

    def pf_prior_log_prob(self, y):
        return self.log_p(y, self.range[1]).float()

    def pf_from_data(self, x, generator=None):
        return x.float(), torch.zeros(len(x))


@pytest.mark.slow
def test_the_ode_density_of_an_exact_score_integrates_to_one_and_does_not_beat_the_entropy():
    """The issue's 2D check: with the exact score of 8gaussians, 50 Heun steps (100 NFE, exact trace) give a
    density that integrates to 1 ± 1% over a box holding the data (midpoint rule, 32² cells of width 0.28 for
    components of std 0.35), and a test NLL no lower than the true entropy minus 3 standard errors."""
    mix = MIXTURES["8gaussians"]()
    model, ode = ExactMixtureVE(mix), ProbabilityFlow(steps=50)
    q = log_partition(lambda p: -ode.log_prob(model, p), -4.5, 4.5, 32)
    assert abs(math.exp(q.log_z) - 1) < 0.01 and q.error < 1e-3
    x = torch.tensor(mix.sample(400, 2)[0]).float()
    lp = ode.log_prob(model, x).double()
    nll, se = float(-lp.mean()), float(lp.std() / math.sqrt(len(lp)))
    h, h_se = mix.entropy(200_000)
    assert nll >= h - 3 * math.hypot(se, h_se)
    exact = model.log_p(x, 0.01)  # the density at sigma_min, which the ODE carries back exactly
    assert float((lp - exact).abs().mean()) < 0.02


def test_the_half_step_check_estimates_the_solvers_error_against_the_exact_density():
    """With the exact score of 8gaussians the error of the ODE's mean NLL is known (against log p_sigma_min). On
    200 points, Heun's change from 8 to 16 steps, over 3, gives 0.0867 nats against the true 0.0864, and from 16 to
    32 steps 0.0227 against 0.0182: within 30%. At 16 steps that error, less 2 SE of the check, exceeds the
    NLL's SE (0.069): unsettled; at 32 it does not."""
    from bench.analysis.sample_verdicts import ode_solver_error, ode_unsettled
    from bench.evaluation.ode import step_check
    from bench.store.schema import DensityResult

    mix = MIXTURES["8gaussians"]()
    model = ExactMixtureVE(mix)
    x = torch.tensor(mix.sample(200, 2)[0]).float()
    exact_nll = float(-model.log_p(x, 0.01).mean())
    for steps, unsettled in ((16, True), (32, False)):
        ode = ProbabilityFlow(steps=steps)
        lp = ode.log_prob(model, x).double()
        check = step_check(model, ode, x, lp, 0, torch.device("cpu"))
        assert (check["ode_check_steps"], check["ode_check_n"]) == (steps // 2, 200)
        check.pop("ode_check_seconds")
        d = DensityResult(ode_test_nll_nats=float(-lp.mean()), ode_test_nll_se_nats=float(lp.std() / 200**0.5),
                          ode_steps=steps, ode_method="heun", **check)
        true_error = abs(d.ode_test_nll_nats - exact_nll)
        assert ode_solver_error(d)[0] == pytest.approx(true_error, rel=0.3)
        assert ode_unsettled(d) is unsettled
    assert step_check(model, ProbabilityFlow(steps=1), x, lp, 0, torch.device("cpu")) == {}


def test_the_density_stage_records_the_ode_likelihood_and_its_half_step_check():
    """``ode_likelihood`` on an untrained 2D DDPM: 100 test points in batches of 64 at 4 Heun steps (8 NFE, exact
    trace); the check solves the first batch again at 2 steps, and its change is the mean of the two solves'
    paired log-densities, recomputed here directly."""
    from types import SimpleNamespace

    from bench.config.suite import EvalConfig
    from bench.evaluation.ode import ode_likelihood

    torch.manual_seed(0)
    model = DDPM(DDPMConfig(T=10, hidden=16), (2,)).eval()
    ds = SimpleNamespace(test=torch.randn(300, 2))
    ev = EvalConfig(bound_n=100, density_batch=64)
    out = ode_likelihood(model, ds, ev, torch.device("cpu"), {"pf_ode": ProbabilityFlow(steps=4)}, closed_form=False)
    assert (out["ode_test_n"], out["ode_nfe"], out["ode_trace"], out["ode_steps"], out["ode_method"]) == (
        100, 8, "exact", 4, "heun")
    assert (out["ode_check_steps"], out["ode_check_n"]) == (2, 64) and out["ode_check_seconds"] > 0
    x = ds.test[:64]
    lp4 = ProbabilityFlow(steps=4).log_prob(model, x).double()
    lp2 = ProbabilityFlow(steps=2).log_prob(model, x).double()
    assert out["ode_step_change_nats"] == pytest.approx(float((lp2 - lp4).mean()), rel=1e-6, abs=1e-9)
    assert out["ode_step_change_se_nats"] == pytest.approx(float((lp2 - lp4).std() / 8), rel=1e-6)


def test_divergence_exact_and_hutchinson():
    a = torch.tensor([[2.0, 1.0], [0.5, -3.0]])
    y = torch.randn(4000, 2)
    out, div = divergence(lambda v: v @ a.T, y)
    assert torch.allclose(out, y @ a.T) and torch.allclose(div, torch.full((4000,), -1.0))  # trace(A) = -1
    probes = torch.randint(0, 2, y.shape, generator=torch.Generator().manual_seed(0)).float() * 2 - 1
    _, est = divergence(lambda v: v @ a.T, y, probes)
    assert abs(float(est.mean()) + 1.0) < 0.1  # unbiased: eps^T A eps = trace(A) + off-diagonal noise


def test_the_grid_the_nfe_and_the_settings_of_the_ode():
    model = DDPM(DDPMConfig(T=100, hidden=16), (2,))
    ode = ProbabilityFlow(steps=10)
    lo, hi = model.pf_sigma_range()
    grid = ode.sigmas(model)
    assert grid[0] == lo and grid[-1] == hi and len(grid) == 11 and all(np.diff(grid) > 0)
    assert ode.nfe(model) == 20 and ProbabilityFlow(steps=10, method="euler").nfe(model) == 10
    assert ode.trace_kind(model) == "exact"
    with pytest.raises(ValueError, match="steps"):
        ProbabilityFlow(steps=0)
    with pytest.raises(ValueError, match="trace"):
        ProbabilityFlow(trace="other")
    assert list(build_samplers({"pf_ode": {"steps": [5, 10]}})) == ["pf_ode5", "pf_ode10"]


def test_the_ddpm_ode_is_ddims_ode():
    """An Euler step of dy/dsigma = eps(y / sqrt(1 + sigma²), t(sigma)) between two timesteps' noise levels is the
    DDIM step (eta = 0) between them, in y = x / sqrt(alpha_bar) (Song et al. 2021, arXiv:2010.02502, Eq. 14)."""
    torch.manual_seed(0)
    model = DDPM(DDPMConfig(T=100, hidden=16), (2,))
    table = np.sqrt((1 - model.alpha_bar.double().numpy()) / model.alpha_bar.double().numpy())
    assert model.pf_timestep(float(table[37])) == pytest.approx(37.0, abs=1e-6)
    x = torch.randn(5, 2)
    t, t_to = 60, 20
    eps = model.eps_at(x, torch.full((5,), t))
    ddim = ddim_step(x, eps, model.alpha_bar[t], model.alpha_bar[t_to])
    s, s_to = float(table[t]), float(table[t_to])
    y = x / model.alpha_bar[t].sqrt()
    euler = y + (s_to - s) * model.pf_drift(y, s)
    assert torch.allclose(euler * model.alpha_bar[t_to].sqrt(), ddim, atol=1e-5)


def test_the_ode_samples_and_likelihood_of_both_families_have_their_shapes():
    from models.score import NCSN, NCSNConfig

    for model in (DDPM(DDPMConfig(T=50, hidden=16), (2,)), NCSN(NCSNConfig(hidden=16, n_sigmas=4), (2,))):
        ode = model.resolve_sampler(ProbabilityFlow(steps=3))
        x = model.sample(7, torch.Generator().manual_seed(0), sampler=ode)
        assert x.shape == (7, 2) and torch.isfinite(x).all()
        lp = ode.log_prob(model, x)
        assert lp.shape == (7,) and torch.isfinite(lp).all() and not lp.requires_grad


# --------------------------------------------------------------------------- the VAE's two readings
def test_the_decoder_mean_is_the_full_draw_without_its_noise():
    torch.manual_seed(0)
    vae = GaussianVAE(VAEConfig(hidden=16), (2,))
    samplers = vae.default_samplers()
    assert list(samplers) == ["default", "decoder_mean"] and isinstance(samplers["decoder_mean"], DecoderMean)
    mean = vae.sample(6, torch.Generator().manual_seed(3), sampler=samplers["decoder_mean"])
    z = torch.randn(6, vae.config.latent, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(mean, vae.from_latent(z))  # the same z, decoded to E[x|z]
    draw = vae.sample(6, torch.Generator().manual_seed(3))
    assert not torch.allclose(draw, mean) and samplers["decoder_mean"].nfe(vae) == 1


def test_the_image_decoder_mean_of_a_logistic_mixture():
    # one pixel, two components: weights softmax(0, log 3) = (1/4, 3/4), locations 0.5 and -0.5 (centered scale):
    # E = 0.125 - 0.375 = -0.25 -> pixel round((1 - 0.25) * 127.5) = round(95.6) = 96; a location beyond the
    # range is clamped to its edge first: (1/4) * 1 + (3/4) * (-0.5) = -0.125 -> round(111.56) = 112
    params = torch.tensor([0.0, math.log(3), 0.5, -0.5, -3.0, -3.0]).reshape(1, 6, 1, 1)
    assert int(mixture_mean(DiscretizedLogisticMixture(params, 1, 2))) == 96
    params[0, 2] = 4.0
    assert int(mixture_mean(DiscretizedLogisticMixture(params, 1, 2))) == 112
    vae = ConvVAE(ConvVAEConfig(latent=4, channels=(8,), iwae_k=4), (1, 8, 8))
    x = vae.sample(3, torch.Generator().manual_seed(0), sampler=vae.default_samplers()["decoder_mean"])
    assert x.dtype == torch.uint8 and x.shape == (3, 1, 8, 8)


# --------------------------------------------------------------------------- the coupling flow
def _count_passes(model, hypers) -> int:
    calls = []
    handles = [h.register_forward_hook(lambda *a: calls.append(1)) for h in hypers]
    model.sample(5, torch.Generator().manual_seed(0))
    for h in handles:
        h.remove()
    return len(calls)


def test_the_coupling_flow_samples_in_one_pass_per_layer_the_autoregressive_one_in_d():
    coupling = CouplingSplineFlow(CouplingNSFConfig(transforms=4, hidden=8), (3,))
    layers = [t.hyper for t in coupling.flow.transform.transforms]
    assert _count_passes(coupling, layers) == 4 and coupling.generate_nfe() == 1
    maf = SplineFlow(NSFConfig(transforms=4, hidden=8), (3,))
    layers = [t.hyper for t in maf.flow.transform.transforms if hasattr(t, "hyper")]
    assert _count_passes(maf, layers) == 4 * 3 and maf.generate_nfe() == 3  # D = 3 passes per layer
    x = torch.randn(4, 3)
    assert torch.allclose(coupling.from_latent(coupling.to_latent(x)), x, atol=1e-4)


# --------------------------------------------------------------------------- blur
def test_blur_statistics_of_images_a_reader_can_draw():
    checker = ((np.indices((28, 28)).sum(0) % 2) * 255).astype(np.uint8)[None, None]
    flat = np.full((1, 1, 28, 28), 128, dtype=np.uint8)
    ramp = np.tile(np.arange(28, dtype=np.uint8) * 9, (28, 1))[None, None]
    wave = (127.5 + 127 * np.cos(2 * np.pi * np.arange(28) / 28))[None, None, None, :].repeat(28, 2).astype(np.uint8)
    # a 0/1 checkerboard is 0.5 +- 0.5 at (1/2, 1/2) cycles per pixel: its high-pass part has mean square 0.25
    assert blur.hf_energy(checker)[0] == pytest.approx(0.25)
    assert blur.hf_energy(wave)[0] < 1e-6  # one cycle per image: far below 1/4 cycle per pixel
    assert blur.hf_energy(flat)[0] == pytest.approx(0.0, abs=1e-20)
    assert blur.laplacian_variance(checker)[0] == pytest.approx(16.0)  # the Laplacian is +-4 on a 0/1 checkerboard
    assert blur.laplacian_variance(flat)[0] == 0 and blur.laplacian_variance(ramp)[0] == pytest.approx(0.0, abs=1e-12)


def test_blur_ratios_against_the_reference_and_their_errors():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, size=(200, 1, 8, 8), dtype=np.uint8)
    hf, lap = blur.hf_energy(real), blur.laplacian_variance(real)
    same = blur.blur_metrics(real, hf, lap)
    assert same["hf_energy_ratio"] == pytest.approx(1.0) and same["hf_energy_abs_log_ratio"] == pytest.approx(0.0)
    assert same["laplacian_var_ratio"] == pytest.approx(1.0) and same["laplacian_log_ratio_se"] > 0
    smooth = np.repeat(np.repeat(real[:, :, ::2, ::2], 2, 2), 2, 3)  # 2x2 blocks: less high-frequency energy
    out = blur.blur_metrics(smooth, hf, lap)
    assert out["hf_energy_ratio"] < 0.8 and out["laplacian_var_ratio"] < 0.8
    assert out["hf_energy_abs_log_ratio"] == pytest.approx(-math.log(out["hf_energy_ratio"]))


# --------------------------------------------------------------------------- the multi-scale MMD
def test_the_multiscale_mmd_is_kids_estimator_with_its_kernel():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(60, 2)), rng.normal(size=(50, 2)) + 0.3
    r = mmd_multiscale.mmd2_multiscale(a, b, subsets=7, subset_size=20, seed=3)
    h = np.array(r["bandwidths"])
    x, y, draw, vals = torch.as_tensor(a), torch.as_tensor(b), np.random.RandomState(3), []
    for _ in range(7):  # KID's draw order and its unbiased estimator (bench.evaluation.metrics.kid)
        xs, ys = x[draw.choice(60, 20, replace=False)], y[draw.choice(50, 20, replace=False)]
        k = lambda p, q: mmd_multiscale._kernel(p, q, h).numpy()  # noqa: E731
        vals.append(mmd2_unbiased(k(xs, xs), k(xs, ys), k(ys, ys)))
    assert r["mmd2_multiscale"] == pytest.approx(np.mean(vals), rel=1e-10)
    assert r["mmd2_multiscale_std"] == pytest.approx(np.std(vals), rel=1e-10)
    assert len(h) == 6 and h[0] < h[-1]


def test_the_in_place_kernel_has_the_bits_of_the_plain_formula():
    """Scales down to 0.005 (25gaussians' finest): most exponents below -700, where exp is subnormal or 0."""
    rng = np.random.default_rng(1)
    a, b = torch.as_tensor(rng.normal(size=(70, 2))), torch.as_tensor(rng.normal(size=(40, 2)))
    for h in (np.geomspace(0.05, 2.0, 6), np.geomspace(0.005, 1.6, 6)):
        w = h[0] / h
        d2 = torch.cdist(a, b).square()
        plain = sum(float(wi) * torch.exp(-d2 / (2 * float(s) ** 2)) for wi, s in zip(w, h)) / float(w.sum())
        assert torch.equal(mmd_multiscale._kernel(a, b, h), plain)
    # exp's argument over its whole range, the underflow (subnormal results, then 0) included
    x = torch.linspace(-800.0, 10.0, 200_001, dtype=torch.float64)
    assert torch.equal(mmd_multiscale._exp_into(x, torch.empty_like(x)), x.exp())
    assert (x.exp()[(x > -745) & (x < -709)] < 2.3e-308).all()  # the subnormal range is covered


def test_the_reference_block_is_computed_once_per_reference_and_gives_the_same_bits(monkeypatch):
    rng = np.random.default_rng(2)
    real, s1, s2 = rng.normal(size=(80, 2)), rng.normal(size=(60, 2)) + 0.2, rng.normal(size=(60, 2)) - 0.2
    monkeypatch.setattr(mmd_multiscale, "_SELF_BLOCK", {})
    calls = []
    kernel = mmd_multiscale._kernel
    monkeypatch.setattr(mmd_multiscale, "_kernel", lambda p, q, h: calls.append(p is q) or kernel(p, q, h))
    first = mmd_multiscale.mmd2_multiscale(real, s1, subsets=5, subset_size=30, seed=4)
    second = mmd_multiscale.mmd2_multiscale(real, s2, subsets=5, subset_size=30, seed=4)
    assert calls == [True, True, False, True, False]  # x-x once, then y-y and x-y per call
    mmd_multiscale._SELF_BLOCK.clear()  # a fresh process: the same numbers, bit for bit
    assert mmd_multiscale.mmd2_multiscale(real, s2, subsets=5, subset_size=30, seed=4) == second
    assert first["mmd2_multiscale"] != second["mmd2_multiscale"]
    other = mmd_multiscale.mmd2_multiscale(real[:79], s2, subsets=5, subset_size=30, seed=4)  # another reference
    assert len(mmd_multiscale._SELF_BLOCK) == 2 and other != second


@pytest.mark.slow
def test_the_multiscale_mmd_sees_blur_inside_the_modes_of_25gaussians():
    """Samples blurred to 3x the mode width: the single median-bandwidth kernel barely moves (0.0015 against the
    data's own 0.0009), the multi-scale one moves by more than 10 subset standard deviations."""
    from bench.evaluation.metrics.mmd import mmd2_rbf

    mix = MIXTURES["25gaussians"]()
    real, _ = mix.sample(1000, 0)
    sharp, _ = mix.sample(1000, 1)
    blurred = mix.means[np.random.default_rng(2).integers(0, 25, 1000)] + np.random.default_rng(3).normal(
        size=(1000, 2)) * 3 * 0.05 / 2.828
    ms_sharp = mmd_multiscale.mmd2_multiscale(real, sharp, subsets=20, subset_size=500)
    ms_blur = mmd_multiscale.mmd2_multiscale(real, blurred, subsets=20, subset_size=500)
    assert ms_blur["mmd2_multiscale"] - ms_sharp["mmd2_multiscale"] > 10 * ms_blur["mmd2_multiscale_std"]
    assert mmd2_rbf(real, blurred)[0] < 0.003  # the single kernel is nearly blind to it


# --------------------------------------------------------------------------- Theis et al.'s mixture
def test_the_noise_mixture_changes_bits_per_dim_by_at_most_log2_100_over_d():
    d = 784
    uniform = torch.full((3,), -d * math.log(256.0), dtype=torch.float64)  # the model is the noise: so is the mixture
    assert torch.allclose(image_eval.noise_mixture_log_prob(uniform, d), uniform, atol=1e-9)
    good = torch.tensor([-500.0, -800.0, -1000.0], dtype=torch.float64)  # far above the noise's -4347 nats
    shift_bpd = (good - image_eval.noise_mixture_log_prob(good, d)) / (d * math.log(2))
    expected = torch.full((3,), math.log2(100) / d, dtype=torch.float64)  # log 0.01 exactly
    assert torch.allclose(shift_bpd, expected, atol=1e-9)
    samples = np.zeros((1000, 1, 4, 4), dtype=np.uint8)
    mixed = image_eval.noise_mixture_samples(samples, seed=0)
    assert mixed.shape == samples.shape and (mixed[:10] == 0).all() and mixed[10:].mean() > 100


# --------------------------------------------------------------------------- the simple estimators
@pytest.mark.slow
def test_the_gaussian_and_the_kde_are_normalized_densities():
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(0)
    train = torch.tensor(rng.normal(size=(4000, 2)) @ np.array([[1.0, 0.3], [0.0, 0.5]]))
    g = simple.fit_gaussian(train)
    x = torch.tensor(rng.normal(size=(5, 2)))
    ref = multivariate_normal(train.mean(0).numpy(), np.cov(train.numpy().T, bias=True)).logpdf(x.numpy())
    assert np.allclose(g.log_prob(x).numpy(), ref, atol=1e-5)
    kde = simple.fit_kde(train[:3000], train[3000:])
    assert kde.bandwidth in [b * float(train[:3000].std(0).mean()) for b in simple.BANDWIDTHS]
    q = log_partition(lambda p: -kde.log_prob(p.double()).float(), -6, 6, 128)
    assert abs(q.log_z) < 0.01  # integrates to 1
    assert kde.sample(10, 0).shape == (10, 2)
    deq = simple.dequantized(np.array([[[[0, 255]]]], dtype=np.uint8), seed=0)
    assert deq.shape == (1, 2) and 0 <= deq[0, 0] < 1 and 255 <= deq[0, 1] < 256


@pytest.mark.slow
def test_the_image_ode_likelihood_is_of_dequantized_pixels_with_hutchinsons_trace():
    from models.diffusion import ImageDDPM, ImageDDPMConfig

    torch.manual_seed(0)
    model = ImageDDPM(ImageDDPMConfig(T=10, channels=(8, 16), norm_groups=4, attention=False), (1, 8, 8))
    ode = model.resolve_sampler(ProbabilityFlow(steps=2))
    assert ode.trace_kind(model) == "hutchinson"  # D = 64 > 16
    x = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    y, log_det = model.pf_from_data(x, torch.Generator().manual_seed(0))
    assert torch.allclose(log_det, torch.full((3,), -64 * math.log(127.5) + 32 * -math.log(float(model.alpha_bar[0]))))
    assert (y * model.alpha_bar[0].sqrt() - ((x.float() - 0.5) / 127.5 - 1)).abs().max() <= 1 / 127.5 + 1e-6
    lp = ode.log_prob(model, x, torch.Generator().manual_seed(1))
    assert lp.shape == (3,) and torch.isfinite(lp).all()


@pytest.mark.slow
def test_a_trained_ddpms_ode_density_integrates_to_one_in_2d():
    """The same check on a DDPM trained for 1500 steps on 8gaussians: the ODE's density (100 Heun steps, exact
    trace; its noise levels span 0.01-157, and 50 steps give 1.032) integrates to 1 ± 1% over a box holding the
    data, and its test NLL is not below the entropy."""
    from bench.execution.train import train
    from models.base import TrainConfig

    mix = MIXTURES["8gaussians"]()
    x = torch.tensor(mix.sample(20_000, 0)[0]).float()
    torch.manual_seed(0)
    model = DDPM(DDPMConfig(T=1000, hidden=64), (2,))
    train(model, x, TrainConfig(steps=1500, batch_size=512, lr=2e-3), device=torch.device("cpu"), seed=0,
          desc="ddpm", progress=False)
    model.eval()
    ode = ProbabilityFlow(steps=100)
    q = log_partition(lambda p: -ode.log_prob(model, p), -5.5, 5.5, 48)
    assert abs(math.exp(q.log_z) - 1) < 0.01, (q.log_z, q.error)
    test = torch.tensor(mix.sample(500, 2)[0]).float()
    lp = ode.log_prob(model, test).double()
    h, h_se = mix.entropy(200_000)
    assert float(-lp.mean()) >= h - 3 * math.hypot(float(lp.std()) / math.sqrt(len(lp)), h_se)
