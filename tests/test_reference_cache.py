"""Claim T30's 2D reference rows (a Gaussian and a KDE) through the data root's disk cache: computed once,
read back equal by every later process, keyed on the points and the evaluation settings, damaged files
replaced, and the plan's estimate free of them once they are stored."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bench import data as datasets
from bench.config.suite import DataConfig, EvalConfig
from bench.core.env import thread_limit
from bench.evaluation import vector as eval2d
from bench.store.schema import reference_to_dict

EV = EvalConfig(n_samples=100)


@pytest.fixture(scope="module")
def ds():
    return datasets.load("8gaussians", DataConfig(n_train=400, n_val=100, n_test=200), entropy_mc=1000)


def test_the_rows_are_computed_once_then_read_back_identical(ds, tmp_path):
    rows, seconds = eval2d.cached_reference_estimates(ds, EV, tmp_path)
    path = eval2d.reference_cache_path(ds, EV, tmp_path)
    assert seconds > 0 and path.is_file() and path.parent.name == "reference2d"
    again, seconds_again = eval2d.cached_reference_estimates(ds, EV, tmp_path)
    assert seconds_again == 0.0
    assert {k: reference_to_dict(v) for k, v in again.items()} == {k: reference_to_dict(v) for k, v in rows.items()}
    assert sorted(rows) == ["gaussian", "kde"] and rows["kde"].fit_n == 400
    # the same numbers as computing them without a cache (the stored rows are exact JSON floats)
    direct = eval2d.compute_reference_estimates(ds, EV)
    assert again["kde"].density.test_nll_nats == direct["kde"].density.test_nll_nats
    assert again["gaussian"].samples.mmd2 == direct["gaussian"].samples.mmd2


def test_the_key_follows_the_points_and_every_evaluation_setting(ds, tmp_path):
    base = eval2d.reference_cache_path(ds, EV, tmp_path)
    assert eval2d.reference_cache_path(ds, EV, tmp_path) == base
    assert eval2d.reference_cache_path(ds, dataclasses.replace(EV, n_samples=101), tmp_path) != base
    assert eval2d.reference_cache_path(ds, dataclasses.replace(EV, pr_k=4), tmp_path) != base
    moved = dataclasses.replace(ds, test=ds.test + 1e-3)
    assert eval2d.reference_cache_path(moved, EV, tmp_path) != base


def test_a_damaged_cache_file_is_computed_again_and_replaced(ds, tmp_path):
    path = eval2d.reference_cache_path(ds, EV, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text('{"dataset": "8gaussians", "rows": {"kde": {"no such field": 1}}}')
    rows, seconds = eval2d.cached_reference_estimates(ds, EV, tmp_path)
    assert seconds > 0 and rows["kde"].bandwidth is not None
    assert eval2d.cached_reference_estimates(ds, EV, tmp_path)[1] == 0.0  # the file now holds the rows


def test_the_rows_do_not_depend_on_the_callers_thread_count(ds, tmp_path):
    with thread_limit(2):
        two = eval2d.store_reference_estimates(ds, EV, tmp_path / "a")[0]
        assert torch.get_num_threads() == 2  # restored after the one-thread computation
    with thread_limit(1):
        one = eval2d.store_reference_estimates(ds, EV, tmp_path / "b")[0]
    assert reference_to_dict(two["kde"]) | {"seconds": 0} == reference_to_dict(one["kde"]) | {"seconds": 0}


def test_an_unwritable_cache_only_loses_the_cache(ds, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")  # the cache folder cannot be created under a file
    rows, seconds = eval2d.cached_reference_estimates(ds, EV, blocked)
    assert seconds > 0 and sorted(rows) == ["gaussian", "kde"]


def test_the_reference_sample_metrics_are_stored_once_and_read_back_identical(ds, tmp_path, monkeypatch):
    """What the first worker of a run computes (real-vs-real MMD², precision/recall, fidelity) every later process
    reads, bit for bit; a damaged file is computed again; the key follows the labels of a conditional cell."""
    from bench.store.schema import part_to_dict

    eval2d._REFERENCE.clear()
    first = eval2d.reference_metrics(ds, EV, None, tmp_path)
    path = eval2d.reference_metrics_path(ds, EV, None, tmp_path)
    assert path.is_file() and path.parent.name == "reference2d" and path.name.startswith("metrics_8gaussians_")
    assert 0 <= first.precision <= 1 and first.mmd2 is not None
    eval2d._REFERENCE.clear()  # another process
    monkeypatch.setattr(eval2d, "sample_metrics", lambda *a, **k: pytest.fail("computed again"))
    again = eval2d.reference_metrics(ds, EV, None, tmp_path)
    assert part_to_dict(again) == part_to_dict(first)
    monkeypatch.undo()
    with thread_limit(1):  # the stored values are those of a computation at one thread
        direct = eval2d.reference_metrics(ds, EV)
    assert part_to_dict(direct) == part_to_dict(first)
    labels = ds.test_labels[: EV.n_samples].numpy()
    assert eval2d.reference_metrics_path(ds, EV, labels, tmp_path) != path
    path.write_text('{"dataset": "8gaussians", "metrics": {"no such field": 1}}')
    eval2d._REFERENCE.clear()
    assert part_to_dict(eval2d.reference_metrics(ds, EV, None, tmp_path)) == part_to_dict(first)
    assert "no such field" not in path.read_text()
    eval2d._REFERENCE.clear()
