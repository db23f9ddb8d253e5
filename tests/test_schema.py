"""The cell record's schema: round trips, records of genbench.cell/1, clear errors, metric directions."""

from __future__ import annotations

import pytest

from bench.store import schema
from bench.store.schema import CellRecord, DensityResult, SamplerResult, SchemaError

V1 = {  # a record as genbench.cell/1 wrote it (flat metric keys), trimmed to the parts that matter
    "schema": "genbench.cell/1", "suite": "cifar", "run_id": "r", "dataset": "cifar10", "family": "vae", "seed": 0,
    "modality": "image", "status": "ok", "reason": None, "likelihood_kind": "bound",
    "config": {"model": {"latent": 4}, "train": {"steps": 2}, "eval": {}, "data": {}, "suite_file": "s.yaml",
               "profile": None},
    "train": {"train_seconds": 1.5, "train_steps": 2, "train_history": [{"step": 1, "loss": 3.0}]},
    "density": {"likelihood_kind": "bound", "test_nll_bound_elbo_nats": 2000.0, "test_nll_bound_elbo_se_nats": 5.0,
                "test_nll_bound_iwae_k100_nats": 1990.0, "test_nll_bound_iwae_k100_se_nats": 4.0,
                "test_nll_bound_nats": 1990.0, "test_nll_bound_se_nats": 4.0, "bound_name": "iwae_k100",
                "test_bpd_bound": 0.9, "test_bpd_bound_elbo": 0.95, "test_bpd_bound_elbo_se": 0.002},
    "samplers": {"default": {"sample_nfe": 1, "fid_train": 300.0, "fid_test": 301.0, "kid_test_mean": 0.3,
                             "kid_test_std": 0.01, "precision": 0.1, "n_samples": 500}},
}


def test_a_v1_record_loads_with_its_dynamic_keys_in_typed_fields():
    rec = schema.record_from_dict(V1)
    assert rec.schema == schema.SCHEMA and rec.textbook is None and rec.ok
    assert rec.density.bounds == {"elbo": 2000.0, "iwae_k100": 1990.0}
    assert rec.density.bounds_se == {"elbo": 5.0, "iwae_k100": 4.0}
    assert rec.density.bounds_bpd == {"elbo": 0.95} and rec.density.bounds_bpd_se == {"elbo": 0.002}
    assert rec.density.test_nll_bound_nats == 1990.0 and rec.density.test_bpd_bound == 0.9
    m = rec.samplers["default"]
    assert m.fid == {"train": 300.0, "test": 301.0} and m.kid_mean == {"test": 0.3} and m.kid_std == {"test": 0.01}
    assert rec.train.train_history == [{"step": 1, "loss": 3.0}] and rec.config.suite_file == "s.yaml"


def test_a_record_survives_the_round_trip_to_its_flat_json():
    rec = schema.record_from_dict(V1)
    data = schema.record_to_dict(rec)
    assert data["schema"] == schema.SCHEMA
    assert data["samplers"]["default"]["fid_test"] == 301.0 and data["density"]["test_nll_bound_iwae_k100_nats"] == 1990
    assert schema.record_from_dict(data) == rec


def test_an_unknown_version_or_key_is_named():
    with pytest.raises(SchemaError, match=r"record schema 'genbench.cell/9' is not readable .*genbench.cell/1"):
        schema.record_from_dict({**V1, "schema": "genbench.cell/9"}, "x/record.json: ")
    with pytest.raises(SchemaError, match=r"^x: samplers.default.fidd_test: not a SamplerResult field"):
        schema.record_from_dict({**V1, "samplers": {"default": {"fidd_test": 1.0}}}, "x: ")
    with pytest.raises(SchemaError, match="missing key 'seed'"):
        schema.record_from_dict({k: v for k, v in V1.items() if k != "seed"})


@pytest.mark.parametrize("column,better,unit,se", [
    ("kl_nats", "lower", "nats", "kl_se_nats"),
    ("test_nll_bound_iwae_k128_nats", "lower", "nats", "test_nll_bound_iwae_k128_se_nats"),
    ("test_nll_bound_elbo_se_nats", None, "nats", None),  # an SE, not a bound named "elbo_se"
    ("test_bpd", "lower", "bits/dim", "test_bpd_se"),
    ("fid_train", "lower", "", None),
    ("kid_test_mean", "lower", "", "kid_test_std"),
    ("precision", "higher", "fraction", None),
    ("modes_covered", "higher", "modes", None),
    ("sample_throughput_per_s", "higher", "samples/s", None),
])
def test_every_metric_declares_its_direction_once(column, better, unit, se):
    info = schema.metric_info(column)
    assert (info.better, info.unit, info.se) == (better, unit, se)
    assert schema.metric_info("sample_latency_ms").timing and not schema.metric_info("mmd2").timing
    assert schema.metric_info("family") is None


def test_flat_metrics_are_the_numeric_columns_per_sampler():
    rec = CellRecord(suite="s", run_id="r", dataset="d", family="f", seed=0,
                     density=DensityResult(kl_nats=0.1, bound_name="elbo", bounds={"elbo": 2.0}),
                     samplers={"a": SamplerResult(mmd2=0.01, sweep="x", fid={"test": 5.0})})
    flat = schema.flat_metrics(rec)
    assert flat[None] == {"kl_nats": 0.1, "test_nll_bound_elbo_nats": 2.0}
    assert flat["a"] == {"mmd2": 0.01, "fid_test": 5.0}
