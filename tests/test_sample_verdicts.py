"""The rules of bench.analysis.sample_verdicts on hand-made records: each claim's agree, disagree and inconclusive
case, with numbers a reader can check (no training)."""

from __future__ import annotations

import dataclasses
import math

import pytest

import models
from bench.analysis import judges
from bench.analysis import sample_verdicts as sv
from bench.analysis import training_verdicts as tv
from bench.analysis.claims import AGREES, DISAGREES, INCONCLUSIVE
from bench.store.schema import (
    CellConfig,
    CellRecord,
    DensityResult,
    ReferenceEstimate,
    SamplerResult,
    TrainResult,
)


def textbook(family: str) -> dict:
    return dataclasses.asdict(models.textbook(family))


def curve(values: list[float], key: str = "val_sample_nll_nats", se: float = 0.01) -> list[dict]:
    """A training monitor's history: one checkpoint per 100 steps, each value with its standard error ``se`` (the
    convergence guard, :func:`bench.analysis.training_verdicts.converged`, compares the last step with it)."""
    return [{"step": (i + 1) * 100, "seconds": float(i + 1), key: v, f"{key[:-5]}_se_nats": se}
            for i, v in enumerate(values)]


SETTLED = curve([0.5, 0.1, 0.1, 0.1, 0.1])  # settled at step 200 of 500: converged
IMPROVING = curve([9.0, 7.0, 5.0, 3.0, 1.0])  # still improving: 2 nats over the last fifth (> the 1-nat floor)


def rec(family: str, seed: int = 0, *, dataset: str = "d", density: dict | None = None,
        samplers: dict[str, dict] | None = None, parameters: int = 1000, history=SETTLED,
        model: dict | None = None, refs: dict | None = None, likelihood_kind: str | None = None) -> CellRecord:
    samplers = samplers if samplers is not None else {"default": {}}
    return CellRecord(
        suite="s", run_id="r", dataset=dataset, family=family, seed=seed, status="ok", modality="image",
        textbook=textbook(family) if family in models.names() else None, likelihood_kind=likelihood_kind,
        config=CellConfig(model=model or {}),
        density=DensityResult(**(density or {})),
        samplers={name: SamplerResult(**kw) for name, kw in samplers.items()},
        train=TrainResult(train_seconds=10.0, parameters=parameters, train_history=list(history)),
        reference_estimates=refs or {})


def only(verdicts, claim: str, family: str | None = "any"):
    hits = [v for v in verdicts if v.claim == claim and (family == "any" or v.family == family)]
    assert len(hits) == 1, hits
    return hits[0]


def judge(*recs: CellRecord):
    by: dict[str, list[CellRecord]] = {}
    for r in recs:
        by.setdefault(r.dataset, []).append(r)
    return sv.judge_samples(by)


# --------------------------------------------------------------------------- statistics
def test_estimate_uses_the_seed_spread_and_falls_back_to_the_own_se():
    e = sv.estimate([1.0, 2.0, 3.0], [9.0, 9.0, 9.0])
    assert (e.mean, e.n, e.how) == (2.0, 3, "seeds") and e.se == pytest.approx(1 / math.sqrt(3))
    one = sv.estimate([5.0], [0.25])
    assert (one.mean, one.se, one.how) == (5.0, 0.25, "own SE")
    assert sv.estimate([], []) is None and sv.estimate([7.0]).se is None
    assert sv.combined_se(e, one) == pytest.approx(math.sqrt(1 / 3 + 0.0625))


# --------------------------------------------------------------------------- T3
def score(nfe: int, log_integral: float | None = 0.002, error: float = 1e-5) -> CellRecord:
    return rec("score", density={"ode_test_nll_nats": 2.0, "ode_test_nll_se_nats": 0.01, "ode_test_n": 100,
                                 "ode_nfe": nfe, "ode_trace": "exact", "ode_ms_per_example": 3.0,
                                 "ode_log_integral_nats": log_integral, "ode_log_integral_error_nats": error,
                                 "ode_integral_grid": 64})


def test_t3_the_score_models_likelihood_costs_the_ode():
    assert only(judge(score(100)), "T3").verdict == AGREES  # 100 NFE >= 10 x 1, integral e^0.002 = 1.002
    assert only(judge(score(4)), "T3").verdict == DISAGREES  # 4 NFE: as cheap as an explicit density
    v = only(judge(score(100, log_integral=0.05)), "T3")  # integrates to 1.05: not a density at this step count
    assert v.verdict == INCONCLUSIVE and "1.0513" in v.evidence
    coarse = only(judge(score(100, log_integral=0.3, error=0.2)), "T3")  # the grid cannot resolve the modes
    assert coarse.verdict == AGREES and "not resolved by the 64² grid" in coarse.evidence


def test_t3_of_a_score_model_with_the_ode_is_judged_once():
    r = dataclasses.replace(score(100), likelihood_kind="none")
    t3 = [v for v in judges.verdicts_for({"d": [r]}) if v.claim == "T3"]
    assert [v.rule for v in t3] == [sv.ODE_RULE]  # the taxonomy's declared-kind rule no longer judges it


# --------------------------------------------------------------------------- T5
def kl_recs(family: str, values: list[float], *, bound: bool = False) -> list[CellRecord]:
    key = "kl_bound_nats" if bound else "kl_nats"
    return [rec(family, s, density={key: v, f"{key[:-5]}_se_nats": 0.001}) for s, v in enumerate(values)]


def test_t5_the_autoregressive_likelihood_against_the_others():
    ar = kl_recs("autoregressive", [0.09, 0.10, 0.11])  # 0.10 ± 0.0058 (seed SE)
    vae = kl_recs("vae", [0.5, 0.5, 0.5], bound=True)  # an upper bound above it: does not decide
    assert only(judge(*ar, *kl_recs("flow", [0.29, 0.30, 0.31]), *vae), "T5").verdict == AGREES  # Δ 0.2 > 2 x 0.0082
    assert only(judge(*ar, *kl_recs("flow", [0.01, 0.02, 0.03]), *vae), "T5").verdict == DISAGREES
    assert only(judge(*ar, *kl_recs("flow", [0.10, 0.105, 0.11]), *vae), "T5").verdict == INCONCLUSIVE
    # a bound below the autoregressive NLL beyond the margin proves the other family better
    low_bound = kl_recs("vae", [0.01, 0.01, 0.02], bound=True)
    assert only(judge(*ar, *kl_recs("flow", [0.3] * 3), *low_bound), "T5").verdict == DISAGREES


# --------------------------------------------------------------------------- T6
def theis(shift: float, fid_se: float | None) -> CellRecord:
    return rec("autoregressive", density={"theis_weight": 0.01, "theis_bpd_shift": shift, "theis_fid": 300.0,
                                          "theis_model_fid": 20.0, "theis_model_fid_se": fid_se,
                                          "theis_kid_mean": 0.3, "test_n": 200})


def test_t6_the_noise_mixture():
    v = only(judge(theis(0.0085, 1.0)), "T6", "autoregressive")  # +0.0085 bits/dim; FID +280 = 280 SE
    assert v.verdict == AGREES and "280 SE" in v.evidence
    assert only(judge(theis(0.02, 1.0)), "T6", "autoregressive").verdict == DISAGREES  # bits/dim noticed it
    # a model worse than the noise itself: the mixture's bits/dim fall by 0.28, the likelihood moved
    assert only(judge(theis(-0.28, 1.0)), "T6", "autoregressive").verdict == DISAGREES
    assert only(judge(theis(0.0085, None)), "T6", "autoregressive").verdict == INCONCLUSIVE


def fam(family: str, kl: float, q: float) -> list[CellRecord]:
    return [rec(family, s, density={"kl_nats": kl + d, "kl_se_nats": 0.001},
                samplers={"default": {"mmd2_multiscale": q + d, "mmd2_multiscale_std": 0.0001}})
            for s, d in enumerate((-0.001, 0.0, 0.001))]


def test_t6_likelihood_and_sample_quality_across_families():
    # flow: best likelihood, worst samples; diffusion: the reverse (seed SE 0.00058 each)
    disc = judge(*fam("flow", 0.1, 0.05), *fam("diffusion", 0.5, 0.01), *fam("vae", 0.9, 0.09))
    v = only(disc, "T6", None)
    assert v.verdict == AGREES and "1 discordant" in v.evidence and "flow has the better likelihood" in v.evidence
    conc = judge(*fam("flow", 0.1, 0.01), *fam("diffusion", 0.5, 0.05), *fam("vae", 0.9, 0.09))
    assert only(conc, "T6", None).verdict == DISAGREES and "rho = 1.00" in only(conc, "T6", None).evidence
    noisy = judge(*fam("flow", 0.1, 0.05), *fam("diffusion", 0.1, 0.05))
    assert only(noisy, "T6", None).verdict == INCONCLUSIVE
    assert "Spearman rho n/a (fewer than 3 families, or tied)" in only(noisy, "T6", None).evidence  # not "nan"


# --------------------------------------------------------------------------- T7-T10
def sampler(nfe: int, us: float, **kw) -> dict:
    return {"sample_nfe": nfe, "sample_us_per_sample": us, **kw}


def test_t7_t8_t9_by_sequential_passes():
    recs = [rec("autoregressive", samplers={"default": sampler(784, 5000.0)}, density={"dims": 784}),
            rec("vae", samplers={"default": sampler(1, 10.0)}),
            rec("flow", samplers={"default": sampler(1, 20.0)}, parameters=1100)]
    v = judge(*recs)
    t7 = only(v, "T7")
    assert t7.verdict == AGREES and "NFE 784, D = 784, 784x the fewest" in t7.evidence
    assert only(v, "T8").verdict == AGREES and only(v, "T9").verdict == AGREES
    assert "1,100 vs 1,000 parameters, matched" in only(v, "T9").evidence
    two_d = judge(rec("autoregressive", samplers={"default": sampler(2, 30.0)}),
                  rec("vae", samplers={"default": sampler(1, 10.0)}, parameters=5000),
                  rec("coupling_flow", samplers={"default": sampler(1, 15.0)}, parameters=990))
    t7 = only(two_d, "T7")
    assert t7.verdict == DISAGREES  # 2 passes at D = 2: not slow
    assert "at matched parameters (1,000 vs 990) 2x the wall clock of coupling_flow (NFE 1)" in t7.evidence


def test_t10_slow_and_parallelizable():
    vae = rec("vae", samplers={"default": sampler(1, 10.0)})

    def diffusion(sweep: dict[str, float]) -> CellRecord:
        return rec("diffusion", samplers={"ancestral": sampler(100, 2000.0, batch_sweep_per_s=sweep)})

    assert only(judge(vae, diffusion({"1": 10.0, "64": 500.0})), "T10").verdict == AGREES  # 50x the samples/s
    assert only(judge(vae, diffusion({"1": 10.0, "64": 50.0})), "T10").verdict == DISAGREES  # 5x: not parallel
    assert only(judge(vae, diffusion({})), "T10").verdict == INCONCLUSIVE  # parallelism not timed


# --------------------------------------------------------------------------- T11
def ddpm(ddim10_kid: float, *, samplers: tuple[str, ...] = ("ddim10",)) -> list[CellRecord]:
    out = []
    for s, d in enumerate((-0.0001, 0.0, 0.0001)):
        smp = {"ancestral": sampler(100, 1000.0, sampler_kwargs={"kind": "ancestral"}, kid_mean={"test": 0.010 + d},
                                    kid_std={"test": 0.001})}
        if "ddim10" in samplers:
            smp["ddim10"] = sampler(10, 100.0, sampler_kwargs={"kind": "ddim", "steps": 10},
                                    kid_mean={"test": ddim10_kid + d}, kid_std={"test": 0.001})
        if "ddim50" in samplers:
            smp["ddim50"] = sampler(50, 500.0, sampler_kwargs={"kind": "ddim", "steps": 50},
                                    kid_mean={"test": 0.010 + d}, kid_std={"test": 0.001})
        out.append(rec("diffusion", s, samplers=smp, model={"T": 100}))
    return out


def test_t11_ddim_keeps_quality_at_five_times_the_speed():
    v = only(judge(*ddpm(0.0105)), "T11")  # Δ 0.0005 <= max(2 x 0.00008, 10% of 0.01); 10x the samples/s
    assert v.verdict == AGREES and "10x the samples/s" in v.evidence
    assert only(judge(*ddpm(0.02)), "T11").verdict == DISAGREES  # twice the ancestral KID
    assert only(judge(*ddpm(0.01, samplers=("ddim50",))), "T11").verdict == INCONCLUSIVE  # 50 steps > T/10


# --------------------------------------------------------------------------- T17, T18
def blur(family: str, seeds: int, ratio: float, *, draw: float | None = None, se: float = 0.01) -> list[CellRecord]:
    out = []
    for s in range(seeds):
        r = ratio * (1 + 0.01 * (s - 1))  # log ratios spread by ~0.01 over the seeds
        m = {"hf_energy_ratio": r, "hf_energy_log_ratio_se": se, "laplacian_var_ratio": r,
             "laplacian_log_ratio_se": se, "precision": 0.8}
        if family == "vae":
            smp = {"default": {**m, "hf_energy_ratio": draw, "laplacian_var_ratio": draw,
                               "sampler_kwargs": {"kind": "native"}},
                   "decoder_mean": {**m, "sampler_kwargs": {"kind": "decoder_mean"}}}
        else:
            smp = {"default": m}
        out.append(rec(family, s, samplers=smp))
    return out


def test_t17_the_vae_decoder_mean_against_the_gan():
    # the full draw is salt-and-pepper noise (4.2x the test set's energy); the decoder mean is what is judged
    v = only(judge(*blur("vae", 3, 0.5, draw=4.2), *blur("gan", 3, 1.0)), "T17")
    assert v.verdict == AGREES and "decoder mean 0.5" in v.evidence and "full draw 4.2" in v.evidence
    assert only(judge(*blur("vae", 3, 2.0, draw=4.2), *blur("gan", 3, 1.0)), "T17").verdict == DISAGREES
    few = only(judge(*blur("vae", 2, 0.5, draw=4.2), *blur("gan", 2, 1.0)), "T17")
    assert few.verdict == INCONCLUSIVE and "< 3" in few.evidence  # two seeds each


def test_t17_and_t18_are_not_judged_without_blur_measures():
    # 2D samples have no high-frequency energy or Laplacian variance: no row (the claims table says
    # "not measured"), not an "inconclusive" with empty evidence
    plain = [rec(f, s) for f in ("vae", "gan") for s in range(3)]
    assert [v for v in judge(*plain) if v.claim in ("T17", "T18")] == []


def test_t18_gan_samples_as_sharp_as_the_data():
    assert only(judge(*blur("gan", 3, 0.97)), "T18").verdict == AGREES  # |log 0.97| + 2 SE < log 1.25
    assert only(judge(*blur("gan", 3, 0.5)), "T18").verdict == DISAGREES  # half the test set's energy
    noise = only(judge(*blur("gan", 3, 4.2)), "T18")  # noise is not sharpness: |log 4.2| > log 1.25
    assert noise.verdict == DISAGREES
    assert only(judge(*blur("gan", 1, 0.8, se=0.1)), "T18").verdict == INCONCLUSIVE  # |log 0.8| ± 0.2 straddles


# --------------------------------------------------------------------------- T19
def kid_recs(family: str, values: list[float], history=SETTLED, dataset: str = "d") -> list[CellRecord]:
    return [rec(family, s, dataset=dataset, history=history,
                samplers={"default": {"kid_mean": {"test": v}, "kid_std": {"test": 0.001}}})
            for s, v in enumerate(values)]


def test_t19_non_inferiority_of_diffusion_to_the_gan():
    gan = kid_recs("gan", [0.019, 0.020, 0.021])
    v = only(judge(*kid_recs("diffusion", [0.009, 0.010, 0.011]), *gan), "T19")
    assert v.verdict == AGREES and "exceeds the GAN" in v.evidence  # half the GAN's KID
    assert only(judge(*kid_recs("diffusion", [0.049, 0.050, 0.051]), *gan), "T19").verdict == DISAGREES
    assert only(judge(*kid_recs("diffusion", [0.020, 0.023, 0.026]), *gan), "T19").verdict == INCONCLUSIVE
    still = only(judge(*kid_recs("diffusion", [0.009, 0.010, 0.011], IMPROVING), *gan), "T19")
    assert still.verdict == INCONCLUSIVE and "still improving" in still.evidence  # the convergence guard


def test_t19_is_holm_corrected_over_datasets():
    # one dataset's non-inferiority p alone, then next to a dataset whose p is ~1: Holm doubles the smaller
    a = [*kid_recs("diffusion", [0.0195, 0.020, 0.0205], dataset="a"), *kid_recs("gan", [0.019, 0.020, 0.021],
                                                                                 dataset="a")]
    b = [*kid_recs("diffusion", [0.049, 0.050, 0.051], dataset="b"), *kid_recs("gan", [0.019, 0.020, 0.021],
                                                                                 dataset="b")]
    alone, = sv.rival_tests({"a": a})
    v, = [x for x in judge(*a, *b) if x.claim == "T19" and x.scope == "a"]
    assert f"(Holm {min(1.0, 2 * alone.p_noninf):.2g})" in v.evidence


# --------------------------------------------------------------------------- T21
def size(family: str, parameters: int, kl: float, history=SETTLED) -> list[CellRecord]:
    return [rec(family, s, parameters=parameters, history=history,
                density={"kl_nats": kl + d, "kl_se_nats": 0.001},
                samplers={"default": {"high_quality_fraction": 0.9}})
            for s, d in enumerate((-0.01, 0.0, 0.01))]


def test_t21_the_flow_against_the_autoregressive_model_at_matched_sizes():
    ar = size("autoregressive", 1000, 0.10)
    v = only(judge(*ar, *size("coupling_flow", 1050, 0.30)), "T21", "coupling_flow")
    assert v.verdict == AGREES and "mass between modes 0.1" in v.evidence
    assert only(judge(*ar, *size("coupling_flow", 1050, 0.02)), "T21", "coupling_flow").verdict == DISAGREES
    unmatched = only(judge(*ar, *size("coupling_flow", 2000, 0.30)), "T21", "coupling_flow")
    assert unmatched.verdict == INCONCLUSIVE and "no autoregressive model within 20%" in unmatched.evidence
    plateau = only(judge(*ar, *size("coupling_flow", 1050, 0.30, IMPROVING)), "T21", "coupling_flow")
    assert plateau.verdict == INCONCLUSIVE and "not at its plateau" in plateau.evidence


def image_history(bpd: list[float], fd: list[float]) -> list[dict]:
    """An image monitor's history: test bits/dim (SE 0.005) and FD_classifier (SE 10) at steps 100 ... 500."""
    return [{"step": (i + 1) * 100, "val_bpd": b, "val_bpd_se": 0.005, "val_fd_classifier": f,
             "val_fd_classifier_se": 10.0} for i, (b, f) in enumerate(zip(bpd, fd))]


def test_t21_on_images_reads_the_plateau_on_test_bits_per_dim():
    """A likelihood claim waits for the likelihood to settle: FD_classifier still falling by 200 over the last
    fifth (3 runs pooled: z = 24) does not hold the verdict when bits/dim have settled (|Δ| + 2 SE = 0.0082 ≤ the
    0.05 bits/dim margin), and bits/dim still falling by 0.2 (z = 49) does, whatever FD does."""
    fd_falling = [900.0, 700.0, 500.0, 300.0, 100.0]

    def bpd(family: str, value: float, curve: list[float]) -> list[CellRecord]:
        return [rec(family, s, parameters=1000, history=image_history(curve, fd_falling),
                    density={"test_bpd": value + d, "test_bpd_se": 0.001})
                for s, d in enumerate((-0.01, 0.0, 0.01))]

    settled, improving = [3.0, 2.0, 1.9, 1.9, 1.9], [5.0, 4.0, 3.0, 2.0, 1.8]
    v = only(judge(*bpd("autoregressive", 1.8, settled), *bpd("coupling_flow", 3.3, settled)), "T21", "coupling_flow")
    assert v.verdict == AGREES and "Δ +1.5" in v.evidence
    held = only(judge(*bpd("autoregressive", 1.8, improving), *bpd("coupling_flow", 3.3, settled)), "T21",
                "coupling_flow")
    assert held.verdict == INCONCLUSIVE and "still improving on d: test bits/dim -0.2 ± 0.0041" in held.evidence
    # the training claims keep reading sample quality: FD_classifier is still improving in these runs
    ok, why = tv.converged(bpd("autoregressive", 1.8, settled))
    assert not ok and why.startswith("still improving on d: FD_classifier -200")
    ok, why = tv.converged(bpd("autoregressive", 1.8, settled), tv.LIKELIHOOD_MONITOR_KEYS)
    assert ok and "|Δ| + 2 SE = 0.00816 ≤ margin 0.05" in why


def test_t21_over_sizes_needs_every_size_to_agree():
    ar = size("autoregressive", 1000, 0.10) + size("autoregressive", 4000, 0.05)
    both = size("coupling_flow", 1050, 0.30) + size("coupling_flow", 3900, 0.20)
    assert only(judge(*ar, *both), "T21", "coupling_flow").verdict == AGREES
    split = size("coupling_flow", 1050, 0.30) + size("coupling_flow", 3900, 0.01)
    assert only(judge(*ar, *split), "T21", "coupling_flow").verdict == INCONCLUSIVE


# --------------------------------------------------------------------------- T30
def test_t30_simple_estimators_against_the_best_family():
    refs = {"gaussian": ReferenceEstimate("gaussian", None, 5000, density=DensityResult(kl_nats=1.42,
                                                                                       kl_se_nats=0.005)),
            "kde": ReferenceEstimate("kde", 0.135, 5000, density=DensityResult(kl_nats=0.013, kl_se_nats=0.02)),
            "bad": ReferenceEstimate("kde", 0.1, 10, density=DensityResult(kl_nats=0.5))}
    recs = kl_recs("flow", [0.10, 0.11, 0.12])
    recs[0] = dataclasses.replace(recs[0], reference_estimates=refs)
    v = judge(*recs)
    assert only(v, "T30", "single Gaussian").verdict == AGREES  # 1.42 vs 0.11: fails on the multimodal mixture
    assert only(v, "T30", "KDE").verdict == DISAGREES  # 0.013 ± 0.02: as good as the flow in 2D
    assert only(v, "T30", "bad").verdict == INCONCLUSIVE  # no standard error


# --------------------------------------------------------------------------- impossible bits/dim
def test_bits_per_dim_below_zero_are_not_a_likelihood():
    # dequantized 8-bit pixels: a normalized density gives >= 0 bits/dim; MNIST's cpu profile at 20 ODE NFE gave
    # diffusion -0.46 ± 0.11, -0.91 ± 0.085, -1.40 ± 0.074 (3 seeds) beside an ELBO of 3.83, 3.67, 3.60
    assert sv.impossible_bpd(-0.46, 0.11) and not sv.impossible_bpd(-0.1, 0.06)  # -0.1 + 0.12 >= 0: the noise
    assert not sv.impossible_bpd(1.42, 0.07) and not sv.impossible_bpd(None, None)
    diffusion = rec("diffusion", density={"ode_test_bpd": -0.9073, "ode_test_bpd_se": 0.0849,
                                          "test_bpd_bound": 3.6732, "test_bpd_bound_se": 0.0359})
    assert sv.likelihood(diffusion) == (3.6732, 0.0359, "bits/dim", "bound")  # the ELBO, not the ODE
    valid = rec("diffusion", density={"ode_test_bpd": 1.2, "ode_test_bpd_se": 0.05, "test_bpd_bound": 3.6732})
    assert sv.likelihood(valid) == (1.2, 0.05, "bits/dim", "exact")
    # the report's ODE table marks the seed mean -0.923 ± 0.27 of the run's three seeds, and not a valid 1.2
    from bench.report import tables

    def ode(s: int, bpd: float) -> CellRecord:
        return rec("diffusion", s, density={"ode_test_nll_nats": bpd * 784 * math.log(2), "ode_test_bpd": bpd,
                                            "ode_test_bpd_se": 0.08, "ode_nfe": 20, "ode_ms_per_example": 65.0})
    [row] = tables.ode_rows([ode(s, b) for s, b in enumerate([-0.46, -0.91, -1.40])])
    assert row["ODE NLL (bits/dim)"] == "-0.923 ± 0.27 (below 0: not a likelihood, too few NFE)"
    assert tables.ode_rows([ode(0, 1.2)])[0]["ODE NLL (bits/dim)"] == "1.20 ± 0.080"
    assert row["solver error"] == "–"  # records from before the half-step check

    def checked(s: int, change_bpd: float) -> CellRecord:  # SE 0.08 bits/dim; Heun 50 steps against 25
        r = ode(s, 5.5)
        return dataclasses.replace(r, density=dataclasses.replace(
            r.density, dims=784, ode_test_nll_se_nats=0.08 * 784 * math.log(2), ode_steps=50, ode_method="heun",
            ode_check_steps=25, ode_step_change_nats=change_bpd * 784 * math.log(2), ode_step_change_se_nats=1.0))
    [row] = tables.ode_rows([checked(0, 0.74), checked(1, 0.06), checked(2, 0.03)])
    assert row["solver error"] == "≈ 0.247 (25 → 50 steps), not settled in 1 of 3 seeds"  # 0.74 / 3 > 0.08
    assert tables.ode_rows([checked(0, 0.06)])[0]["solver error"] == "≈ 0.0200 (25 → 50 steps)"
    assert "not settled" in tables.likelihood_text(checked(0, 0.74))


def test_t3_a_negative_ode_bits_per_dim_is_inconclusive():
    def score_bpd(s: int, bpd: float) -> CellRecord:
        return rec("score", s, density={"ode_test_nll_nats": bpd * 784 * math.log(2), "ode_test_bpd": bpd,
                                        "ode_test_bpd_se": 0.08, "ode_test_n": 200, "ode_nfe": 20,
                                        "ode_trace": "hutchinson", "ode_ms_per_example": 65.0})
    v = only(judge(*(score_bpd(s, b) for s, b in enumerate([-0.46, -0.91, -1.40]))), "T3")
    assert v.verdict == INCONCLUSIVE and "-0.923 ± 0.27" in v.evidence and "not a likelihood" in v.evidence
    ok = only(judge(*(score_bpd(s, b) for s, b in enumerate([1.42, 2.58, 0.67]))), "T3")
    assert ok.verdict == AGREES  # 20 NFE >= 10 x 1 (positive, if noisy: 1.56 ± 0.56 over seeds)


def step_checked(change: float, change_se: float = 0.001, method: str = "heun", nll_se: float = 0.05,
                 seed: int = 0) -> CellRecord:
    """A score record whose ODE (100 NFE, integrating to 1.002) moved its NLL by ``change`` nats from 25 to 50
    steps, on 200 points."""
    r = score(100)
    return dataclasses.replace(r, seed=seed, density=dataclasses.replace(
        r.density, ode_test_nll_se_nats=nll_se, ode_steps=50, ode_method=method, ode_check_steps=25,
        ode_check_n=200, ode_step_change_nats=change, ode_step_change_se_nats=change_se))


def test_the_ode_solver_error_is_richardsons_and_unsettled_beyond_the_nlls_se():
    # Heun (order 2): error left = |change| / 3; lower bound (|change| - 2 SE) / 3
    assert sv.ode_solver_error(step_checked(-0.30, 0.03).density) == pytest.approx((0.10, 0.08))
    assert sv.ode_solver_error(step_checked(0.30, 0.03, "euler").density) == pytest.approx((0.30, 0.24))  # order 1
    assert sv.ode_solver_error(score(100).density) is None  # a record from before the check
    odd = dataclasses.replace(step_checked(0.30, 0.0).density, ode_steps=25, ode_check_steps=12)
    assert sv.ode_solver_error(odd)[0] == pytest.approx(0.30 / ((25 / 12) ** 2 - 1))  # 0.0897: r = 25/12
    assert sv.ode_unsettled(step_checked(0.30, 0.03).density)  # 0.08 > SE 0.05
    assert not sv.ode_unsettled(step_checked(0.30, 0.03, nll_se=0.09).density)  # 0.08 < 0.09
    assert not sv.ode_unsettled(step_checked(0.21, 0.03).density)  # lower bound (0.21 - 0.06) / 3 = 0.05: not beyond
    assert not sv.ode_unsettled(score(100).density)


def test_t3_is_inconclusive_when_the_ode_has_not_settled_and_the_likelihood_drops_it():
    settled = only(judge(*(step_checked(0.03, seed=s) for s in range(3))), "T3")
    assert settled.verdict == AGREES and "solver error ≈ 0.01 nats at 50 heun steps" in settled.evidence
    v = only(judge(step_checked(0.03, seed=0), step_checked(0.9, 0.02, seed=1), step_checked(0.02, seed=2)), "T3")
    assert v.verdict == INCONCLUSIVE and "not settled at this step count in 1 of 3 seeds" in v.evidence
    assert "solver error ≈ 0.3 nats" in v.evidence and "moved +0.9 ± 0.02 from 25 steps on 200 points" in v.evidence
    # the ODE's KL is the record's likelihood only while settled; an unsettled one leaves the exact value (none) out
    def kl(change: float) -> CellRecord:
        r = step_checked(change)
        return dataclasses.replace(r, density=dataclasses.replace(r.density, ode_kl_nats=0.05, ode_kl_se_nats=0.05))
    assert sv.likelihood(kl(0.03))[:2] == (0.05, 0.05) and sv.likelihood(kl(0.9)) == (None, None, "", "")
