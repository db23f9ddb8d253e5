"""Every rule that judges a textbook claim, in one list: :func:`verdicts_for` runs them on a run's records.

A judge is ``fn(by_dataset) -> list[ClaimVerdict]``: ``by_dataset`` maps each dataset to the run's ok records
on it (every family and seed), and each :class:`~bench.analysis.claims.ClaimVerdict` cites its claim (T1-T30,
:data:`bench.analysis.claims.CLAIMS`), states its rule in one sentence and gives the numbers that decided it.
A judge that counts failed cells too (a diverged training run is a failed run of its family) sets
``fn.takes_failed = True`` and is called ``fn(by_dataset, failed)`` with the run's failed records.
A rule module adds its judge to :data:`JUDGES`.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.analysis import guidance, sample_verdicts, training_verdicts, verdicts
from bench.analysis.claims import CLAIMS, ClaimVerdict
from bench.store.schema import CellRecord

Judge = Callable[[dict[str, list[CellRecord]]], list[ClaimVerdict]]

JUDGES: list[Judge] = [
    verdicts.judge_taxonomy,  # T1-T4 likelihood kinds (T3: GAN), T12, T13 sampling speed
    training_verdicts.judge_training,  # T14, T15 fragility (failed runs, oscillation), T20 collapse and coverage
    sample_verdicts.judge_samples,  # T3 (score, by the ODE), T5, T6, T7-T11, T17-T19, T21, T30
    guidance.judge_t24,  # T24 every family can be conditioned (label agreement of conditional cells)
    guidance.judge_t25,  # T25 guidance trades diversity for fidelity (the guidance sweeps)
]


def verdicts_for(by_dataset: dict[str, list[CellRecord]],
                 failed: list[CellRecord] | tuple = ()) -> list[ClaimVerdict]:
    """Every judge's verdicts on a run's ok records (``by_dataset``) and, for judges that take them, its failed
    records; in claim order (T1 first), then by scope."""
    order = list(CLAIMS)
    out = [v for judge in JUDGES
           for v in (judge(by_dataset, failed) if getattr(judge, "takes_failed", False) else judge(by_dataset))]
    return sorted(out, key=lambda v: (order.index(v.claim), v.scope, v.family or ""))
