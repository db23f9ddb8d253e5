"""Training verdicts (T14, T15, T20) on hand-made records, the mode metrics and their calibration, the convergence
guard, and learning-rate variants of a family as their own rows."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import models
from bench.analysis import judges, taxonomy
from bench.analysis import training_verdicts as tv
from bench.analysis.claims import AGREES, CLAIMS, DISAGREES, INCONCLUSIVE
from bench.data.toy2d import MIXTURES
from bench.evaluation import vector
from bench.evaluation.metrics import modes
from bench.store.schema import CellRecord, SamplerResult, TrainResult

TB = {f: dataclasses.asdict(models.textbook(f)) for f in ("gan", "autoregressive", "vae", "diffusion", "flow")}


def settled(value: float = 1.0, se: float = 0.1, gain: float = 0.0) -> list[dict]:
    """A monitored 2D history whose last step improves −log p_data by ``gain`` (SE ``se`` per checkpoint)."""
    mode_kl = [2.0, 0.5, 0.2, 0.2]
    return [{"step": 100 * (i + 1), "seconds": float(i + 1), "val_sample_nll_nats": v, "val_sample_nll_se_nats": se,
             "val_mode_kl_nats": k} for i, (v, k) in enumerate(zip([5.0, 2.0, value + gain, value], mode_kl))]


def rec(family: str, seed: int, *, fid: float = 0.2, kl: float = 0.01, hit: int = 8, q01: int = 8,
        dataset: str = "8gaussians", lr_scale: float = 1.0, status: str = "ok", reason: str | None = None,
        history: list[dict] | None = None, base: str | None = None) -> CellRecord:
    """A 2D record whose default sampler has fidelity ``fid`` (nats beyond real samples', which give 2.83) and mode
    KL ``kl`` beyond real (real mean 0.003), with ``hit`` of 8 modes (real sets reach ``q01``)."""
    m = SamplerResult(sample_nll_data_nats=2.83 + fid, sample_nll_data_real_nats=2.83, mode_kl_nats=0.003 + kl,
                      mode_kl_real_mean_nats=0.003, modes_hit=hit, n_modes=8, modes_hit_real_q01=q01,
                      nonfinite_fraction=0.0)
    base = base or family
    return CellRecord(suite="toy2d", run_id="r", dataset=dataset, family=family, seed=seed, status=status,
                      reason=reason, modality="vector", textbook=TB.get(base), registered_family=base,
                      lr_scale=lr_scale, samplers={"default": m} if status == "ok" else {},
                      train=TrainResult(train_history=settled() if history is None else history))


# --------------------------------------------------------------------------- the mode metrics
def test_mode_kl_and_modes_hit_closed_forms():
    w = np.full(8, 1 / 8)
    assert modes.mode_kl(w, w) == 0.0
    one = np.eye(8)[0]
    assert modes.mode_kl(one, w) == pytest.approx(math.log(8))  # collapse onto 1 of 8 modes: log(K/m)
    half = np.r_[np.full(4, 0.25), np.zeros(4)]
    assert modes.mode_kl(half, w) == pytest.approx(math.log(2))
    assert modes.modes_hit(half, w) == 4 and modes.modes_hit(one, w) == 1
    assert modes.modes_hit(np.r_[0.0625, np.full(7, 0.9375 / 7)], w) == 8  # exactly half its share still counts
    assert modes.coverage(np.array([0, 0, 1, 1]), np.array([0.5, 0.25, 0.25])) == {
        "mode_kl_nats": pytest.approx(0.5 * math.log(0.5 / 0.5) + 0.5 * math.log(0.5 / 0.25)), "modes_hit": 2,
        "n_modes": 3}


def test_calibration_quantiles_of_real_sets():
    # 100 sets hit all 4 modes, 2 sets only 3: 99% of sets reach 3 (the 1st percentile), not 4
    w = np.full(4, 0.25)
    full, short = np.tile(np.arange(4), (100, 1)), np.tile([0, 1, 2, 2], (2, 1))
    cal = modes.calibration(np.vstack([full, short]), w)
    assert cal["modes_hit_real_q01"] == 3 and cal["mode_calibration_draws"] == 102
    assert cal["mode_kl_real_mean_nats"] == pytest.approx(2 / 102 * (0.5 * math.log(2)))  # KL of [.25 .25 .5 0]


# 25gaussians's calibration (200 real sets of 1000 points, 25 components) takes ~2.5 s on 2 cores: slow tier
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "25gaussians" else n
                                  for n in MIXTURES])
def test_real_samples_of_the_same_n_do_not_count_as_collapsed(name):
    class DS:
        pass

    ds = DS()
    ds.name, ds.true = name, MIXTURES[name]()
    for seed in (11, 12, 13):  # fresh real sets, not the calibration's draws
        x, labels = ds.true.sample(1000, seed)
        m = SamplerResult(**vector.fidelity_coverage(ds.true, x, 0.5), **vector.real_calibration(ds, 1000, 0.5))
        r = CellRecord(suite="s", run_id="r", dataset=name, family="truth", seed=seed, status="ok",
                       samplers={"default": m})
        assert taxonomy.collapsed(r) is False
        assert m.mode_kl_nats <= m.mode_kl_real_q99_nats
        assert abs(m.sample_nll_data_nats - m.sample_nll_data_real_nats) < 4 * m.sample_nll_data_se_nats
    # the real sets of one mode only: collapsed, with mode KL log(1 / w_0)
    one = x[labels == 0]
    m = SamplerResult(**vector.fidelity_coverage(ds.true, one, 0.5), **vector.real_calibration(ds, len(one), 0.5))
    r = CellRecord(suite="s", run_id="r", dataset=name, family="gan", seed=0, status="ok", samplers={"default": m})
    assert taxonomy.collapsed(r) is True and m.modes_hit == 1
    assert m.mode_kl_nats == pytest.approx(-math.log(ds.true.weights[0]), rel=0.05)


def test_fidelity_at_a_component_centre_is_its_peak_density():
    mix = MIXTURES["8gaussians"]()
    x = np.repeat(mix.means[:1], 10, axis=0)
    sigma2 = 0.125  # (0.5 / sqrt 2)^2; the other components are > 4 sigma away and add < 1e-3 nats
    f = vector.fidelity_coverage(mix, x, 0.5)
    assert f["sample_nll_data_nats"] == pytest.approx(math.log(8) + math.log(2 * math.pi * sigma2), abs=1e-3)
    assert f["modes_hit"] == 1 and f["mode_kl_nats"] == pytest.approx(math.log(8))


# --------------------------------------------------------------------------- one run
def test_oscillation_index():
    h = lambda qs: [{"val_mode_kl_nats": q} for q in qs]  # noqa: E731
    assert tv.oscillation_index(h([2.0, 1.0, 0.5, 0.2])) == 0.0  # best at the end
    assert tv.oscillation_index(h([1.0, 0.2, 0.6, 0.2])) == pytest.approx(0.8 / 0.8)  # gives back all, regains it
    assert tv.oscillation_index(h([1.0, 0.5, 0.75])) == pytest.approx(0.25 / 0.5)
    assert tv.oscillation_index(h([0.1, 0.5, 0.7])) is None  # no gain: the first checkpoint is the best
    assert tv.oscillation_index(h([1.0, 0.5])) is None


def test_collapsed_in_every_seed_is_a_failure_in_every_seed():
    runs = tv.mark_failures([tv.run_of(rec("gan", s, hit=h)) for s, h in enumerate([1, 4, 1])])
    assert [r.failed for r in runs] == [True, True, True]
    assert all(r.reasons[0].startswith("collapsed (") for r in runs)


def test_a_run_fails_when_worse_than_the_best_learning_rate_by_the_margin():
    # medians of fidelity: lr 0.5 -> 3.0, lr 1 -> 0.2, lr 2 -> 0.4; best 0.2, margin max(1 nat, 0.1) = 1
    recs = ([rec("gan_lr0.5", s, fid=v, lr_scale=0.5, base="gan") for s, v in enumerate([2.0, 3.0, 4.0])]
            + [rec("gan", s, fid=v) for s, v in enumerate([0.1, 0.2, 1.3])]
            + [rec("gan_lr2", s, fid=0.4, lr_scale=2.0, base="gan") for s in range(3)])
    runs = tv.mark_failures([tv.run_of(r) for r in recs])
    assert [r.failed for r in runs] == [True, True, True, False, False, True, False, False, False]
    assert runs[5].reasons == ["fidelity +1.1 nats from the best setting's median (margin 1)"]
    # coverage: 0.1 nat floor, or 50% of a large best median
    runs = tv.mark_failures([tv.run_of(rec("vae", s, kl=v)) for s, v in enumerate([0.4, 0.5, 0.8])])
    assert [r.failed for r in runs] == [False, False, True]  # 0.8 − 0.5 > max(0.1, 0.25)


def test_divergences_count_and_other_failures_do_not():
    div = rec("gan", 3, status="failed", reason="DivergenceError: training loss 'd' became nan at step 7")
    oom = rec("gan", 4, status="failed", reason="RuntimeError: out of memory")
    groups = tv.family_runs({"8gaussians": [rec("gan", s) for s in range(3)]}, [div, oom])
    assert [(r.record.seed, r.failed) for r in groups["gan"]] == [(0, False), (1, False), (2, False), (3, True)]
    nan = rec("gan", 5)
    nan.samplers["default"].nonfinite_fraction = 0.6
    assert tv.diverged(nan) and not tv.diverged(rec("gan", 6))


# --------------------------------------------------------------------------- convergence
def test_converged_pools_the_last_monitor_step_over_runs():
    # two runs improve by 1.5 each, SE of each step sqrt(0.1² + 0.1²): z = 3.0 / sqrt(4 · 0.01) = 15 > 2, and
    # 1.5 nats > the failure rule's 1-nat floor
    ok, why = tv.converged([rec("gan", s, history=settled(gain=1.5)) for s in range(2)])
    assert not ok and "still improving" in why and "z = 15" in why
    # by 0.5 each: z = 5, significant but below the floor, which no verdict resolves; the equivalence test then
    # reads 0.5 + 2 · 0.1 = 0.7 ≤ margin 1: settled
    ok, why = tv.converged([rec("gan", s, history=settled(gain=0.5)) for s in range(2)])
    assert ok and "0.7 ≤ margin 1" in why
    ok, why = tv.converged([rec("gan", s, history=settled(gain=0.1)) for s in range(2)])  # z = 1 ≤ 2
    assert ok and why.startswith("settled")
    # got worse by 3 nats (|Δ| + 2 SE = 3 + 2 · 0.1 = 3.2 > the failure margin max(1 nat, 50% of 0.2)): the curve
    # is not shown to have settled within the verdicts' resolution
    ok, why = tv.converged([rec("gan", s, history=settled(gain=-3.0)) for s in range(2)])
    assert not ok and why.startswith("convergence unknown") and "3.2 > margin 1" in why
    ok, why = tv.converged([rec("gan", 0, history=[])])
    assert not ok and "no training monitor" in why and why.startswith("convergence unknown")
    img = [{"val_fd_classifier": v, "val_fd_classifier_se": 1.0} for v in (50.0, 30.0, 20.0)]
    ok, why = tv.converged([rec("gan", 0, history=img)])  # 10 / sqrt(2) = 7.1 > 2
    assert not ok and "FD_classifier" in why


def _curve(values: list[float], steps: list[int], se: float) -> list[dict]:
    return [{"step": t, "val_sample_nll_nats": v, "val_sample_nll_se_nats": se} for t, v in zip(steps, values)]


def test_converged_reads_the_last_fifth_of_training_not_the_last_pair_of_checkpoints():
    # checkpoints at 1, 321, 641, 961 and 1000: the last pair is 39 steps apart and flat, but from step 641 (the
    # last checkpoint at or before 0.8 · 1000) the quality improved by 3 nats in each of 3 runs:
    # z = 9 / sqrt(3 · 2 · 0.25²) = 14.7
    h = _curve([40.0, 10.0, 8.0, 5.0, 5.0], [1, 321, 641, 961, 1000], se=0.25)
    ok, why = tv.converged([rec("gan", s, history=h) for s in range(3)])
    assert not ok and why.startswith("still improving on 8gaussians") and "z = 15" in why


def test_converged_is_unknown_when_the_monitor_cannot_resolve_the_margin():
    # flat last fifth (Δ = 0) but SE 2 nats per checkpoint, one run: |Δ| + 2 · 2√2 = 5.66 > margin 1 nat
    h = _curve([40.0, 10.0, 5.0, 5.0], [1, 300, 600, 1000], se=2.0)
    ok, why = tv.converged([rec("vae", 0, history=h)])
    assert not ok and why.startswith("convergence unknown") and "5.66 > margin 1" in why
    # the same curve with SE 0.1: 0 + 2 · 0.141 = 0.283 ≤ 1: settled
    ok, why = tv.converged([rec("vae", 0, history=_curve([40.0, 10.0, 5.0, 5.0], [1, 300, 600, 1000], se=0.1))])
    assert ok and why.startswith("settled") and "0.283 ≤ margin 1" in why


def test_a_flat_curve_that_never_left_its_initialisation_is_not_settled():
    # first checkpoint 5.1, last 5.0, SE 0.1: z = 0.1 / 0.141 = 0.71 ≤ 2 from start to end
    h = _curve([5.1, 5.0, 5.05, 5.0], [1, 300, 600, 1000], se=0.1)
    ok, why = tv.converged([rec("energy", 0, history=h)])
    assert not ok and why.startswith("convergence unknown") and "not shown to have learned" in why


def test_converged_judges_each_dataset_and_names_the_one_still_improving():
    flat = _curve([40.0, 10.0, 5.0, 5.0], [1, 300, 600, 1000], se=0.1)
    moving = _curve([40.0, 10.0, 8.0, 5.0], [1, 300, 600, 1000], se=0.1)
    recs = [rec("vae", 0, history=flat), rec("vae", 0, history=moving, dataset="25gaussians")]
    ok, why = tv.converged(recs)
    assert not ok and why.startswith("still improving on 25gaussians") and "8gaussians" not in why


# --------------------------------------------------------------------------- the verdicts
def _suite(gan_failed: int, stable_failed: int, n: int = 15, **kw) -> dict[str, list[CellRecord]]:
    """n runs per family; the first ``*_failed`` collapse (2 of 8 modes)."""
    out = []
    for fam in ("gan", "autoregressive", "vae", "diffusion"):
        k = gan_failed if fam == "gan" else stable_failed
        out += [rec(fam, s, hit=2 if s < k else 8, **kw) for s in range(n)]
    return {"8gaussians": out}


def _by(verdicts, claim, scope_part=""):
    return [v for v in verdicts if v.claim == claim and scope_part in v.scope]


def test_t14_t15_t20_agree_when_the_gan_fails_and_collapses_more():
    # 10/15 vs 0/15: Fisher one-sided p = C(15,10)/C(30,10) = 1.0e-4, Holm ×3 = 3.0e-4
    assert tv.fisher_greater(10, 15, 0, 15) == pytest.approx(3003 / 30045015)
    v = tv.judge_training(_suite(10, 0))
    (t14,) = [x for x in _by(v, "T14") if "oscillation" not in x.scope]
    assert t14.verdict == AGREES and t14.family == "gan" and "gan 10/15 runs failed" in t14.evidence
    assert "p_Holm 0.0003" in t14.evidence
    assert {x.family: x.verdict for x in _by(v, "T15")} == {"autoregressive": AGREES, "vae": AGREES,
                                                            "diffusion": AGREES}
    (collapse,) = _by(v, "T20", "(collapse)")
    assert collapse.verdict == AGREES and "gan 10/15, diffusion 0/15" in collapse.evidence
    assert all(x.claim in CLAIMS for x in v)


def test_few_runs_are_inconclusive_and_the_reverse_disagrees():
    v = tv.judge_training(_suite(1, 0, n=3))  # 1/3 vs 0/3: p = 0.5
    assert {x.verdict for x in _by(v, "T14") + _by(v, "T15") + _by(v, "T20", "collapse")} == {INCONCLUSIVE}
    v = tv.judge_training(_suite(0, 10))  # the stable families fail, the GAN does not
    (t14,) = [x for x in _by(v, "T14") if "oscillation" not in x.scope]
    assert t14.verdict == DISAGREES and "reverse" in t14.evidence
    assert {x.verdict for x in _by(v, "T15")} == {DISAGREES}
    assert _by(v, "T20", "collapse")[0].verdict == DISAGREES


def test_not_converged_makes_the_verdicts_inconclusive():
    v = tv.judge_training(_suite(10, 0, history=settled(gain=1.5)))
    assert {x.verdict for x in v} == {INCONCLUSIVE}
    assert all("inconclusive: not converged" in x.evidence for x in v)


def test_oscillation_is_compared_by_mann_whitney():
    # mode KL index (0.8 + 0.8 + 0.8) / (2.0 − 0.2) = 1.33; −log p_data learned, then settled (the guard passes)
    swing = [{"val_mode_kl_nats": q, "val_sample_nll_nats": v, "val_sample_nll_se_nats": 0.1}
             for q, v in zip((2.0, 0.2, 1.0, 0.2, 1.0), (5.0, 2.0, 1.0, 1.0, 1.0))]
    recs = _suite(0, 0)["8gaussians"]
    recs = [rec("gan", r.seed, history=swing) if r.family == "gan" else r for r in recs]
    (osc,) = _by(tv.judge_training({"8gaussians": recs}), "T14", "oscillation")
    assert osc.verdict == AGREES and "gan oscillation median 1.3 (n = 15)" in osc.evidence


def test_the_judge_is_listed_and_gets_the_failed_cells():
    assert tv.judge_training in judges.JUDGES and tv.judge_training.takes_failed
    div = [rec("gan", 20 + s, status="failed", reason="DivergenceError: loss became nan") for s in range(10)]
    v = judges.verdicts_for(_suite(0, 0), div)
    (t14,) = [x for x in v if x.claim == "T14" and "oscillation" not in x.scope]
    assert t14.verdict == AGREES and "gan 10/25 runs failed" in t14.evidence


def test_families_without_a_training_claim_are_not_judged():
    recs = _suite(0, 0)["8gaussians"] + [rec("flow", s) for s in range(15)]
    v = tv.judge_training({"8gaussians": recs})
    assert not [x for x in v if x.family == "flow"]


# --------------------------------------------------------------------------- the texts' claims per family
def test_every_family_maps_its_textbook_claims_to_t_ids():
    for name in models.names():
        tb = models.textbook(name)
        assert tb is not None and tb.claims and set(tb.claims) <= set(CLAIMS), name
        assert (tb.training is None) == (not {"T14", "T15"} & set(tb.claims)), name
        if tb.sample_quality:
            assert "T19" in tb.claims
        if tb.expressiveness:
            assert "T21" in tb.claims
    for name in ("flow", "score", "energy"):  # no text makes a training claim about them
        assert models.textbook(name).training is None
    assert models.textbook("gan").training == "fragile" and "T14" in models.textbook("gan").claims
    with pytest.raises(ValueError, match="'T31' is not a claim id"):
        models.Textbook("exact", "fast", claims=("T31",))


# --------------------------------------------------------------------------- learning-rate variants
def test_a_variant_is_its_own_row_with_the_registered_family(tmp_path):
    from bench.config.suite import ConfigError, load_suite

    text = """
name: t
datasets: [8gaussians, {name: 25gaussians, families: {gan: {model: {latent: 4}}}}]
families:
  gan: {model: {latent: 8}, train: {steps: 10, lr: 1.0e-3}}
  gan_lr2: {family: gan, lr_scale: 2}
  vae_half: {family: vae, lr_scale: 0.5}
"""
    path = tmp_path / "s.yaml"
    path.write_text(text)
    s = load_suite(path)
    assert (s.families["gan_lr2"].family, s.families["gan_lr2"].train.lr) == ("gan", 2e-3)
    assert s.families["gan_lr2"].model.latent == 8 and s.family("25gaussians", "gan_lr2").model.latent == 4
    assert s.families["vae_half"].train.lr == pytest.approx(0.5 * models.get("vae", "vector").train_defaults["lr"])
    for bad, msg in (("x: {family: gann}", "families.x.family: unknown family 'gann'"),
                     ("x: {family: gan, lr_scale: 0}", "families.x.lr_scale: 0.0 is not allowed"),
                     ("x: {family: gan_lr2}", "families.x.family: 'gan_lr2' is itself a variant"),
                     ("x: {family: gan, lr_scale: 20000}", "families.x.lr_scale: 20000.0 is not allowed")):
        path.write_text(text.replace("vae_half: {family: vae, lr_scale: 0.5}", bad))
        with pytest.raises(ConfigError, match=msg.replace("(", r"\(")):
            load_suite(path)


@pytest.mark.slow
def test_a_variant_runs_resumes_and_is_reported(tiny_suite, tmp_path):
    import run_bench

    suite = tiny_suite({"gan": {"model": {"latent": 4, "hidden": 16}, "train": {"steps": 30, "lr": 1.0e-3}},
                        "gan_lr2": {"family": "gan", "lr_scale": 2}},
                       seeds=[0, 1], eval={"monitor_points": 3, "monitor_n": 100})
    args = [str(suite), "--results", str(tmp_path / "res"), "--no-progress", "--run-id", "r"]
    assert run_bench.main(args) == 0
    run = tmp_path / "res" / "tiny" / "r"
    rec = json.loads((run / "8gaussians__gan_lr2__s1" / "record.json").read_text())
    assert (rec["family"], rec["registered_family"], rec["lr_scale"]) == ("gan_lr2", "gan", 2.0)
    assert rec["config"]["train"]["lr"] == 2e-3 and rec["schema"] == "genbench.cell/5"
    sampler = next(iter(rec["samplers"].values()))
    assert sampler["modes_hit_real_q01"] >= 1 and sampler["mode_calibration_draws"] == modes.CALIBRATION_DRAWS
    assert any("val_mode_kl_nats" in h for h in rec["train"]["train_history"])
    plan = json.loads((run / "plan.json").read_text())
    assert {c["cell"] for c in plan["cells"]} >= {"8gaussians__gan_lr2__s0", "8gaussians__gan__s1"}
    seeds = (run / "seeds.csv").read_text()
    assert "gan_lr2" in seeds and "mode_kl_nats" in seeds
    report = (run / "report.md").read_text()
    assert "Training verdicts" in report and "gan_lr2" in report
    assert run_bench.main(args) == 0  # resumed: every cell done, nothing retrained
    again = json.loads((run / "8gaussians__gan_lr2__s1" / "record.json").read_text())
    assert again["finished_at"] == rec["finished_at"]


# --------------------------------------------------------------------------- images: classifier metrics and monitor
def test_the_image_monitor_reads_fd_and_classes_in_the_classifier_features(monkeypatch, tmp_path):
    from types import SimpleNamespace

    import torch

    from bench.config.suite import DataConfig, EvalConfig
    from bench.evaluation import image
    from bench.evaluation.metrics import classifier as clf
    from tests.helpers import example_batch, tiny_model

    torch.manual_seed(0)
    net = clf.LeNet().eval()  # untrained: the numbers are arbitrary, their form is not
    monkeypatch.setattr(clf, "load_or_train", lambda ds, cache: (net, {"name": "untrained"}))
    ds = SimpleNamespace(name="mnist", test=example_batch("image", 64, shape=(1, 28, 28)), shape=(1, 28, 28))
    ev = EvalConfig(n_samples=10, monitor_points=2, monitor_n=32)
    mon = image.training_monitor(ds, ev, torch.device("cpu"), None, DataConfig(root=str(tmp_path)))
    out = mon(tiny_model("gan", "image", data_shape=(1, 28, 28)))
    assert set(out) == {"val_fd_classifier", "val_fd_classifier_se", "val_mode_kl_nats", "val_modes_hit",
                        "val_mode_kl_real_nats"}
    assert out["val_fd_classifier"] > 0 and out["val_fd_classifier_se"] > 0 and 1 <= out["val_modes_hit"] <= 10
    assert out == mon(tiny_model("gan", "image", data_shape=(1, 28, 28)))  # one fixed seed per checkpoint
    off = EvalConfig(n_samples=10, monitor_points=2, monitor_n=32, fd_classifier=False)
    assert image.training_monitor(ds, off, torch.device("cpu"), None, DataConfig(root=str(tmp_path)))(
        tiny_model("gan", "image", data_shape=(1, 28, 28))) == {}  # no classifier, no density: nothing to read
    gan = tiny_model("gan", "image", data_shape=(1, 28, 28)).capabilities
    assert image.training_monitor(ds, off, torch.device("cpu"), None, DataConfig(root=str(tmp_path)), gan) is None
    none = EvalConfig(n_samples=10, monitor_points=0, monitor_n=32)
    assert image.training_monitor(ds, none, torch.device("cpu"), None, DataConfig(root=str(tmp_path))) is None


def test_the_image_monitor_reads_test_bits_per_dim_of_an_exact_density(tmp_path):
    """The likelihood part: bits/dim of the first monitor_n test images, the same number the model's own log_prob
    gives, with the standard error over those images; one fixed dequantization seed per checkpoint."""
    from types import SimpleNamespace

    import torch

    from bench.config.suite import DataConfig, EvalConfig
    from bench.evaluation import image
    from tests.helpers import example_batch, tiny_model

    torch.manual_seed(0)
    ds = SimpleNamespace(name="no-classifier", test=example_batch("image", 64, shape=(1, 28, 28)), shape=(1, 28, 28))
    ev = EvalConfig(n_samples=10, monitor_points=2, monitor_n=48, density_batch=20)
    mon = image.training_monitor(ds, ev, torch.device("cpu"), None, DataConfig(root=str(tmp_path)))
    for family in ("autoregressive", "flow"):
        model = tiny_model(family, "image", data_shape=(1, 28, 28)).eval()
        out = mon(model)
        assert set(out) == {"val_bpd", "val_bpd_se"}
        lp = model.log_prob(ds.test[:48], generator=torch.Generator().manual_seed(ev.seed)).double()
        d = 784 * math.log(2)
        assert out["val_bpd"] == pytest.approx(float(-lp.mean()) / d, rel=1e-9)
        assert out["val_bpd_se"] == pytest.approx(float(lp.std()) / math.sqrt(48) / d, rel=1e-9)
        assert math.isfinite(out["val_bpd"]) and out["val_bpd_se"] > 0
        assert mon(model) == out


def test_class_coverage_of_real_test_subsets_is_not_collapse():
    from bench.evaluation import image

    rng = np.random.default_rng(0)
    pred = rng.choice(10, size=10_000, p=np.r_[np.full(9, 0.1), 0.1])
    test = image.ClassifierTest(pred, modes.shares(pred, 10))
    real = image.class_coverage(pred[rng.integers(0, 10_000, 1000)], test, 0.5)
    r = CellRecord(suite="s", run_id="r", dataset="mnist", family="truth", seed=0, status="ok",
                   samplers={"default": SamplerResult(**real)})
    assert taxonomy.collapsed(r) is False and real["modes_hit"] == 10 and real["modes_hit_real_q01"] == 10
    gan = image.class_coverage(np.r_[np.zeros(900, int), np.arange(100) % 10], test, 0.5)  # 9 classes starved
    assert gan["modes_hit"] == 1 and gan["mode_kl_nats"] > 1.5


def test_the_new_metrics_are_declared_for_the_gate_and_records_keep_the_variant():
    from bench.store import schema

    assert schema.metric_info("sample_nll_data_nats").better == "lower"
    assert schema.metric_info("sample_nll_data_nats").se == "sample_nll_data_se_nats"
    assert schema.metric_info("mode_kl_nats").better == "lower" and schema.metric_info("mode_kl_nats").unit == "nats"
    assert schema.metric_info("modes_hit").better == "higher"
    assert schema.metric_info("modes_hit_real_q01").better is None  # calibration: a fact, not a score
    r = rec("gan_lr2", 0, lr_scale=2.0, base="gan")
    back = schema.record_from_dict(json.loads(json.dumps(schema.record_to_dict(r))))
    assert (back.family, back.base_family, back.lr_scale) == ("gan_lr2", "gan", 2.0)
    old = schema.record_to_dict(rec("gan", 0))
    del old["registered_family"], old["lr_scale"]
    old["schema"] = "genbench.cell/4"
    assert schema.record_from_dict(old).base_family == "gan"  # records before cell/5: the entry is the family


def test_the_oscillation_index_divides_by_at_least_the_noise_of_real_samples():
    h = [{"val_mode_kl_nats": q, "val_mode_kl_real_nats": 0.05} for q in (0.06, 0.05, 0.07, 0.05)]
    assert tv.oscillation_index(h) == pytest.approx(0.04 / 0.05)  # not 0.04 / 0.01 = 4
