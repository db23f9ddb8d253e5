"""The taxonomy's claims tested against measurements: pure functions of cell records.

Each function takes typed records (:class:`bench.schema.CellRecord`) and returns a
:class:`Verdict`; nothing here formats a table or draws a figure. The textbook
claims come from the family (:class:`models.base.Textbook`), stored in each record;
a family without one gets ``"no textbook claim"``, never "disagrees".

Rules:

* **likelihood**: where the density could be integrated numerically (2D), the
  verdict rests on that integral: an exact density integrates to 1 (|log ∫p| ≤
  max(0.01, 3 × quadrature error)), exp(bound) to less than 1, exp(−E) to Z ≠ 1. A
  bound whose integral is not below 1 by more than its error is "inconclusive".
  Elsewhere (images) it rests on the kind of density the family exposes.
* **sampling**: a family samples *slow* when its cost per sample at the throughput
  batch is at least :data:`SLOW_RATIO` times that of the fastest family on the same
  dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.schema import CellRecord, DensityResult

SLOW_RATIO = 10.0  # a family samples "slow" when its cost per sample is >= 10x the fastest family's
AGREES, DISAGREES, INCONCLUSIVE, NO_CLAIM = "agrees", "disagrees", "inconclusive", "no textbook claim"


@dataclass(frozen=True)
class Verdict:
    """One claim checked against one measurement.

    Attributes:
        verdict: ``"agrees"``, ``"disagrees"``, ``"inconclusive"`` or ``"no textbook claim"``.
        claim: the textbook's wording (empty without a claim).
        measured: what was measured, in words (``"slow"``, ``"exact"``...).
        value: the number that decided it (a ratio, a log-integral in nats), or ``None``.
    """

    verdict: str
    claim: str = ""
    measured: str = ""
    value: float | None = None


def textbook(rec: CellRecord) -> dict[str, str] | None:
    """The family's textbook claims: from the record, else from the registry (records older than
    ``genbench.cell/2``), else ``None``."""
    if rec.textbook is not None:
        return rec.textbook
    import models

    if rec.family in models.names():
        tb = models.textbook(rec.family)
        return None if tb is None else {"likelihood": tb.likelihood, "sampling": tb.sampling,
                                        "likelihood_text": tb.likelihood_text, "sampling_text": tb.sampling_text}
    return None


def _compare(claimed: str | None, holds: bool, text: str, measured: str, value: float | None = None) -> Verdict:
    if claimed is None:
        return Verdict(NO_CLAIM, "", measured, value)
    return Verdict(AGREES if holds else DISAGREES, text, measured, value)


def likelihood(rec: CellRecord) -> Verdict:
    """The textbook likelihood claim of a record against its measured normalization (2D) or kind.

    ``value`` is log ∫ (density, exp(bound) or exp(−E)) dx in nats where it was integrated.
    """
    d = rec.density or DensityResult()
    kind = rec.likelihood_kind
    tb = textbook(rec)
    claimed, text = (tb["likelihood"], tb["likelihood_text"]) if tb else (None, "")
    li, err = d.log_integral_nats, d.log_integral_error_nats or 0.0
    if li is None:
        return _compare(claimed, claimed == kind, text, kind)
    if kind == "exact":
        return _compare(claimed, abs(li) <= max(0.01, 3 * err) and claimed == "exact", text, "exact", li)
    if kind == "bound":
        if li + err >= 0:
            return Verdict(INCONCLUSIVE if claimed else NO_CLAIM, text, "bound (integral not below 1 within error)", li)
        return _compare(claimed, claimed == "bound", text, "bound", li)
    if kind == "unnormalized":
        return _compare(claimed, abs(li) > err and claimed == "unnormalized", text, "unnormalized", li)
    return _compare(claimed, claimed == kind, text, kind, li)


def fastest(recs: list[CellRecord]) -> CellRecord | None:
    """The record whose default sampler costs least per sample (µs/sample at the throughput batch)."""
    timed = [r for r in recs if r.primary()[1].sample_us_per_sample]
    return min(timed, key=lambda r: r.primary()[1].sample_us_per_sample) if timed else None


def sampling(rec: CellRecord, recs: list[CellRecord]) -> Verdict:
    """The textbook sampling claim of ``rec`` against the fastest family among ``recs`` (one dataset, one seed).

    ``value`` is the cost-per-sample ratio to the fastest family; slow when ≥ :data:`SLOW_RATIO`.
    """
    best = fastest(recs)
    cost = rec.primary()[1].sample_us_per_sample
    tb = textbook(rec)
    claimed, text = (tb["sampling"], tb["sampling_text"]) if tb else (None, "")
    if best is None or not cost:
        return Verdict(INCONCLUSIVE if claimed else NO_CLAIM, text, "not timed")
    ratio = cost / best.primary()[1].sample_us_per_sample
    slow = ratio >= SLOW_RATIO
    measured = "slow" if slow else "fast"
    return _compare(claimed, (claimed == "slow") == slow, text, measured, ratio)
