"""Suites: YAML files filled into typed dataclasses.

Precedence, lowest first: dataclass defaults, the family's ``train_defaults``, the
suite file, the chosen profile (``profiles.<name>`` in the same file), then
command-line ``--set key=value`` overrides. Every error is a :class:`ConfigError`
whose message is one line naming the file (or override) and the dotted key.

A suite file looks like::

    name: toy2d
    datasets: [8gaussians, 25gaussians]
    seeds: [0]
    eval: {n_samples: 5000}
    train: {batch_size: 512}          # defaults for every family
    families:
      flow: {model: {transforms: 4}, train: {steps: 3000}}
      gan: {}
    profiles:
      smoke: {families: {flow: {train: {steps: 20}}}}

A dataset entry may be a mapping that overrides family settings for that dataset
only (merged over ``families``)::

    datasets:
      - 8gaussians
      - name: 25gaussians
        families: {energy: {model: {sgld_step_size: 1.0e-4}}}

A family entry may run another registered family under its own name, a *variant*: it starts from the
suite's entry of that family and ``lr_scale`` multiplies its resolved learning rate (the stability
profile's sweep; each variant is its own row in records, ``seeds.csv``, the report and the gate)::

    families:
      gan: {train: {steps: 400}}
      gan_lr2: {family: gan, lr_scale: 2}     # gan's settings, learning rate x 2

A ``conditional`` block (usually in a profile) makes the run class-conditional (docs/conditional.md)::

    conditional:
      families: [diffusion, score, autoregressive]   # the run's families (default: all of the suite's)
      guidance: [0, 0.5, 1, 2, 4]                    # swept on the guided families' samplers

Each listed family is built with ``model.num_classes`` = the dataset's number of classes K and trains on the
labels; the guided families' samplers that take a guidance scale get the sweep.

PyYAML reads ``1e-3`` (no dot) as a string, so numeric strings are accepted where
a number is expected.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

import yaml

import models
from bench import data as datasets
from bench.core.files import check_name
from models import samplers
from models.base import TrainConfig
from models.fields import FieldConflict, Range, check_fields, type_hints, value_problem
from models.samplers import Sampler


def one_line(text: str) -> str:
    """``text`` with its line breaks and other control characters escaped (``\\n``, ``\\x00``), so that an
    error quoting user input stays one line."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] if c in "\n\r\t" else f"\\x{ord(c):02x}"
                   if ord(c) < 256 else f"\\u{ord(c):04x}" for c in text)


class ConfigError(ValueError):
    """A malformed suite, profile or override. ``str()`` is one line: ``<source>: <key>: <problem>``
    (control characters of quoted input escaped)."""

    def __init__(self, message: str):
        super().__init__(one_line(message))


class _KeyError(Exception):
    """Internal: a problem at a dotted key, before the source file is known.

    ``alternatives``: the same problem seen from the other keys involved (a :class:`~models.fields.FieldConflict`),
    as (key, message) pairs; :func:`load_suite` reports the key that the last layer to set any of them set.
    """

    def __init__(self, key: str, msg: str, alternatives: list[tuple[str, str]] | tuple = ()):
        super().__init__(f"{key}: {msg}" if key else msg)
        self.key, self.msg, self.alternatives = key, msg, list(alternatives)

    def options(self) -> list[tuple[str, str]]:
        """Every (key, message) of this problem, the primary one first."""
        return [(self.key, self.msg), *self.alternatives]

    def rekey(self, fn) -> _KeyError:
        """The same problem with every key mapped by ``fn(key) -> key``."""
        (key, msg), *rest = [(fn(k), m) for k, m in self.options()]
        return _KeyError(key, msg, rest)


def _conflict(e: FieldConflict, key: str) -> _KeyError:
    """A :class:`~models.fields.FieldConflict` of the dataclass at ``key`` as a problem at each field's key."""
    (first, msg), *rest = [(_join(key, k), m) for k, m in e.problems.items()]
    return _KeyError(first, msg, rest)


def _join(key: str, sub: str | int) -> str:
    return f"{key}[{sub}]" if isinstance(sub, int) else (f"{key}.{sub}" if key else str(sub))


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (valid: {', '.join(options)})"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(tp: Any, v: Any, key: str) -> Any:
    """Check and convert YAML value ``v`` to type ``tp``; raise _KeyError naming ``key``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return v
    if origin is Annotated:  # a type with its allowed values, e.g. Annotated[int, Range(ge=1)]
        v = _coerce(args[0], v, key)
        problem = value_problem(tp, v)
        if problem:
            raise _KeyError(key, problem)
        return v
    if origin in (Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # X | None: X's own error, with the key inside X (a nested dataclass's)
            return _coerce(options[0], v, key)
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, v, key)
            except _KeyError as e:
                errors.append(e.msg)
        raise _KeyError(key, errors[0] if len(errors) == 1 else f"expected {_type_name(tp)}, got {v!r}")
    if origin is Literal:
        if v not in args:
            raise _KeyError(key, f"{v!r} is not allowed (must be one of {', '.join(map(repr, args))})")
        return v
    if dataclasses.is_dataclass(tp):
        return fill(tp, v, key)
    if tp is bool:
        if not isinstance(v, bool):
            raise _KeyError(key, f"expected true or false, got {type(v).__name__} {v!r}")
        return v
    if tp in (int, float):
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                raise _KeyError(key, f"expected {tp.__name__}, got str {v!r}") from None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _KeyError(key, f"expected {tp.__name__}, got {type(v).__name__} {v!r}")
        if isinstance(v, float) and not math.isfinite(v):
            raise _KeyError(key, f"{v!r} is not allowed (must be a finite number)")
        if tp is int:
            if isinstance(v, float) and not v.is_integer():
                raise _KeyError(key, f"expected int, got non-integer {v!r}")
            return int(v)
        if abs(v) > 1e308:  # an int beyond any float
            raise _KeyError(key, f"{v!r} is not allowed (must be a finite number)")
        return float(v)
    if tp is str:
        if not isinstance(v, str):
            raise _KeyError(key, f"expected str, got {type(v).__name__} {v!r}")
        return v
    if origin in (list, tuple):
        if not isinstance(v, (list, tuple)):
            raise _KeyError(key, f"expected a list, got {type(v).__name__} {v!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(v) != len(args):
                raise _KeyError(key, f"expected {len(args)} items, got {len(v)}")
            return tuple(_coerce(a, x, _join(key, i)) for i, (a, x) in enumerate(zip(args, v)))
        item = args[0] if args else Any
        out = [_coerce(item, x, _join(key, i)) for i, x in enumerate(v)]
        return tuple(out) if origin is tuple else out
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(v, Mapping):
            raise _KeyError(key, f"expected a mapping, got {type(v).__name__} {v!r}")
        vt = args[1] if args else Any
        return {str(k): _coerce(vt, x, _join(key, str(k))) for k, x in v.items()}
    raise TypeError(f"unsupported config type {tp!r} at {key}")  # a bug in a Config class


def fill(cls: type, data: Any, key: str = "") -> Any:
    """Build dataclass ``cls`` from mapping ``data``, checking keys and types.

    Args:
        cls: a dataclass type whose fields have type annotations.
        data: a mapping (``None`` means all defaults).
        key: dotted path of ``data`` in the suite, used in error messages.

    Raises:
        _KeyError: unknown key (with the closest valid key), wrong type, a value outside
            the field's declared :class:`~models.fields.Range` or ``Literal`` choices (a
            non-finite float included), or a value rejected by the dataclass's ``__post_init__``.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise _KeyError(key, f"expected a mapping, got {type(data).__name__} {data!r}")
    hints = type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for k, v in data.items():
        if k not in names:
            raise _KeyError(_join(key, str(k)), f"unknown key{_suggest(str(k), names)}")
        kwargs[k] = _coerce(hints[k], v, _join(key, k))
    try:
        return cls(**kwargs)
    except FieldConflict as e:  # a whole-config check: every field involved has a key
        raise _conflict(e, key) from None
    except (TypeError, ValueError) as e:  # __post_init__: "<field>: <problem>" names the field's key
        m = re.fullmatch(r"(\w+)((?:\[\d+\])*): (.*)", str(e))
        if m and m.group(1) in names:
            raise _KeyError(_join(key, m.group(1)) + m.group(2), m.group(3)) from None
        raise _KeyError(key, str(e)) from None


# --------------------------------------------------------------------------- schema
_Size = Annotated[int, Range(ge=2, le=10**8)]  # a number of examples (two or more, for a standard error)
_Batch = Annotated[int, Range(ge=1, le=2**20)]


@dataclass
class DataConfig:
    """Dataset sizes and location.

    Attributes:
        n_train, n_val, n_test: split sizes for synthetic data (2D suites), 2 to 10^8.
        root: where image datasets are stored or extracted.
    """

    n_train: _Size = 50_000
    n_val: _Size = 5_000
    n_test: _Size = 10_000
    root: str = "data"

    def __post_init__(self):
        check_fields(self)
        if not self.root.strip():
            raise ValueError("root: an empty path is not allowed")


@dataclass
class EvalConfig:
    """How each cell is evaluated and timed.

    Attributes:
        n_samples: samples drawn per sampler for sample metrics (at most 10^6: FID-50k is
            the largest protocol in use).
        bound_n: test examples used for likelihood bounds (ELBO, IWAE), which cost
            many network passes each; exact log-likelihoods use the whole test set.
        throughput_batch: batch size for sampling throughput (samples/s).
        latency_batch: batch size for sampling latency (ms).
        density_batch: batch size for density-evaluation throughput (examples/s).
        timing_warmup: untimed calls before timing.
        timing_repeats: timed calls; the median and IQR are reported (>= 5).
        timing_repeats_slow: timed calls for samplers of at least ``slow_sampler_nfe`` NFE
            (smoke profiles: 1, where the numbers mean nothing); ``None`` uses
            ``timing_repeats``. Each sampler records the warm-up and repeats it got.
        slow_sampler_nfe: the NFE from which ``timing_repeats_slow`` applies.
        entropy_mc: Monte Carlo samples for the true entropy H(p_data) (>= 10^6).
        quadrature_grid: grid points per axis for log Z of 2D energies.
        pr_k: k of k-NN precision/recall (Kynkäänniemi et al. 2019, arXiv:1904.06991).
        dc_k: k of k-NN density/coverage (Naeem et al. 2020, arXiv:2002.09797).
        kid_subsets: random subsets KID averages over (Bińkowski et al. 2018, arXiv:1801.01401).
        kid_subset_size: KID's subset size when both sets hold at least twice as many
            rows; below that, half the smaller set (see :meth:`kid_subset_size_for`).
        mode_tolerance: a mixture component is covered when it receives at least
            ``mode_tolerance`` times its weight's share of samples within 3 sigma.
        density_grid: grid points per axis of the density figures (half that for bounds,
            which cost many network passes per point).
        seed: seed of the sampling generator.
        fid_reference: real splits to compute FID/KID against (images); the first is
            also the reference for precision/recall and density/coverage.
        fid_reference_n: use only the first this-many images of each reference split
            (CPU profiles); ``None`` uses the whole split. Recorded with every FID.
        density_n: evaluate exact log-likelihoods and energies on the first this-many
            test examples (CPU profiles); ``None`` uses the whole test set. Recorded
            as ``test_n``.
        novelty_test_n: the novelty reference (nearest-training distances of real test
            images) from the first this-many test images; ``None`` uses the whole test
            set (a one-off of ~10 s on MNIST, ~30 s on CIFAR-10 on a 2-core CPU, then cached).
            Recorded in the protocol.
        fd_classifier: use the dataset's small classifier (MNIST, CIFAR-10;
            :mod:`bench.evaluation.metrics.classifier`): ``fd_classifier``, the class histogram
            (``mode_kl_nats``, ``modes_hit``) and the image training monitor. It is trained once
            (about 90 s for MNIST, a few minutes for CIFAR-10 on a 2-core CPU, then cached).
            ``false`` (smoke profiles) records why they are missing; it is an evaluation setting,
            so turning it on later does not retrain, and such runs' image monitor has only the
            bits/dim of exact densities.
        monitor_points: checkpoints of the training monitor: about this many evenly spaced
            points of the training history (and the last step) get a validation quality
            (2D: ``val_sample_nll_nats`` and ``val_mode_kl_nats`` against the true mixture,
            ``val_mmd2``, ``val_kl_nats`` for exact densities; images: ``val_fd_classifier`` with
            its bootstrap SE and the class histogram's ``val_mode_kl_nats``, and ``val_bpd`` with its SE
            on the first ``monitor_n`` test images for exact densities), the input of the
            time-to-quality statistics (:mod:`bench.analysis.taxonomy`), the oscillation index and
            the convergence guard (:mod:`bench.analysis.training_verdicts`); 0 disables it. Its time
            is kept out of the training time.
        monitor_n: samples of each monitor checkpoint (2D: and validation points; images: and test
            images of the bits/dim monitor).
        batch_sweep: batch sizes at which each cell's default sampler is also timed (samples/s against batch
            size: is sampling parallel across a batch?); empty: none.

    Each numeric field declares its allowed values (:class:`~models.fields.Range`) with its type.

    Raises:
        ValueError: a value outside its range, ``n_samples`` not above ``pr_k`` and ``dc_k``, or
            ``timing_repeats_slow`` above ``timing_repeats``.
    """

    n_samples: Annotated[int, Range(ge=2, le=10**6)] = 5_000
    bound_n: _Size = 2_000
    throughput_batch: _Batch = 4_096
    latency_batch: _Batch = 1
    density_batch: _Batch = 1_024
    timing_warmup: Annotated[int, Range(ge=0, le=1000)] = 1
    timing_repeats: Annotated[int, Range(ge=5, le=1000)] = 5
    timing_repeats_slow: Annotated[int, Range(ge=1, le=1000)] | None = None
    slow_sampler_nfe: Annotated[int, Range(ge=1, le=10**6)] = 100
    entropy_mc: Annotated[int, Range(ge=10**6, le=10**8)] = 1_000_000
    quadrature_grid: Annotated[int, Range(ge=8, le=8192)] = 512
    pr_k: Annotated[int, Range(ge=1, le=100)] = 3
    dc_k: Annotated[int, Range(ge=1, le=100)] = 5
    kid_subsets: Annotated[int, Range(ge=1, le=10**4)] = 100
    kid_subset_size: Annotated[int, Range(ge=2, le=10**6)] = 1000
    mode_tolerance: Annotated[float, Range(gt=0, le=1)] = 0.5
    density_grid: Annotated[int, Range(ge=2, le=4096)] = 128
    seed: Annotated[int, Range(ge=0, le=2**32 - 1)] = 1234
    fid_reference: list[Literal["train", "test"]] = field(default_factory=lambda: ["test"])
    fid_reference_n: _Size | None = None
    density_n: _Size | None = None
    novelty_test_n: _Size | None = None
    fd_classifier: bool = True
    monitor_points: Annotated[int, Range(ge=0, le=1000)] = 5
    monitor_n: Annotated[int, Range(ge=10, le=10**6)] = 250
    batch_sweep: list[_Batch] = field(default_factory=list)

    # settings only the evaluate stage reads: changing them redoes the evaluation, not the samples
    evaluate_only: ClassVar[tuple[str, ...]] = ("entropy_mc", "pr_k", "dc_k", "kid_subsets", "kid_subset_size",
                                                "mode_tolerance", "fid_reference", "fid_reference_n",
                                                "novelty_test_n", "fd_classifier")

    def __post_init__(self):
        check_fields(self)
        if not self.fid_reference:
            raise ValueError("fid_reference: an empty list is not allowed (name 'train' and/or 'test')")
        if self.n_samples <= max(self.pr_k, self.dc_k):
            raise ValueError(f"n_samples: {self.n_samples} is not allowed (must exceed pr_k = {self.pr_k} and "
                             f"dc_k = {self.dc_k}: k-NN radii need k + 1 samples)")
        if self.timing_repeats_slow is not None and self.timing_repeats_slow > self.timing_repeats:
            raise ValueError(f"timing_repeats_slow: {self.timing_repeats_slow} is not allowed (at most "
                             f"timing_repeats = {self.timing_repeats})")

    def kid_subset_size_for(self, n_real: int, n_fake: int) -> int:
        """KID's subset size: ``kid_subset_size`` when both sets have at least twice that many rows,
        else half the smaller set.

        With subsets as large as the set itself every subset is the whole set, and the
        reported std would be 0 (seen at N = 1000); the unbiased estimator's mean does
        not depend on the subset size, only its spread does.
        """
        m = min(n_real, n_fake)
        return self.kid_subset_size if m >= 2 * self.kid_subset_size else max(2, m // 2)

    def sampler_repeats(self, nfe: int) -> int:
        """Timed calls of a sampler that makes ``nfe`` sequential network evaluations per call."""
        if self.timing_repeats_slow is not None and nfe >= self.slow_sampler_nfe:
            return self.timing_repeats_slow
        return self.timing_repeats

    def sweep_repeats(self, nfe: int) -> int:
        """Timed calls at each ``batch_sweep`` batch of a sampler of ``nfe`` NFE: at most 3."""
        return min(3, self.sampler_repeats(nfe))

    def timing_protocol(self) -> str:
        """How every timing of a cell was taken, as one line (stored in the record's protocol)."""
        slow = (f" ({self.timing_repeats_slow} timed calls for samplers of >= {self.slow_sampler_nfe} NFE)"
                if self.timing_repeats_slow is not None else "")
        return (f"{self.timing_warmup} warm-up + {self.timing_repeats} timed calls{slow}, median with its bootstrap "
                "standard error (3 or more calls) and the IQR; CUDA synchronized")

    def kid_protocol(self) -> str:
        """KID's definition with this config's subset settings, as one line."""
        return (f"unbiased MMD^2 with the cubic polynomial kernel, {self.kid_subsets} random subsets of "
                f"{self.kid_subset_size} (half the smaller set below {2 * self.kid_subset_size} rows), seeded "
                "(mean, std)")


_Cpus = Annotated[float, Range(ge=0, le=4096)]
_Gpus = Annotated[float, Range(ge=0, le=1024)]


@dataclass
class TaskResources:
    """What one Ray task of a cell reserves on the cluster (``--launcher ray``; the local launcher ignores it).

    Attributes:
        num_cpus: CPU cores (Ray's ``num_cpus``); the task runs torch on this many threads, rounded
            down, at least 1.
        num_gpus: GPUs (Ray's ``num_gpus``); a fraction below 1 shares one GPU (0.5: two cells per
            GPU). ``None``: 1 where the run's device is CUDA, else 0.

    Raises:
        ValueError: a value outside its range, or a fraction above 1 (Ray reserves whole units there).
    """

    num_cpus: _Cpus = 1.0
    num_gpus: _Gpus | None = None

    def __post_init__(self):
        check_fields(self)
        for name in ("num_cpus", "num_gpus"):
            v = getattr(self, name)
            if v is not None and v > 1 and not float(v).is_integer():
                raise ValueError(f"{name}: {v!r} is not allowed (above 1 it must be a whole number, as Ray "
                                 "reserves whole units there)")

    def ray_options(self, cuda: bool) -> dict[str, float]:
        """``{"num_cpus": ..., "num_gpus": ...}`` for ``ray.remote(...).options``; ``cuda``: the run's device."""
        return {"num_cpus": float(self.num_cpus),
                "num_gpus": float(self.num_gpus if self.num_gpus is not None else (1 if cuda else 0))}

    def threads(self) -> int:
        """torch threads of a task with these resources: ``num_cpus`` rounded down, at least 1."""
        return max(1, int(self.num_cpus))


@dataclass
class Resources(TaskResources):
    """A cell's resource requests on a Ray cluster (``families.<name>.resources``, or the suite's
    top-level ``resources:`` for every family; a profile may override either).

    The train and sample stages run as one task with ``num_cpus``/``num_gpus``. With ``evaluate``
    given, the evaluation is a second task with its own requests (e.g. ``{num_cpus: 2, num_gpus: 0}``:
    the metrics on CPU workers while the GPUs train the next cells); without it, one task runs the
    whole cell.
    """

    evaluate: TaskResources | None = None


_Guidance = Annotated[float, Range(ge=0, le=100)]


@dataclass
class ConditionalConfig:
    """A class-conditional run: the suite's top-level ``conditional:`` block (docs/conditional.md).

    Attributes:
        families: the families of the run, each built class-conditional (``model.num_classes`` = the dataset's
            number of classes K, per dataset) and trained on the labels; the suite's other families do not run.
            ``None``: every family of the suite.
        guidance: classifier-free guidance scales w swept on every sampler of a guided family (one whose
            capabilities say ``guidance``) whose kind takes a guidance scale and which neither sets one nor
            sweeps another setting: ``ddim`` becomes ``ddim_w0``, ``ddim_w0.5``, ...; ``[]``: no sweep. Each w
            in [0, 100], no repeats.

    Raises:
        ValueError: a scale outside [0, 100] or given twice.
    """

    families: list[str] | None = None
    guidance: list[_Guidance] = field(default_factory=lambda: [0.0, 0.5, 1.0, 2.0, 4.0])

    def __post_init__(self):
        check_fields(self)
        for i, w in enumerate(self.guidance):
            if w in self.guidance[:i]:
                raise ValueError(f"guidance[{i}]: {w!r} is not allowed (listed twice)")


@dataclass
class FamilyEntry:
    """One family of a suite: its model config (the family's own dataclass), training, its samplers
    (:class:`models.samplers.Sampler` objects by name, in order; the first is the default), and the
    resources its cells ask a Ray cluster for. Samplers are not model settings: changing them redoes a
    cell's sample stage, never its training (:mod:`bench.execution.resume`).

    An entry is a row of every table (records, ``seeds.csv``, the report, the gate) under its own name; it
    runs the registered family ``family`` (the entry's name unless it says ``family: <registered>``: a
    *variant*, e.g. ``gan_lr2: {family: gan, lr_scale: 2}``), with ``train.lr`` already multiplied by
    ``lr_scale`` (the stability profile's learning-rate sweep).
    """

    model: Any
    train: TrainConfig
    resources: Resources = field(default_factory=Resources)
    samplers: dict[str, Sampler] = field(default_factory=dict)
    family: str = ""
    lr_scale: float = 1.0


@dataclass
class Suite:
    """A resolved suite: what to train, on which data, and how to evaluate it.

    ``profile`` names the profile that was merged (``"default"``: the top level) and
    ``profile_reason`` says why it was chosen (set by :func:`bench.config.profiles.choose`).
    """

    name: str
    datasets: list[str]
    families: dict[str, FamilyEntry]
    modality: str
    description: str = ""
    seeds: list[int] = field(default_factory=lambda: [0])
    device: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    source: str = ""
    profile: str | None = None
    profile_reason: str = ""
    dataset_families: dict[str, dict[str, FamilyEntry]] = field(default_factory=dict)
    conditional: ConditionalConfig | None = None

    def family(self, dataset: str, name: str) -> FamilyEntry:
        """The config of family ``name`` on ``dataset``: the dataset's override if any, else the suite's."""
        return self.dataset_families.get(dataset, {}).get(name) or self.families[name]

    def resolved(self) -> dict[str, Any]:
        """The whole resolved config as plain data (what results store and --dry-run prints); samplers as
        ``{name: {kind, settings}}``."""
        out = dataclasses.asdict(self)
        for name, entry in self.families.items():
            out["families"][name]["samplers"] = sampler_settings(entry.samplers)
        for ds, fams in self.dataset_families.items():
            for name, entry in fams.items():
                out["dataset_families"][ds][name]["samplers"] = sampler_settings(entry.samplers)
        return out


def sampler_settings(samplers: Mapping[str, Sampler]) -> dict[str, dict[str, Any]]:
    """``{name: {"kind": ..., <setting>: <value>}}`` of samplers, as records and ``--dry-run`` show them."""
    return {name: s.settings() for name, s in samplers.items()}


# The suite's top level is the profile "default" (merged with ``profiles.default`` where the file has
# one). These keys of a profile block say what the profile needs, not what to run: bench.config.profiles reads them.
DEFAULT_PROFILE = "default"
PROFILE_META_KEYS = ("requires", "fallback")
_TOP_KEYS = ["name", "description", "datasets", "seeds", "device", "data", "eval", "train", "resources", "families",
             "conditional", "profiles"]
_FAMILY_KEYS = ["family", "lr_scale", "model", "train", "samplers", "resources"]


def _deep_merge(base: dict, over: Mapping) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(dict(out[k]), v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _has_path(d: Any, key: str) -> bool:
    for part in key.replace("[", ".").replace("]", "").split("."):
        if isinstance(d, Mapping) and part in d:
            d = d[part]
        elif isinstance(d, list) and part.isdigit() and int(part) < len(d):
            d = d[int(part)]
        else:
            return False
    return True


def parse_override(text: str) -> dict:
    """``"families.gan.train.steps=100"`` -> ``{"families": {"gan": {"train": {"steps": 100}}}}``.

    The value is parsed as YAML, so ``x=[1, 2]`` gives a list and ``x=true`` a bool.

    Raises:
        ConfigError: no ``=`` in ``text``, or an empty part in the key.
    """
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected KEY=VALUE, e.g. families.gan.train.steps=100")
    key, value = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {text}: {key.strip()!r} is not a dotted key, e.g. families.gan.train.steps")
    try:
        v = _yaml(value)
    except (yaml.YAMLError, RecursionError):
        v = value
    out: dict = {}
    d = out
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = v
    return out


def _variant_entry(fams: Mapping, name: str, entry: Mapping, key: str) -> tuple[str, Mapping]:
    """(the registered family an entry runs, the entry with the suite's entry of that family under it).

    An entry ``families.<name>`` runs the registered family ``<name>`` unless it says ``family: <registered>``;
    such a *variant* starts from the suite's own entry of that family (its model, train, samplers and
    resources, and a dataset's overrides of it) when the suite has one, its own keys merged over.
    """
    base = entry.get("family", name)
    if not isinstance(base, str) or not base:
        raise _KeyError(f"{key}.family", f"expected the name of a registered family, got {base!r}")
    if base == name or base not in fams:
        return base, entry
    parent = fams[base] or {}
    if not isinstance(parent, Mapping):
        return base, entry  # reported at the parent's own key
    if parent.get("family", base) != base:
        raise _KeyError(f"{key}.family", f"{base!r} is itself a variant (of {parent['family']!r}); name the "
                                         "registered family")
    inherited = {k: v for k, v in parent.items() if k not in ("family", "lr_scale")}
    return base, _deep_merge(inherited, entry)


def _parse_families(fams: Mapping, suite_train: Mapping, modality: str,
                    suite_resources: Mapping | None = None,
                    guidance: list[float] | None = None) -> dict[str, FamilyEntry]:
    """Fill every family entry of ``fams`` (name -> {family, lr_scale, model, train, samplers, resources}) for
    ``modality``; the suite's ``train`` and ``resources`` blocks lie under each family's own, and a variant's
    (``family: <registered>``) the suite's entry of that family (:func:`_variant_entry`). ``guidance``: the
    conditional block's sweep, given to the guided families' samplers (:func:`_fill_samplers`)."""
    families = {}
    for name, entry in fams.items():
        key = f"families.{name}"
        entry = entry or {}
        if not isinstance(entry, Mapping):
            raise _KeyError(key, f"expected a mapping with 'model', 'train' and/or 'resources', got {entry!r}")
        for k in entry:
            if k not in _FAMILY_KEYS:
                raise _KeyError(_join(key, str(k)), f"unknown key{_suggest(str(k), _FAMILY_KEYS)}")
        problem = check_name(str(name))
        if problem:  # the name is a folder of every cell of this entry
            raise _KeyError(key, problem)
        registered, entry = _variant_entry(fams, str(name), entry, key)
        try:
            cls = models.get(registered, modality)
        except models.RegistryError as e:
            raise _KeyError(f"{key}.family" if "family" in entry else key, str(e)) from None
        lr_scale = _coerce(Annotated[float, Range(gt=0, le=100)], entry.get("lr_scale", 1.0), f"{key}.lr_scale")
        model_cfg = fill(cls.Config, entry.get("model"), f"{key}.model")
        train_raw = _deep_merge(dict(cls.train_defaults), suite_train)
        train_raw = _deep_merge(train_raw, entry.get("train") or {})
        try:
            train_cfg = fill(TrainConfig, train_raw, f"{key}.train")
        except _KeyError as e:  # a bad key in the suite-wide 'train' block: name that block
            def suite_wide(k: str, key: str = key, own: Mapping = entry.get("train") or {}) -> str:
                sub = k[len(f"{key}.train."):] if k.startswith(f"{key}.train.") else ""
                bad = re.split(r"[.\[]", sub)[0]
                return f"train.{sub}" if bad in suite_train and bad not in own else k

            raise e.rekey(suite_wide) from None
        if lr_scale != 1.0:
            try:
                train_cfg = dataclasses.replace(train_cfg, lr=train_cfg.lr * lr_scale)
            except ValueError as e:
                why = str(e).split(": ", 1)[-1]
                raise _KeyError(f"{key}.lr_scale", f"{lr_scale!r} makes the learning rate "
                                                   f"{train_cfg.lr * lr_scale:g}: {why}") from None
        own = entry.get("resources") or {}
        if not isinstance(own, Mapping):
            raise _KeyError(f"{key}.resources", f"expected a mapping, got {own!r}")
        resources = fill(Resources, _deep_merge(dict(suite_resources or {}), own), f"{key}.resources")
        samplers = _fill_samplers(cls, model_cfg, entry.get("samplers"), f"{key}.samplers", guidance)
        families[str(name)] = FamilyEntry(model=model_cfg, train=train_cfg, resources=resources, samplers=samplers,
                                          family=registered, lr_scale=lr_scale)
    return families


def _guidance_sweep(cls: type, entry: Any, guidance: list[float] | None) -> Any:
    """``entry`` with the conditional block's guidance sweep, where it applies: a guided family's sampler whose
    kind takes ``guidance`` and which sets no guidance and sweeps no other setting."""
    if not guidance or not cls.capabilities.guidance or not isinstance(entry, Mapping):
        return entry
    kind = samplers.KINDS.get(entry.get("kind", ""))
    if kind is None or "guidance" not in {f.name for f in dataclasses.fields(kind)} or "guidance" in entry:
        return entry
    if any(isinstance(v, (list, tuple)) for v in entry.values()):
        return entry
    return {**entry, "guidance": list(guidance)}


def _fill_samplers(cls: type, model_cfg: Any, given: Any, key: str,
                   guidance: list[float] | None = None) -> dict[str, Sampler]:
    """The family's samplers: its declared entries (``cls.samplers``) with the suite's block merged over them
    (``null`` drops one; a list-valued setting is a sweep, :func:`models.samplers.expand_entries`), each filled
    as its kind's typed dataclass and checked against the model config (a guidance scale included:
    :meth:`models.base.GenerativeModel.check_guidance`). ``guidance``: the conditional block's sweep
    (:func:`_guidance_sweep`)."""
    if given is not None and not isinstance(given, Mapping):
        raise _KeyError(key, f"expected a mapping of sampler name -> settings, got {given!r}")
    merged = _deep_merge({k: dict(v) for k, v in cls.samplers.items()}, given or {})
    merged = {name: _guidance_sweep(cls, {"kind": name, **entry} if isinstance(entry, Mapping) else entry, guidance)
              for name, entry in merged.items()}
    kinds = cls.sampler_kinds()
    out: dict[str, Sampler] = {}
    for name, entry in merged.items():
        where = _join(key, str(name))
        if entry is None:
            continue
        try:
            expanded = samplers.expand_entries({name: entry})
        except ValueError as e:
            raise _KeyError(where, str(e).split(": ", 1)[-1]) from None
        for full, settings in expanded.items():
            settings = dict(settings)
            kind = settings.pop("kind")
            if kind not in kinds:
                raise _KeyError(where, f"family {cls.family!r} has no sampler of kind {kind!r} (it offers: "
                                       f"{', '.join(sorted(kinds))})")
            swept = {k: v for k, v in entry.items() if isinstance(v, (list, tuple))} if full != name else {}
            sampler = fill(samplers.KINDS[kind], {k: v for k, v in settings.items()}, where)
            sampler.name = str(full)
            try:
                sampler.check(model_cfg)
                cls.check_guidance(sampler, model_cfg)
            except FieldConflict as e:  # "model.<field>" keys are the model config's, the others the sampler's
                model_key, sampler_key = f"{key.rsplit('.', 1)[0]}.model.", f"{where}.model."
                raise _conflict(e, where).rekey(lambda k, a=sampler_key, b=model_key: k.replace(a, b)) from None
            except ValueError as e:
                raise _KeyError(_join(where, str(e).split(":")[0]), str(e).split(": ", 1)[-1]) from None
            if full in out:
                raise _KeyError(where, f"sampler name {full!r} is given twice{' (by a sweep)' if swept else ''}")
            out[str(full)] = sampler
    if not out:
        raise _KeyError(key, "no sampler left: a family needs at least one")
    return out


_Seed = Annotated[int, Range(ge=0, le=2**32 - 1)]
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def _check_suite_name(name: str) -> str:
    """The suite name is a folder under the results root: a safe name, never a path."""
    problem = check_name(name)
    if problem:
        raise _KeyError("name", problem)
    return name


def _check_device(device: str) -> str:
    """The device's spelling (whether it is available is checked before the run)."""
    if not _DEVICE.fullmatch(device):
        raise _KeyError("device", f"{device!r} is not allowed (must be auto, cpu, cuda, cuda:<index> or mps)")
    return device


def _distinct(items: list, key: str) -> list:
    """``items``, refusing a repeat (it would run the same cell twice)."""
    if not items:
        raise _KeyError(key, "an empty list is not allowed")
    for i, x in enumerate(items):
        if x in items[:i]:
            raise _KeyError(f"{key}[{i}]", f"{x!r} is listed twice")
    return items


def _parse(raw: Mapping) -> Suite:

    for k in raw:
        if k not in _TOP_KEYS:
            raise _KeyError(str(k), f"unknown key{_suggest(str(k), _TOP_KEYS)}")
    for k in ("name", "datasets", "families"):
        if k not in raw:
            raise _KeyError(k, "missing required key")
    entries = raw["datasets"]
    if not isinstance(entries, list) or not entries:
        raise _KeyError("datasets", "expected a non-empty list of dataset names or {name, families} mappings")
    names, ds_overrides = [], {}
    for i, item in enumerate(entries):
        key = f"datasets[{i}]"
        if isinstance(item, Mapping):
            for k in item:
                if k not in ("name", "families"):
                    raise _KeyError(_join(key, str(k)), f"unknown key{_suggest(str(k), ['name', 'families'])}")
            if "name" not in item:
                raise _KeyError(key, "a dataset mapping needs a 'name'")
            n = _coerce(str, item["name"], f"{key}.name")
            if item.get("families") is not None:
                if not isinstance(item["families"], Mapping):
                    raise _KeyError(f"{key}.families", "expected a mapping of family name -> {model, train}")
                ds_overrides[n] = (key, item["families"])
        else:
            n = _coerce(str, item, key)
        names.append(n)
    known = datasets.names()
    kinds = set()
    for i, n in enumerate(names):
        if n not in known:
            raise _KeyError(f"datasets[{i}]", f"unknown dataset {n!r}{_suggest(n, known)}")
        kinds.add(datasets.modality(n))
    if len(kinds) > 1:
        raise _KeyError("datasets", f"mixes modalities {sorted(kinds)}; use one suite per modality")
    modality = kinds.pop()
    fams = raw["families"]
    if not isinstance(fams, Mapping) or not fams:
        raise _KeyError("families", "expected a non-empty mapping of family name -> {model, train}")
    suite_train = raw.get("train") or {}
    if not isinstance(suite_train, Mapping):
        raise _KeyError("train", f"expected a mapping, got {suite_train!r}")
    fill(TrainConfig, suite_train, "train")  # checked on its own too: a family may override every value in it
    suite_resources = raw.get("resources") or {}
    if not isinstance(suite_resources, Mapping):
        raise _KeyError("resources", f"expected a mapping, got {suite_resources!r}")
    fill(Resources, suite_resources, "resources")  # likewise
    for key, over in ds_overrides.values():
        for f in over:
            if f not in fams:
                raise _KeyError(f"{key}.families.{f}", f"family {f!r} is not in the suite's families "
                                                       f"({', '.join(map(str, fams))})")
    conditional, guidance = None, None
    if raw.get("conditional") is not None:
        conditional = fill(ConditionalConfig, raw["conditional"], "conditional")
        fams = _conditional_families(conditional, fams, modality)
        ds_overrides = {n: (key, {f: e for f, e in over.items() if f in fams})
                        for n, (key, over) in ds_overrides.items()}
        guidance = conditional.guidance

    def labelled(fs: Mapping, name: str) -> dict:  # the conditional run's families get num_classes = K
        if conditional is None:
            return dict(fs)
        k = datasets.num_classes(name)
        return {f: _deep_merge(dict(e or {}), {"model": {"num_classes": k}}) for f, e in fs.items()}

    families = _parse_families(labelled(fams, names[0]), suite_train, modality, suite_resources, guidance)
    dataset_families = {}
    for n in names:
        key, over = ds_overrides.get(n, ("", {}))
        if not over and conditional is None:
            continue
        try:
            dataset_families[n] = _parse_families(labelled(_deep_merge(dict(fams), over), n), suite_train, modality,
                                                  suite_resources, guidance)
        except _KeyError as e:  # keys the dataset's block sets are its own, and the more specific: named first
            opts = [(f"{key}.{k}", m) if _has_path({"families": over}, k) else (k, m) for k, m in e.options()]
            opts.sort(key=lambda o, key=key: not o[0].startswith(f"{key}."))
            raise _KeyError(*opts[0], opts[1:]) from None
    for n in names:  # a label count the suite sets itself must be the dataset's
        for f in fams:
            entry = dataset_families.get(n, {}).get(f) or families[f]
            k = getattr(entry.model, "num_classes", None)
            if k is not None and k != datasets.num_classes(n):
                raise _KeyError(f"families.{f}.model.num_classes", f"{k} is not allowed (dataset {n!r} has "
                                                                   f"{datasets.num_classes(n)} classes)")
    data = fill(DataConfig, raw.get("data"), "data")
    _check_data_shapes(names, data, families, dataset_families, ds_overrides, modality)
    return Suite(
        name=_check_suite_name(_coerce(str, raw["name"], "name")),
        description=_coerce(str, raw.get("description", ""), "description"),
        datasets=_distinct(names, "datasets"),
        seeds=_distinct(_coerce(list[_Seed], raw.get("seeds", [0]), "seeds"), "seeds"),
        device=_check_device(_coerce(str, raw.get("device", "auto"), "device")),
        data=data,
        eval=fill(EvalConfig, raw.get("eval"), "eval"),
        families=families,
        modality=modality,
        dataset_families=dataset_families,
        conditional=conditional,
    )


def _check_data_shapes(names: list[str], data: DataConfig, families: dict[str, FamilyEntry],
                       dataset_families: dict[str, dict[str, FamilyEntry]], ds_overrides: dict[str, tuple],
                       modality: str) -> None:
    """Every family's model config against the shape of every dataset it runs on
    (:meth:`models.base.GenerativeModel.check_data_shape`), before any network is built."""
    for n in names:
        shape = datasets.layout(n, data).shape
        for f, entry in families.items():
            model_cfg = dataset_families.get(n, {}).get(f, entry).model
            try:
                models.get(entry.family or f, modality).check_data_shape(model_cfg, shape)
            except ValueError as e:
                m = re.fullmatch(r"(\w+): (.*)", str(e))
                key = f"families.{f}.model" + (f".{m.group(1)}" if m else "")
                if n in ds_overrides and _has_path({"families": ds_overrides[n][1]}, key):
                    key = f"{ds_overrides[n][0]}.{key}"
                raise _KeyError(key, m.group(2) if m else str(e)) from None


def _conditional_families(conditional: ConditionalConfig, fams: Mapping, modality: str) -> dict:
    """The suite's family entries that a conditional run keeps (``conditional.families``, default all), each
    checked to be a family of the suite that can be conditioned.

    Raises:
        _KeyError: a name not among the suite's families, a repeat, or a family whose capabilities say
            ``conditional=False``.
    """
    chosen = conditional.families if conditional.families is not None else [str(f) for f in fams]
    _distinct(list(chosen), "conditional.families")
    for i, f in enumerate(chosen):
        if f not in fams:
            raise _KeyError(f"conditional.families[{i}]", f"{f!r} is not a family of the suite "
                                                          f"({', '.join(map(str, fams))})")
        try:
            entry = fams[f]
            cls = models.get(entry.get("family", f) if isinstance(entry, Mapping) else f, modality)
        except models.RegistryError as e:
            raise _KeyError(f"conditional.families[{i}]", str(e)) from None
        if not cls.capabilities.conditional:
            raise _KeyError(f"conditional.families[{i}]", f"family {f!r} cannot be conditioned (its capabilities "
                                                          "say conditional=False)")
    return {f: fams[f] for f in chosen}


MAX_SUITE_BYTES = 1 << 20


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key repeated in one mapping (``safe_load`` keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *base" may be overridden: not a repeat
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:  # unhashable: the base class says so
                continue
            if repeated:
                raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                        f"found the key {key!r} twice", key_node.start_mark)
        return super().construct_mapping(node, deep)


def _yaml(text: str) -> Any:
    """Parse one YAML document with :class:`_StrictLoader` (no Python objects, no repeated keys)."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path``, or a one-line :class:`ConfigError`."""
    src = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SUITE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{src}: no such suite file") from None
    except OSError as e:
        raise ConfigError(f"{src}: cannot read suite file ({e.strerror})") from None
    if len(data) > MAX_SUITE_BYTES:
        raise ConfigError(f"{src}: larger than {MAX_SUITE_BYTES >> 20} MiB, too large for a suite file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(f"{src}: not UTF-8 text (byte 0x{data[e.start]:02x} at line {line}); "
                          "save the suite as UTF-8") from None
    try:
        return _yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{src}: malformed YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{src}: malformed YAML: nested too deeply") from None


def load_suite(path: str | Path, *, profile: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Suite:
    """Read, merge and type-check a suite file.

    Args:
        path: the suite YAML file.
        profile: name of a block under ``profiles:`` to merge over the suite; ``"default"`` (or
            ``None``) is the top level, with ``profiles.default`` merged where the file has one.
            A block's ``requires`` and ``fallback`` keys are left to :mod:`bench.config.profiles`.
        overrides: ``KEY=VALUE`` strings (dotted keys), merged last.

    Raises:
        ConfigError: missing, unreadable, oversized or non-UTF-8 file, malformed YAML (a
            repeated key included), unknown profile, unknown key, family or dataset, a
            wrong type, or a value outside its allowed range or choices. The message is one
            line naming the file (or the ``--set`` override) and the key.
    """
    path = Path(path)
    src = str(path)
    raw = read_yaml(path)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{src}: expected a mapping at the top level, got {type(raw).__name__}")
    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, Mapping):
        raise ConfigError(f"{src}: profiles: expected a mapping of profile name -> overrides")
    layers: list[tuple[str, Mapping]] = [(src, {k: v for k, v in raw.items() if k != "profiles"})]
    if profile is not None:
        if profile not in profiles and profile != DEFAULT_PROFILE:
            hint = _suggest(profile, sorted({*profiles, DEFAULT_PROFILE}))
            raise ConfigError(f"{src}: profiles.{profile}: unknown profile{hint}")
        block = profiles.get(profile) or {}
        if not isinstance(block, Mapping):
            raise ConfigError(f"{src}: profiles.{profile}: expected a mapping of overrides")
        layers.append((f"{src} (profile {profile})", {k: v for k, v in block.items() if k not in PROFILE_META_KEYS}))
    for o in overrides:
        layers.append((f"--set {o}", parse_override(o)))
    merged: dict = {}
    for _, layer in layers:
        merged = _deep_merge(merged, layer)
    merged["profiles"] = profiles
    try:
        suite = _parse(merged)
    except RecursionError:
        raise ConfigError(f"{src}: nested too deeply to be a suite") from None
    except _KeyError as e:  # the layer that set the key last (of every key involved, for a conflict)
        found = next(((s, k, m) for s, layer in reversed(layers) for k, m in e.options() if k and _has_path(layer, k)),
                     (src, e.key, e.msg))
        raise ConfigError(f"{found[0]}: {_KeyError(found[1], found[2])}") from None
    suite.source, suite.profile = src, profile or DEFAULT_PROFILE
    return suite
