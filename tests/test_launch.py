"""Launchers without Ray: the command line refuses ``--launcher ray`` where Ray is missing, and suites
declare the resources their cells ask a cluster for (``resources``), typed and checked."""

from __future__ import annotations

import sys

import pytest

import run_bench
from bench.config.suite import ConfigError, Resources, TaskResources, load_suite

SUITE = """\
name: res
datasets: [8gaussians]
resources: {num_cpus: 2}
families:
  flow: {resources: {num_gpus: 0.5}}
  gan: {resources: {num_cpus: 1, evaluate: {num_cpus: 4, num_gpus: 0}}}
  vae: {}
profiles:
  big: {resources: {num_cpus: 8}, families: {vae: {resources: {num_gpus: 2}}}}
"""


def _suite(tmp_path, text=SUITE, **kw):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return load_suite(path, **kw)


def test_without_ray_the_launcher_exits_2_with_the_install_command_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed (find_spec then says None)
    code = run_bench.main(["--profile", "smoke", "--results", str(tmp_path / "res"), "--launcher", "ray"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == ("run_bench.py: error: --launcher ray: Ray is not installed; install it with: "
                   'pip install -e ".[ray]"\n')
    assert not (tmp_path / "res").exists()


def test_ray_address_needs_the_ray_launcher(tmp_path, capsys):
    assert run_bench.main(["--results", str(tmp_path / "res"), "--ray-address", "auto"]) == 2
    assert capsys.readouterr().err == "run_bench.py: error: --ray-address needs --launcher ray\n"
    assert not (tmp_path / "res").exists()


def test_resources_lie_under_the_family_and_the_profile_over_both(tmp_path):
    s = _suite(tmp_path)
    flow, gan, vae = (s.families[f].resources for f in ("flow", "gan", "vae"))
    assert flow == Resources(num_cpus=2, num_gpus=0.5)  # the suite's num_cpus under the family's num_gpus
    assert gan == Resources(num_cpus=1, evaluate=TaskResources(num_cpus=4, num_gpus=0))
    assert vae == Resources(num_cpus=2)
    # num_gpus unset: one GPU where the run's device is CUDA, none elsewhere; torch threads = num_cpus
    assert vae.ray_options(cuda=True) == {"num_cpus": 2.0, "num_gpus": 1.0}
    assert vae.ray_options(cuda=False) == {"num_cpus": 2.0, "num_gpus": 0.0}
    assert flow.ray_options(cuda=True)["num_gpus"] == 0.5 and flow.threads() == 2
    assert TaskResources(num_cpus=0.5).threads() == 1
    big = _suite(tmp_path, profile="big")
    assert big.families["flow"].resources == Resources(num_cpus=8, num_gpus=0.5)
    assert big.families["vae"].resources == Resources(num_cpus=8, num_gpus=2)
    assert big.families["gan"].resources.num_cpus == 1  # the family's own value beats the profile's suite-wide one
    assert big.resolved()["families"]["vae"]["resources"] == {"num_cpus": 8, "num_gpus": 2, "evaluate": None}


@pytest.mark.parametrize("block, message", [
    ("families: {flow: {resources: {num_gpu: 1}}}",
     "families.flow.resources.num_gpu: unknown key (did you mean 'num_gpus'?)"),
    ("families: {flow: {resources: {num_gpus: 1.5}}}",
     "families.flow.resources.num_gpus: 1.5 is not allowed (above 1 it must be a whole number"),
    ("families: {flow: {resources: {num_cpus: -1}}}",
     "families.flow.resources.num_cpus: -1.0 is not allowed (must be a finite number in [0, 4096])"),
    ("families: {flow: {resources: {evaluate: {num_cpu: 2}}}}",
     "families.flow.resources.evaluate.num_cpu: unknown key (did you mean 'num_cpus'?)"),
    ("resources: {num_cpus: many}\nfamilies: {flow: {}}", "resources.num_cpus: expected float, got str 'many'"),
    ("resources: 4\nfamilies: {flow: {}}", "resources: expected a mapping, got 4"),
    ("families: {flow: {resource: {}}}", "families.flow.resource: unknown key (did you mean 'resources'?)"),
])
def test_bad_resources_are_one_line_naming_the_file_and_key(tmp_path, block, message):
    with pytest.raises(ConfigError) as e:
        _suite(tmp_path, f"name: res\ndatasets: [8gaussians]\n{block}\n")
    assert str(e.value).startswith(f"{tmp_path / 's.yaml'}: {message}")


def test_resources_can_be_set_on_the_command_line(tmp_path):
    s = _suite(tmp_path, overrides=["families.flow.resources.num_cpus=3"])
    assert s.families["flow"].resources == Resources(num_cpus=3, num_gpus=0.5)
    with pytest.raises(ConfigError, match=r"^--set resources.num_gpus=-2: resources.num_gpus: -2.0 is not allowed"):
        _suite(tmp_path, overrides=["resources.num_gpus=-2"])
