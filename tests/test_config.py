"""Suites: typed configs, precedence, and one-line errors naming the file and key (exit code 2)."""

from __future__ import annotations

import textwrap

import pytest

import run_bench
from bench.config.suite import ConfigError, load_suite

GOOD = """\
name: t
datasets: [8gaussians]
train: {batch_size: 64}
families:
  gan: {model: {hidden: 32}, train: {steps: 10}}
  flow: {}
profiles:
  quick: {families: {gan: {train: {steps: 3}}}}
"""


def write(tmp_path, text: str):
    p = tmp_path / "suite.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_good_suite_fills_typed_configs(tmp_path):
    s = load_suite(write(tmp_path, GOOD))
    gan = s.families["gan"]
    assert gan.model.hidden == 32 and gan.model.latent == 8  # suite value, then dataclass default
    assert gan.train.steps == 10 and gan.train.batch_size == 64  # family block, then suite-wide block
    assert gan.train.betas == (0.5, 0.999)  # the family's own train default
    assert s.modality == "vector" and s.eval.timing_repeats == 5


def test_precedence_cli_over_profile_over_suite(tmp_path):
    p = write(tmp_path, GOOD)
    assert load_suite(p, profile="quick").families["gan"].train.steps == 3
    s = load_suite(p, profile="quick", overrides=["families.gan.train.steps=7", "train.lr=1e-4"])
    assert s.families["gan"].train.steps == 7
    assert s.families["flow"].train.lr == 1e-4  # "1e-4" is a string to PyYAML; accepted as a float


@pytest.mark.parametrize("text,where,message", [
    ("name: t\ndatasets: [8gaussians]\nfamilies: {gan: {model: {hiden: 3}}}\n",
     "families.gan.model.hiden", "unknown key (did you mean 'hidden'?)"),
    ("name: t\ndatasets: [8gaussians]\nfamilies: {gan: {train: {steps: many}}}\n",
     "families.gan.train.steps", "expected int, got str 'many'"),
    ("name: t\ndatasets: [8gaussians]\nfamilies: {gna: {}}\n",
     "families.gna", "unknown family 'gna' (did you mean 'gan'?"),
    ("name: t\ndatasets: [8gausians]\nfamilies: {gan: {}}\n",
     "datasets[0]", "unknown dataset '8gausians' (did you mean '8gaussians'?)"),
    ("name: t\ndatasets: [8gaussians]\nfamilies: {gan: {}}\nevall: {}\n",
     "evall", "unknown key (did you mean 'eval'?)"),
    ("name: t\ndatasets: [8gaussians]\nfamilies: {gan: {}}\neval: {timing_repeats: 2}\n",
     "eval.timing_repeats", "2 is not allowed (must be an integer in [5, 1000])"),
    ("name: t\ndatasets: [8gaussians]\nfamilies: {gan: {model: {loss: hinge}}}\n",
     "families.gan.model.loss", "'hinge' is not allowed (must be one of 'ns', 'wgan-gp')"),
    ("name: t\ndatasets: [8gaussians]\ntrain: {stepz: 3}\nfamilies: {gan: {}}\n",
     "train.stepz", "unknown key (did you mean 'steps'?)"),
    ("datasets: [8gaussians]\nfamilies: {gan: {}}\n", "name", "missing required key"),
])
def test_bad_suites_name_file_and_key(tmp_path, text, where, message):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_suite(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: {where}: "), msg
    assert message in msg
    assert "\n" not in msg


def test_malformed_yaml_names_line_and_column(tmp_path):
    p = write(tmp_path, "name: t\ndatasets: [8gaussians\nfamilies: {}\n")
    with pytest.raises(ConfigError, match=rf"^{p}: malformed YAML at line \d+, column \d+: "):
        load_suite(p)


def test_errors_in_a_profile_or_override_name_their_source(tmp_path):
    p = write(tmp_path, GOOD + "  broken: {families: {gan: {train: {stepz: 1}}}}\n")
    with pytest.raises(ConfigError, match=rf"^{p} \(profile broken\): families.gan.train.stepz: unknown key"):
        load_suite(p, profile="broken")
    with pytest.raises(ConfigError, match=r"^--set families.gan.model.width=3: families.gan.model.width: unknown key"):
        load_suite(p, overrides=["families.gan.model.width=3"])
    with pytest.raises(ConfigError, match=rf"^{p}: profiles.fast: unknown profile"):
        load_suite(p, profile="fast")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such suite file"):
        load_suite(tmp_path / "nope.yaml")


@pytest.mark.parametrize("argv", [
    ["{dir}/bad.yaml"],
    ["{dir}/nope.yaml"],
    ["{dir}/good.yaml", "--set", "families.gan.train.lr=fast"],
    ["{dir}/good.yaml", "--families", "gan,vea"],
])
def test_cli_exits_2_with_one_line(tmp_path, capsys, argv):
    (tmp_path / "bad.yaml").write_text("name: t\ndatasets: [8gaussians]\nfamilies: {gan: {model: {hiden: 3}}}\n")
    (tmp_path / "good.yaml").write_text(GOOD)
    code = run_bench.main([a.format(dir=tmp_path) for a in argv] + ["--results", str(tmp_path / "res")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("run_bench.py: error: ") and "\n" not in err, err
    assert not (tmp_path / "res").exists()  # nothing was written


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        run_bench.main(["--stage", "nonsense"])
    assert e.value.code == 2


@pytest.mark.slow  # a dry run probes every family (~8 s)
def test_dry_run_prints_the_resolved_config(tmp_path, monkeypatch, capsys):
    from bench.execution import plan

    # the plan's probes faked (21 real ones cost seconds; every in-process tiny-suite run probes for real), and
    # cached under a data root of the test's own, not the checkout's data/
    monkeypatch.setattr(plan, "probe_family", lambda spec, suite, device: {
        "train_step_s": 0.01, "samplers": {k: [0.001, 1e-5] for k in spec.samplers},
        "density": [0.002, 2e-5] if spec.density_call else None, "probe_seconds": 0.5})
    assert run_bench.main(["--dry-run", "--profile", "smoke", "--set", f"data.root={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "name: toy2d" in out and "profile: smoke" in out and "# 24 cells:" in out
    assert "# genbench: plan of suite 'toy2d', profile 'smoke' (--profile smoke), 24 cells on " in out
    assert "total (estimated wall time)" in out and "disk:" in out


def test_shipped_suites_load_with_every_profile():
    from pathlib import Path

    import yaml

    for path in sorted(Path(run_bench.ROOT, "suites").glob("*.yaml")):
        load_suite(path)
        for profile in yaml.safe_load(path.read_text()).get("profiles") or {}:
            load_suite(path, profile=profile)


def test_per_dataset_family_overrides(tmp_path):
    p = write(tmp_path, """\
        name: t
        datasets:
          - 8gaussians
          - name: 25gaussians
            families: {gan: {model: {hidden: 7}}}
        families:
          gan: {model: {hidden: 32}, train: {steps: 10}}
        """)
    s = load_suite(p)
    assert s.datasets == ["8gaussians", "25gaussians"]
    assert s.family("8gaussians", "gan").model.hidden == 32
    assert s.family("25gaussians", "gan").model.hidden == 7
    assert s.family("25gaussians", "gan").train.steps == 10  # the rest is inherited


@pytest.mark.parametrize("override,where,message", [
    ("{gan: {model: {hiden: 7}}}", "datasets[1].families.gan.model.hiden", "unknown key (did you mean 'hidden'?)"),
    ("{vae: {}}", "datasets[1].families.vae", "family 'vae' is not in the suite's families"),
])
def test_bad_per_dataset_overrides_name_the_dataset_entry(tmp_path, override, where, message):
    p = write(tmp_path, f"name: t\ndatasets: [8gaussians, {{name: 25gaussians, families: {override}}}]\n"
                        "families: {gan: {}}\n")
    with pytest.raises(ConfigError) as e:
        load_suite(p)
    assert str(e.value).startswith(f"{p}: {where}: ") and message in str(e.value)


def test_the_guides_state_the_protocol_constants_of_the_code():
    """The metric tables of docs/guides/toy2d.md and images.md are hand-written; their protocol constants are not."""
    from pathlib import Path

    from bench.report.docs import readme_rows

    guides = Path(__file__).resolve().parent.parent / "docs" / "guides"
    text = "".join((guides / name).read_text(encoding="utf-8") for name in ("toy2d.md", "images.md"))
    for row in readme_rows():
        assert row in text, f"docs/guides are out of date; `bench.report.docs.readme_rows()` gives: {row}"
