"""Every rule that judges a textbook claim, in one list: :func:`verdicts_for` runs them on a run's records.

A judge is ``fn(by_dataset) -> list[ClaimVerdict]``: ``by_dataset`` maps each dataset to the run's ok records
on it (every family and seed), and each :class:`~bench.analysis.claims.ClaimVerdict` cites its claim (T1-T30,
:data:`bench.analysis.claims.CLAIMS`), states its rule in one sentence and gives the numbers that decided it.
A rule module adds its judge to :data:`JUDGES`.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.analysis import guidance, verdicts
from bench.analysis.claims import CLAIMS, ClaimVerdict
from bench.store.schema import CellRecord

Judge = Callable[[dict[str, list[CellRecord]]], list[ClaimVerdict]]

JUDGES: list[Judge] = [
    verdicts.judge_taxonomy,  # T1-T4 likelihood kinds, T7-T10, T12, T13 sampling speed, T14/T15, T19, T21
    guidance.judge_t24,  # T24 every family can be conditioned (label agreement of conditional cells)
    guidance.judge_t25,  # T25 guidance trades diversity for fidelity (the guidance sweeps)
]


def verdicts_for(by_dataset: dict[str, list[CellRecord]]) -> list[ClaimVerdict]:
    """Every judge's verdicts on a run's records, in claim order (T1 first), then by scope."""
    order = list(CLAIMS)
    out = [v for judge in JUDGES for v in judge(by_dataset)]
    return sorted(out, key=lambda v: (order.index(v.claim), v.scope, v.family or ""))
