"""Typed settings: the allowed values of a config field, declared with its type, and their check.

Used by every config dataclass: the training options (:class:`models.base.TrainConfig`), each family's
``Config``, the sampler settings (:mod:`models.samplers`) and the harness's suite sections
(``bench.config.suite``), which reports a bad value with the file and the key.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

__all__ = ["Range", "value_problem", "check_fields"]


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


def _num(x: float) -> str:
    """A bound as a reader writes it: 10^9, 2^20, 0.5."""
    if isinstance(x, int) and x >= 10**4:
        for base in (10, 2):
            k = round(math.log(x, base))
            if base**k == x:
                return f"{base}^{k}"
        return f"{x:_}"
    return f"{x:g}"


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
                return f"[{i}]{'' if problem.startswith('[') else ': '}{problem}"
        return None
    if tp is float and isinstance(v, float) and not math.isfinite(v):
        return f"{v!r} is not allowed (must be a finite number)"
    return None


def check_fields(obj: Any) -> None:
    """Check every field of dataclass instance ``obj`` against its declared :class:`Range` and ``Literal``.

    Raises:
        ValueError: ``"<field>: <value> is not allowed (must be ...)"`` for the first field that fails.
    """
    hints = typing.get_type_hints(type(obj), include_extras=True)
    for f in dataclasses.fields(obj):
        problem = value_problem(hints[f.name], getattr(obj, f.name))
        if problem:
            raise ValueError(f"{f.name}{'' if problem.startswith('[') else ': '}{problem}")
