"""Protocol fingerprints: how a stored metric value was computed, and whether two are comparable.

Every image metric value is stored with a fingerprint (:func:`metric_fingerprint`):

* the feature extractor's name, the SHA-256 of its weights, its resize method and
  input range and backend (:func:`bench.evaluation.inception.extractor.fingerprint`);
* the sample count N and the seed (FID is biased by N; KID subsets are seeded);
* per reference split: the dataset fingerprint (variant, split, size, content
  hash, number of images used) and the SHA-256 of the cached statistics file;
* the library versions and the device that computed the features.

Two values are comparable when the parts that change a metric's value agree:
extractor, N, seed, references and the KID/PRDC settings (:data:`VALUE_KEYS`).
Library versions and the device are recorded but only reported as notes.
:func:`compare` returns the differences; :func:`warn_if_incomparable` emits a
:class:`ProtocolMismatchWarning` that names them.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where a fingerprint is made: readers of records (reports) do without it
    import torch

#: fingerprint entries whose difference makes two metric values incomparable
VALUE_KEYS = ("extractor", "n", "seed", "references", "kid_subset_size", "kid_subsets", "pr_k", "dc_k")
#: entries recorded for the record only; a difference is a note, not a mismatch
NOTE_KEYS = ("versions", "device")


class ProtocolMismatchWarning(UserWarning):
    """Two metric values were computed under different protocols."""


def metric_fingerprint(*, n: int, seed: int, references: dict[str, dict], device: torch.device | str,
                       kid_subset_size: int | None = None, kid_subsets: int | None = None, pr_k: int | None = None,
                       dc_k: int | None = None) -> dict[str, Any]:
    """The fingerprint stored next to a sample set's FID, KID, precision/recall and density/coverage.

    Args:
        n: number of generated samples the metrics used.
        seed: seed of the evaluation (KID subsets).
        references: per reference split, the record of
            :func:`bench.evaluation.image.reference_features` (dataset fingerprint, extractor
            fingerprint, N used, statistics file SHA-256).
        device: device the features were computed on.
        kid_subset_size: KID's subset size actually used.
        kid_subsets: KID's number of subsets.
        pr_k: k of the k-NN precision/recall.
        dc_k: k of density/coverage.

    Returns:
        A JSON-serialisable dict (see the module docstring).
    """
    import torch

    from bench.core import env
    from bench.evaluation.inception.extractor import fingerprint

    refs = {split: {"dataset": r["dataset"], "n": r["n"], "whole_split": r["whole_split"],
                    "stats_sha256": r["stats_sha256"]} for split, r in references.items()}
    return {"extractor": fingerprint(device=device), "n": int(n), "seed": int(seed), "references": refs,
            "kid_subset_size": kid_subset_size, "kid_subsets": kid_subsets, "pr_k": pr_k, "dc_k": dc_k,
            "versions": env.versions(), "device": env.device_info(torch.device(device))["name"]}


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            _diff(a.get(k), b.get(k), f"{path}.{k}" if path else str(k), out)
    elif a != b:
        out.append(f"{path}: {a!r} vs {b!r}")


def compare(a: dict, b: dict) -> tuple[list[str], list[str]]:
    """Differences between two metric fingerprints.

    Returns:
        (mismatches, notes): each a list of ``"<dotted key>: <a> vs <b>"``;
        mismatches come from :data:`VALUE_KEYS`, notes from :data:`NOTE_KEYS`.
    """
    mismatches: list[str] = []
    notes: list[str] = []
    for k in VALUE_KEYS:
        _diff(a.get(k), b.get(k), k, mismatches)
    for k in NOTE_KEYS:
        _diff(a.get(k), b.get(k), k, notes)
    return mismatches, notes


def warn_if_incomparable(a: dict, b: dict, what: str = "metric values") -> list[str]:
    """Warn (:class:`ProtocolMismatchWarning`) when two fingerprints differ in a value-changing entry.

    Args:
        a, b: fingerprints from :func:`metric_fingerprint`.
        what: names the compared values in the message, e.g. ``"FID of gan vs vae"``.

    Returns:
        The mismatches (empty when comparable).
    """
    mismatches, _ = compare(a, b)
    if mismatches:
        warnings.warn(f"comparing {what} computed under different protocols: " + "; ".join(mismatches),
                      ProtocolMismatchWarning, stacklevel=2)
    return mismatches


# --------------------------------------------------------------------------- every metric of a record
#: settings that change a metric's value, by the kind of metric: sample metrics (image ones add their
#: ``metric_protocol``: extractor, references, KID and PRDC settings), cell-level density metrics
#: (NLL, bounds, KL, bits/dim) and timings.
#: Dotted keys into the record's ``config`` (``eval.*``, ``data.*``) and ``dataset_info`` (``dataset.*``).
CONFIG_VALUE_KEYS = {
    "sample": ("eval.n_samples", "eval.seed", "eval.pr_k", "eval.dc_k", "eval.mode_tolerance"),
    "density": ("eval.bound_n", "eval.density_n", "eval.quadrature_grid", "eval.entropy_mc", "eval.seed"),
    "timing": ("eval.throughput_batch", "eval.latency_batch", "eval.density_batch", "eval.bound_n",
               "eval.timing_warmup", "eval.timing_repeats", "eval.timing_repeats_slow", "eval.slow_sampler_nfe"),
}
#: the data a model was trained and scored on (both quality kinds): split sizes and the dataset's identity
#: (2D: name, components, split seeds, entropy Monte Carlo size; images: variant and content fingerprint)
DATA_VALUE_KEYS = ("data.n_train", "data.n_val", "data.n_test", "dataset.name", "dataset.variant",
                   "dataset.components", "dataset.split_seeds", "dataset.entropy_mc_samples", "dataset.fingerprint")


def record_fingerprint(rec: Any, kind: str, sampler: str | None = None) -> dict[str, Any]:
    """The protocol of one kind of metric of a cell record: the settings that change its value.

    Args:
        rec: a :class:`bench.store.schema.CellRecord`.
        kind: ``"sample"``, ``"density"`` or ``"timing"`` (:data:`CONFIG_VALUE_KEYS`).
        sampler: for sample metrics, the sampler whose image ``metric_protocol`` to use.

    Returns:
        A flat dict, dotted key -> value. Image sample metrics carry their stored
        ``metric_protocol`` (its :data:`VALUE_KEYS`, under ``metric_protocol.``); every other
        metric has the record's config entries of :data:`CONFIG_VALUE_KEYS` and, for quality
        metrics, :data:`DATA_VALUE_KEYS`. Absent entries are ``None``.
    """
    if kind not in CONFIG_VALUE_KEYS:
        raise ValueError(f"kind must be one of {sorted(CONFIG_VALUE_KEYS)}, got {kind!r}")
    source = {"eval": rec.config.eval, "data": rec.config.data, "dataset": rec.dataset_info}
    keys = CONFIG_VALUE_KEYS[kind] + (DATA_VALUE_KEYS if kind != "timing" else ())
    out = {k: source[k.split(".", 1)[0]].get(k.split(".", 1)[1]) for k in keys}
    fp = rec.samplers[sampler].metric_protocol if kind == "sample" and sampler in rec.samplers else None
    if fp:
        out.update({f"metric_protocol.{k}": fp.get(k) for k in VALUE_KEYS})
    return out


def diff(a: dict, b: dict) -> list[str]:
    """Every entry where two (nested) fingerprints differ, as ``"<dotted key>: <a> vs <b>"``."""
    out: list[str] = []
    _diff(a, b, "", out)
    return out
