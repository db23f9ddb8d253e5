"""Samplers as objects: DDIM against diffusers' DDIMScheduler, the Langevin integrator and the ODE integrator
against closed forms, sampler settings in suites, and a sampler added to a finished run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import run_bench
from bench.config.suite import ConfigError, load_suite
from bench.core.files import sha256_file
from models.samplers import DDIM, SGLD, AnnealedLangevin, build_samplers, ddim_step, expand_entries, langevin, odeint
from tests.helpers import TINY_DATA, TINY_EVAL, tiny_model

T = 1000


@pytest.fixture(scope="module")
def scheduler():
    diffusers = pytest.importorskip("diffusers")
    return diffusers.DDIMScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                                   clip_sample=False, set_alpha_to_one=True, timestep_spacing="linspace",
                                   prediction_type="epsilon")


def test_the_schedule_and_timesteps_are_diffusers(scheduler):
    m = tiny_model("diffusion", "vector", T=T)
    torch.testing.assert_close(m.alpha_bar, scheduler.alphas_cumprod, rtol=1e-6, atol=1e-7)
    scheduler.set_timesteps(20)
    assert DDIM(steps=20).timesteps(T).tolist() == scheduler.timesteps.tolist()


def test_a_short_schedule_is_ho_et_al_s_scaled_by_1000_over_t_and_ends_in_noise():
    """T = 100 is improved-diffusion's linear schedule (betas 0.001 ... 0.2), the alpha_bar of diffusers' scheduler
    with those ends; unscaled, Ho et al.'s betas would leave x_T with 60% of the data."""
    diffusers = pytest.importorskip("diffusers")
    from models.diffusion import linear_betas, prior_signal

    assert linear_betas(1000) == (1e-4, 0.02) and linear_betas(100) == pytest.approx((1e-3, 0.2))
    assert linear_betas(20) == pytest.approx((5e-3, 0.999))  # 0.02 x 50 = 1.0, capped at improved-diffusion's 0.999
    ref = diffusers.DDPMScheduler(num_train_timesteps=100, beta_start=1e-3, beta_end=0.2, beta_schedule="linear")
    for modality in ("vector", "image"):
        m = tiny_model("diffusion", modality, T=100)
        torch.testing.assert_close(m.alpha_bar, ref.alphas_cumprod, rtol=1e-5, atol=1e-8)
    # sqrt(alpha_bar_T) = exp(-sum(beta) / 2) to first order: 100 x 0.1005 -> 0.0066; exactly 0.0045
    assert prior_signal(100) == pytest.approx(0.004516, abs=1e-6)
    assert prior_signal(100, 1e-4, 0.02) == pytest.approx(0.6030, abs=1e-4)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_one_ddim_step_equals_diffusers_ddim_scheduler_step(scheduler, eta):
    """diffusers' step goes from t to t - T // S (its own rule for the previous timestep); given the same
    (alpha_bar_t, alpha_bar_prev), epsilon, x_t and noise, :func:`ddim_step` returns its prev_sample."""
    scheduler.set_timesteps(10)
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    for t in scheduler.timesteps.tolist():
        x, eps, z = (torch.randn(64, 2, generator=g) for _ in range(3))
        prev = t - T // 10
        ab = scheduler.alphas_cumprod[t]
        ab_prev = scheduler.alphas_cumprod[prev] if prev >= 0 else scheduler.final_alpha_cumprod
        ref = scheduler.step(eps, t, x, eta=eta, variance_noise=z).prev_sample
        ours = ddim_step(x, eps, ab, ab_prev, eta=eta, noise=z)
        worst = max(worst, float((ours - ref).abs().max()))
    assert worst < 1e-6, worst


def test_ddim_inversion_is_the_same_step_run_upward():
    """Inverting and then sampling with a network that ignores x_t (eps = c) is exact: each DDIM step is then an
    affine map of x, and the inversion applies the inverse maps in reverse order."""
    m = tiny_model("diffusion", "vector", T=100)

    class ConstEps(torch.nn.Module):
        def forward(self, x_t, t):
            return torch.full_like(x_t, 0.3)

    m.eps_net = ConstEps()
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(1))
    ddim = DDIM(steps=7)
    z = ddim.invert(m, x)
    torch.testing.assert_close(ddim.denoise(m, z), x, atol=1e-5, rtol=0)
    assert ddim.nfe(m) == 7


def test_a_stochastic_ddim_sampler_uses_its_generator_and_eta_zero_does_not():
    m = tiny_model("diffusion", "vector", T=20).eval()
    det, sto = DDIM(steps=5), DDIM(steps=5, eta=1.0)
    draw = lambda s, seed: m.sample(4, generator=torch.Generator().manual_seed(seed), sampler=s)
    assert torch.equal(draw(sto, 0), draw(sto, 0)) and not torch.equal(draw(sto, 0), draw(det, 0))
    assert sto.sweep == "DDIM (η = 1)" and det.sweep == "DDIM (η = 0)"


def test_the_langevin_integrator_reaches_the_closed_form_stationary_variance():
    """drift = -x (the score of N(0, 1)), a = 0.1, b = sqrt(2a): x <- (1 - a) x + b z has the stationary
    variance 2a / (1 - (1 - a)^2) = 1 / (1 - a / 2) = 1.0526..., checked at 4 standard errors."""
    a = 0.1
    x = langevin(torch.zeros(20_000, 1, dtype=torch.float64), lambda x, k: -x, [(a, math.sqrt(2 * a))] * 300,
                 torch.Generator().manual_seed(0))
    var = 1 / (1 - a / 2)
    assert abs(float(x.var()) - var) < 4 * var * math.sqrt(2 / len(x))


def test_the_langevin_integrator_clamps_to_its_box():
    x = langevin(torch.zeros(100, 2), lambda x, k: torch.ones_like(x), [(1.0, 0.0)] * 3, clamp=(-0.5, 0.5))
    assert torch.equal(x, torch.full((100, 2), 0.5))


@pytest.mark.parametrize("n", [4, 8, 16])
def test_odeint_euler_and_heun_match_their_closed_forms_and_orders(n):
    """dx/dt = -x on [0, 1] from x = 1: Euler gives (1 - h)^n and Heun (1 - h + h^2/2)^n exactly; their errors
    against e^-1 shrink as h (Euler) and h^2 (Heun)."""
    ts = np.linspace(0.0, 1.0, n + 1).tolist()
    one = torch.ones(1, dtype=torch.float64)
    h = 1 / n
    euler = float(odeint(lambda x, t: -x, one, ts, "euler"))
    heun = float(odeint(lambda x, t: -x, one, ts, "heun"))
    assert euler == pytest.approx((1 - h) ** n, rel=1e-12)
    assert heun == pytest.approx((1 - h + h * h / 2) ** n, rel=1e-12)
    assert abs(euler - math.exp(-1)) == pytest.approx(math.exp(-1) * h / 2, rel=0.3)  # leading error term
    assert 0.03 * h**2 < abs(heun - math.exp(-1)) < 0.1 * h**2  # e^-1 h^2 / 6 = 0.061 h^2 to leading order
    with pytest.raises(ValueError, match="euler"):
        odeint(lambda x, t: -x, one, ts, "rk4")


def test_sweeps_expand_into_named_samplers_of_one_kind():
    entries = expand_entries({"ancestral": {}, "ddim": {"steps": [10, 50], "eta": 0.0}, "old": None})
    assert entries == {"ancestral": {"kind": "ancestral"}, "ddim10": {"kind": "ddim", "steps": 10, "eta": 0.0},
                       "ddim50": {"kind": "ddim", "steps": 50, "eta": 0.0}}
    s = build_samplers({"default": {"kind": "sgld", "steps": 5, "step_start": 0.3, "step_end": 0.001}})["default"]
    assert s.name == "default" and s.settings() == {"kind": "sgld", "steps": 5, "step_start": 0.3, "step_end": 0.001}
    assert s.step_sizes()[0] == 0.3 and s.step_sizes()[-1] == pytest.approx(0.001)
    with pytest.raises(ValueError, match="give both"):
        SGLD(steps=5, step_start=0.3)
    with pytest.raises(ValueError, match="steps_per_sigma"):
        AnnealedLangevin(steps_per_sigma=0)


def test_suites_list_samplers_outside_the_model_block(tmp_path):
    suite = load_suite("suites/toy2d.yaml", profile="ci")
    diffusion = suite.families["diffusion"]
    assert list(diffusion.samplers) == ["ancestral", "ddim10", "pf_ode"] and diffusion.samplers["ddim10"].steps == 10
    assert diffusion.samplers["pf_ode"].steps == 10
    assert suite.families["score"].samplers["default"].steps_per_sigma == 5
    assert suite.family("25gaussians", "energy").samplers["default"].step_end == 3e-5
    cases = {"families.diffusion.samplers.ddim.steps=[500]": "families.diffusion.samplers.ddim.steps: 500 is "
                                                           "not allowed (at most the model's T = 100)",
             "families.energy.samplers.ddim={}": "families.energy.samplers.ddim: family 'energy' has no sampler of "
                                                 "kind 'ddim' (it offers: sgld)",
             "families.score.samplers.default.step_eps=-1": "families.score.samplers.default.step_eps: -1.0 is not "
                                                            "allowed",
             "families.gan.samplers.default=null": "families.gan.samplers: no sampler left"}
    for override, message in cases.items():
        with pytest.raises(ConfigError) as e:
            load_suite("suites/toy2d.yaml", profile="ci", overrides=[override])
        assert message in str(e.value), str(e.value)


@pytest.mark.slow  # trains, then resumes a run (~8 s)
def test_adding_a_sampler_to_a_finished_run_redoes_only_sampling_and_evaluation(tmp_path, capsys):
    """The README's example: ddim20 added to a finished 2D run. model.pt is untouched, train_seconds unchanged,
    the old sampler's samples are drawn again bit for bit, and no --force is needed."""
    base = ["suites/toy2d.yaml", "--profile", "smoke", "--families", "diffusion", "--datasets", "8gaussians",
            "--results", str(tmp_path), "--run-id", "r", "--no-progress", "--stage", "evaluate",
            "--set", "families.diffusion.train.steps=5"]
    # the tiny suite's data and evaluation sizes (tests/helpers.py), no training monitor, the data root (the plan's
    # probe cache) in tmp_path
    small = {**TINY_DATA, "root": str(tmp_path / "data")}
    base += [f"--set=data.{k}={v}" for k, v in small.items()] + [f"--set=eval.{k}={v}" for k, v in TINY_EVAL.items()]
    base += ["--set", "eval.monitor_points=0"]
    assert run_bench.main(base) == 0
    cell = tmp_path / "toy2d" / "r" / "8gaussians__diffusion__s0"
    ckpt_sum, ckpt_mtime = sha256_file(cell / "model.pt"), (cell / "model.pt").stat().st_mtime_ns
    before = json.loads((cell / "record.json").read_text())
    ddim10 = np.load(cell / "samples_ddim10.npz")["samples"]
    capsys.readouterr()
    assert run_bench.main(base + ["--set", "families.diffusion.samplers.ddim.steps=[10,20]"]) == 0
    log = capsys.readouterr().err
    assert "samplers.ddim20: added; redoing the sample stage and the evaluation from model.pt" in log
    after = json.loads((cell / "record.json").read_text())
    assert sha256_file(cell / "model.pt") == ckpt_sum and (cell / "model.pt").stat().st_mtime_ns == ckpt_mtime
    assert after["train"]["train_seconds"] == before["train"]["train_seconds"] and after["train"]["train_steps"] == 5
    assert sorted(after["samplers"]) == ["ancestral", "ddim10", "ddim20", "pf_ode"]
    assert after["samplers"]["ddim20"]["sample_nfe"] == 20
    assert np.array_equal(np.load(cell / "samples_ddim10.npz")["samples"], ddim10)


def test_a_checkpoint_from_before_samplers_were_objects_still_loads(tmp_path):
    """genbench 0.1 kept DDIM steps, Langevin steps and SGLD schedules in the model config; those keys are dropped
    on load (``legacy_config_keys``), the weights load, and the family's default samplers run."""
    import models

    for name, legacy in (("diffusion", {"ddim_steps": [10]}), ("score", {"steps_per_sigma": 5, "step_eps": 2e-5,
                                                                         "denoise": True}),
                         ("energy", {"sample_steps": 50, "sample_step_start": 0.3, "sample_step_end": 1e-3})):
        m = tiny_model(name, "vector").eval()
        models.save_checkpoint(m, tmp_path / f"{name}.pt")
        ckpt = torch.load(tmp_path / f"{name}.pt", weights_only=True)
        ckpt["config"] = {**ckpt["config"], **legacy}
        torch.save(ckpt, tmp_path / f"{name}.pt")
        loaded = models.load_checkpoint(tmp_path / f"{name}.pt")
        assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), loaded.state_dict().values()))


def test_a_schema_3_record_with_samplers_in_its_model_config_reads_and_is_not_a_change():
    """Records of genbench.cell/3 have no ``samplers`` section: reading them works, and resume does not call the
    missing section a sampler change (it would redo every finished cell)."""
    from bench.execution.resume import sampler_changes
    from bench.store import schema

    rec = schema.record_from_dict({"schema": "genbench.cell/3", "suite": "toy2d", "run_id": "r", "dataset": "d",
                                   "family": "diffusion", "seed": 0, "status": "ok",
                                   "config": {"model": {"T": 100, "ddim_steps": [10]}}})
    assert rec.config.samplers == {} and rec.config.model["ddim_steps"] == [10]
    assert sampler_changes({"samplers": {}}, {"samplers": {"ddim10": {"kind": "ddim"}}}) == []
    assert sampler_changes({"samplers": {"ddim10": {"kind": "ddim", "steps": 10}}},
                           {"samplers": {"ddim10": {"kind": "ddim", "steps": 10}, "ddim20": {"kind": "ddim"}}}) \
        == ["samplers.ddim20: added"]
    assert schema.metric_info("sample_batch_ms").se == "sample_batch_median_se_ms"
