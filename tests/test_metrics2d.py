"""2D metrics: KL, MMD, precision/recall, mode coverage, quadrature, on cases checkable by hand."""

from __future__ import annotations

import math

import numpy as np
import torch

from bench.data.toy2d import eight_gaussians
from bench.evaluation.metrics.mmd import mmd2_rbf
from bench.evaluation.metrics.prdc import prdc
from bench.evaluation.metrics.toy2d import sample_quality
from bench.evaluation.quadrature import log_partition


def test_kl_of_the_true_density_to_itself_is_zero_within_its_standard_error():
    mix = eight_gaussians()
    x, _ = mix.sample(20_000, seed=2)
    lp = mix.log_prob(x)
    nll, nll_se = -lp.mean(), lp.std(ddof=1) / math.sqrt(len(lp))
    h, h_se = mix.entropy(1_000_000)
    kl, se = nll - h, math.hypot(nll_se, h_se)
    assert abs(kl) < 3 * se
    assert se < 0.02


def test_precision_and_recall_of_a_set_against_itself_are_one():
    x = np.random.default_rng(0).normal(size=(500, 2))
    r = prdc(x, x, k_pr=3, k_dc=5)
    assert r["precision"] == 1.0 and r["recall"] == 1.0 and r["coverage"] == 1.0


def test_precision_and_recall_of_disjoint_sets_are_zero():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + 100.0
    r = prdc(real, fake, k_pr=3, k_dc=5)
    assert r == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_precision_recall_by_hand():
    # real points 0, 1, 2, 3 on a line: k=1 radii are 1 each. fake at 0.5 (inside) and 10 (outside).
    real = np.array([[0.0, 0], [1, 0], [2, 0], [3, 0]])
    fake = np.array([[0.5, 0], [10, 0]])
    # fake k=1 radius: 9.5 for both. recall: every real point is within 9.5 of a fake.
    r = prdc(real, fake, k_pr=1, k_dc=1)
    assert r["precision"] == 0.5  # only 0.5 is inside a real ball (strictly: 0.5 < 1)
    assert r["recall"] == 1.0
    assert r["density"] == 1.0  # 0.5 lies in the balls of 0 and 1: (2 + 0) / (1 * 2)
    assert r["coverage"] == 0.5  # the nearest fake is within radius 1 of reals 0 and 1 only


def test_mmd_by_hand():
    x = np.array([[0.0, 0.0], [1.0, 0.0]])
    y = np.array([[0.0, 1.0], [1.0, 1.0]])
    mmd2, h = mmd2_rbf(x, y, bandwidth=1.0)
    assert h == 1.0
    assert math.isclose(mmd2, math.exp(-0.5) - math.exp(-1.0), rel_tol=1e-12)  # = 0.2387


def test_mmd_is_near_zero_for_one_distribution_and_large_for_two():
    mix = eight_gaussians()
    a, _ = mix.sample(2000, 0)
    b, _ = mix.sample(2000, 1)
    same, _ = mmd2_rbf(a, b)
    shifted, _ = mmd2_rbf(a, b + 1.0)
    assert abs(same) < 2e-3
    assert shifted > 50 * abs(same)


def test_sample_quality_at_the_centres_and_of_half_the_modes():
    mix = eight_gaussians()
    q = sample_quality(mix, np.repeat(mix.means, 10, axis=0))
    assert q["high_quality_fraction"] == 1.0 and q["modes_covered"] == 8 and q["mode_coverage"] == 1.0
    half = sample_quality(mix, np.repeat(mix.means[:4], 10, axis=0))
    assert half["modes_covered"] == 4 and half["mode_coverage"] == 0.5
    far = sample_quality(mix, np.zeros((10, 2)))  # the ring's centre is 8 sigma from every mode
    assert far["high_quality_fraction"] == 0.0 and far["modes_covered"] == 0


def test_true_samples_are_about_99_percent_high_quality():
    # P(chi^2_2 <= 9) = 1 - exp(-4.5) = 0.98889 for a 2D Gaussian
    mix = eight_gaussians()
    x, _ = mix.sample(100_000, 0)
    assert abs(sample_quality(mix, x)["high_quality_fraction"] - (1 - math.exp(-4.5))) < 2e-3


def test_quadrature_log_z_of_a_standard_gaussian_energy():
    q = log_partition(lambda x: 0.5 * (x**2).sum(1), -8.0, 8.0, n=256)
    assert abs(q.log_z - math.log(2 * math.pi)) < 1e-6
    assert q.error < 1e-4 and q.evaluations == 256**2 + 128**2


def test_quadrature_error_estimate_bounds_the_true_error_on_a_coarse_grid():
    # A narrow Gaussian (std 0.05) on a coarse grid: the estimate must cover the actual error.
    s = 0.05
    q = log_partition(lambda x: 0.5 * (x**2).sum(1) / s**2, -1.0, 1.0, n=40)
    true = math.log(2 * math.pi * s**2)
    assert abs(q.log_z - true) <= q.error


def test_ebm_density_normalized_by_quadrature_integrates_to_one():
    from tests.helpers import example_batch, tiny_model

    m = tiny_model("energy", "vector")
    m.prepare(example_batch("vector", 256))
    lo, hi = m.support()
    with torch.no_grad():
        q = log_partition(m.energy, lo, hi, n=512)
        # integrate exp(-E - log Z) with an independent rule: Monte Carlo on the box
        u = lo + (hi - lo) * torch.rand(400_000, 2, generator=torch.Generator().manual_seed(0))
        vals = torch.exp(-m.energy(u).double() - q.log_z) * (hi - lo) ** 2
    integral, se = float(vals.mean()), float(vals.std() / len(vals) ** 0.5)
    assert abs(integral - 1.0) < 4 * se + 1e-3
