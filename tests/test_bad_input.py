"""Bad input, tried by hand and by a fuzzer: always one line on stderr and exit 2, never a traceback,
never silently accepted, and nothing written; a valid suite's ``--dry-run`` probes all succeed.

``BAD_INPUTS`` is the hand-made list (each value a careless or hostile user could write);
the fuzz tests (hypothesis) draw random suites and ``--set`` strings around a valid suite, and
edits of the families' own keys drawn from the registry (:func:`family_edits`: every field of every
family's ``Config`` and of its samplers, at and beyond each declared bound), as ``--set`` overrides or
as edits of a suite's profile block: through the validator alone on ``suites/toy2d.yaml`` (fast tier), and
with ``--dry-run`` and its probes on ``suites/toy2d.yaml`` and the image suites (slow tier).
``scripts/fault_injection.py bad-inputs`` makes the long runs (``docs/configuration.md``, "The fuzzer")."""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import models
import run_bench
from bench.config import suite as suite_module
from bench.config.suite import _TOP_KEYS, ConfigError, DataConfig, EvalConfig, load_suite
from models.base import TrainConfig
from models.fields import edge_values
from models.samplers import KINDS

ROOT = Path(__file__).resolve().parent.parent

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


def _cli(tmp_path, capsys, text: str | bytes, *args: str) -> tuple[int, str, str]:
    """``run_bench.py <tmp>/s.yaml --dry-run ARGS`` in this process: exit code, stderr, stdout."""
    path = tmp_path / "s.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    code = run_bench.main([str(path), "--results", str(tmp_path / "res"), "--dry-run", *args])
    out = capsys.readouterr()
    return code, out.err, out.out


@pytest.mark.parametrize("what,patch,key", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_each_bad_input_is_one_line_exit_2_naming_its_key(tmp_path, capsys, what, patch, key):
    if patch.startswith("--set "):
        code, err, _ = _cli(tmp_path, capsys, yaml.safe_dump(BASE), "--set", patch[len("--set "):])
        source = f"--set {patch[len('--set '):]}"
    else:
        code, err, _ = _cli(tmp_path, capsys, yaml.safe_dump(_merge(BASE, yaml.safe_load(patch))))
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
    code, err, _ = _cli(tmp_path, capsys, text)
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


PROBE_FAILED = "its probe failed"  # the plan's line for a family whose probe raised


def _outcome(code: int, err: str, out: str = "") -> None:
    """Exit 0 (a valid suite, its resolved config printed, every probe of its plan ok) or 2 with one line;
    never anything else."""
    assert code in (0, 2), (code, err)
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("run_bench.py: error: "), err
        event("clean error")
    else:
        assert PROBE_FAILED not in out + err, f"a probe failed on a config the validator accepted:\n{out}{err}"
        event("valid suite")


_FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])


@_FUZZ
@given(doc=_suites())
@pytest.mark.slow  # hypothesis draws whole suites (~6 s); the family-key validator fuzz stays fast
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


# --------------------------------------------------------------------------- the families' own keys
@dataclasses.dataclass(frozen=True)
class Edit:
    """One value at one key of a family's block, ``families.<family>.<key>`` (``key``: ``model.<field>`` or
    ``samplers.<name>.<setting>``).

    ``allowed``: whether the field's own declaration allows the value; a whole-config or data-shape check
    may still refuse an allowed value (then with one line too), and must refuse every other.
    """

    family: str
    key: str
    value: Any
    allowed: bool

    @property
    def path(self) -> list[str]:
        return ["families", self.family, *self.key.split(".")]

    def set_arg(self) -> str:
        """The ``--set`` string of this edit."""
        return f"{'.'.join(self.path)}={_flow(self.value)}"


def _flow(value: Any) -> str:
    """``value`` as one line of YAML (``.nan``, ``[8, 16]``, ``{a: 1}``)."""
    text = yaml.safe_dump(list(value) if isinstance(value, tuple) else value, default_flow_style=True, width=10**6)
    return text.removesuffix("\n...\n").strip()


def _field_values(tp: Any) -> list[tuple[Any, bool]]:
    """The declared type's values at and beyond each bound (:func:`models.fields.edge_values`), and values of
    the wrong type: text, a mapping, a fraction for an integer, a number for a list."""
    edges = edge_values(tp)
    kinds = {type(v) for v, _ in edges if v is not None}
    wrong = [("many", False), ({"a": 1}, False)]
    if kinds == {int}:
        wrong.append((2.5, False))
    if tuple in kinds:
        wrong.append((7, False))
    return edges + wrong


def family_edits(modality: str, families: list[str]) -> list[Edit]:
    """Every field of each family's ``Config`` and every setting of each of its samplers (``cls.samplers``),
    with the values of :func:`_field_values`, drawn from the registry: a field added to a family is fuzzed with
    nothing to edit here."""
    out = []
    for family in families:
        cls = models.get(family, modality)
        hints = typing.get_type_hints(cls.Config, include_extras=True)
        for f in dataclasses.fields(cls.Config):
            out += [Edit(family, f"model.{f.name}", v, ok) for v, ok in _field_values(hints[f.name])]
        for name, entry in cls.samplers.items():
            kind = KINDS[entry.get("kind", name)]
            hints = typing.get_type_hints(kind, include_extras=True)
            out += [Edit(family, f"samplers.{name}.{f.name}", v, ok)
                    for f in dataclasses.fields(kind) if f.init for v, ok in _field_values(hints[f.name])]
    return out


@functools.cache
def _suite_doc(suite: Path) -> dict:
    """The parsed suite file ``suite`` (read once; copy it before editing)."""
    return yaml.load(suite.read_text(), Loader=yaml.CSafeLoader)


def _modality(suite: Path) -> str:
    raw = _suite_doc(suite)
    return "image" if any(d in ("mnist", "cifar10") for d in raw["datasets"]) else "vector"


def suite_edits(suite: Path) -> list[Edit]:
    """:func:`family_edits` of the families of suite file ``suite``, for its modality."""
    return family_edits(_modality(suite), list(_suite_doc(suite)["families"]))


HOW = ("--set", "profile")  # an override on the command line, or an edit of the suite's profile block


def family_draw_args(suite: Path, profile: str, edits: list[Edit], how: Literal["--set", "profile"],
                     folder: Path, data_root: Path) -> tuple[list[str], list[str]]:
    """The ``run_bench.py --dry-run`` arguments of one draw (the family alone, its data under ``data_root``,
    results under ``folder``) and the sources its error may name.

    ``how == "profile"`` writes a copy of ``suite`` to ``folder`` with the edits in ``profiles.<profile>``,
    the layer that decides the value. Image suites plan up to ``--stage sample``: their evaluation's probe
    (Inception images/s, matmul rates) depends on no family key, and re-measured on a busy 2-core machine
    it takes about a minute per draw, where the family's own probe takes seconds. ``--threads 1`` fixes the
    thread count, so the plan probes the family once (at 1 thread) instead of at 1 and at all the cores: whether
    a probe raises does not depend on the thread count, and two fuzzer workers then do not oversubscribe 2 cores.
    """
    stage = ["--stage", "sample"] if _modality(suite) == "image" else []
    args = ["--profile", profile, "--dry-run", *stage, "--threads", "1", "--families", edits[0].family, "--results",
            str(folder / "res"), "--no-progress", f"--set=data.root={data_root}"]
    if how == "--set":
        sets = [e.set_arg() for e in edits]
        return [str(suite), *args, *[f"--set={x}" for x in sets]], [f"--set {x}" for x in sets]
    doc = copy.deepcopy(_suite_doc(suite))
    for e in edits:
        d = doc["profiles"].setdefault(profile, {}) or {}
        doc["profiles"][profile] = d
        for k in e.path[:-1]:
            if not isinstance(d.get(k), dict):
                d[k] = {}
            d = d[k]
        d[e.path[-1]] = list(e.value) if isinstance(e.value, tuple) else e.value
    path = folder / f"{suite.stem}.yaml"
    path.write_text(yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False))
    return [str(path), *args], [f"{path} (profile {profile})"]


def family_outcome(code: int, err: str, out: str, edits: list[Edit], sources: list[str]) -> str:
    """What a draw gave: ``"clean"`` (exit 2, one line naming one of ``sources`` and a key of the family),
    ``"valid"`` (exit 0, every probe ok), ``"silently accepted"`` (exit 0 with a value outside its field's
    range), ``"probe failed"`` (exit 0, a probe raised: a validator bug), ``"unclear error"`` (exit 2, not
    one line naming the source and the key) or ``"exit N"``."""
    if code == 2:
        family = re.escape(edits[0].family)
        named = any(re.match(rf"run_bench\.py: error: {re.escape(s)}: (datasets\[\d+\]\.)?families\.{family}\.", err)
                    for s in sources)
        return "clean" if named and err.count("\n") == 1 else "unclear error"
    if code == 0:
        if PROBE_FAILED in out + err:
            return "probe failed"
        return "valid" if all(e.allowed for e in edits) else "silently accepted"
    return f"exit {code}"


def sample_draw(rng, edits: list[Edit]) -> tuple[list[Edit], str]:
    """:func:`family_draws`' distribution from a ``random.Random`` (for ``scripts/fault_injection.py``)."""
    first = rng.choice(edits)
    others = [e for e in edits if e.family == first.family and e.key != first.key]
    more = [rng.choice(others)] if others and rng.random() < 0.5 else []
    return [first, *more], rng.choice(HOW)


@st.composite
def family_draws(draw, edits: list[Edit]) -> tuple[list[Edit], str]:
    """One or two edits of one family's keys, given as ``--set`` or in the profile block."""
    first = draw(st.sampled_from(edits))
    others = [e for e in edits if e.family == first.family and e.key != first.key]
    more = draw(st.lists(st.sampled_from(others), max_size=1)) if others else []
    return [first, *more], draw(st.sampled_from(HOW))


def _family_fuzz(suite: Path, profile: str, folder: Path, data_root: Path, capsys, draw) -> None:
    edits, how = draw
    args, sources = family_draw_args(suite, profile, edits, how, folder, data_root)
    code = run_bench.main(args)
    out = capsys.readouterr()
    outcome = family_outcome(code, out.err, out.out, edits, sources)
    event(outcome)
    assert outcome in ("clean", "valid"), (outcome, how, [e.set_arg() for e in edits], out.err[-3000:],
                                           [ln for ln in out.out.splitlines() if PROBE_FAILED in ln])
    assert not (folder / "res").exists()  # a dry run writes no results


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """One data root for a module's draws: the probes' cache is shared, images are extracted once."""
    return tmp_path_factory.mktemp("data")


TOY2D = ROOT / "suites" / "toy2d.yaml"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(draw=family_draws(suite_edits(TOY2D)))
def test_family_keys_of_the_2d_suite_are_refused_naming_the_key_or_allowed(tmp_path, draw):
    """Fast tier, the validator alone (``load_suite``, no probes): a draw from the registry (:func:`family_edits`)
    on ``suites/toy2d.yaml --profile smoke``, as ``--set`` or a profile edit, is refused as one line naming the
    source and a key of the family (``ConfigError``), or accepted only when every value is within its field's
    declared range. The files are parsed with libyaml (they are ``yaml.safe_dump`` output or the shipped suite;
    the strict loader's repeated-key check is tested above and is 20 times slower)."""
    edits, how = draw
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(suite_module, "read_yaml", _fast_read_yaml)
        outcome = loaded_outcome(TOY2D, edits, how, tmp_path)
    event(outcome)
    assert outcome in ("clean", "valid"), (outcome, how, [e.set_arg() for e in edits])


def _fast_read_yaml(path) -> Any:
    return yaml.load(Path(path).read_text(), Loader=yaml.CSafeLoader)


def loaded_outcome(suite: Path, edits: list[Edit], how: str, folder: Path) -> str:
    """:func:`family_outcome` of the validator alone (``load_suite``, ``--profile smoke``, no probes) on a draw
    of :func:`family_draw_args` (``"valid"``: accepted, no probe run)."""
    args, sources = family_draw_args(suite, "smoke", edits, how, folder, folder / "data")
    sets = [a.removeprefix("--set=") for a in args if a.startswith("--set=families.")]
    try:
        load_suite(args[0], profile="smoke", overrides=sets)
    except ConfigError as err:
        outcome = family_outcome(2, f"run_bench.py: error: {err}\n", "", edits, sources)
    else:
        outcome = family_outcome(0, "", "", edits, sources)
    return outcome


@pytest.mark.slow
@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(draw=family_draws(suite_edits(TOY2D)))
def test_family_keys_of_the_2d_suite_are_one_line_exit_2_or_probe_cleanly(tmp_path, capsys, data_root, draw):
    """Draws from the registry (:func:`family_edits`) on ``suites/toy2d.yaml --profile smoke --dry-run``: the
    validator and the plan's probes (about 2 s a draw on 2 cores)."""
    _family_fuzz(TOY2D, "smoke", tmp_path, data_root, capsys, draw)


IMAGE_SUITES = {name: ROOT / "suites" / f"{name}.yaml" for name in ("mnist", "cifar")}


@pytest.mark.slow
@pytest.mark.parametrize("suite", list(IMAGE_SUITES))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_family_keys_of_the_image_suites_are_one_line_exit_2_or_probe_cleanly(tmp_path, capsys, data_root, suite,
                                                                              data):
    """The same on ``suites/mnist.yaml`` and ``suites/cifar.yaml`` (``--profile smoke --dry-run --stage sample``,
    which loads the data from the offline mirror into a fresh data root)."""
    draw = data.draw(family_draws(suite_edits(IMAGE_SUITES[suite])))
    _family_fuzz(IMAGE_SUITES[suite], "smoke", tmp_path, data_root, capsys, draw)


@pytest.mark.slow
def test_every_declared_value_of_every_family_key_loads_or_is_one_line(monkeypatch):
    """Not drawn but exhaustive, without probes: every :func:`family_edits` value of every suite, alone as a
    ``--set``, gives a suite or a one-line error naming the ``--set`` and a key of the family; and a value
    outside its field's range is never accepted."""
    files = {p: suite_module.read_yaml(p) for p in (TOY2D, *IMAGE_SUITES.values())}
    monkeypatch.setattr(suite_module, "read_yaml", lambda p: copy.deepcopy(files[Path(p)]))  # parsed once
    tried = 0
    for suite in (TOY2D, *IMAGE_SUITES.values()):
        for e in suite_edits(suite):
            s = f"--set {e.set_arg()}"
            try:
                load_suite(suite, profile="smoke", overrides=[e.set_arg()])
            except Exception as err:  # noqa: BLE001 (the assertion says what was raised)
                msg = str(err)
                assert type(err).__name__ == "ConfigError" and msg.startswith(f"{s}: "), (type(err), msg)
                assert re.match(rf"{re.escape(s)}: (datasets\[\d+\]\.)?families\.{e.family}\.", msg), msg
            else:
                assert e.allowed, f"{suite.name}: {s} was accepted"
            tried += 1
    assert tried > 1000  # 3 suites x 7 families x all their fields and sampler settings


@pytest.mark.slow
def test_the_fuzzer_gives_the_same_outcomes_with_two_worker_processes(tmp_path):
    """``scripts/fault_injection.py bad-inputs --workers 2`` runs the same family-key draws, in the same order, as
    one process does, and counts the same outcomes (6 probed draws of the 2D suite's family keys)."""
    import json
    import os
    import subprocess
    import sys

    rows = {}
    for workers in (1, 2):
        out = subprocess.run([sys.executable, str(ROOT / "scripts" / "fault_injection.py"), "bad-inputs",
                              "--draws", "6", "--generic-draws", "0", "--suites", "toy2d", "--workers", str(workers),
                              "--out", str(tmp_path / f"w{workers}")], capture_output=True, text=True, timeout=600,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True).stdout
        family = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{") and "family keys" in ln]
        assert len(family) == 1, out
        rows[workers] = {k: v for k, v in family[0].items() if k not in ("seconds", "findings")}
    assert rows[1]["tried"] == 6 and rows[1]["clean"] + rows[1]["valid"] == 6, rows[1]
    assert rows[2] == rows[1]
