"""Typed settings: the allowed values of a config field, declared with its type, and their check.

Used by every config dataclass: the training options (:class:`models.base.TrainConfig`), each family's
``Config``, the sampler settings (:mod:`models.samplers`) and the harness's suite sections
(``bench.config.suite``), which reports a bad value with the file and the key.

Every field of a family's ``Config`` and of a sampler **must** declare its allowed values
(:func:`undeclared` lists those that do not; the contract test ``tests/test_contract.py`` fails on
them, for families found through ``GENBENCH_FAMILIES`` too). "Declares" means, by type:

* ``int``, ``float``: ``Annotated[int, Range(ge=..., le=...)]`` with a lower **and** an upper bound
  (``ge``/``gt``, ``le``/``lt``); a float must also be finite. Bounds are what the code can run, not
  what the paper used: a size's upper bound is the largest model the plan's probes build and time in
  minutes on a 24 GiB CPU machine.
* ``str``: ``Literal["a", "b"]``, the choices (a free string declares nothing).
* ``bool``: its type (two values).
* a tuple or list of varying length: ``Annotated[tuple[Annotated[int, Range(...)], ...], Length(ge=1, le=6)]``:
  its items declare their values and :class:`Length` bounds the number of items; a fixed-length
  ``tuple[X, Y]`` needs no ``Length``.
* ``X | None``: ``X`` declares (``None`` then means "unset", e.g. "set from the data").

Anything else (a dict, ``Any``, a class) declares nothing. Values that constrain each other (a ladder's
ends, GroupNorm groups dividing the widths) are checked in the dataclass's ``__post_init__``, which
raises :class:`FieldConflict` naming every field involved; a constraint that needs the data's shape
is the family's :meth:`models.base.GenerativeModel.check_data_shape`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

__all__ = ["Range", "Length", "FieldConflict", "value_problem", "check_fields", "check_order", "undeclared",
           "edge_values", "type_hints"]


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric config field, declared with its type::

        steps: Annotated[int, Range(ge=1, le=10**9)] = 2000
        ema: Annotated[float, Range(ge=0, lt=1)] | None = None

    ``ge``/``gt`` bound it from below, ``le``/``lt`` from above (``None``: unbounded);
    every float field must also be finite. ``bench.config.suite`` checks suites against it
    (the error names file, key, value and this range) and :func:`check_fields` checks
    instances built in Python.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def allows(self, v: float) -> bool:
        """Whether ``v`` lies in the range."""
        return ((self.ge is None or v >= self.ge) and (self.gt is None or v > self.gt)
                and (self.le is None or v <= self.le) and (self.lt is None or v < self.lt))

    def describe(self, integer: bool) -> str:
        """``"an integer >= 1"``, ``"a finite number in [0, 1)"``, ...: what :meth:`allows`."""
        kind = "an integer" if integer else "a finite number"
        lower = next(((op, x) for op, x in ((">=", self.ge), (">", self.gt)) if x is not None), None)
        upper = next(((op, x) for op, x in (("<=", self.le), ("<", self.lt)) if x is not None), None)
        if lower and upper:
            return (f"{kind} in {'[' if lower[0] == '>=' else '('}{_num(lower[1])}, "
                    f"{_num(upper[1])}{']' if upper[0] == '<=' else ')'}")
        bound = lower or upper
        return f"{kind} {bound[0]} {_num(bound[1])}" if bound else kind


@dataclass(frozen=True)
class Length:
    """The allowed number of items of a tuple or list field of varying length, declared with its type::

        channels: Annotated[tuple[Annotated[int, Range(ge=1, le=1024)], ...], Length(ge=1, le=6)] = (32, 64)

    ``ge`` items at least, ``le`` at most (``None``: unbounded, which :func:`undeclared` refuses).
    """

    ge: int = 0
    le: int | None = None

    def allows(self, n: int) -> bool:
        """Whether ``n`` items are allowed."""
        return n >= self.ge and (self.le is None or n <= self.le)

    def describe(self) -> str:
        """``"1 to 6 items"``, ``"at least 1 item"``."""
        if self.le is None:
            return f"at least {self.ge} item{'s' * (self.ge != 1)}"
        return f"{self.ge} to {self.le} items" if self.ge != self.le else f"exactly {self.ge} items"


class FieldConflict(ValueError):
    """Values of two or more fields of one config that do not fit together (a whole-config check).

    Args:
        problems: each field involved -> why its value is not allowed, naming the other field(s), e.g.
            ``{"sigma_min": "5.0 is not allowed (must be below sigma_max = 2.0)",
            "sigma_max": "2.0 is not allowed (must be above sigma_min = 5.0)"}``. A key may be a dotted
            path (``"model.T"``: a sampler's conflict with its model's config).

    ``str()`` is the first entry, ``"<field>: <problem>"``; ``bench.config.suite`` reports the entry of
    the field that was set last (the ``--set`` or profile that set it), with its file and key.
    """

    def __init__(self, problems: dict[str, str]):
        self.problems = dict(problems)
        field, problem = next(iter(self.problems.items()))
        super().__init__(f"{field}: {problem}")


def _num(x: float) -> str:
    """A bound as a reader writes it: 10^9, 2^20, 0.5."""
    if isinstance(x, int) and x >= 10**4:
        for base in (10, 2):
            k = round(math.log(x, base))
            if base**k == x:
                return f"{base}^{k}"
        return f"{x:_}"
    return f"{x:g}"


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls, include_extras=True)``, once per class (evaluating the string annotations
    of ``from __future__ import annotations`` costs about a millisecond per class, and every config built or
    filled asks)."""
    return typing.get_type_hints(cls, include_extras=True)


_INDEXED = re.compile(r"\[\d+\]")  # a problem of an item, "[1]: 0 is not allowed (...)"


def value_problem(tp: Any, v: Any) -> str | None:
    """Why value ``v`` is not allowed by type ``tp``'s :class:`Range`, ``Literal`` or float finiteness
    (``None`` if it is). Walks ``Annotated``, ``X | None``, ``tuple`` and ``list``; the value's type is
    assumed right (``bench.config.suite`` checks types)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        base = args[0]
        problem = value_problem(base, v)
        if problem:
            return problem
        for meta in tp.__metadata__:
            if isinstance(meta, Range) and isinstance(v, (int, float)) and not meta.allows(v):
                return f"{v!r} is not allowed (must be {meta.describe(base is int)})"
            if isinstance(meta, Length) and isinstance(v, (tuple, list)) and not meta.allows(len(v)):
                return f"{_show(v)} is not allowed (must have {meta.describe()})"
        return None
    if origin in (Union, types.UnionType):
        if v is None:
            return None if type(None) in args else "null is not allowed"
        problems = [value_problem(a, v) for a in args if a is not type(None)]
        return None if None in problems else problems[0]
    if origin is Literal:
        return None if v in args else f"{v!r} is not allowed (must be one of {', '.join(map(repr, args))})"
    if origin in (tuple, list) and isinstance(v, (tuple, list)):
        items = args[:-1] if origin is tuple and args and args[-1] is Ellipsis else args
        for i, x in enumerate(v):
            problem = value_problem(items[min(i, len(items) - 1)] if items else Any, x)
            if problem:
                return f"[{i}]{'' if _INDEXED.match(problem) else ': '}{problem}"
        return None
    if tp is float and isinstance(v, float) and not math.isfinite(v):
        return f"{v!r} is not allowed (must be a finite number)"
    return None


def check_fields(obj: Any) -> None:
    """Check every field of dataclass instance ``obj`` against its declared :class:`Range` and ``Literal``.

    Raises:
        ValueError: ``"<field>: <value> is not allowed (must be ...)"`` for the first field that fails.
    """
    hints = type_hints(type(obj))
    for f in dataclasses.fields(obj):
        problem = value_problem(hints[f.name], getattr(obj, f.name))
        if problem:
            raise ValueError(f"{f.name}{'' if _INDEXED.match(problem) else ': '}{problem}")


def _show(v: Any) -> str:
    """A value as a suite writes it: lists and tuples as ``[1, 2]``."""
    return f"[{', '.join(map(repr, v))}]" if isinstance(v, (tuple, list)) else repr(v)


def check_order(obj: Any, low: str, high: str, *, strict: bool = True) -> None:
    """Require ``obj.low < obj.high`` (``<=`` unless ``strict``) when both are set: a ladder's or a
    schedule's ends.

    Raises:
        FieldConflict: naming both fields, e.g. ``"sigma_min: 5.0 is not allowed (must be below sigma_max = 2.0)"``.
    """
    a, b = getattr(obj, low), getattr(obj, high)
    if a is None or b is None or (a < b if strict else a <= b):
        return
    below, above = ("below", "above") if strict else ("at most", "at least")
    raise FieldConflict({low: f"{a!r} is not allowed (must be {below} {high} = {b!r})",
                         high: f"{b!r} is not allowed (must be {above} {low} = {a!r})"})


def _strip(tp: Any) -> tuple[Any, tuple]:
    """``(base type, metadata)`` of ``Annotated[base, *metadata]`` (``(tp, ())`` otherwise)."""
    if typing.get_origin(tp) is Annotated:
        return typing.get_args(tp)[0], tuple(tp.__metadata__)
    return tp, ()


def _undeclared(tp: Any) -> str | None:
    """Why type ``tp`` does not declare its allowed values (see the module docstring), or ``None``."""
    base, meta = _strip(tp)
    origin, args = typing.get_origin(base), typing.get_args(base)
    if origin in (Union, types.UnionType):
        for a in args:
            why = None if a is type(None) else _undeclared(a)
            if why:
                return why
        return None
    if base is bool or origin is Literal:
        return None
    if base in (int, float):
        r = next((m for m in meta if isinstance(m, Range)), None)
        if r is None:
            return f"a {base.__name__} without a Range"
        for side, ends in (("lower", (r.ge, r.gt)), ("upper", (r.le, r.lt))):
            if ends == (None, None):
                return f"a {base.__name__} whose Range has no {side} bound"
        return None
    if base is str:
        return "a str without Literal choices"
    if origin in (tuple, list):
        items = [a for a in args if a is not Ellipsis]
        if not items:
            return f"a {origin.__name__} of undeclared items"
        if origin is list or args[-1] is Ellipsis:
            n = next((m for m in meta if isinstance(m, Length)), None)
            if n is None or n.le is None:
                return f"a {origin.__name__} of varying length without a Length with an upper bound"
        for a in items:
            why = _undeclared(a)
            if why:
                return f"items: {why}"
        return None
    return f"a {getattr(base, '__name__', base)!s}, which cannot declare its values"


def undeclared(cls: type) -> list[str]:
    """The fields of dataclass ``cls`` that do not declare their allowed values, as ``"<field>: <why>"``
    (``[]`` when every field does; "declares" is defined in the module docstring)."""
    hints = type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        why = _undeclared(hints[f.name])
        if why:
            out.append(f"{f.name}: {why}")
    return out


def _inside(r: Range, integer: bool) -> Any:
    """One value ``r`` allows (its lower end)."""
    if r.ge is not None:
        return int(math.ceil(r.ge)) if integer else float(r.ge)
    return int(math.floor(r.gt)) + 1 if integer else math.nextafter(r.gt, math.inf)


def edge_values(tp: Any) -> list[tuple[Any, bool]]:
    """Values at and just beyond each bound a declared type ``tp`` states, each with whether ``tp``
    allows it: a Range's ends (``ge``, ``le``, or the closest value inside ``gt``/``lt``) and the values
    just past them (one integer, or the next float), NaN and infinities for floats, every ``Literal``
    choice and one that is not, both bools, ``None`` (allowed only for ``X | None``), and tuples at and
    beyond their :class:`Length` with items at and beyond their own bounds. The fuzzer of
    ``tests/test_bad_input.py`` draws from these.

    Raises:
        TypeError: ``tp`` does not declare its values (:func:`undeclared`).
    """
    why = _undeclared(tp)
    if why:
        raise TypeError(f"{tp!r} declares no allowed values ({why})")
    base, meta = _strip(tp)
    origin, args = typing.get_origin(base), typing.get_args(base)
    out: list[tuple[Any, bool]] = []
    if origin in (Union, types.UnionType):
        for a in args:
            if a is not type(None):
                out += edge_values(a)
        out.append((None, type(None) in args))
        return out
    if base is bool:
        return [(True, True), (False, True)]
    if origin is Literal:
        return [(a, True) for a in args] + [("not-a-choice", False)]
    if base in (int, float):
        integer = base is int
        r = next(m for m in meta if isinstance(m, Range))
        step = (lambda x, d: x + d) if integer else (lambda x, d: math.nextafter(x, d * math.inf))
        if r.ge is not None:
            out += [(_inside(r, integer), True), (step(_inside(r, integer), -1), False)]
        else:
            out += [(_inside(r, integer), True), (int(math.floor(r.gt)) if integer else float(r.gt), False)]
        if r.le is not None:
            hi = int(math.floor(r.le)) if integer else float(r.le)
            out += [(hi, True), (step(hi, 1), False)]
        else:
            hi = int(math.ceil(r.lt)) - 1 if integer else math.nextafter(r.lt, -math.inf)
            out += [(hi, True), (int(math.ceil(r.lt)) if integer else float(r.lt), False)]
        if not integer:
            out += [(math.nan, False), (math.inf, False), (-math.inf, False)]
        return out
    # tuples and lists: lengths at and beyond their bounds, then each item's edges in the first place
    items = [a for a in args if a is not Ellipsis]
    varying = origin is list or args[-1] is Ellipsis
    filler = [edge_values(a)[0][0] for a in items]
    make = (lambda n: tuple(filler[0] for _ in range(n))) if varying else (lambda n: tuple(filler))
    if varying:
        n = next(m for m in meta if isinstance(m, Length))
        out += [(make(n.ge), True), (make(n.le), True), (make(n.le + 1), False)]
        if n.ge > 0:
            out.append((make(n.ge - 1), False))
    for i, a in enumerate(items):
        for v, ok in edge_values(a):
            if v is None and not ok:
                continue
            t = list(make(max(1, n.ge) if varying else len(items)))
            t[i] = v
            out.append((tuple(t), ok))
    return [(list(v), ok) if origin is list and isinstance(v, tuple) else (v, ok) for v, ok in out]
