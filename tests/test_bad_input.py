"""Bad input, tried by hand and by a fuzzer: always one line on stderr and exit 2, never a traceback,
never silently accepted, and nothing written.

``BAD_INPUTS`` is the hand-made list (each value a careless or hostile user could write);
the fuzz tests (hypothesis) draw random suites and ``--set`` strings around a valid suite.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import models
import run_bench
from bench.config.suite import _TOP_KEYS, DataConfig, EvalConfig, load_suite
from models.base import TrainConfig

BASE = {"name": "t", "datasets": ["8gaussians"], "families": {"gan": {"model": {"hidden": 16}, "train": {"steps": 5}}}}

# (what goes wrong, a YAML patch merged over BASE or a --set string, the key the error must name)
BAD_INPUTS = [
    ("negative steps", "train: {steps: -5}", "train.steps"),
    ("zero steps", "train: {steps: 0}", "train.steps"),
    ("fractional steps", "train: {steps: 2.5}", "train.steps"),
    ("NaN steps", "train: {steps: .nan}", "train.steps"),
    ("infinite steps", "train: {steps: 1e400}", "train.steps"),
    ("absurd steps", "train: {steps: 1000000000000000000000}", "train.steps"),
    ("zero batch", "train: {batch_size: 0}", "train.batch_size"),
    ("absurd batch", "train: {batch_size: 1099511627776}", "train.batch_size"),
    ("zero lr", "train: {lr: 0}", "train.lr"),
    ("negative lr", "train: {lr: -0.001}", "train.lr"),
    ("NaN lr", "train: {lr: .nan}", "train.lr"),
    ("infinite lr", "train: {lr: .inf}", "train.lr"),
    ("one beta", "train: {betas: [0.9]}", "train.betas"),
    ("beta of 1", "train: {betas: [0.9, 1.0]}", "train.betas[1]"),
    ("negative beta", "train: {betas: [-0.1, 0.9]}", "train.betas[0]"),
    ("unknown schedule", "train: {schedule: linear}", "train.schedule"),
    ("negative warm-up", "train: {warmup_steps: -1}", "train.warmup_steps"),
    ("zero grad clip", "train: {grad_clip: 0}", "train.grad_clip"),
    ("EMA of 1", "train: {ema: 1.0}", "train.ema"),
    ("negative EMA", "train: {ema: -0.5}", "train.ema"),
    ("zero time budget", "train: {max_seconds: 0}", "train.max_seconds"),
    ("infinite time budget", "train: {max_seconds: .inf}", "train.max_seconds"),
    ("zero check interval", "train: {check_every: 0}", "train.check_every"),
    ("unknown amp", "train: {amp: fp16}", "train.amp"),
    ("string bool", "train: {channels_last: 'yes'}", "train.channels_last"),
    ("family-level NaN", "families: {gan: {train: {lr: .nan}}}", "families.gan.train.lr"),
    ("zero samples", "eval: {n_samples: 0}", "eval.n_samples"),
    ("one sample", "eval: {n_samples: 1}", "eval.n_samples"),
    ("absurd samples", "eval: {n_samples: 1000000000000}", "eval.n_samples"),
    ("fewer samples than k", "eval: {n_samples: 4}", "eval.n_samples"),
    ("zero bound_n", "eval: {bound_n: 0}", "eval.bound_n"),
    ("zero throughput batch", "eval: {throughput_batch: 0}", "eval.throughput_batch"),
    ("zero latency batch", "eval: {latency_batch: 0}", "eval.latency_batch"),
    ("negative density batch", "eval: {density_batch: -1}", "eval.density_batch"),
    ("negative warm-up calls", "eval: {timing_warmup: -1}", "eval.timing_warmup"),
    ("too few repeats", "eval: {timing_repeats: 2}", "eval.timing_repeats"),
    ("tiny entropy MC", "eval: {entropy_mc: 10}", "eval.entropy_mc"),
    ("tiny quadrature grid", "eval: {quadrature_grid: 2}", "eval.quadrature_grid"),
    ("zero pr_k", "eval: {pr_k: 0}", "eval.pr_k"),
    ("zero dc_k", "eval: {dc_k: 0}", "eval.dc_k"),
    ("zero KID subsets", "eval: {kid_subsets: 0}", "eval.kid_subsets"),
    ("KID subset of 1", "eval: {kid_subset_size: 1}", "eval.kid_subset_size"),
    ("zero mode tolerance", "eval: {mode_tolerance: 0}", "eval.mode_tolerance"),
    ("NaN mode tolerance", "eval: {mode_tolerance: .nan}", "eval.mode_tolerance"),
    ("zero density grid", "eval: {density_grid: 0}", "eval.density_grid"),
    ("negative seed", "eval: {seed: -1}", "eval.seed"),
    ("no FID reference", "eval: {fid_reference: []}", "eval.fid_reference"),
    ("unknown FID reference", "eval: {fid_reference: [val]}", "eval.fid_reference[0]"),
    ("zero FID reference n", "eval: {fid_reference_n: 0}", "eval.fid_reference_n"),
    ("zero density_n", "eval: {density_n: 0}", "eval.density_n"),
    ("zero training set", "data: {n_train: 0}", "data.n_train"),
    ("absurd training set", "data: {n_train: 1000000000000}", "data.n_train"),
    ("one test point", "data: {n_test: 1}", "data.n_test"),
    ("empty data root", "data: {root: ''}", "data.root"),
    ("negative seed list", "seeds: [-1]", "seeds[0]"),
    ("repeated seed", "seeds: [0, 0]", "seeds[1]"),
    ("no seeds", "seeds: []", "seeds"),
    ("repeated dataset", "datasets: [8gaussians, 8gaussians]", "datasets[1]"),
    ("suite name escaping the root", "name: ../../x", "name"),
    ("absolute suite name", "name: /tmp/x", "name"),
    ("suite name with a slash", "name: a/b", "name"),
    ("empty suite name", "name: ''", "name"),
    ("unknown device", "device: banana", "device"),
    ("device typo", "device: cuda:x", "device"),
    ("--set negative steps", "--set families.gan.train.steps=-5", "families.gan.train.steps"),
    ("--set NaN lr", "--set train.lr=.nan", "train.lr"),
    ("--set empty key", "--set =5", None),
    ("--set empty key part", "--set train..lr=1", None),
]


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _cli(tmp_path, capsys, text: str | bytes, *args: str) -> tuple[int, str]:
    path = tmp_path / "s.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    code = run_bench.main([str(path), "--results", str(tmp_path / "res"), "--dry-run", *args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("what,patch,key", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_each_bad_input_is_one_line_exit_2_naming_its_key(tmp_path, capsys, what, patch, key):
    if patch.startswith("--set "):
        code, err = _cli(tmp_path, capsys, yaml.safe_dump(BASE), "--set", patch[len("--set "):])
        source = f"--set {patch[len('--set '):]}"
    else:
        code, err = _cli(tmp_path, capsys, yaml.safe_dump(_merge(BASE, yaml.safe_load(patch))))
        source = str(tmp_path / "s.yaml")
    assert code == 2, what
    assert err.count("\n") == 1 and err.startswith(f"run_bench.py: error: {source}: "), err
    if key:
        assert err.startswith(f"run_bench.py: error: {source}: {key}: "), err
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("text,message", [
    (b"name: t\ndescription: caf\xe9\n", "not UTF-8 text (byte 0xe9 at line 2)"),
    (b"name: t\nname: u\ndatasets: [8gaussians]\nfamilies: {gan: {}}\n",
     "malformed YAML at line 2, column 1: found the key 'name' twice"),
    (b"name: t\n" + b"x" * (1 << 20), "too large for a suite file"),
    (b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n", "malformed YAML"),
    (b"\x00\x01\x02binary", "malformed YAML"),
    (b"- a\n- b\n", "expected a mapping at the top level, got list"),
    (b"name: t\ndatasets: [8gaussians]\nfamilies: &f {gan: *f}\n", "families.gan"),
])
def test_unreadable_suite_files_are_one_line(tmp_path, capsys, text, message):
    code, err = _cli(tmp_path, capsys, text)
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_a_yaml_merge_overridden_by_an_explicit_key_is_not_a_repeated_key(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: t\ndatasets: [8gaussians]\nfamilies:\n  gan: {train: &b {steps: 5, lr: 0.01}}\n"
                 "  flow: {train: {<<: *b, steps: 7}}\n")
    s = load_suite(p)
    assert (s.families["flow"].train.steps, s.families["flow"].train.lr) == (7, 0.01)


def test_ranges_also_hold_for_configs_built_in_python():
    with pytest.raises(ValueError, match=r"^steps: -5 is not allowed \(must be an integer in \[1, 10\^9\]\)$"):
        TrainConfig(steps=-5)
    with pytest.raises(ValueError, match=r"^n_samples: 0 is not allowed"):
        EvalConfig(n_samples=0)
    with pytest.raises(ValueError, match=r"^lr: nan is not allowed \(must be a finite number\)$"):
        TrainConfig(lr=float("nan"))
    assert TrainConfig(steps=1, ema=0.0, betas=(0.0, 0.999)).steps == 1  # the ends of the ranges are allowed


# --------------------------------------------------------------------------- the fuzzer
_FIELDS = [f.name for cls in (TrainConfig, EvalConfig, DataConfig) for f in dataclasses.fields(cls)]
KEYS = sorted(set(_TOP_KEYS + _FIELDS + ["model", "train", "hidden", "latent", "loss", "transforms"]
                  + models.names("vector")))
_scalars = st.one_of(  # plausible values as often as absurd ones, so that valid suites are drawn too
    st.integers(1, 64), st.floats(0.01, 0.99), st.integers(1, 64), st.floats(0.01, 0.99),
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.sampled_from(["8gaussians", "25gaussians", "gan", "cosine", "bf16", "auto", "cuda",
                                          "test", "1e-3", "1e999", "../x", ".nan"]))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5)), inner,
                                                 max_size=3)), max_leaves=12)


_GAN = models.get("gan", "vector").Config
PATHS = ([[k] for k in _TOP_KEYS] + [["train", f.name] for f in dataclasses.fields(TrainConfig)]
         + [["families", "gan", "train", f.name] for f in dataclasses.fields(TrainConfig)]
         + [["families", "gan", "model", f.name] for f in dataclasses.fields(_GAN)]
         + [["eval", f.name] for f in dataclasses.fields(EvalConfig)] + [["data", f.name] for f in
                                                                          dataclasses.fields(DataConfig)])


@st.composite
def _suites(draw) -> dict:
    """BASE with up to four values replaced at key paths of the schema, or random paths of its vocabulary."""
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(0, 4))):
        path = draw(st.one_of(st.sampled_from(PATHS), st.lists(st.sampled_from(KEYS), min_size=1, max_size=4)))
        d = doc
        for k in path[:-1]:
            if not isinstance(d.get(k), dict):
                d[k] = {}
            d = d[k]
        d[path[-1]] = draw(_values)
    return doc


def _outcome(code: int, err: str) -> None:
    """Exit 0 (a valid suite, its resolved config printed) or 2 with one line; never anything else."""
    assert code in (0, 2), (code, err)
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("run_bench.py: error: "), err
        event("clean error")
    else:
        event("valid suite")


_FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])


@_FUZZ
@given(doc=_suites())
def test_fuzzed_suites_are_valid_or_one_line_exit_2(tmp_path, capsys, doc):
    _outcome(*_cli(tmp_path, capsys, yaml.safe_dump(doc)))


@_FUZZ
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(bytes)))
def test_fuzzed_suite_files_are_valid_or_one_line_exit_2(tmp_path, capsys, text):
    _outcome(*_cli(tmp_path, capsys, text))


_dotted = st.lists(st.sampled_from(KEYS), min_size=1, max_size=4).map(".".join)


@_FUZZ
@given(sets=st.lists(st.builds("{}={}".format, st.one_of(_dotted, st.text(max_size=10)),
                               st.one_of(st.text(max_size=10), _scalars.map(yaml.safe_dump).map(str.strip))),
                     min_size=1, max_size=3))
def test_fuzzed_overrides_are_valid_or_one_line_exit_2(tmp_path, capsys, sets):
    args = [f"--set={s}" for s in sets]
    _outcome(*_cli(tmp_path, capsys, yaml.safe_dump(BASE), *args))
