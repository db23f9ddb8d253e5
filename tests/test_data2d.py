"""The 2D mixtures: recipes, exact log-density against scipy, fixed splits, entropy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bench import data
from bench.config.suite import DataConfig
from bench.data.toy2d import MIXTURES, GaussianMixture, eight_gaussians, twentyfive_gaussians


@pytest.mark.parametrize("name", sorted(MIXTURES))
def test_log_density_matches_scipy(name):
    mix = MIXTURES[name]()
    x = np.random.default_rng(0).uniform(-4, 4, size=(500, 2))
    ref = logsumexp(np.stack([np.log(w) + multivariate_normal(m, c).logpdf(x)
                              for w, m, c in zip(mix.weights, mix.means, mix.covs)], 1), axis=1)
    np.testing.assert_allclose(mix.log_prob(x), ref, rtol=1e-10, atol=1e-10)


def test_eight_gaussians_is_ffjords_recipe():
    mix = eight_gaussians()
    np.testing.assert_allclose(np.linalg.norm(mix.means, axis=1), 4 / math.sqrt(2))  # radius 2.828
    np.testing.assert_allclose(mix.covs, np.tile(np.eye(2) * (0.5 / math.sqrt(2)) ** 2, (8, 1, 1)))
    np.testing.assert_allclose(mix.means[1], [2.0, 2.0])  # 4 * (cos 45, sin 45) / sqrt 2


def test_twentyfive_gaussians_is_wgan_gps_recipe():
    mix = twentyfive_gaussians()
    assert mix.k == 25
    assert np.isclose(mix.means.max(), 4 / 2.828) and np.isclose(mix.means.min(), -4 / 2.828)
    np.testing.assert_allclose(np.sqrt(mix.covs[:, 0, 0]), 0.05 / 2.828)


def test_weights_sum_to_one_and_sample_frequencies_follow_them():
    for name, make in MIXTURES.items():
        mix = make()
        assert np.isclose(mix.weights.sum(), 1.0), name
        _, labels = mix.sample(200_000, seed=0)
        freq = np.bincount(labels, minlength=mix.k) / len(labels)
        np.testing.assert_allclose(freq, mix.weights, atol=4e-3)


def test_entropy_of_one_gaussian_matches_closed_form_within_its_standard_error():
    cov = np.array([[0.5, 0.2], [0.2, 0.3]])
    mix = GaussianMixture(np.ones(1), np.zeros((1, 2)), cov[None])
    h, se = mix.entropy(1_000_000)
    exact = 0.5 * np.log(np.linalg.det(2 * np.pi * np.e * cov))
    assert abs(h - exact) < 4 * se
    assert se < 2e-3


def test_splits_are_fixed_by_seed_and_disjoint():
    cfg = DataConfig(n_train=1000, n_val=100, n_test=200)
    a = data.load("8gaussians", cfg, entropy_mc=1_000_000)
    b = data.load("8gaussians", cfg, entropy_mc=1_000_000)
    assert (a.train == b.train).all() and (a.test == b.test).all()
    assert a.train.shape == (1000, 2) and a.val.shape == (100, 2) and a.test.shape == (200, 2)
    assert not np.isin(a.test.numpy()[:, 0], a.train.numpy()[:, 0]).any()
    assert a.info["true_entropy_nats"] == b.info["true_entropy_nats"]


@pytest.mark.parametrize("name", sorted(MIXTURES))
def test_mahalanobis_equals_a_solve_per_component(name):
    """The vectorised forward substitution against one LAPACK solve per component: bit-identical for the
    isotropic mixtures (diagonal Cholesky factors), within 1e-12 for the rotated covariances of ``imbalanced``."""
    mix = MIXTURES[name]()
    x = np.random.default_rng(1).uniform(-4, 4, size=(2000, 2))
    L = np.linalg.cholesky(mix.covs)
    ref = np.sqrt((np.stack([np.linalg.solve(L[k], (x - mix.means[k]).T).T for k in range(mix.k)], 1) ** 2).sum(-1))
    got = mix.mahalanobis(x)
    assert got.shape == (2000, mix.k)
    if np.allclose(mix.covs[:, 0, 1], 0):
        assert (got == ref).all()
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)


def test_true_entropy_is_computed_once_per_data_root(tmp_path, monkeypatch):
    """The Monte Carlo entropy is stored under ``<cache>/entropy2d`` and read back exactly; a damaged file is
    computed again; another sample count is another file."""
    n = 20_000
    expected = eight_gaussians().entropy(n)
    data.true_entropy.cache_clear()
    assert data.true_entropy("8gaussians", n, tmp_path) == expected
    path = data.entropy_cache_path("8gaussians", n, tmp_path)
    assert path.parent == tmp_path / "entropy2d" and path.exists()
    assert data.entropy_cache_path("8gaussians", n + 1, tmp_path) != path

    data.true_entropy.cache_clear()
    monkeypatch.setattr(GaussianMixture, "entropy", lambda *a, **k: pytest.fail("computed again"))
    assert data.true_entropy("8gaussians", n, tmp_path) == expected  # read from disk, bit for bit
    monkeypatch.undo()

    path.write_text("{not json")
    data.true_entropy.cache_clear()
    assert data.true_entropy("8gaussians", n, tmp_path) == expected
    assert '"nats"' in path.read_text()
    data.true_entropy.cache_clear()
