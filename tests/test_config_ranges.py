"""Every model option declares its allowed values (``models/fields.py``): what "declares" means, the values at
and beyond each bound the fuzzer draws, whole-config checks naming both keys, data-shape checks at suite load,
and the rows of issue 22 (each a bad value that used to reach a family), now one line and exit 2.

The registry-wide contract is ``tests/test_contract.py::test_every_config_field_and_sampler_setting_declares_its_
allowed_values``; the fuzzer is ``tests/test_bad_input.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import pytest
import yaml

import run_bench
from bench.config.suite import ConfigError, load_suite
from models.autoregressive import PixelCNNConfig
from models.diffusion import DDPMConfig, ImageDDPMConfig
from models.fields import FieldConflict, Length, Range, check_fields, edge_values, undeclared, value_problem
from models.samplers import SGLD
from models.score import NCSNConfig
from models.vae import ConvVAE, ConvVAEConfig, VAEConfig

Size = Annotated[int, Range(ge=1, le=10)]


@dataclass
class Declared:
    n: Size = 3
    p: Annotated[float, Range(ge=0, le=1)] = 0.5
    how: Literal["a", "b"] = "a"
    on: bool = True
    widths: Annotated[tuple[Size, ...], Length(ge=1, le=3)] = (2,)
    pair: tuple[Size, Size] = (1, 2)
    cap: Annotated[float, Range(gt=0, lt=0.5)] | None = None

    def __post_init__(self):
        check_fields(self)


@dataclass
class Undeclared:
    n: int = 3
    p: Annotated[float, Range(ge=0)] = 0.5
    name: str = "x"
    widths: tuple[Size, ...] = (2,)
    table: dict = None
    m: Annotated[int, Range(le=3)] | None = None


def test_what_declares_its_values():
    assert undeclared(Declared) == []
    assert undeclared(Undeclared) == [
        "n: a int without a Range", "p: a float whose Range has no upper bound", "name: a str without Literal choices",
        "widths: a tuple of varying length without a Length with an upper bound",
        "table: a dict, which cannot declare its values", "m: a int whose Range has no lower bound"]


def test_edge_values_are_at_and_just_beyond_each_bound():
    assert edge_values(Size) == [(1, True), (0, False), (10, True), (11, False)]
    floats = edge_values(Annotated[float, Range(gt=0, lt=0.5)] | None)
    assert floats[:4] == [(5e-324, True), (0.0, False), (0.49999999999999994, True), (0.5, False)]  # next floats
    assert [ok for _, ok in floats[4:]] == [False, False, False, True] and math.isnan(floats[4][0])
    assert floats[-1] == (None, True)
    assert edge_values(Literal["a", "b"]) == [("a", True), ("b", True), ("not-a-choice", False)]
    assert edge_values(Annotated[tuple[Size, ...], Length(ge=1, le=3)]) == [
        ((1,), True), ((1, 1, 1), True), ((1, 1, 1, 1), False), ((), False),
        ((1,), True), ((0,), False), ((10,), True), ((11,), False)]
    with pytest.raises(TypeError, match="declares no allowed values"):
        edge_values(int)


def test_declared_values_are_checked_when_built_in_python():
    assert Declared(n=10, p=1.0, widths=(1, 10, 10)).n == 10  # the ends are allowed
    for kwargs, message in [({"n": 0}, "n: 0 is not allowed (must be an integer in [1, 10])"),
                            ({"p": math.nan}, "p: nan is not allowed (must be a finite number)"),
                            ({"how": "c"}, "how: 'c' is not allowed (must be one of 'a', 'b')"),
                            ({"widths": (1, 2, 3, 4)}, "widths: [1, 2, 3, 4] is not allowed (must have 1 to 3 items)"),
                            ({"widths": (1, 0)}, "widths[1]: 0 is not allowed (must be an integer in [1, 10])"),
                            ({"cap": 0.5}, "cap: 0.5 is not allowed (must be a finite number in (0, 0.5))")]:
        with pytest.raises(ValueError) as e:
            Declared(**kwargs)
        assert str(e.value) == message
    assert value_problem(Annotated[tuple[Size, ...], Length(ge=2, le=2)], (1,)) == \
        "[1] is not allowed (must have exactly 2 items)"


def test_family_configs_refuse_bad_values_and_name_both_keys_of_a_conflict():
    with pytest.raises(ValueError, match=r"^hidden: -5 is not allowed \(must be an integer in \[1, 2048\]\)$"):
        VAEConfig(hidden=-5)
    with pytest.raises(ValueError, match=r"^activation: 'gelu' is not allowed \(must be one of 'relu', 'silu'\)$"):
        VAEConfig(activation="gelu")
    with pytest.raises(ValueError, match=r"^kernel: 4 is not allowed \(must be odd"):
        PixelCNNConfig(kernel=4)
    with pytest.raises(FieldConflict) as e:
        NCSNConfig(sigma_min=1.0, sigma_max=0.5)
    assert e.value.problems == {"sigma_min": "1.0 is not allowed (must be below sigma_max = 0.5)",
                                "sigma_max": "0.5 is not allowed (must be above sigma_min = 1.0)"}
    assert str(e.value) == "sigma_min: 1.0 is not allowed (must be below sigma_max = 0.5)"
    with pytest.raises(FieldConflict, match=r"^beta_start: 0.02 is not allowed \(must be below beta_end = 0.02\)$"):
        DDPMConfig(beta_start=0.02, beta_end=0.02)
    # a schedule that does not end in noise: Ho et al.'s 1000-step betas at T = 100
    with pytest.raises(FieldConflict) as e:
        ImageDDPMConfig(T=100, beta_start=1e-4, beta_end=0.02)
    assert set(e.value.problems) == {"T", "beta_end", "beta_start"}
    assert str(e.value) == ("T: 100 is not allowed with beta_end = 0.02 and beta_start = 0.0001: x_T keeps "
                            "sqrt(alpha_bar_T) = 0.603 of the data (at most 0.05), where sampling starts from "
                            "N(0, I); raise T or beta_end, or leave both betas unset (Ho et al.'s, scaled by 1000 / T)")
    assert ImageDDPMConfig(T=100, beta_end=0.2).beta_start is None  # 0.001 .. 0.2 ends in noise
    with pytest.raises(FieldConflict) as e:
        ImageDDPMConfig(channels=(16, 24), norm_groups=16)
    assert set(e.value.problems) == {"norm_groups", "channels"}
    with pytest.raises(FieldConflict, match=r"^step_end: 0.5 is not allowed \(must be at most step_start = 0.3\)$"):
        SGLD(step_start=0.3, step_end=0.5)
    assert SGLD(step_start=0.3, step_end=0.3).step_sizes()[-1] == pytest.approx(0.3)  # a constant schedule is fine


def test_a_config_that_does_not_fit_the_data_is_refused_before_a_network_is_built():
    cfg = ConvVAEConfig(channels=(8, 8, 8))
    with pytest.raises(ValueError, match=r"^channels: \[8, 8, 8\] is not allowed \(3 halvings of H and W need them "
                                         r"divisible by 2\^3 = 8; the data is 28 x 28\)$"):
        ConvVAE.check_data_shape(cfg, (1, 28, 28))
    ConvVAE.check_data_shape(cfg, (3, 32, 32))  # CIFAR-10: 32 / 8 = 4


SUITE = """\
name: t
datasets: [8gaussians, {name: 25gaussians, families: {score: {model: {sigma_max: 0.5}}}}]
families:
  score: {model: {sigma_min: 0.01}}
  diffusion: {model: {T: 100}, samplers: {ddim: {steps: [10, 50]}}}
profiles:
  tight: {families: {score: {model: {sigma_min: 2.0, sigma_max: 3.0}}}}
"""


@pytest.mark.parametrize("profile,overrides,message", [
    (None, ["families.diffusion.model.T=20"],  # the --set that made the conflict is named, not the file's steps
     "--set families.diffusion.model.T=20: families.diffusion.model.T: 20 is not allowed (at least the steps of "
     "sampler 'ddim50' = 50)"),
    (None, ["families.diffusion.samplers.ddim.steps=[10, 200]"],
     "--set families.diffusion.samplers.ddim.steps=[10, 200]: families.diffusion.samplers.ddim.steps: 200 is not "
     "allowed (at most the model's T = 100)"),
    (None, ["families.score.model.sigma_max=0.001"],
     "--set families.score.model.sigma_max=0.001: families.score.model.sigma_max: 0.001 is not allowed (must be "
     "above sigma_min = 0.01)"),
    (None, ["families.score.model.sigma_min=1.0"],  # the dataset's own sigma_max = 0.5 is below it
     "--set families.score.model.sigma_min=1.0: families.score.model.sigma_min: 1.0 is not allowed (must be below "
     "sigma_max = 0.5)"),
    ("tight", ["families.score.model.sigma_max=1.0"],
     "--set families.score.model.sigma_max=1.0: families.score.model.sigma_max: 1.0 is not allowed (must be above "
     "sigma_min = 2.0)"),
])
def test_a_conflict_names_the_key_that_was_set_last(tmp_path, profile, overrides, message):
    (tmp_path / "s.yaml").write_text(SUITE)
    with pytest.raises(ConfigError) as e:
        load_suite(tmp_path / "s.yaml", profile=profile, overrides=overrides)
    assert str(e.value) == message


def test_a_conflict_inside_a_dataset_override_names_that_dataset(tmp_path):
    (tmp_path / "s.yaml").write_text(SUITE.replace("sigma_max: 0.5", "sigma_max: 0.005"))
    with pytest.raises(ConfigError) as e:
        load_suite(tmp_path / "s.yaml")
    assert str(e.value) == (f"{tmp_path / 's.yaml'}: datasets[1].families.score.model.sigma_max: 0.005 is not allowed "
                            "(must be above sigma_min = 0.01)")


# The table of issue 22 (main d2ab25f): a traceback, a probe failure or a silent acceptance each; now exit 2 and
# one line naming the --set (or the file) and the key, with nothing written.
ISSUE_22 = [
    (["--set", "families.vae.model.hidden=-5"], "families.vae.model.hidden: -5 is not allowed"),
    (["--set", "families.gan.model.latent=-1"], "families.gan.model.latent: -1 is not allowed"),
    (["--set", "families.diffusion.model.T=0"], "families.diffusion.model.T: 0 is not allowed"),
    (["--set", "families.score.model.n_sigmas=0"], "families.score.model.n_sigmas: 0 is not allowed"),
    (["--set", "families.autoregressive.model.components=0"], "families.autoregressive.model.components: 0 is not"),
    (["--set", "families.vae.model.latent=0"], "families.vae.model.latent: 0 is not allowed"),
    (["--set", "families.energy.model.sgld_steps=-2"], "families.energy.model.sgld_steps: -2 is not allowed"),
    ("transforms: -3", "families.flow.model.transforms: -3 is not allowed (must be an integer in [1, 64])"),
    (["--families", ","], "argument --families: ',' names nothing"),
    (["--datasets", ""], "argument --datasets: '' names nothing"),
    (["--families", "flow,gan,flow"], "argument --families: 'flow,gan,flow' names 'flow' twice"),
]


@pytest.mark.parametrize("args,message", ISSUE_22, ids=[" ".join(a) if isinstance(a, list) else a for a, _ in ISSUE_22])
def test_the_rows_of_issue_22_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, args, message):
    suite = tmp_path / "toy2d.yaml"
    doc = yaml.safe_load(open(run_bench.DEFAULT_SUITE))
    if args == "transforms: -3":  # in the suite's flow model block
        doc["families"]["flow"]["model"]["transforms"] = -3
        args = []
    suite.write_text(yaml.safe_dump(doc))
    try:
        code = run_bench.main([str(suite), "--profile", "smoke", "--results", str(tmp_path / "res"), *args])
    except SystemExit as e:  # argparse's errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    source = f"--set {args[1]}" if args and args[0] == "--set" else str(suite) if not args else "argument"
    assert err.startswith(f"run_bench.py: error: {source}"), err
    assert not (tmp_path / "res").exists()

