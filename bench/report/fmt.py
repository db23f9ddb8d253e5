"""Number formatting for report tables: significant digits, ± errors, sample counts."""

from __future__ import annotations

import math

import numpy as np


def fmt(v, digits: int = 3) -> str:
    """``digits`` significant digits; scientific notation for very large or small values; "–" for none."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if v != 0 and (abs(v) >= 10 ** max(digits, 4) or abs(v) < 1e-3):
        return f"{v:.{digits - 1}e}"
    return f"{v:#.{digits}g}".rstrip(".")


def pm(v, se) -> str:
    """``v ± se`` (3 and 2 significant digits), or ``v`` alone without an error."""
    if v is None:
        return "–"
    return f"{fmt(v)} ± {fmt(se, 2)}" if se is not None else fmt(v)


def count(n) -> str:
    """A sample count as FID subscripts write it: 10000 -> "10k", 500 -> "500"."""
    return "–" if not n else (f"{n // 1000}k" if n % 1000 == 0 else str(n))
