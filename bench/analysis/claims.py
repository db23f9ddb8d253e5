"""The textbook's claims, numbered T1-T30 (``shared/claims.md``), and the verdicts genbench gives them.

Every verdict genbench gives cites one claim by its id. A claim's verdict is ``agrees``, ``disagrees`` or
``inconclusive`` by a rule stated in one sentence (:class:`ClaimVerdict.rule`), with the numbers that decided
it (:class:`ClaimVerdict.evidence`: N, seeds, the margin or p-value). A claim no rule judges is ``not
measured``; T26-T29 are methods (FID, IS, precision/recall, bits/dim), implemented and checked against
reference implementations, not judged.

Judges are functions of a run's records, ``judge(by_dataset) -> list[ClaimVerdict]``, listed in
:mod:`bench.analysis.judges`; :func:`claims_table` gives every claim a row.
The texts the claims come from are numbered 000-004 (``shared/seeds/``, first three digits of the file name).
"""

from __future__ import annotations

from dataclasses import dataclass

AGREES, DISAGREES, INCONCLUSIVE, NOT_MEASURED = "agrees", "disagrees", "inconclusive", "not measured"
METHOD = "method (checked against reference implementations, not judged)"


@dataclass(frozen=True)
class Claim:
    """One numbered claim of the textbook.

    Attributes:
        id: ``"T1"`` ... ``"T30"``.
        topic: its section of ``shared/claims.md`` (Likelihood, Sampling, Training, ...).
        text: the claim in our words.
        sources: the texts that make it (``"000"`` ... ``"004"``).
        method: a method genbench implements (T26-T29) rather than a claim about families.
    """

    id: str
    topic: str
    text: str
    sources: tuple[str, ...]
    method: bool = False


CLAIMS: dict[str, Claim] = {c.id: c for c in [
    Claim("T1", "Likelihood", "Autoregressive models and normalizing flows give an exact, tractable likelihood.",
          ("000", "001", "004")),
    Claim("T2", "Likelihood", "VAEs, and diffusion models trained by the DDPM objective, give only a lower bound "
          "(ELBO).", ("000", "001", "004")),
    Claim("T3", "Likelihood", "GANs give no likelihood; score-based models give none explicitly.",
          ("000", "001", "004")),
    Claim("T4", "Likelihood", "Energy-based models give an unnormalized density; the partition function is "
          "intractable.", ("000", "001")),
    Claim("T5", "Likelihood", "Autoregressive models often reach state-of-the-art log-likelihoods.", ("004",)),
    Claim("T6", "Likelihood", "High likelihood does not guarantee good sample quality, and vice versa.", ("001",)),
    Claim("T7", "Sampling", "Autoregressive sampling is slow: one element at a time.", ("000", "001", "003", "004")),
    Claim("T8", "Sampling", "VAE and GAN sampling is fast: one pass of a network.", ("001", "003", "004")),
    Claim("T9", "Sampling", "Flow sampling is fast once trained.", ("000", "001", "004")),
    Claim("T10", "Sampling", "Diffusion sampling is slow (hundreds of steps), but parallelizable.",
          ("000", "001", "003", "004")),
    Claim("T11", "Sampling", "DDIM significantly improves diffusion sampling speed.", ("004",)),
    Claim("T12", "Sampling", "Energy-based sampling is slow (MCMC); MCMC mixes slowly and can get stuck in modes.",
          ("001", "003")),
    Claim("T13", "Sampling", "Score-based sampling is slow (SDE/ODE integration).", ("001",)),
    Claim("T14", "Training", "GAN training is fragile: unstable, with mode collapse and oscillation.",
          ("000", "003", "004")),
    Claim("T15", "Training", "Autoregressive training is stable; VAE training is relatively stable; diffusion "
          "training is more stable than GAN training.", ("000", "004")),
    Claim("T16", "Training", "Training, sampling, density evaluation and latent inference cost very differently "
          "across families.", ("000",)),
    Claim("T17", "Samples", "VAE samples are somewhat blurrier than GAN samples.", ("003", "004")),
    Claim("T18", "Samples", "GANs produce very sharp, high-fidelity samples.", ("004",)),
    Claim("T19", "Samples", "Diffusion models give excellent samples, rivaling or exceeding GANs.", ("000", "004")),
    Claim("T20", "Samples", "GANs are prone to mode collapse; diffusion models cover the data better.",
          ("003", "004")),
    Claim("T21", "Structure", "Flows pay a cost in expressiveness: invertibility with a tractable Jacobian limits "
          "the architecture.", ("000", "003", "004")),
    Claim("T22", "Structure", "VAEs (and flows) provide a learned latent space: latent inference is amortized "
          "(VAE) or exact (flow).", ("001", "004")),
    Claim("T23", "Structure", "No family is universally best: each is the right tool for some question.", ("000",)),
    Claim("T24", "Conditioning and evaluation", "Every family can be conditioned on a signal c (concatenation, "
          "cross-attention, guidance, adaptive normalization).", ("001",)),
    Claim("T25", "Conditioning and evaluation", "Classifier-free guidance with scale w > 0 trades diversity for "
          "fidelity.", ("001",)),
    Claim("T26", "Conditioning and evaluation", "FID compares real and generated Inception statistics; lower is "
          "better.", ("001",), method=True),
    Claim("T27", "Conditioning and evaluation", "The Inception Score rewards confident, diverse class predictions; "
          "it does not compare with real data.", ("001",), method=True),
    Claim("T28", "Conditioning and evaluation", "Precision measures sample quality; recall measures coverage of "
          "the data's modes.", ("001",), method=True),
    Claim("T29", "Conditioning and evaluation", "Bits per dimension reports likelihood per dimension; lower is "
          "better.", ("001",), method=True),
    Claim("T30", "Dimension", "Simple density estimators (one Gaussian, histograms, KDE) fail on multimodal or "
          "high-dimensional data.", ("001", "003")),
]}


@dataclass(frozen=True)
class ClaimVerdict:
    """One claim judged on one scope of a run.

    Attributes:
        claim: the claim's id (``"T14"``), a key of :data:`CLAIMS`.
        verdict: ``"agrees"``, ``"disagrees"`` or ``"inconclusive"``.
        rule: the rule that decided it, one sentence.
        evidence: the numbers that decided it: N, seeds, the margin or p-value (one line).
        scope: where it was judged (``"8gaussians"``, ``"mnist: diffusion vs gan"``).
        family: the family it is about, where it is about one.

    Raises:
        ValueError: an unknown claim id or verdict.
    """

    claim: str
    verdict: str
    rule: str
    evidence: str = ""
    scope: str = ""
    family: str | None = None

    def __post_init__(self):
        if self.claim not in CLAIMS:
            raise ValueError(f"unknown claim {self.claim!r}; the claims are T1-T30 (bench.analysis.claims.CLAIMS)")
        if self.verdict not in (AGREES, DISAGREES, INCONCLUSIVE):
            raise ValueError(f"verdict must be {AGREES!r}, {DISAGREES!r} or {INCONCLUSIVE!r}, got {self.verdict!r}")


def claims_table(verdicts: list[ClaimVerdict]) -> list[dict[str, str]]:
    """One row per claim T1-T30: its words and sources, and each verdict given on it (scope: verdict), or
    ``"not measured"`` (a method for T26-T29)."""
    rows = []
    for c in CLAIMS.values():
        given = [v for v in verdicts if v.claim == c.id]
        if given:
            text = "; ".join(f"{v.scope + ': ' if v.scope else ''}{v.verdict}"
                             + (f" ({v.family})" if v.family and v.family not in v.scope else "") for v in given)
        else:
            text = METHOD if c.method else NOT_MEASURED
        rows.append({"claim": c.id, "topic": c.topic, "in our words": c.text, "texts": ", ".join(c.sources),
                     "verdict": text})
    return rows
