"""Class-conditional families and classifier-free guidance: the contract over the registry, guidance against
closed forms, the class-conditional metrics and the tilted target on hand-made data, the suite's conditional
block, and the T24/T25 judges on hand-made records."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

import models
from bench.analysis import guidance
from bench.analysis.claims import AGREES, DISAGREES, INCONCLUSIVE
from bench.config.suite import ConfigError, load_suite
from bench.data.toy2d import MIXTURES
from bench.evaluation.metrics import conditional as cond
from bench.evaluation.metrics.tilted import tilted_class, tilted_measure
from bench.store.schema import CellRecord, SamplerResult
from models.autoregressive import MADE, guided_dmol_draw
from models.base import TrainConfig
from models.imaging import DiscretizedLogisticMixture
from models.samplers import DDIM, SGLD, AnnealedLangevin, Native, build_samplers, expand_entries, guided
from tests.helpers import DATA_SHAPES, example_batch, tiny_model, tiny_samplers

K = 3
CONDITIONAL = [(n, m) for n, m in models.entries() if models.get(n, m).capabilities.conditional]
GUIDED = [(n, m) for n, m in CONDITIONAL if models.get(n, m).capabilities.guidance]
UNGUIDED = [(n, m) for n, m in CONDITIONAL if not models.get(n, m).capabilities.guidance]


def tiered(entries):
    """The (family, modality) cases with the image ones in the slow tier (a U-Net or PixelCNN step takes
    seconds on a CPU); the 2D ones run in the fast tier."""
    return [pytest.param(n, m, marks=pytest.mark.slow) if m == "image" else (n, m) for n, m in entries]


def labels(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(K, (n,), generator=torch.Generator().manual_seed(seed))


def trained(name: str, modality: str, steps: int = 3) -> models.GenerativeModel:
    """A tiny conditional model moved a few steps from its initialisation (zero-initialised label paths, e.g.
    Glow's conditional priors, then depend on the label)."""
    m = tiny_model(name, modality, num_classes=K)
    x = example_batch(modality, 32)
    m.prepare(x)
    cfg = TrainConfig(lr=1e-2)
    opts = m.configure_optimizers(cfg)
    for _ in range(steps):
        m.train_step(x, opts, cfg, y=labels(32))
    return m.eval()


# --------------------------------------------------------------------------- the contract
def test_every_family_of_both_modalities_can_be_conditioned():
    assert {n for n, _ in CONDITIONAL} == set(models.names())
    assert {n for n, _ in GUIDED} == {"diffusion", "score", "autoregressive"}


@pytest.mark.parametrize("name,modality", tiered(CONDITIONAL))
def test_a_conditional_train_step_is_finite_and_reaches_every_parameter(name, modality):
    m = tiny_model(name, modality, num_classes=K)
    x = example_batch(modality, 64)
    m.prepare(x)
    cfg = TrainConfig(lr=1e-3)
    opts = m.configure_optimizers(cfg)
    logs = m.train_step(x, opts, cfg, y=labels(64))
    assert logs and all(math.isfinite(float(v)) for v in logs.values())
    for k, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), k
        assert p.grad.abs().sum() > 0, f"{k} has an all-zero gradient"


@pytest.mark.parametrize("name,modality", tiered(CONDITIONAL))
def test_conditional_sampling_takes_labels_and_they_change_the_samples(name, modality):
    m = trained(name, modality)
    for sampler in tiny_samplers(name, modality).values():
        draw = lambda y, s=sampler: m.sample(6, generator=torch.Generator().manual_seed(0), sampler=s, y=y)  # noqa: E731
        a, b = draw(torch.zeros(6, dtype=torch.long)), draw(torch.full((6,), 2, dtype=torch.long))
        assert a.shape == b.shape == (6, *DATA_SHAPES[modality])
        assert a.dtype == (torch.uint8 if modality == "image" else torch.float32)
        assert not torch.equal(a, b), "the label does not reach the samples"
        assert torch.equal(a, draw(torch.zeros(6, dtype=torch.long)))  # the generator decides the rest
        x = m.sample(5, generator=torch.Generator().manual_seed(1), sampler=sampler)  # y=None: labels from the prior
        assert x.shape == (5, *DATA_SHAPES[modality])


@pytest.mark.parametrize("name,modality", tiered(CONDITIONAL))
def test_bad_labels_are_refused_with_one_clear_error(name, modality):
    m = trained(name, modality, steps=1)
    bad = {"out of range": torch.tensor([0, K]), "negative": torch.tensor([-1, 0]),
           "float": torch.tensor([0.0, 1.0]), "int32": torch.tensor([0, 1], dtype=torch.int32),
           "shape (n, 1)": torch.zeros(2, 1, dtype=torch.long), "wrong length": torch.zeros(3, dtype=torch.long)}
    for what, y in bad.items():
        with pytest.raises(ValueError, match="label") as e:
            m.sample(2, sampler=next(iter(tiny_samplers(name, modality).values())), y=y)
        assert "\n" not in str(e.value), what
    unconditional = tiny_model(name, modality)
    with pytest.raises(ValueError, match="built unconditional"):
        unconditional.sample(2, y=torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("name,modality", tiered(CONDITIONAL))
def test_conditional_densities_are_per_label_and_marginal(name, modality):
    """log p(x|y) for each label, and y=None the marginal log sum_c pi_c p(x|c) (a lower bound stays one)."""
    m = trained(name, modality)
    x = example_batch(modality, 8)
    caps = m.capabilities
    with torch.no_grad():
        if caps.log_prob:
            gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731 (Glow dequantizes with noise)
            per = torch.stack([m.log_prob(x, generator=gen(), y=torch.full((8,), c)) for c in range(K)])
            marginal = torch.logsumexp(per + m.label_prior.log()[:, None], 0)
            torch.testing.assert_close(m.log_prob(x, generator=gen()), marginal, rtol=1e-5, atol=1e-4)
        if caps.bound:
            b = m.log_prob_bounds(x, generator=torch.Generator().manual_seed(0), y=labels(8))
            assert all(v.shape == (8,) and torch.isfinite(v).all() for v in b.values())
            assert all(v.shape == (8,) for v in m.log_prob_bounds(x, generator=torch.Generator()).values())
        if caps.energy:
            per = torch.stack([m.energy(x, y=torch.full((8,), c)) for c in range(K)])
            torch.testing.assert_close(m.energy(x), -torch.logsumexp(-per, 0))  # JEM's marginal energy


@pytest.mark.parametrize("name,modality", tiered(CONDITIONAL))
def test_a_conditional_checkpoint_round_trips(name, modality, tmp_path):
    m = trained(name, modality)
    m.set_label_prior(torch.tensor([0, 0, 1, 2]))
    models.save_checkpoint(m, tmp_path / "model.pt")
    loaded = models.load_checkpoint(tmp_path / "model.pt")
    assert loaded.num_classes == K and torch.equal(loaded.label_prior, torch.tensor([0.5, 0.25, 0.25]))
    y = labels(5)
    for sampler in tiny_samplers(name, modality).values():
        a = m.sample(5, generator=torch.Generator().manual_seed(3), sampler=sampler, y=y)
        b = loaded.sample(5, generator=torch.Generator().manual_seed(3), sampler=sampler, y=y)
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name,modality", tiered(UNGUIDED))
def test_a_family_without_guidance_refuses_a_guided_sampler(name, modality):
    m = trained(name, modality, steps=1)
    kind = next(iter(tiny_samplers(name, modality).values())).kind
    if kind == "sgld":  # the EBM's sampler has no guidance setting at all
        with pytest.raises(ValueError, match="unknown setting.*guidance"):
            build_samplers({"default": {"kind": "sgld", "guidance": 2}})
        return
    with pytest.raises(ValueError, match=rf"guidance: 2 is not allowed \(family '{name}' has no classifier-free "
                                         "guidance"):
        m.sample(2, sampler=Native(guidance=2.0), y=torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("name,modality", tiered(GUIDED))
def test_guided_sampling_runs_and_doubles_the_nfe(name, modality):
    m = trained(name, modality)
    for sampler in tiny_samplers(name, modality).values():
        g = dataclasses.replace(sampler, guidance=2.0)
        assert g.nfe(m) == 2 * sampler.nfe(m)
        x = m.sample(4, generator=torch.Generator().manual_seed(0), sampler=g, y=labels(4))
        assert x.shape == (4, *DATA_SHAPES[modality])
        if modality == "vector":
            assert torch.isfinite(x).all()
    unconditional = tiny_model(name, modality)
    with pytest.raises(ValueError, match="needs a class-conditional model"):
        unconditional.sample(2, sampler=dataclasses.replace(next(iter(tiny_samplers(name, modality).values())),
                                                            guidance=1.0))


def test_training_needs_labels_for_a_conditional_model_and_ignores_them_otherwise():
    from bench.execution.train import train

    x = example_batch("vector", 256)
    cfg = TrainConfig(steps=5, batch_size=32)
    with pytest.raises(ValueError, match="needs the labels y_train"):
        train(tiny_model("flow", "vector", num_classes=K), x, cfg, progress=False)
    a, b = tiny_model("flow", "vector"), tiny_model("flow", "vector")
    train(a, x, cfg, progress=False)
    train(b, x, cfg, progress=False, y_train=labels(256))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    c = tiny_model("flow", "vector", num_classes=K)
    train(c, x, cfg, progress=False, y_train=torch.tensor([0] * 128 + [2] * 128))
    assert torch.equal(c.label_prior, torch.tensor([0.5, 0.0, 0.5]))


# --------------------------------------------------------------------------- guidance against closed forms
def test_guided_epsilon_is_the_classifier_free_combination():
    """With an epsilon network that returns 1 for a label and 0 for the null label, the guided epsilon is
    (1 + w) * 1 - w * 0 = 1 + w, and both passes are one batch."""
    m = tiny_model("diffusion", "vector", num_classes=K)
    calls = []

    class Eps(torch.nn.Module):
        def forward(self, x, t, y=None):
            calls.append(len(x))
            return (y != K).float()[:, None].expand_as(x)

    m.eps_net = Eps()
    x, t, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), labels(4)
    assert torch.equal(m.eps_at(x, t, y, guidance=3.0), torch.full((4, 2), 4.0)) and calls == [8]
    assert torch.equal(m.eps_at(x, t, y), torch.ones(4, 2))
    assert torch.equal(guided(torch.tensor(2.0), torch.tensor(5.0), 0.5), torch.tensor(0.5))  # 1.5*2 - 0.5*5


def test_guidance_sweeps_are_named_and_counted():
    entries = expand_entries({"ddim": {"steps": 50, "guidance": [0, 0.5, 2]}})
    assert list(entries) == ["ddim_w0", "ddim_w0.5", "ddim_w2"]
    assert entries["ddim_w0.5"] == {"kind": "ddim", "steps": 50, "guidance": 0.5}
    m = tiny_model("score", "vector")
    assert AnnealedLangevin(steps_per_sigma=2, guidance=1).nfe(m) == 2 * (3 * 2 + 1)
    assert DDIM(steps=5, guidance=1).sweep == "DDIM (η = 0, w = 1)" and DDIM(steps=5).sweep == "DDIM (η = 0)"
    assert SGLD().settings() == {"kind": "sgld", "steps": 500, "step_start": None, "step_end": None}


def test_the_autoregressive_guided_conditional_is_the_tilted_gaussian():
    """For one-component conditionals N(mu_c, s^2) and N(mu_u, s^2), p_c^(1+w) p_u^(-w) ∝ N(mu_c + w (mu_c - mu_u),
    s^2): the grid sampler's draws have that mean and standard deviation."""
    m = MADE(dataclasses.replace(MADE.Config(), hidden=8, components=1, num_classes=2), (2,))
    n, w, s = 8_000, 1.5, 0.3
    cond = (torch.zeros(n, 1), torch.full((n, 1), 1.0), torch.full((n, 1), math.log(s)))
    uncond = (torch.zeros(n, 1), torch.full((n, 1), 0.2), torch.full((n, 1), math.log(s)))
    never = torch.full((n,), -math.inf)  # P(c | x_<d) = 0: no floor on p_u
    x, _ = m._tilted_draw(cond, uncond, w, torch.Generator().manual_seed(0), never)
    assert abs(float(x.mean()) - (1.0 + w * 0.8)) < 4 * s / math.sqrt(n)
    assert abs(float(x.std()) - s) < 0.01


def test_the_autoregressive_guided_conditional_floors_the_unconditional_density():
    """p_c = N(0, 1) and p_u = N(0, 0.5^2): p_c^2 / p_u ∝ exp(+x^2/2) has no normalizer, and the grid puts its draws
    at the span's ends (±8); with p_u floored at P(c) p_c = p_c / 2 the tilt is p_c^2 / max(p_u, p_c / 2) <= 2 p_c,
    so the draws stay where p_c is (|x| > 4 has p_c-mass 6e-5)."""
    m = MADE(dataclasses.replace(MADE.Config(), hidden=8, components=1, num_classes=2), (2,))
    n = 5_000
    cond = (torch.zeros(n, 1), torch.zeros(n, 1), torch.zeros(n, 1))
    uncond = (torch.zeros(n, 1), torch.zeros(n, 1), torch.full((n, 1), math.log(0.5)))
    x, ratio = m._tilted_draw(cond, uncond, 1.0, torch.Generator().manual_seed(0), torch.full((n,), math.log(0.5)))
    assert float((x.abs() > 4).double().mean()) < 1e-3
    assert float(ratio.max()) <= math.log(2) + 1e-5  # the posterior update keeps P(c | x_<=d) <= 1
    unfloored, _ = m._tilted_draw(cond, uncond, 1.0, torch.Generator().manual_seed(0), torch.full((n,), -math.inf))
    assert float((unfloored.abs() > 7).double().mean()) > 0.9


def test_the_pixelcnn_guided_softmax_draw_follows_the_tilted_categorical():
    m = tiny_model("autoregressive", "image", data_shape=(1, 8, 8), num_classes=K)
    assert m.output == "softmax"
    p_c = torch.full((256,), 1e-9)
    p_u = torch.full((256,), 1e-9)
    p_c[[10, 20, 30]] = torch.tensor([0.5, 0.3, 0.2])
    p_u[[10, 20, 30]] = torch.tensor([0.2, 0.3, 0.5])
    w, n = 1.0, 20_000
    target = p_c[[10, 20, 30]] ** 2 / p_u[[10, 20, 30]]
    target = target / target.sum()  # (0.25/0.2, 0.09/0.3, 0.04/0.5) normalized
    x = m._draw_guided(p_c.log().expand(n, 256), p_u.log().expand(n, 256), w, torch.Generator().manual_seed(0))
    freq = torch.stack([(x[:, 0] == v).double().mean() for v in (10, 20, 30)])
    assert torch.allclose(freq, target.double(), atol=4 * 0.5 / math.sqrt(n))


@pytest.mark.slow
def test_the_dmol_guided_draw_with_equal_mixtures_draws_the_mixture_itself():
    """p^(1+w) p^(-w) = p: guiding a discretized logistic mixture with itself leaves it unchanged, whatever w, so
    its channel draws match the mixture's own sampler in distribution (channels coupled as in PixelCNN++)."""
    torch.manual_seed(0)
    scale = torch.tensor([1.0] * 2 + [0.5] * 6 + [-1.5] * 6 + [1.0] * 6)  # logits, means, log-scales, coupling
    params = torch.randn(1, 20, 1, 1) * scale[None, :, None, None]
    n = 30_000
    mix = DiscretizedLogisticMixture(params.expand(n, -1, -1, -1), 3, 2)
    a = guided_dmol_draw(mix, mix, 2.0, torch.Generator().manual_seed(1)).double()
    b = mix.sample(torch.Generator().manual_seed(2))[:, :, 0, 0].double()
    se = torch.sqrt((a.var(0) + b.var(0)) / n)
    assert ((a.mean(0) - b.mean(0)).abs() < 4 * se).all(), (a.mean(0), b.mean(0))


# --------------------------------------------------------------------------- metrics on hand-made data
def test_class_conditional_metrics_see_swapped_labels_that_unconditional_ones_miss():
    rng = np.random.default_rng(0)
    real = np.concatenate([rng.normal(0, 1, (200, 2)), rng.normal(10, 1, (200, 2))])
    y = np.repeat([0, 1], 200)
    same, _ = cond.conditional_prdc(real, y, real, y)
    assert same == {"cond_precision": 1.0, "cond_recall": 1.0, "cond_density": 1.0, "cond_coverage": 1.0}
    swapped, _ = cond.conditional_prdc(real, y, real, 1 - y)
    assert swapped["cond_precision"] == 0.0 and swapped["cond_recall"] == 0.0
    half = np.where(y[:, None] == 0, real * 0.5, 10 + (real - 10) * 0.5)  # each class shrunk about its centre
    assert cond.class_diversity(real, y, half, y) == pytest.approx(0.5)
    assert cond.agreement([0, 1, 1, 1], [0, 1, 0, 1]) == (0.75, math.sqrt(0.75 * 0.25 / 4))


@pytest.mark.parametrize("w", [0.0, 1.0, 4.0])
def test_the_tilted_target_of_separated_components_is_the_component(w):
    """The 25 Gaussians are 40 standard deviations apart: near component c, P(c|x) = 1 and p_w(x|c) = p(x|c)
    (1/pi_c)^w / Z_w, so log Z_w = w log 25 and H(p_w) is the Gaussian's, 0.5 log((2 pi e)^2 det Sigma). (The 8
    Gaussians, 6 apart, already give log Z_1 = log 8 - 0.0034: the overlap tilts them.)"""
    mix = MIXTURES["25gaussians"]()
    t = tilted_class(mix, 3, w)
    assert t.log_z == pytest.approx(w * math.log(25), abs=1e-6)
    assert t.entropy == pytest.approx(0.5 * math.log((2 * math.pi * math.e) ** 2 * np.linalg.det(mix.covs[3])),
                                      abs=1e-6)
    assert t.error < 1e-8


@pytest.mark.slow
def test_samples_of_p_x_given_c_are_typical_of_the_untilted_target():
    mix = MIXTURES["imbalanced"]()
    y = np.random.default_rng(0).integers(0, mix.k, 4000)
    out = tilted_measure(mix, mix.sample_given(y, 1), y, 0.0)
    assert abs(out["tilted_gap_nats"]) < 3 * out["tilted_ce_se_nats"], out
    # samples collapsed onto the means of separated components: -log N(mu; mu, s^2 I) = log(2 pi s^2), one nat
    # below the entropy log(2 pi e s^2), at any w (p_w is the component itself there)
    sep = MIXTURES["25gaussians"]()
    for w in (0.0, 2.0):
        collapsed = tilted_measure(sep, sep.means[y % 25], y % 25, w)
        assert collapsed["tilted_gap_nats"] == pytest.approx(-1.0, abs=1e-6)
        assert collapsed["tilted_gap_abs_nats"] == pytest.approx(1.0, abs=1e-6)  # the gate's reading: 1 nat off


def test_the_gates_readings_of_the_unsigned_conditional_metrics():
    """The diversity ratio and the tilted gap have no better direction; the gate reads their distance from the
    ideal: |ln r| (twice and half as spread both ln 2) and |gap| (see the collapsed samples above: 1 nat)."""
    from bench.evaluation.metrics.conditional import diversity_error
    from bench.store import schema

    assert diversity_error(1.0) == 0.0
    assert diversity_error(2.0) == diversity_error(0.5) == pytest.approx(math.log(2))
    assert diversity_error(None) is None and diversity_error(0.0) is None
    assert schema.metric_info("class_diversity_error").better == "lower"
    assert schema.metric_info("tilted_gap_abs_nats").better == "lower"
    assert schema.metric_info("tilted_gap_abs_nats").se == "tilted_ce_se_nats"
    assert schema.metric_info("class_diversity").better is None and schema.metric_info("tilted_gap_nats").better is None


# --------------------------------------------------------------------------- the suite's conditional block
def _override(*sets):
    return load_suite("suites/toy2d.yaml", profile="conditional-smoke", overrides=list(sets))


def test_the_conditional_block_sets_each_datasets_classes_and_sweeps_the_guided_samplers():
    s = _override()
    assert {ds: s.family(ds, "vae").model.num_classes for ds in s.datasets} == {"8gaussians": 8, "25gaussians": 25,
                                                                                 "imbalanced": 5}
    assert list(s.family("8gaussians", "diffusion").samplers) == ["ddim_w0", "ddim_w2"]
    assert list(s.family("8gaussians", "vae").samplers) == ["default", "decoder_mean"]  # no guidance: no sweep
    only = _override("conditional.families=[score]")
    assert list(only.families) == ["score"]
    plain = load_suite("suites/toy2d.yaml", profile="smoke")
    assert plain.conditional is None and plain.family("8gaussians", "diffusion").model.num_classes is None


@pytest.mark.parametrize("override,message", [
    ("conditional.families=[nope]", "conditional.families[0]: 'nope' is not a family of the suite"),
    ("families.vae.samplers.default.guidance=2", "families.vae.samplers.default.guidance: 2 is not allowed (family "
                                                 "'vae' has no classifier-free guidance"),
    ("conditional.guidance=[1, 1]", "conditional.guidance[1]: 1.0 is not allowed (listed twice)"),
])
def test_a_bad_conditional_block_is_one_line_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=None) as e:
        _override(override)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_guidance_on_an_unconditional_suite_and_a_wrong_class_count_are_refused():
    with pytest.raises(ConfigError, match="guidance: 2 is not allowed .classifier-free guidance needs a "
                                          "class-conditional model"):
        load_suite("suites/toy2d.yaml", profile="smoke", overrides=["families.diffusion.samplers.ddim.guidance=2",
                                                                    "families.diffusion.samplers.ddim.steps=10"])
    with pytest.raises(ConfigError, match=r"families.flow.model.num_classes: 3 is not allowed \(dataset '8gaussians' "
                                          "has 8 classes"):
        load_suite("suites/toy2d.yaml", profile="smoke", overrides=["families.flow.model.num_classes=3"])


def test_2d_labels_are_the_component_that_drew_each_point():
    from bench.config.suite import DataConfig
    from bench.data import load

    ds = load("imbalanced", DataConfig(n_train=20_000, n_val=10, n_test=1000))
    freq = np.bincount(ds.train_labels.numpy(), minlength=5) / 20_000
    assert np.abs(freq - ds.true.weights).max() < 4 * math.sqrt(0.25 / 20_000)
    post = ds.true.component_log_prob(ds.test.double().numpy()).argmax(1)
    assert (post == ds.test_labels.numpy()).mean() > 0.9


# --------------------------------------------------------------------------- the judges on hand-made records
def _record(seed: int, points: dict[float, dict[str, float]], family: str = "diffusion") -> CellRecord:
    samplers = {f"ddim_w{w:g}": SamplerResult(sampler_kwargs={"kind": "ddim", "steps": 50, "guidance": w},
                                              guidance=w, sample_nfe=50 * (2 if w else 1), **m)
                for w, m in points.items()}
    return CellRecord(suite="s", run_id="r", dataset="8gaussians", family=family, seed=seed, status="ok",
                      samplers=samplers)


def _sweep(trend_p: float, trend_r: float, seeds: int = 3, noise: float = 0.01) -> list[CellRecord]:
    rng = np.random.default_rng(0)
    recs = []
    for s in range(seeds):
        pts = {w: {"cond_precision": 0.5 + trend_p * w + noise * rng.standard_normal(),
                   "cond_recall": 0.8 + trend_r * w + noise * rng.standard_normal(),
                   "label_agreement": 0.95, "label_agreement_real": 0.99, "cond_coverage": 0.7}
               for w in (0.0, 0.5, 1.0, 2.0)}
        recs.append(_record(s, pts))
    return recs


@pytest.mark.parametrize("trend_p,trend_r,seeds,verdict", [
    (0.1, -0.1, 3, AGREES),          # fidelity up, diversity down, far beyond the seed spread
    (-0.1, -0.1, 3, DISAGREES),      # fidelity falls with w
    (0.1, 0.1, 3, DISAGREES),        # diversity rises with w
    (0.0, 0.0, 3, INCONCLUSIVE),     # flat: noise only
    (0.1, -0.1, 1, INCONCLUSIVE),    # one seed: no standard error
])
def test_t25_on_hand_made_sweeps(trend_p, trend_r, seeds, verdict):
    (v,) = guidance.judge_t25({"8gaussians": _sweep(trend_p, trend_r, seeds)})
    assert v.claim == "T25" and v.verdict == verdict, v.evidence
    assert v.scope == "8gaussians: diffusion ddim (steps 50)" and "4 scales" in v.evidence


def test_t24_and_t25_do_not_judge_samples_off_the_data_manifold():
    """An untrained model (MNIST's conditional U-Net after 141 steps: precision 0, label agreement 0.07, chance
    0.1) says nothing about conditioning: T24 is inconclusive below precision 0.1 and disagrees above it; T25 of
    a sweep whose unguided samples have precision 0 is inconclusive whatever its trends."""
    def recs(precision: float) -> list[CellRecord]:
        return [_record(s, {0.0: {"label_agreement": 0.07 + 0.01 * (s - 1), "label_agreement_real": 0.99,
                                  "precision": precision}}) for s in range(3)]

    off = guidance.t24("mnist", "diffusion", recs(0.0))
    assert off.verdict == INCONCLUSIVE and "off the data manifold (precision 0 < 0.1 over 3 seed(s))" in off.evidence
    assert guidance.t24("mnist", "diffusion", recs(0.5)).verdict == DISAGREES
    sweep = _sweep(0.1, -0.1, 3)
    assert guidance.judge_t25({"8gaussians": sweep})[0].verdict == AGREES
    for r in sweep:
        r.samplers["ddim_w0"].precision = 0.02
    (v,) = guidance.judge_t25({"8gaussians": sweep})
    assert v.verdict == INCONCLUSIVE and "off the data manifold (precision 0.02 < 0.1 over 3 seed(s))" in v.evidence


def test_t24_over_all_families_needs_every_registered_family():
    """"Every family can be conditioned": the overall verdict agrees only when every registered 2D family with a
    textbook entry ran and agreed; the three guided families alone (the 2D conditional profile) are inconclusive
    there, naming the others; one disagreeing family makes it disagree whatever ran."""
    import dataclasses

    import models

    def run(family: str, agreement: float) -> list[CellRecord]:
        return [dataclasses.replace(_record(s, {0.0: {"label_agreement": agreement + 0.01 * (s - 1),
                                                      "label_agreement_real": 1.0}}, family), modality="vector")
                for s in range(3)]

    every = [f for f in models.names("vector") if models.textbook(f) is not None]
    assert {"autoregressive", "vae", "gan", "flow", "diffusion", "energy", "score"} <= set(every)
    overall = [v for v in guidance.judge_t24({"d": [r for f in every for r in run(f, 0.97)]}) if v.family is None]
    assert [v.verdict for v in overall] == [AGREES] and "not run" not in overall[0].evidence
    guided = [r for f in ("autoregressive", "diffusion", "score") for r in run(f, 0.97)]
    (v,) = [v for v in guidance.judge_t24({"d": guided}) if v.family is None]
    assert v.verdict == INCONCLUSIVE and "3 of 3 families agree" in v.evidence and "not run: " in v.evidence
    assert "gan" in v.evidence.split("not run: ")[1] and "diffusion" not in v.evidence.split("not run: ")[1]
    (bad,) = [v for v in guidance.judge_t24({"d": guided + run("gan", 0.2)}) if v.family is None]
    assert bad.verdict == DISAGREES


@pytest.mark.parametrize("agreement,verdict", [(0.97, AGREES), (0.5, DISAGREES), (0.9, INCONCLUSIVE)])
def test_t24_calibrates_label_agreement_against_the_real_points(agreement, verdict):
    """Seeds at a - 0.03, a, a + 0.03: SE 0.03 / sqrt(3) = 0.0173; the threshold 0.9 x 0.99 = 0.891 is met beyond
    2 SE at a = 0.97, missed beyond it at 0.5, and within it at 0.9."""
    recs = [_record(s, {0.0: {"label_agreement": agreement + 0.03 * (s - 1), "label_agreement_real": 0.99,
                              "label_agreement_se": 0.01}}) for s in range(3)]
    v = guidance.t24("8gaussians", "diffusion", recs)
    assert v.verdict == verdict and "0.891" in v.evidence, v.evidence  # 0.9 x 0.99
    one = guidance.t24("8gaussians", "diffusion", recs[:1])  # one seed: its binomial SE is not the seed spread
    assert one.verdict == INCONCLUSIVE and "fewer than 2 seeds" in one.evidence, one.evidence


def test_image_conditional_metrics_compare_each_class_with_its_reference_images():
    """On hand-made 'features': a class's samples equal to its reference images give precision = recall = 1;
    without the dataset's classifier (``eval.fd_classifier: false``) the agreement is recorded as unavailable, with
    the reason."""
    from types import SimpleNamespace

    from bench.config.suite import EvalConfig
    from bench.evaluation.image import conditional_image_metrics

    rng = np.random.default_rng(0)
    real = np.concatenate([rng.normal(0, 1, (60, 8)), rng.normal(6, 1, (60, 8))])
    ref_y = torch.tensor([0] * 60 + [1] * 60)
    ds = SimpleNamespace(name="cifar10", test_labels=ref_y, train_labels=ref_y)
    out = conditional_image_metrics(ds, np.zeros((120, 3, 4, 4), np.uint8), ref_y.numpy(), real, real, "test",
                                    EvalConfig(fd_classifier=False), None)
    assert out["cond_precision"] == out["cond_recall"] == 1.0 and out["class_diversity"] == pytest.approx(1.0)
    assert out["class_diversity_error"] == pytest.approx(0.0, abs=1e-12)
    assert "the cifar10 classifier is not trained" in out["label_agreement_unavailable"]
    assert "label_agreement" not in out
