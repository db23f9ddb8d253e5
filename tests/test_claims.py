"""The numbered claims T1-T30: every verdict cites one, and the claims table gives each a row."""

from __future__ import annotations

import pytest

from bench.analysis import judges
from bench.analysis.claims import CLAIMS, METHOD, NOT_MEASURED, ClaimVerdict, claims_table


def test_the_thirty_claims_are_numbered_with_their_sources():
    assert list(CLAIMS) == [f"T{i}" for i in range(1, 31)]
    assert [c.id for c in CLAIMS.values() if c.method] == ["T26", "T27", "T28", "T29"]
    assert CLAIMS["T14"].sources == ("000", "003", "004") and CLAIMS["T25"].sources == ("001",)
    assert all(set(c.sources) <= {"000", "001", "002", "003", "004"} for c in CLAIMS.values())


def test_a_verdict_cites_a_known_claim_and_one_of_three_verdicts():
    with pytest.raises(ValueError, match="unknown claim 'T31'"):
        ClaimVerdict("T31", "agrees", "rule")
    with pytest.raises(ValueError, match="verdict must be"):
        ClaimVerdict("T14", "fragile", "rule")


def test_the_claims_table_has_every_claim_and_says_what_was_not_measured():
    v = ClaimVerdict("T14", "agrees", "GAN fails more often than diffusion", "p = 0.01", "8gaussians", "gan")
    rows = claims_table([v])
    assert [r["claim"] for r in rows] == list(CLAIMS)
    by = {r["claim"]: r["verdict"] for r in rows}
    assert by["T14"] == "8gaussians: agrees (gan)" and by["T5"] == NOT_MEASURED and by["T26"] == METHOD


def test_every_judge_returns_claim_verdicts_in_claim_order():
    assert judges.JUDGES and judges.verdicts_for({}) == []
