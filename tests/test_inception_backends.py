"""Inception backends: selection and its errors, the backend in the fingerprint, and conformance of each
backend with the fp32 reference port (features to 1e-4 relative, FID to 1e-6 relative, batch-size
invariance). The onnxruntime tests skip when the ``fast-cpu`` extra is not installed; its conformance tests are in
the slow tier (its ONNX export costs a fixed ~20 s per process).

The reference is backend ``reference``: the plain port, whose features equal fid-helper's
TorchScript forward exactly (tests/test_inception.py).
"""

from __future__ import annotations

import os

import pytest
import torch

from bench.evaluation.inception import backends
from bench.evaluation.inception import extractor as inc
from bench.evaluation.inception.benchmark import example_images, max_rel_diff
from bench.evaluation.metrics.fid import fid_from_features
from bench.evaluation.metrics.stats_cache import stats_key

ORT_MISSING = backends.missing_packages("onnxruntime")
needs_ort = pytest.mark.skipif(bool(ORT_MISSING),
                               reason=f"onnxruntime backend not installed: {backends.FAST_CPU_EXTRA}")
# Conformance runs 16 images through the reference port and each backend (~40 s on 2 cores): the slow tier.
# The fast tier keeps one image through the port and the torch fast path (tests/test_inception.py).
FAST_BACKENDS = [pytest.param("torch", marks=pytest.mark.slow),
                 pytest.param("onnxruntime", marks=[needs_ort, pytest.mark.slow])]


def two_sets(n: int) -> torch.Tensor:
    """n images: n/2 colour fields bicubic from a 4x4 grid, then n/2 from an 8x8 grid (two distributions)."""
    return torch.cat([example_images(n // 2, seed=10, grid=4), example_images(n - n // 2, seed=11, grid=8)])


def fid_of_halves(feats: torch.Tensor) -> float:
    half = len(feats) // 2
    return fid_from_features(feats[:half].double().numpy(), feats[half:].double().numpy())


@pytest.fixture(scope="module")
def images():
    return two_sets(16)


@pytest.fixture(scope="module")
def reference(images):
    """The reference port's features of the 16 images."""
    return inc.InceptionExtractor(backend="reference", batch_size=16)(images)


# ----------------------------------------------------------------------------- selection


def test_auto_picks_onnxruntime_on_cpu_only_when_installed(monkeypatch):
    monkeypatch.delenv(backends.ENV_VAR, raising=False)
    assert backends.resolve_backend(None, "cuda") == "torch"
    monkeypatch.setattr(backends, "missing_packages", lambda name: ["onnxruntime"] if name == "onnxruntime" else [])
    assert backends.resolve_backend(None, "cpu") == "torch"
    monkeypatch.setattr(backends, "missing_packages", lambda name: [])
    assert backends.resolve_backend(None, "cpu") == "onnxruntime"
    assert backends.resolve_backend("auto", "cpu") == "onnxruntime"


def test_the_environment_variable_selects_and_bad_names_fail_in_one_line(monkeypatch):
    monkeypatch.setenv(backends.ENV_VAR, "reference")
    assert backends.resolve_backend(None, "cpu") == "reference"
    assert backends.resolve_backend("torch", "cpu") == "torch"  # the argument beats the variable
    monkeypatch.setenv(backends.ENV_VAR, "tensorrt")
    with pytest.raises(ValueError, match=r"^environment variable GENBENCH_INCEPTION_BACKEND: unknown Inception backend "
                                         r"'tensorrt'; choose one of auto, reference, torch, onnxruntime$"):
        backends.resolve_backend(None, "cpu")
    with pytest.raises(ValueError, match=r"^backend argument: the onnxruntime Inception backend runs on CPU only"):
        backends.resolve_backend("onnxruntime", "cuda")


def test_asking_for_a_missing_backend_says_how_to_install(monkeypatch):
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None)
    assert backends.missing_packages("onnxruntime") == ["onnxruntime", "onnx", "onnxscript"]
    with pytest.raises(backends.BackendUnavailableError) as e:
        backends.resolve_backend("onnxruntime", "cpu")
    assert str(e.value) == ("backend argument: Inception backend 'onnxruntime' needs onnxruntime, onnx, onnxscript, "
                            "not installed; pip install -e '.[fast-cpu]'")
    assert "\n" not in str(e.value)
    assert backends.resolve_backend("auto", "cpu") == "torch"  # the default stays usable without the extra


def test_the_backend_is_in_the_fingerprint_and_the_cache_key():
    ref, fast = inc.fingerprint(backend="reference"), inc.fingerprint(backend="torch")
    assert ref["backend"] == {"name": "reference"} and fast["backend"] == {"name": "torch"}
    assert {k: v for k, v in ref.items() if k != "backend"} == {k: v for k, v in fast.items() if k != "backend"}
    assert stats_key("d", ref) != stats_key("d", fast)
    assert inc.fingerprint(backend="auto", device="cuda")["backend"]["name"] == "torch"


@needs_ort
def test_onnxruntime_fingerprint_names_the_versions():
    import onnxruntime

    fp = inc.fingerprint(backend="onnxruntime")["backend"]
    assert fp["name"] == "onnxruntime" and fp["onnxruntime"] == onnxruntime.__version__
    assert fp["onnx_opset"] == backends.ONNX_OPSET


# ----------------------------------------------------------------------------- conformance with the reference


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_features_and_fid_equal_the_fp32_reference(backend, images, reference):
    ext = inc.InceptionExtractor(backend=backend, batch_size=16)
    feats = ext(images)
    assert ext.fingerprint["backend"]["name"] == backend
    assert feats.shape == (16, 2048) and reference.abs().max() > 1.0
    assert max_rel_diff(feats, reference) <= 1e-4  # measured: ~1e-6 (BN folded, other conv kernels)
    ref_fid = fid_of_halves(reference)
    assert ref_fid > 1.0  # two different distributions
    assert abs(fid_of_halves(feats) - ref_fid) <= 1e-6 * ref_fid


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_features_do_not_depend_on_batch_size(backend, images):
    ext = inc.InceptionExtractor(backend=backend, batch_size=16)
    ref = ext(images[:16])
    for bs in (1, 7):
        ext.batch_size = bs
        assert max_rel_diff(ext(images[:7]), ref[:7]) <= 1e-5, bs


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("GENBENCH_SLOW_TESTS"),
                    reason="2,000 Inception forwards (~3 min); set GENBENCH_SLOW_TESTS=1")
@needs_ort
def test_onnxruntime_fid_on_1000_images_equals_the_reference():
    imgs = two_sets(1000)
    ref = inc.InceptionExtractor(backend="reference", batch_size=50)(imgs)
    ort = inc.InceptionExtractor(backend="onnxruntime", batch_size=50)(imgs)
    assert max_rel_diff(ort, ref) <= 1e-4
    assert abs(fid_of_halves(ort) - fid_of_halves(ref)) <= 1e-6 * fid_of_halves(ref)
