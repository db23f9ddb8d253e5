"""FID, KID, IS and precision/recall/density/coverage against reference implementations and closed forms.

References used: pytorch-fid's ``calculate_frechet_distance``, torch-fidelity's
``fid_statistics_to_metric``, ``kid_features_to_metric`` and ``isc_features_to_metric``,
and the ``prdc`` package, all on the same features. Feature dims are small so the
whole file runs in a few seconds.
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
import torch

from bench.evaluation.inception.score import inception_score_from_logits, inception_score_from_probs
from bench.evaluation.metrics.fid import FIDReference, feature_statistics, fid_from_features, frechet_distance
from bench.evaluation.metrics.kid import kid
from bench.evaluation.metrics.prdc import prdc


def correlated(n: int, f: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """(n, f) Gaussian features with a random non-diagonal covariance."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(f, f)) / math.sqrt(f)
    return scale * rng.normal(size=(n, f)) @ (np.eye(f) + mix) + shift


# ----------------------------------------------------------------------------- FID
@pytest.fixture
def calculate_frechet_distance(monkeypatch):
    """pytorch-fid's ``calculate_frechet_distance``, made to survive SciPy >= 1.18.

    pytorch-fid 0.3.0 calls ``scipy.linalg.sqrtm(A, disp=False)`` and unpacks two values;
    SciPy 1.16 deprecates ``disp`` and 1.18 removes it. pytorch-fid's module is given a
    ``linalg`` whose ``sqrtm`` accepts ``disp`` and returns the pair it expects; the
    square root itself is still SciPy's, so the reference stays independent of our code.
    """
    import scipy.linalg
    from pytorch_fid import fid_score

    def sqrtm(a, disp=None):  # with disp, the old (root, error estimate) pair; without, the root
        root = scipy.linalg.sqrtm(a)
        return root if disp is None else (root, 0.0)

    shim = type("linalg", (), {"sqrtm": staticmethod(sqrtm)})
    monkeypatch.setattr(fid_score, "linalg", shim)
    return fid_score.calculate_frechet_distance


def test_fid_equals_pytorch_fid_and_torch_fidelity(calculate_frechet_distance):
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    x, y = correlated(600, 64, 0), correlated(500, 64, 1, shift=0.3, scale=1.2)
    ours = fid_from_features(x, y)
    mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
    mu2, s2 = y.mean(0), np.cov(y, rowvar=False)
    ref_pf = calculate_frechet_distance(mu1, s1, mu2, s2)
    ref_tf = fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, False)
    ref_tf = ref_tf["frechet_inception_distance"]
    assert ours > 5.0  # the sets differ: a real comparison, not 0 vs 0
    assert abs(ours - ref_pf) / ref_pf <= 1e-6
    assert abs(ours - ref_tf) / ref_tf <= 1e-6


def test_feature_statistics_equal_numpy_mean_and_cov():
    x = correlated(300, 16, 2)
    mu, sigma = feature_statistics(x)
    np.testing.assert_allclose(mu, x.mean(0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=0, atol=1e-12)


def test_fid_closed_form_two_gaussians_2d():
    # For 2x2 PSD S1, S2: tr((S1 S2)^1/2) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)).
    # S1 = [[2, 1], [1, 2]], S2 = diag(1, 4): tr(S1 S2) = 10, det S1 det S2 = 3 * 4 = 12.
    s1, s2 = np.array([[2.0, 1.0], [1.0, 2.0]]), np.diag([1.0, 4.0])
    mu1, mu2 = np.zeros(2), np.array([1.0, 2.0])
    expected = 5.0 + 4.0 + 5.0 - 2 * math.sqrt(10 + 2 * math.sqrt(12))  # = 5.771220...
    assert math.isclose(frechet_distance(mu1, s1, mu2, s2), expected, rel_tol=1e-12)
    assert math.isclose(expected, 5.77122, abs_tol=1e-5)


def test_fid_closed_form_commuting_covariances():
    # Same eigenvectors Q: d^2 = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    a, b = rng.uniform(0.1, 3.0, 10), rng.uniform(0.1, 3.0, 10)
    mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert math.isclose(got, expected, rel_tol=1e-10)


def test_fid_of_a_set_against_itself_is_zero():
    x = correlated(400, 64, 4)
    assert abs(fid_from_features(x, x)) < 1e-9
    assert fid_from_features(x, x + 1.0) == pytest.approx(64.0, rel=1e-9)  # a shift by 1 in 64 dims


def test_fid_with_fewer_samples_than_dims_is_finite_real_and_exact():
    # N < F: both covariances are singular (rank N - 1). Independent exact value: with
    # A = centred X / sqrt(N - 1), tr((S1 S2)^1/2) is the nuclear norm of A1 A2^T (an N1 x N2 SVD).
    x, y = correlated(40, 128, 5), correlated(30, 128, 6, shift=0.2)
    a1 = (x - x.mean(0)) / math.sqrt(len(x) - 1)
    a2 = (y - y.mean(0)) / math.sqrt(len(y) - 1)
    nuclear = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum()
    d = x.mean(0) - y.mean(0)
    expected = d @ d + (a1**2).sum() + (a2**2).sum() - 2 * nuclear
    got = fid_from_features(x, y)
    assert isinstance(got, float) and math.isfinite(got)
    assert math.isclose(got, expected, rel_tol=1e-10)
    assert abs(fid_from_features(x, x)) < 1e-8  # self-FID of a rank-deficient set


@pytest.mark.parametrize("n", [30, 64, 500])  # fewer, as many as, and more samples than dims
def test_fid_against_a_cached_reference_equals_pytorch_fid(n, calculate_frechet_distance):
    """The harness's path: the reference covariance root once, then one min(N, F) eigenproblem per sample set."""
    real, fake = correlated(400, 64, 7), correlated(n, 64, 8, shift=0.25, scale=0.9)
    ref = FIDReference(*feature_statistics(real))
    got = ref.fid(fake)
    assert math.isclose(got, fid_from_features(fake, real), rel_tol=1e-9)
    want = calculate_frechet_distance(fake.mean(0), np.cov(fake, rowvar=False),
                                      real.mean(0), np.cov(real, rowvar=False))
    assert got > 5.0 and abs(got - want) / want <= 1e-6
    assert abs(ref.fid(real)) < 1e-8


def test_fid_of_rank_one_covariances_is_finite():
    # Degenerate extreme: every feature vector on a line; pytorch-fid's sqrtm is ill-defined here.
    t = np.linspace(-1, 1, 50)[:, None]
    x, y = t * np.ones((1, 8)), 2 * t * np.ones((1, 8))
    # S1 = c u u^T, S2 = 4 c u u^T with u = ones(8): tr sqrt(S1 S2) = 2 c |u|^2, so d^2 = c |u|^2 (1 + 4 - 4) = tr(S1)
    c = np.var(t, ddof=1)
    assert math.isclose(fid_from_features(x, y), c * 8, rel_tol=1e-9)


# ----------------------------------------------------------------------------- KID


@pytest.mark.parametrize("seed", [2020, 7])
def test_kid_equals_torch_fidelity(seed):
    from torch_fidelity.metric_kid import kid_features_to_metric

    x, y = correlated(300, 32, 10), correlated(250, 32, 11, shift=0.1)
    ours = kid(x, y, subsets=20, subset_size=100, seed=seed)
    ref = kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y), kid_subsets=20, kid_subset_size=100,
                                 rng_seed=seed, verbose=False)
    assert ours["kid_mean"] > 0
    want = ref["kernel_inception_distance_mean"]
    assert abs(ours["kid_mean"] - want) <= 1e-9 * abs(want)
    assert abs(ours["kid_std"] - ref["kernel_inception_distance_std"]) <= 1e-9 * ref["kernel_inception_distance_std"]


def test_kid_defaults_are_torch_fidelitys_and_subset_size_is_capped():
    x, y = correlated(120, 8, 12), correlated(90, 8, 13)
    r = kid(x, y)
    assert (r["subsets"], r["subset_size"], r["seed"]) == (100, 90, 2020)


def test_kid_by_hand_one_dimensional():
    # F = 1, gamma = 1: k(a, b) = (a b + 1)^3. x = (0, 1), y = (0, 2), m = 2, one subset (all rows).
    # k_xx off-diagonal: k(0, 1) = 1 (twice); k_yy: k(0, 2) = 1 (twice); k_xy: 1, 1, 1, (2 + 1)^3 = 27.
    # MMD^2_u = (2 + 2) / 2 - 2 * 30 / 4 = -13.
    r = kid(np.array([[0.0], [1.0]]), np.array([[0.0], [2.0]]), subsets=1)
    assert r["kid_mean"] == pytest.approx(-13.0, abs=1e-12) and r["kid_std"] == 0.0


def test_kid_is_zero_within_its_std_for_one_distribution_and_not_for_two():
    rng = np.random.default_rng(15)  # both sets from one generator and one mixing matrix: one distribution
    mix = np.eye(16) + rng.normal(size=(16, 16)) / 4
    x, y = rng.normal(size=(1000, 16)) @ mix, rng.normal(size=(1000, 16)) @ mix
    same = kid(x, y, subsets=50, subset_size=200)
    shifted = kid(x, y + 1.0, subsets=50, subset_size=200)
    assert abs(same["kid_mean"]) < same["kid_std"]
    assert shifted["kid_mean"] > 5 * shifted["kid_std"]  # measured: 9.9 +- 0.8


# ----------------------------------------------------------------------------- precision, recall, density, coverage


@pytest.mark.parametrize("k,seed", [(3, 0), (5, 1), (10, 2)])
def test_prdc_equals_the_prdc_package(k, seed):
    from prdc import compute_prdc

    real, fake = correlated(300, 16, 20 + seed), correlated(250, 16, 30 + seed, shift=0.3, scale=1.1)
    with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the set sizes
        ref = compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    ours = prdc(real, fake, k_pr=k, k_dc=k)
    assert 0.0 < ours["precision"] < 1.0 and 0.0 < ours["coverage"] < 1.0  # not a trivial all-or-nothing case
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == pytest.approx(float(ref[key]), abs=1e-12), key


# ----------------------------------------------------------------------------- Inception Score formula


def test_is_of_identical_one_hot_predictions_is_one():
    probs = np.zeros((100, 1008))
    probs[:, 7] = 1.0
    mean, std = inception_score_from_probs(probs, splits=10)
    assert mean == 1.0 and std == 0.0


@pytest.mark.parametrize("k", [2, 10, 1008])
def test_is_of_confident_predictions_spread_evenly_over_k_classes_is_k(k):
    probs = np.eye(k)[np.arange(10 * k) % k]  # each split holds every class equally often
    mean, std = inception_score_from_probs(probs, splits=10)
    assert mean == pytest.approx(k, rel=1e-12) and std == pytest.approx(0.0, abs=1e-9 * k)


def test_is_of_uniform_predictions_is_one():
    mean, _ = inception_score_from_probs(np.full((50, 4), 0.25), splits=5)
    assert mean == pytest.approx(1.0, abs=1e-12)


def test_is_from_logits_equals_torch_fidelity():
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = np.random.default_rng(40).normal(scale=3.0, size=(200, 50))
    mean, std = inception_score_from_logits(logits, splits=10)
    ref = isc_features_to_metric(torch.from_numpy(logits), splits=10, shuffle=False)
    assert mean > 2.0
    assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-10)
    assert std == pytest.approx(ref["inception_score_std"], rel=1e-8)


def test_is_rejects_non_probabilities():
    with pytest.raises(ValueError):
        inception_score_from_probs(np.full((10, 3), 0.5), splits=2)
