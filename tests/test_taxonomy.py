"""Stability, time-to-quality and the new verdicts on hand-made per-seed records (no training)."""

from __future__ import annotations

import math

import pytest

from bench.analysis import taxonomy, verdicts
from bench.store.schema import CellRecord, DensityResult, SamplerResult, TrainResult

STABLE = {"likelihood": "exact", "sampling": "fast", "training": "stable"}
FRAGILE = {"likelihood": "none", "sampling": "fast", "training": "fragile"}
EXCELLENT = {"likelihood": "bound", "sampling": "slow", "training": "stable", "sample_quality": "excellent"}
RESTRICTED = {"likelihood": "exact", "sampling": "fast", "training": "stable", "expressiveness": "restricted"}


def rec(family: str, seed: int, *, kl: float | None = None, mmd2: float | None = None, hit: int = 8,
        textbook: dict | None = None, status: str = "ok", reason: str | None = None, history=(),
        parameters: int = 1000, dataset: str = "8gaussians", steps: int | None = None) -> CellRecord:
    return CellRecord(suite="toy2d", run_id="r", dataset=dataset, family=family, seed=seed, status=status,
                      reason=reason, modality="vector", textbook=textbook,
                      density=DensityResult(kl_nats=kl),
                      samplers={"default": SamplerResult(mmd2=mmd2, modes_hit=hit, n_modes=8, modes_hit_real_q01=8)},
                      train=TrainResult(train_seconds=10.0, train_history=list(history), parameters=parameters,
                                        train_steps=steps))


def curve(values: list[float], key: str = "val_mmd2", step: int = 100, seconds: float = 1.0) -> list[dict]:
    return [{"step": (i + 1) * step, "seconds": (i + 1) * seconds, "loss": 0.0, key: v} for i, v in enumerate(values)]


# --------------------------------------------------------------------------- stability
def test_cv_and_fractions_from_synthetic_seeds():
    # KL 1, 2, 3 nats: mean 2, sample std 1, CV 0.5; one seed of three collapsed (7 of 8 modes, real sets hit 8)
    recs = [rec("flow", 0, kl=1.0), rec("flow", 1, kl=2.0, hit=7), rec("flow", 2, kl=3.0)]
    st = taxonomy.stability(recs)
    assert st.metric == "kl_nats" and st.values == [1.0, 2.0, 3.0]
    assert st.mean == 2.0 and st.std == pytest.approx(1.0) and st.cv == pytest.approx(0.5)
    assert st.diverged_fraction == 0.0 and st.collapsed_fraction == pytest.approx(1 / 3)


def test_divergence_counts_failed_nan_seeds_and_non_finite_quality():
    recs = [rec("gan", 0, mmd2=0.01), rec("gan", 1, mmd2=0.03),
            rec("gan", 2, status="failed", reason="DivergenceError: training loss 'd' became nan at step 7"),
            rec("gan", 3, mmd2=math.inf),
            rec("gan", 4, status="failed", reason="RuntimeError: out of memory")]
    st = taxonomy.stability(recs)
    assert st.metric == "mmd2"
    assert st.seeds == [0, 1, 2, 3] and st.n_failed_other == 1  # the OOM seed is not a divergence
    assert st.diverged_fraction == 0.5  # seeds 2 and 3 of 4
    assert st.values == [0.01, 0.03] and st.mean == pytest.approx(0.02)
    assert st.cv == pytest.approx(math.sqrt(2) * 0.01 / 0.02)  # std of (0.01, 0.03) is 0.01·√2


def test_stability_needs_one_cell():
    with pytest.raises(ValueError, match="one \\(dataset, family\\)"):
        taxonomy.stability([rec("gan", 0, mmd2=0.1), rec("vae", 0, mmd2=0.1)])


# --------------------------------------------------------------------------- time to quality
def test_time_to_quality_settles_within_tolerance_of_the_final_value():
    # MMD² 0.5 -> 0.1: tol = max(0.1 · 0.1, 0.002) = 0.01; 0.105 and later stay within 0.01 of 0.1
    h = curve([0.5, 0.3, 0.105, 0.095, 0.1, 0.1])
    t = taxonomy.time_to_quality(h)
    assert t.metric == "val_mmd2" and t.tolerance == pytest.approx(0.01)
    assert (t.steps, t.seconds) == (300, 3.0) and (t.total_steps, t.total_seconds) == (600, 6.0)
    assert t.gain_per_s == pytest.approx(0.4 / 6.0)
    assert t.converged  # settled at step 300 <= 0.8 · 600


def test_time_to_quality_prefers_kl_and_flags_a_run_still_improving():
    h = [{**a, "val_kl_nats": b["val_kl_nats"]} for a, b in zip(curve([9, 9, 9, 9, 9]),
                                                               curve([2.0, 1.5, 1.0, 0.5, 0.0], "val_kl_nats"))]
    t = taxonomy.time_to_quality(h)
    assert t.metric == "val_kl_nats" and t.tolerance == pytest.approx(0.02)  # the floor: 0.1 · 0 < 0.02 nats
    assert t.steps == 500 and not t.converged  # only the last checkpoint is within 0.02 nats of 0


def test_time_to_quality_needs_two_checkpoints():
    assert taxonomy.time_to_quality(curve([0.1])) is None
    assert taxonomy.time_to_quality([{"step": 1, "seconds": 0.0, "loss": 1.0}]) is None


def test_training_cost_averages_seeds():
    recs = [rec("vae", 0, kl=1.0, history=curve([0.5, 0.1, 0.1, 0.1])),
            rec("vae", 1, kl=1.0, history=curve([0.5, 0.3, 0.1, 0.1]))]
    c = taxonomy.training_cost(recs)
    assert c.n == 2 and c.steps == 250 and c.seconds == 2.5 and c.steps_std == pytest.approx(math.sqrt(5000))
    assert c.gain_per_s == pytest.approx(0.1) and c.converged_fraction == 1.0 and c.train_seconds == 10.0


# --------------------------------------------------------------------------- verdicts
def _quality_run(diffusion: list[float], gan: list[float], history=None) -> list[CellRecord]:
    h = history if history is not None else curve([0.5, 0.1, 0.1, 0.1, 0.1])
    return ([rec("diffusion", s, mmd2=m, textbook=EXCELLENT, history=h) for s, m in enumerate(diffusion)]
            + [rec("gan", s, mmd2=m, textbook=FRAGILE) for s, m in enumerate(gan)])


def test_sample_quality_rank_verdicts():
    # diffusion 0.010 ± SE 0.001, GAN 0.050 ± 0.001: separated by 0.04 > 2·√2·0.001
    v = verdicts.sample_quality("diffusion", _quality_run([0.009, 0.010, 0.011], [0.049, 0.050, 0.051]))
    assert v.verdict == verdicts.AGREES and v.value == 1
    v = verdicts.sample_quality("diffusion", _quality_run([0.049, 0.050, 0.051], [0.009, 0.010, 0.011]))
    assert v.verdict == verdicts.DISAGREES and v.value == 2 and "gan better" in v.measured
    # means 0.02 vs 0.03, SEs 0.01 each: 0.01 < 2·√2·0.01, the spreads overlap
    v = verdicts.sample_quality("diffusion", _quality_run([0.01, 0.02, 0.03], [0.02, 0.03, 0.04]))
    assert v.verdict == verdicts.INCONCLUSIVE and v.value == 1 and "within the seed spread" in v.measured
    # still improving at the end of training: inconclusive however clear the ranking
    v = verdicts.sample_quality("diffusion", _quality_run([0.009, 0.010, 0.011], [0.049, 0.050, 0.051],
                                                          history=curve([0.5, 0.4, 0.3, 0.2, 0.1])))
    assert v.verdict == verdicts.INCONCLUSIVE and "not converged" in v.measured
    assert verdicts.sample_quality("gan", _quality_run([0.01] * 3, [0.05] * 3)).verdict == verdicts.NO_CLAIM


def test_expressiveness_verdicts():
    ar = [rec("autoregressive", s, kl=v, textbook=STABLE, parameters=24_636) for s, v in enumerate([0.10, 0.11, 0.12])]
    worse = [rec("flow", s, kl=v, textbook=RESTRICTED, parameters=24_000) for s, v in enumerate([0.30, 0.31, 0.32])]
    v = verdicts.expressiveness(worse, ar)
    assert v.verdict == verdicts.AGREES and v.value == pytest.approx(0.2)  # 0.31 − 0.11 nats
    better = [rec("flow", s, kl=v, textbook=RESTRICTED, parameters=24_000) for s, v in enumerate([0.0, 0.01, 0.02])]
    assert verdicts.expressiveness(better, ar).verdict == verdicts.DISAGREES
    close = [rec("flow", s, kl=v, textbook=RESTRICTED, parameters=24_000) for s, v in enumerate([0.10, 0.12, 0.14])]
    assert verdicts.expressiveness(close, ar).verdict == verdicts.INCONCLUSIVE  # 0.01 < 2·√(0.0115² + 0.0058²)
    big = [rec("flow", s, kl=v, textbook=RESTRICTED, parameters=40_000) for s, v in enumerate([0.30, 0.31, 0.32])]
    v = verdicts.expressiveness(big, ar)
    assert v.verdict == verdicts.INCONCLUSIVE and "sizes not matched" in v.measured  # 40k / 24.6k − 1 > 0.2


def test_expressiveness_compares_equal_training_steps():
    # equal compute is equal steps at matched parameters: 1000 steps each is judged and said; a time budget that
    # fitted 899 steps for the flow and 1169 for the autoregressive model is not equal compute
    ar = [rec("autoregressive", s, kl=v, textbook=STABLE, parameters=24_636, steps=1000)
          for s, v in enumerate([0.10, 0.11, 0.12])]
    flow = [rec("flow", s, kl=v, textbook=RESTRICTED, parameters=24_580, steps=1000)
            for s, v in enumerate([0.30, 0.31, 0.32])]
    v = verdicts.expressiveness(flow, ar)
    assert v.verdict == verdicts.AGREES and "24,580 vs 24,636 parameters, 1000 training steps each" in v.measured
    timed = [rec("flow", s, kl=v, textbook=RESTRICTED, parameters=24_580, steps=899)
             for s, v in enumerate([0.30, 0.31, 0.32])]
    ar_timed = [rec("autoregressive", s, kl=v, textbook=STABLE, parameters=24_636, steps=1169)
                for s, v in enumerate([0.10, 0.11, 0.12])]
    v = verdicts.expressiveness(timed, ar_timed)
    assert v.verdict == verdicts.INCONCLUSIVE and v.measured == \
        "compute not matched (24,580 vs 24,636 parameters, 899 vs 1169 training steps)"


# --------------------------------------------------------------------------- the training monitor
def test_monitor_leaves_training_unchanged_and_marks_its_checkpoints():
    import torch

    from bench.execution.train import train
    from models.base import TrainConfig
    from tests.helpers import example_batch, tiny_model

    x = example_batch("vector", 256)
    cfg = TrainConfig(steps=20, batch_size=32, lr=1e-2)
    plain, watched = tiny_model("vae", "vector"), tiny_model("vae", "vector")
    calls = []

    def monitor(model):
        calls.append(model.training)
        torch.randn(3)  # consumes the global RNG: training must not notice
        return {"val_mmd2": float(len(calls))}

    a = train(plain, x, cfg, progress=False)
    b = train(watched, x, cfg, progress=False, monitor=monitor, monitor_points=5)
    for p, q in zip(plain.parameters(), watched.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    # 20 history entries (one per step), every 50 // 5 = 10th monitored (steps 1 and 11), then the final step 20
    assert [h["step"] for h in b.history if "val_mmd2" in h] == [1, 11, 20]
    assert calls == [False, False, False] and b.monitor_seconds > 0 and a.monitor_seconds == 0
    assert [h["step"] for h in a.history] == [h["step"] for h in b.history]
