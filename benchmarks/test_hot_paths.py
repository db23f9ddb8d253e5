"""Micro-benchmarks of genbench's hot paths (pytest-benchmark), apart from the test run.

    pytest benchmarks --benchmark-autosave                      # saves .benchmarks/<machine>/NNNN_<commit>.json
    pytest benchmarks --benchmark-compare --benchmark-compare-fail=median:15%    # vs the last saved run

Measured: the Fréchet distance from cached statistics (F = 2048), k-NN precision/recall
(and density/coverage, same pass) at 10,000 × 10,000 features of F = 2048, the Inception
forward at batch 8 on CPU (32×32 uint8 images, resized to 299), and each 2D family's
``sample`` and density call (``log_prob``, ``log_prob_bounds`` or ``energy``) at batch 2048
with the model settings of ``suites/toy2d.yaml`` (untrained weights: the cost does not
depend on them). Timings are wall-clock seconds per call, rounds as set per benchmark.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import models
from bench.config.suite import load_suite
from bench.evaluation.metrics.fid import feature_statistics, frechet_distance
from bench.evaluation.metrics.prdc import prdc

F = 2048
SUITE = load_suite(Path(__file__).resolve().parent.parent / "suites" / "toy2d.yaml")


@pytest.fixture(scope="module")
def cached_statistics():
    """Two (mu, sigma) pairs of F = 2048 from 4096 correlated Gaussian features each, as the cache stores them."""
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((F, F)) / np.sqrt(F)
    return [feature_statistics(rng.standard_normal((4096, F)) @ mix + shift) for shift in (0.0, 0.1)]


def test_frechet_distance_from_cached_statistics(benchmark, cached_statistics):
    (mu1, s1), (mu2, s2) = cached_statistics
    d2 = benchmark.pedantic(frechet_distance, args=(mu1, s1, mu2, s2), rounds=5, warmup_rounds=1)
    assert d2 > 0


def test_knn_precision_recall_10k_by_2048(benchmark):
    rng = np.random.default_rng(1)
    real, fake = rng.standard_normal((10_000, F)), rng.standard_normal((10_000, F)) + 0.05
    out = benchmark.pedantic(prdc, args=(real, fake), kwargs={"k_pr": 3, "k_dc": 3}, rounds=3, warmup_rounds=0)
    assert 0 <= out["precision"] <= 1 and 0 <= out["recall"] <= 1


def test_inception_forward_batch_8_cpu(benchmark):
    from bench.evaluation.inception.extractor import InceptionExtractor

    ext = InceptionExtractor(batch_size=8, device="cpu")
    images = torch.randint(0, 256, (8, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    feats = benchmark.pedantic(ext, args=(images,), rounds=7, warmup_rounds=1)
    assert feats.shape == (8, F)


def _model(family: str) -> models.GenerativeModel:
    torch.manual_seed(0)
    return models.build(family, "vector", SUITE.family("8gaussians", family).model, (2,)).eval()


@pytest.mark.parametrize("family", list(SUITE.families))
def test_2d_sample_batch_2048(benchmark, family):
    model, gen = _model(family), torch.Generator().manual_seed(0)
    with torch.no_grad():
        x = benchmark.pedantic(lambda: model.sample(2048, generator=gen), rounds=5, warmup_rounds=1)
    assert x.shape == (2048, 2)


@pytest.mark.parametrize("family", list(SUITE.families))
def test_2d_density_batch_2048(benchmark, family):
    model = _model(family)
    caps = model.capabilities
    if not (caps.log_prob or caps.bound or caps.energy):
        pytest.skip(f"{family} has no density (capabilities: likelihood {caps.likelihood})")
    call = model.log_prob if caps.log_prob else model.log_prob_bounds if caps.bound else model.energy
    x = torch.randn(2048, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = benchmark.pedantic(call, args=(x,), rounds=5, warmup_rounds=1)
    first = next(iter(out.values())) if isinstance(out, dict) else out
    assert first.shape == (2048,)
