"""Feature-statistics cache: round trip, keys, atomic writes, the recorded file hash."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from bench.evaluation.inception.extractor import fingerprint
from bench.evaluation.metrics import stats_cache as sc

DATASET = {"name": "mnist", "split": "test", "size": 10000, "sha256": "ab" * 32}


def stats(f: int = 6, seed: int = 0):
    x = np.random.default_rng(seed).normal(size=(50, f))
    return x.mean(0), np.cov(x, rowvar=False)


def test_round_trip_returns_the_same_statistics_and_the_files_sha256(tmp_path):
    mu, sigma = stats()
    saved = sc.save_stats(tmp_path, DATASET, fingerprint(), mu, sigma, 50)
    loaded = sc.load_stats(tmp_path, DATASET, fingerprint())
    assert np.array_equal(loaded.mu, mu) and np.array_equal(loaded.sigma, sigma) and loaded.n == 50
    assert loaded.sha256 == saved.sha256 == hashlib.sha256(saved.path.read_bytes()).hexdigest()
    assert saved.path == tmp_path / f"{saved.key}.npz" and len(saved.key) == 64
    assert [p.name for p in tmp_path.iterdir()] == [saved.path.name]  # no temporary file left


def test_key_changes_with_either_fingerprint(tmp_path):
    mu, sigma = stats()
    sc.save_stats(tmp_path, DATASET, fingerprint(), mu, sigma, 50)
    other_torch = dict(fingerprint(), torch_version="0.0.0")
    other_data = dict(DATASET, sha256="cd" * 32)
    assert sc.load_stats(tmp_path, DATASET, other_torch) is None
    assert sc.load_stats(tmp_path, other_data, fingerprint()) is None
    assert len({sc.stats_key(DATASET, fingerprint()), sc.stats_key(DATASET, other_torch),
                sc.stats_key(other_data, fingerprint())}) == 3
    # key order inside a fingerprint does not matter
    assert sc.stats_key(dict(reversed(list(DATASET.items()))), fingerprint()) == sc.stats_key(DATASET, fingerprint())


def test_a_failed_write_leaves_the_old_entry_intact(tmp_path, monkeypatch):
    mu, sigma = stats()
    first = sc.save_stats(tmp_path, DATASET, fingerprint(), mu, sigma, 50)

    def broken_savez(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(sc.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        sc.save_stats(tmp_path, DATASET, fingerprint(), mu + 1, sigma, 50)
    monkeypatch.undo()
    again = sc.load_stats(tmp_path, DATASET, fingerprint())
    assert np.array_equal(again.mu, mu) and again.sha256 == first.sha256
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name]


def test_a_file_whose_fingerprints_do_not_match_its_name_is_refused(tmp_path):
    mu, sigma = stats()
    entry = sc.save_stats(tmp_path, DATASET, fingerprint(), mu, sigma, 50)
    foreign = sc.save_stats(tmp_path / "x", dict(DATASET, size=5), fingerprint(), mu, sigma, 5)
    foreign.path.replace(entry.path)
    with pytest.raises(ValueError, match="do not match"):
        sc.load_stats(tmp_path, DATASET, fingerprint())


def test_load_or_compute_computes_once(tmp_path):
    calls = []
    feats = np.random.default_rng(1).normal(size=(40, 5))

    def compute():
        calls.append(1)
        return feats

    a = sc.load_or_compute(tmp_path, DATASET, fingerprint(), compute)
    b = sc.load_or_compute(tmp_path, DATASET, fingerprint(), compute)
    assert len(calls) == 1 and a.n == b.n == 40 and a.sha256 == b.sha256
    np.testing.assert_allclose(b.sigma, np.cov(feats, rowvar=False), rtol=0, atol=1e-13)


def test_rejects_bad_statistics(tmp_path):
    with pytest.raises(ValueError):
        sc.save_stats(tmp_path, DATASET, fingerprint(), np.zeros(3), np.zeros((2, 2)), 3)
    with pytest.raises(ValueError):
        sc.save_stats(tmp_path, DATASET, fingerprint(), np.array([np.nan]), np.ones((1, 1)), 3)
