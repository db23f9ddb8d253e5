"""Adding a family is one file: a throwaway family written to a temporary folder is discovered
by the registry, passes the contract tests with its own tiny config, runs in a suite, and the
report says it makes no textbook claim (never that it disagrees)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import models
import run_bench
from models.base import Capabilities, GenerativeModel, Textbook
from tests import test_contract as contract
from tests.helpers import tiny_model

ROOT = Path(__file__).resolve().parent.parent

FAMILY = '''\
"""A diagonal Gaussian with a learnable mean and log-std: exact likelihood, one-pass sampling."""
import math
from dataclasses import dataclass
from typing import Annotated

import torch
from torch import nn

from models import register
from models.base import Capabilities, GenerativeModel
from models.fields import Range, check_fields


@dataclass
class GaussConfig:
    init_log_std: Annotated[float, Range(ge=-10, le=10)] = 0.0

    def __post_init__(self):
        check_fields(self)


@register("throwaway", modality="vector")
class DiagonalGaussian(GenerativeModel):
    reference = "test-only"
    Config = GaussConfig
    capabilities = Capabilities(sample=True, log_prob=True)
    tiny = {"init_log_std": -1.0}

    def __init__(self, config, data_shape):
        super().__init__(config, data_shape)
        self.mu = nn.Parameter(torch.zeros(data_shape))
        self.log_std = nn.Parameter(torch.full(data_shape, config.init_log_std))

    def log_prob(self, x, generator=None):
        z = (x - self.mu) / self.log_std.exp()
        return (-0.5 * z**2 - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def loss(self, x):
        return -self.log_prob(x).mean()

    def generate(self, n, generator=None):
        eps = torch.randn(n, *self.data_shape, generator=generator)
        return self.mu + self.log_std.exp() * eps
'''


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("families")
    (folder / "throwaway.py").write_text(FAMILY)
    return folder


@pytest.fixture(scope="module")
def throwaway(family_dir):
    """The throwaway family, discovered in this process from its folder, and removed afterwards."""
    assert models.discover(family_dir) == ["genbench_family_throwaway"]
    yield "throwaway"
    models.unregister("throwaway", modality="vector")


@pytest.mark.slow  # a child process: the variable is read when models is first imported
def test_the_environment_variable_makes_a_folder_of_families_discoverable(family_dir):
    out = subprocess.run([sys.executable, "-c", "import models; print(models.names('vector'))"], cwd=ROOT,
                         env={**os.environ, "GENBENCH_FAMILIES": str(family_dir), "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "'throwaway'" in out.stdout and "'flow'" in out.stdout


@pytest.mark.parametrize("name", [n for n in dir(contract) if n.startswith("test_")])
def test_a_family_file_passes_every_contract_test_with_its_tiny_config(throwaway, name, tmp_path):
    test = getattr(contract, name)
    kwargs = {"tmp_path": tmp_path} if "tmp_path" in test.__code__.co_varnames else {}
    test(throwaway, "vector", **kwargs)
    assert tiny_model(throwaway, "vector").log_std.tolist() == [-1.0, -1.0]  # the family's own tiny config was used


@pytest.mark.slow  # a run and its report (~3 s)
def test_a_family_file_runs_in_a_suite_and_the_report_says_no_claim(throwaway, tmp_path, tiny_suite):
    suite = tiny_suite({"gan": {"model": {"hidden": 16}, "train": {"steps": 20}},
                        "throwaway": {"train": {"steps": 200, "lr": 0.05}}}, name="newfam")
    code = run_bench.main([str(suite), "--results", str(tmp_path / "res"), "--run-id", "r",
                           "--no-progress"])
    assert code == 0
    run = tmp_path / "res" / "newfam" / "r"
    rec = json.loads((run / "8gaussians__throwaway__s0" / "record.json").read_text())
    assert rec["status"] == "ok" and rec["textbook"] is None and rec["likelihood_kind"] == "exact"
    # a Gaussian fit to the 8-Gaussians mixture: KL well above 0 but finite; the normalization check integrates to 1
    assert 0.1 < rec["density"]["kl_nats"] < 5 and abs(rec["density"]["log_integral_nats"]) < 0.01
    report = (run / "report.md").read_text()
    taxonomy_row = next(line for line in report.splitlines() if line.startswith("| throwaway |"))  # the first table
    assert taxonomy_row.count("no textbook claim") == 2 and "disagrees" not in taxonomy_row


def test_a_family_file_whose_config_declares_no_ranges_fails_the_contract(tmp_path):
    """The same family with ``init_log_std: float`` (no Range) and a free-string option: the contract test over
    the registry fails on it, naming both fields."""
    text = FAMILY.replace("Annotated[float, Range(ge=-10, le=10)]", "float").replace(
        "= 0.0\n", "= 0.0\n    init: str = 'zeros'\n", 1).replace('"throwaway"', '"undeclared"')
    (tmp_path / "undeclared.py").write_text(text)
    assert models.discover(tmp_path) == ["genbench_family_undeclared"]
    try:
        with pytest.raises(AssertionError, match=r"must declare the allowed values of every field .*"
                                                 r"init_log_std: a float without a Range.*init: a str without Literal"):
            contract.test_every_config_field_and_sampler_setting_declares_its_allowed_values("undeclared", "vector")
    finally:
        models.unregister("undeclared", modality="vector")


def test_the_registry_refuses_a_family_without_a_way_to_sample():
    """A family with the default (native) sampler must implement ``generate``; one whose samplers are all of
    another kind (diffusion's ancestral and DDIM) need not."""
    with pytest.raises(models.RegistryError, match=r"family 'nosample' \(.*NoSample\) does not implement: "
                                                   r"generate \(it declares a native sampler\)"):
        @models.register("nosample", modality="vector")
        class NoSample(GenerativeModel):
            def loss(self, x):
                return x.sum()
    assert "nosample" not in models.names()


def _family(textbook):
    return type("F", (GenerativeModel,), {"textbook": textbook, "loss": lambda self, x: x.sum(),
                                          "generate": lambda self, n, generator=None: None})


def test_a_family_has_one_textbook_claim_across_modalities():
    try:
        models.register("claims", modality="vector")(_family(Textbook("none", "fast")))
        with pytest.raises(models.RegistryError, match="a family has one claim"):
            models.register("claims", modality="image")(_family(Textbook("exact", "slow")))
        assert models.names("image").count("claims") == 0
    finally:
        models.unregister("claims", modality="vector")
        models.unregister("claims", modality="image")


def test_textbook_values_are_checked():
    with pytest.raises(ValueError, match="likelihood must be one of"):
        Textbook(likelihood="ELBO", sampling="fast")
    assert Textbook("bound", "slow", sampling_text="slow (iterative)").likelihood_text == "bound"
    assert models.textbook("diffusion").sampling_text == "slow (iterative)"
    assert models.get("gan", "vector").capabilities == Capabilities(sample=True, conditional=True)
