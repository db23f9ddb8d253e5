"""Which profile runs on which machine, and why (bench/profiles.py)."""

from __future__ import annotations

import json

import pytest
import yaml

import run_bench
from bench.config.profiles import choose
from bench.config.suite import ConfigError, load_suite

# the tiny suite with a default profile that needs CUDA (3000 steps) and a CPU fallback (20 steps)
AR = {"autoregressive": {"model": {"hidden": 16, "components": 4}, "train": {"steps": 3000}}}
PROFILES = {"default": {"requires": "cuda", "fallback": "small"},
            "small": {"device": "cpu", "families": {"autoregressive": {"train": {"steps": 20}}}}}


@pytest.fixture
def suite_file(tiny_suite):
    return tiny_suite(AR, name="hw", device="auto", profiles=PROFILES, file="hw.yaml")


def test_without_cuda_the_fallback_runs_and_says_how_to_force_the_default(suite_file):
    c = choose(suite_file, None, cuda_available=False)
    assert c.suite.profile == "small" and c.suite.families["autoregressive"].train.steps == 20
    assert c.reason == "auto: no CUDA on this machine, and the default profile requires cuda; its fallback is 'small'"
    assert "--profile default --device cpu" in c.notice and "\n" not in c.notice


def test_with_cuda_the_default_runs(suite_file):
    c = choose(suite_file, None, cuda_available=True)
    assert c.suite.profile == "default" and c.suite.families["autoregressive"].train.steps == 3000
    assert c.reason == "auto: the default profile (its needs, cuda, are met)" and c.notice is None


def test_asking_for_the_default_without_cuda_is_refused_with_both_ways_out(suite_file):
    with pytest.raises(ConfigError, match=r"profiles.default: requires cuda, but no CUDA on this machine; "
                                          r"run --profile small, or force it on the CPU with "
                                          r"--profile default --device cpu$"):
        choose(suite_file, "default", cuda_available=False)


def test_a_forced_device_runs_the_default_profile_and_the_reason_says_so(suite_file):
    c = choose(suite_file, "default", ["device=cpu"], cuda_available=False)
    assert c.suite.profile == "default" and c.suite.device == "cpu"
    assert c.reason.startswith("--profile default --device cpu: forced although the profile requires cuda")


def test_device_cpu_alone_picks_the_fallback_even_with_cuda(suite_file):
    c = choose(suite_file, None, ["device=cpu"], cuda_available=True)
    assert c.suite.profile == "small" and "device 'cpu' is not CUDA" in c.reason


def test_a_suite_without_requirements_runs_its_default_everywhere(tiny_suite):
    p = tiny_suite(AR, name="hw", device="auto", file="plain.yaml")
    for cuda in (False, True):
        c = choose(p, None, cuda_available=cuda)
        assert c.suite.profile == "default" and c.reason == "auto: the default profile" and c.notice is None
    assert load_suite(p, profile="default").families["autoregressive"].train.steps == 3000


@pytest.mark.parametrize("block,message", [
    ("default: {requires: tpu}", r"profiles.default.requires: expected one of \['cuda'\]"),
    ("default: {requires: cuda, fallback: nope}", r"profiles.default.fallback: 'nope' is not another profile"),
])
def test_malformed_profile_needs_name_the_key(tiny_suite, block, message):
    p = tiny_suite(AR, name="hw", device="auto", profiles=yaml.safe_load(block), file="bad.yaml")
    with pytest.raises(ConfigError, match=rf"^{p}: {message}"):
        choose(p, None, cuda_available=False)


def test_the_record_and_the_dry_run_show_the_choice(suite_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    args = [str(suite_file), "--results", str(tmp_path / "res"), "--no-progress", "--set", f"data.root={tmp_path}"]
    assert run_bench.main([*args, "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "profile: small" in out.out and "profile_reason: 'auto: no CUDA on this machine" in out.out
    assert "--profile default --device cpu" in out.err
    assert run_bench.main([*args, "--run-id", "r"]) == 0
    rec = json.loads((tmp_path / "res" / "hw" / "r" / "8gaussians__autoregressive__s0" / "record.json").read_text())
    assert rec["config"]["profile"] == "small" and rec["config"]["profile_reason"].startswith("auto: no CUDA")
    assert json.loads((tmp_path / "res" / "hw" / "r" / "run.json").read_text())["profile"] == "small"


def test_shipped_image_suites_fall_back_to_their_cpu_profile_without_cuda():
    for name in ("cifar", "mnist"):
        c = choose(f"{run_bench.ROOT}/suites/{name}.yaml", None, cuda_available=False)
        assert c.suite.profile == "cpu" and c.suite.device == "cpu"
        assert choose(f"{run_bench.ROOT}/suites/{name}.yaml", None, cuda_available=True).suite.profile == "default"
