"""End to end: a suite runs, records, resumes, stages, and survives a diverging family."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

import models
import run_bench
from bench.execution.train import DivergenceError, train
from models.base import Capabilities, GenerativeModel, TrainConfig

AR = {"model": {"hidden": 16, "components": 4}, "train": {"steps": 30}}
GAN = {"model": {"hidden": 16}, "train": {"steps": 30}}


@pytest.fixture
def nan_family():
    """A test-only family whose loss turns NaN at the third step."""

    @models.register("nan_after_2", modality="vector")
    class NaNModel(GenerativeModel):
        Config = type(models.get("gan", "vector").Config())
        capabilities = Capabilities(sample=True)

        def __init__(self, config, data_shape):
            super().__init__(config, data_shape)
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.calls = 0

        def loss(self, x):
            self.calls += 1
            return (self.w**2).sum() + (math.nan if self.calls > 2 else 0.0)

        def generate(self, n, generator=None):
            return torch.zeros(n, 2)

    yield "nan_after_2"
    models.unregister("nan_after_2", modality="vector")


def _run(tiny_suite, tmp_path, extra: dict, *args) -> int:
    """The tiny suite of the autoregressive family and the ``extra`` families, run in this process."""
    suite = tiny_suite({"autoregressive": AR, **extra})
    return run_bench.main([str(suite), "--results", str(tmp_path / "res"), "--no-progress", *args])


def _records(tmp_path, run_id="r"):
    folder = tmp_path / "res" / "tiny" / run_id
    return {p.parent.name: json.loads(p.read_text()) for p in folder.glob("*/record.json")}


def test_training_raises_on_nan(nan_family):
    m = models.build(nan_family, "vector", models.get("gan", "vector").Config(), (2,))
    with pytest.raises(DivergenceError, match=r"became nan at step 3"):
        train(m, torch.randn(100, 2), TrainConfig(steps=10, batch_size=8), progress=False)


def test_a_diverging_family_fails_alone_and_is_recorded(tmp_path, tiny_suite, nan_family):
    code = _run(tiny_suite, tmp_path, {"nan_after_2": {"train": {"steps": 10}}}, "--run-id", "r")
    assert code == 1
    recs = _records(tmp_path)
    bad, good = recs["8gaussians__nan_after_2__s0"], recs["8gaussians__autoregressive__s0"]
    assert bad["status"] == "failed" and "DivergenceError" in bad["reason"] and "nan" in bad["reason"]
    assert good["status"] == "ok" and math.isfinite(good["density"]["test_nll_nats"])
    summary = pd.read_csv(tmp_path / "res" / "tiny" / "r" / "summary.csv")
    assert set(summary["status"]) == {"ok", "failed"}
    assert "Failed cells" in (tmp_path / "res" / "tiny" / "r" / "report.md").read_text()


def test_time_budget_stops_training():
    m = models.build("autoregressive", "vector", models.get("autoregressive", "vector").Config(hidden=8), (2,))
    stats = train(m, torch.randn(1000, 2), TrainConfig(steps=10**7, batch_size=16, max_seconds=0.5), progress=False)
    assert stats.stopped_by == "time" and 0 < stats.steps < 10**7
    # it stops at the first step that starts past the budget: at least 0.5 s, and every logged step started before
    assert stats.seconds >= 0.5 and all(h["seconds"] < 0.5 for h in stats.history)
    assert [h["step"] for h in stats.history] == sorted(h["step"] for h in stats.history)


@pytest.mark.slow  # two runs end to end (~6 s)
def test_resume_skips_done_cells_and_reuses_artifacts(tmp_path, tiny_suite):
    assert _run(tiny_suite, tmp_path, {"gan": GAN}, "--run-id", "r") == 0
    first = _records(tmp_path)
    assert _run(tiny_suite, tmp_path, {"gan": GAN}, "--resume") == 0
    assert _records(tmp_path) == first  # nothing redone
    cell = tmp_path / "res" / "tiny" / "r" / "8gaussians__gan__s0"
    (cell / "record.json").unlink()  # an interruption after sampling: evaluation reruns from the stored samples
    assert _run(tiny_suite, tmp_path, {"gan": GAN}, "--resume") == 0
    again = _records(tmp_path)["8gaussians__gan__s0"]
    assert again["train"] == first["8gaussians__gan__s0"]["train"]  # not retrained
    assert again["samplers"]["default"]["precision"] == first["8gaussians__gan__s0"]["samplers"]["default"]["precision"]


def test_stages_run_separately(tmp_path, tiny_suite):
    assert _run(tiny_suite, tmp_path, {}, "--run-id", "r", "--stage", "sample") == 0
    rec = _records(tmp_path)["8gaussians__autoregressive__s0"]
    assert rec["status"] == "partial" and rec["stages_done"] == ["train", "sample"]
    assert "precision" not in rec["samplers"]["default"]
    assert _run(tiny_suite, tmp_path, {}, "--run-id", "r", "--stage", "evaluate") == 0
    rec = _records(tmp_path)["8gaussians__autoregressive__s0"]
    assert rec["status"] == "ok" and "precision" in rec["samplers"]["default"]


@pytest.mark.slow  # a run end to end (~2 s)
def test_checkpoint_reloads_and_reproduces_the_stored_samples(tmp_path, tiny_suite):
    assert _run(tiny_suite, tmp_path, {}, "--run-id", "r") == 0
    cell = tmp_path / "res" / "tiny" / "r" / "8gaussians__autoregressive__s0"
    model = models.load_checkpoint(cell / "model.pt")
    rec = json.loads((cell / "record.json").read_text())
    with torch.no_grad():
        x = model.sample(300, generator=torch.Generator().manual_seed(rec["config"]["eval"]["seed"]))
        nll = -model.log_prob(torch.from_numpy(np.asarray(
            __import__("bench.data", fromlist=["load"]).load("8gaussians", _data_cfg(), 10**6).test))).mean()
    np.testing.assert_array_equal(x.numpy(), np.load(cell / "samples_default.npz")["samples"])
    assert math.isclose(float(nll), rec["density"]["test_nll_nats"], rel_tol=1e-5)


def _data_cfg():
    from bench.config.suite import DataConfig

    return DataConfig(n_train=2000, n_val=200, n_test=500)


@pytest.mark.slow
def test_smoke_profile_runs_every_family_end_to_end(tmp_path):
    code = run_bench.main(["--profile", "smoke", "--datasets", "8gaussians", "--results", str(tmp_path),
                           "--run-id", "smoke", "--no-progress"])
    assert code == 0
    run = tmp_path / "toy2d" / "smoke"
    recs = [json.loads(p.read_text()) for p in run.glob("*/record.json")]
    assert sorted(r["family"] for r in recs) == sorted(models.names("vector"))
    assert all(r["status"] == "ok" for r in recs)
    summary = pd.read_csv(run / "summary.csv")
    # one row per sampler: diffusion has three (ancestral, ddim10, pf_ode), VAE and score two
    assert len(summary) == 12
    for key in ("sample_throughput_per_s", "sample_latency_ms", "sample_nfe", "train_seconds", "mmd2", "precision"):
        assert summary[key].notna().all(), key
    exact = summary[summary.likelihood_kind == "exact"]
    assert exact["test_nll_nats"].notna().all() and exact["kl_nats"].notna().all()
    report = (run / "report.md").read_text()
    assert "Taxonomy reproduced from measurements" in report
    assert "Training, stability, latent inference and the remaining claims" in report
    latent = {r["family"]: r["latent"] for r in recs}
    assert {f for f, lat in latent.items() if lat["latent_kind"] != "none"} == {"vae", "flow", "coupling_flow",
                                                                                "diffusion"}
    assert latent["flow"]["latent_recon_max_abs"] < 1e-4 and latent["gan"] == {"latent_kind": "none"}
    # the monitor's default 5 checkpoints (history entries 0, 10, 20, 30, 40 of 50) and the last step
    assert all(sum("val_mmd2" in h for h in r["train"]["train_history"]) == 6 for r in recs)
    for fig in ("samples.png", "density.png", "taxonomy.png"):
        assert (run / "figures" / fig).stat().st_size > 10_000


def test_no_estimate_runs_without_a_probe_and_changes_no_number(tmp_path, tiny_suite, monkeypatch, capsys):
    from bench.execution import plan

    assert _run(tiny_suite, tmp_path, {}, "--run-id", "probed") == 0
    capsys.readouterr()

    def no_probe(*args, **kwargs):
        raise AssertionError("--no-estimate ran a probe")

    for name in ("probe_family", "probe_evaluation", "_metric2d_probe", "_reference_rows_seconds"):
        monkeypatch.setattr(plan, name, no_probe)
    assert _run(tiny_suite, tmp_path, {}, "--run-id", "unprobed", "--no-estimate") == 0
    err = capsys.readouterr().err
    assert "no time estimate (--no-estimate: the cost model's probes were skipped)" in err
    assert "cost model:" not in err and "(estimated" not in err
    assert "parallelism: 1 cell at a time x 2 torch threads each" in err  # tests/conftest.py's GENBENCH_ defaults
    probed, unprobed = (_records(tmp_path, r)["8gaussians__autoregressive__s0"] for r in ("probed", "unprobed"))
    assert probed["estimate"]["est_total_seconds"] > 0 and unprobed["estimate"].get("est_total_seconds") is None
    for key in ("precision", "recall", "mmd2", "mmd2_multiscale", "mode_kl_nats"):
        assert unprobed["samplers"]["default"][key] == probed["samplers"]["default"][key]
    assert unprobed["density"]["kl_nats"] == probed["density"]["kl_nats"]
    saved = json.loads((tmp_path / "res" / "tiny" / "unprobed" / "plan.json").read_text())
    assert saved["estimated"] is False and saved["wall_seconds"] is None and saved["probes_run"] == 0


def test_no_estimate_without_a_fixed_split_is_one_line_exit_2(tmp_path, tiny_suite, monkeypatch, capsys):
    monkeypatch.delenv("GENBENCH_JOBS")
    monkeypatch.delenv("GENBENCH_THREADS")
    assert _run(tiny_suite, tmp_path, {}, "--no-estimate", "--jobs", "2") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--no-estimate needs --jobs and --threads" in err
    assert not (tmp_path / "res").exists()
