"""The cell record's schema: what one (dataset, family, seed) cell stores, typed and versioned.

A record is a :class:`CellRecord`; each stage returns its own part
(:class:`TrainResult` from training, :class:`SamplerResult` timings from sampling,
:class:`DensityResult` from the density stage, then the evaluate stage's metrics),
and the runner assembles them. Readers get typed fields (``rec.density.kl_nats``),
never chains of ``.get``.

Every metric is declared once, here, with its unit and direction: the ``metadata``
of its field (built by :func:`metric`) says whether lower or higher is better,
which field holds its standard error, and whether it is a timing (comparable only
on the same device). :func:`metric_info` looks a flattened column name up
(``fid_test``, ``test_nll_bound_elbo_nats``, ...).

On disk a record is JSON with flat keys (``fid_<split>``, ``kid_<split>_mean``,
``test_nll_bound_<name>_nats``), the layout of ``genbench.cell/1``; records of
that version load unchanged. Version 2 adds ``textbook`` and each sampler's
``sweep``; version 3 adds the plan's ``estimate`` and the measured ``stage_seconds``,
the profile's ``profile_reason`` and each sampler's timing warm-up and repeats, and the
optional ``latent`` part (:class:`LatentResult`; absent in older records); version 4 adds the
config's ``samplers`` section (samplers stopped being model settings) and each timing's standard
error of the median (``*_median_se_ms``; older records gave only the IQR, which is a spread, not an
error); version 5 adds the registered family a cell ran (``registered_family``: a suite entry may be a
*variant* of one, e.g. ``gan_lr2``) and its ``lr_scale``, the samples' fidelity and mode coverage judged on
the true density or a classifier (``sample_nll_data_nats``, ``mode_kl_nats``, ``modes_hit``) with their
real-vs-real calibration at the same N; the samples-and-likelihood measures: blur against the test set,
the multi-scale 2D MMD², throughput against batch size, the probability-flow ODE likelihood
(``ode_*``), Theis et al.'s noise mixture (``theis_*``) and the reference density estimators
(``reference_estimates``, :class:`ReferenceEstimate`); and the class-conditional sample metrics (each
sampler's ``guidance`` scale, label agreement, class-conditional precision/recall/density/coverage and MMD²,
per-class diversity, and the 2D tilted-target measure; docs/conditional.md). An unknown version or key raises
:class:`SchemaError` naming it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "genbench.cell/5"
READABLE = ("genbench.cell/1", "genbench.cell/2", "genbench.cell/3", "genbench.cell/4", SCHEMA)


class SchemaError(ValueError):
    """A record that does not fit the schema; the message names the version or the key."""

@dataclass(frozen=True)
class MetricInfo:
    """How to read one metric.

    Attributes:
        name: the flattened column name (``fid_test``).
        unit: ``"nats"``, ``"bits/dim"``, ``"ms"``, ``"samples/s"``, ``"fraction"``, ``""`` ...
        better: ``"lower"``, ``"higher"``, or ``None`` (a fact, not a score).
        timing: a wall-clock quantity, comparable only on the same device and versions.
        se: the column holding this value's standard error (or KID's subset std), if any.
        doc: one line of definition.
        source: the paper that defines the metric (authors, year, arXiv id), if any (:data:`SOURCES`).
    """

    name: str
    unit: str
    better: str | None
    timing: bool = False
    se: str | None = None
    doc: str = ""
    source: str = ""


def metric(unit: str = "", better: str | None = None, *, doc: str = "", se: str | None = None,
           timing: bool = False, flat: str | None = None, default: Any = None, source: str = "") -> Any:
    """A dataclass field holding a metric, with its unit, direction and definition.

    Args:
        unit: the unit of the value (also the suffix of its key where the field has one).
        better: ``"lower"`` or ``"higher"`` for scores; ``None`` for facts and settings.
        doc: the definition, one line.
        se: name of the field holding its standard error (``"{}"`` is the dict key for ``flat`` fields).
        timing: a wall-clock measurement.
        flat: for a ``dict`` field, the flattened key template, ``"fid_{}"`` (``{}``: the dict key).
        default: the default value (``None``; ``dict`` fields get an empty dict).
        source: the paper that defines the metric (authors, year, arXiv id); the metrics reference shows it.
            A field declared without one takes its entry in :data:`SOURCES`.
    """
    if better not in (None, "lower", "higher"):
        raise ValueError(f"better must be 'lower', 'higher' or None, got {better!r}")
    meta = {"unit": unit, "better": better, "doc": doc, "se": se, "timing": timing, "flat": flat, "source": source}
    if flat is not None:
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


# the papers that define the metrics (the metrics reference, docs/reference/metrics.md, shows them)
VEEGAN = "Srivastava et al. 2017, arXiv:1705.07761 (modes and high-quality samples on 2D mixtures)"
PRECISION_RECALL = "Kynkäänniemi et al. 2019, arXiv:1904.06991"
DENSITY_COVERAGE = "Naeem et al. 2020, arXiv:2002.09797"
BOUNDS = ("ELBO: Kingma & Welling 2014, arXiv:1312.6114; IWAE: Burda et al. 2016, arXiv:1509.00519; "
          "the DDPM ELBO: Ho et al. 2020, arXiv:2006.11239")
BITS_PER_DIM = "Theis et al. 2016, arXiv:1511.01844"
FID = "Heusel et al. 2017, arXiv:1706.08500"

#: field name -> the paper that defines it, for the fields declared without ``metric(source=...)`` (kept apart
#: from the declarations so that they stay one line each). A new metric states its paper with ``source=``.
SOURCES: dict[str, str] = {
    "mmd2": "Gretton et al. 2012, JMLR 13:723-773",
    "high_quality_fraction": VEEGAN, "modes_covered": VEEGAN, "mode_coverage": VEEGAN,
    "precision": PRECISION_RECALL, "recall": PRECISION_RECALL,
    "fid": FID, "kid_mean": "Bińkowski et al. 2018, arXiv:1801.01401",
    "density": DENSITY_COVERAGE, "coverage": DENSITY_COVERAGE,
    "fd_classifier": f"the Fréchet distance of {FID}",
    "bounds": BOUNDS, "test_nll_bound_nats": BOUNDS, "bounds_bpd": BOUNDS, "test_bpd_bound": BOUNDS,
    "test_bpd": BITS_PER_DIM,
}


def source_of(f: Any) -> str:
    """The source paper of a metric field (a :class:`dataclasses.Field` declared by :func:`metric`): its
    ``source=`` where given, else its :data:`SOURCES` entry, else ``""``."""
    return f.metadata.get("source") or SOURCES.get(f.name, "")


# --------------------------------------------------------------------------- parts
@dataclass
class TrainResult:
    """What the train stage measured (Adam steps on the training split)."""

    train_seconds: float | None = metric("s", doc="training wall time, CUDA-synchronized", timing=True)
    train_steps: int | None = metric("steps", doc="optimisation steps taken")
    train_steps_per_s: float | None = metric("steps/s", "higher", doc="training speed", timing=True)
    train_stopped_by: str | None = metric(doc="'steps' or 'time' (the max_seconds budget)")
    train_final_losses: dict[str, float] = field(default_factory=dict)
    train_history: list[dict[str, float]] = field(default_factory=list)
    train_monitor_seconds: float | None = metric("s", timing=True,
                                                 doc="wall time of the training monitor's validation checkpoints "
                                                     "(not in train_seconds)")
    parameters: int | None = metric("parameters", doc="trainable parameters")
    train_peak_gpu_mem_gb: float | None = metric("GiB", doc="peak CUDA memory while training", timing=True)


@dataclass
class SamplerResult:
    """One sampler of a cell: its timings (sample stage) and sample metrics (evaluate stage)."""

    # ---- sample stage: timings
    sampler_kwargs: dict[str, Any] = field(default_factory=dict)
    sweep: str | None = metric(doc="the sweep this sampler belongs to (e.g. 'DDIM (η = 0)'), from the family")
    sample_nfe: int | None = metric("NFE", doc="sequential network evaluations per sampling call")
    sample_throughput_batch: int | None = metric("samples", doc="batch of the throughput timing")
    sample_batch_ms: float | None = metric("ms", "lower", doc="median time of one throughput batch", timing=True,
                                           se="sample_batch_median_se_ms")
    sample_batch_median_se_ms: float | None = metric("ms", timing=True,
                                                     doc="standard error of that median (bootstrap over the calls)")
    sample_batch_iqr_ms: float | None = metric("ms", doc="IQR of the throughput batch time (a spread, not an error)",
                                               timing=True)
    sample_throughput_per_s: float | None = metric("samples/s", "higher", timing=True,
                                                   doc="samples per second at the throughput batch")
    sample_us_per_sample: float | None = metric("µs", "lower", timing=True,
                                                doc="cost per sample at the throughput batch")
    sample_latency_batch: int | None = metric("samples", doc="batch of the latency timing")
    sample_latency_ms: float | None = metric("ms", "lower", doc="median latency at the latency batch", timing=True,
                                             se="sample_latency_median_se_ms")
    sample_latency_median_se_ms: float | None = metric("ms", timing=True,
                                                       doc="standard error of that median (bootstrap over the calls)")
    sample_latency_iqr_ms: float | None = metric("ms", doc="IQR of the latency (a spread, not an error)", timing=True)
    nfe_ms_at_throughput_batch: float | None = metric("ms", "lower", doc="cost of one NFE at the throughput batch",
                                                      timing=True)
    nfe_ms_at_latency_batch: float | None = metric("ms", "lower", timing=True,
                                                   doc="cost of one NFE at the latency batch")
    n_samples: int | None = metric("samples", doc="samples stored and evaluated")
    sample_timing_warmup: int | None = metric("calls", doc="untimed calls before each sampling timing")
    sample_timing_repeats: int | None = metric("calls", doc="timed calls of each sampling timing (median, IQR)")
    sample_peak_gpu_mem_gb: float | None = metric("GiB", doc="peak CUDA memory while sampling", timing=True)
    batch_sweep_per_s: dict[str, float] = metric("samples/s", "higher", timing=True, flat="sample_per_s_at_batch_{}",
                                                 doc="samples per second at batch {} (eval.batch_sweep)")
    # ---- evaluate stage, 2D
    nonfinite_fraction: float | None = metric("fraction", "lower", doc="samples with a NaN or infinite coordinate")
    mmd2: float | None = metric("", "lower",
                                doc="unbiased MMD², RBF kernel, median-heuristic bandwidth, vs the test set")
    mmd_bandwidth: float | None = metric("", doc="the RBF bandwidth used")
    high_quality_fraction: float | None = metric("fraction", "higher",
                                                 doc="samples within Mahalanobis 3 of a component")
    modes_covered: int | None = metric("modes", "higher", doc="components receiving at least half their share")
    n_modes: int | None = metric("modes", doc="components of the mixture")
    mode_coverage: float | None = metric("fraction", "higher", doc="modes_covered / n_modes")
    mode_shares: list[float] | None = None
    sample_nll_data_nats: float | None = metric("nats", "lower", se="sample_nll_data_se_nats",
                                                doc="fidelity: mean -log p_data of the samples under the true "
                                                    "mixture (2D); real samples give H(p_data)")
    sample_nll_data_se_nats: float | None = metric("nats", doc="its standard error (std / sqrt(N))")
    sample_nll_data_real_nats: float | None = metric("nats", doc="the same for real samples of the same N: mean "
                                                             "over the calibration draws (about H(p_data))")
    sample_nll_data_real_q99_nats: float | None = metric("nats", doc="its 99th percentile over the calibration "
                                                                 "draws")
    # ---- evaluate stage, both: mode coverage (2D: mixture components; images: the dataset classifier's classes)
    mode_kl_nats: float | None = metric("nats", "lower",
                                        doc="coverage: KL(mode histogram of the samples || the data's) in nats; 2D: "
                                            "most probable component vs the mixture weights (no sigma gate); "
                                            "images: predicted class vs the test set's predicted classes")
    modes_hit: int | None = metric("modes", "higher", doc="modes (2D components, image classes) receiving at least "
                                                          "mode_tolerance x their share of the samples (no sigma gate)")
    mode_kl_real_mean_nats: float | None = metric("nats", doc="mode_kl_nats of real samples of the same N: mean over "
                                                              "the calibration draws")
    mode_kl_real_q99_nats: float | None = metric("nats", doc="its 99th percentile over the calibration draws")
    modes_hit_real_q01: int | None = metric("modes", doc="modes_hit that 99% of real samples of the same N reach "
                                                         "(1st percentile over the calibration draws)")
    mode_calibration_draws: int | None = metric("draws", doc="real sample sets of the same N in the calibration")
    mmd2_multiscale: float | None = metric("", "lower", se="mmd2_multiscale_std",
                                           doc="unbiased MMD², sum of RBF kernels from the mode scale to the data "
                                               "scale, mean over random subsets (KID's estimator), vs the test set")
    mmd2_multiscale_std: float | None = metric("", doc="its std over the subsets")
    # ---- evaluate stage, both
    precision: float | None = metric("fraction", "higher", doc="k-NN manifold precision (Kynkäänniemi et al. 2019)")
    recall: float | None = metric("fraction", "higher", doc="k-NN manifold recall (Kynkäänniemi et al. 2019)")
    # ---- evaluate stage, images
    fid: dict[str, float] = metric("", "lower", flat="fid_{}", doc="FID_N vs the reference split {}")
    kid_mean: dict[str, float] = metric("", "lower", flat="kid_{}_mean", se="kid_{}_std",
                                        doc="KID (unbiased, cubic kernel) vs the split {}, mean over subsets")
    kid_std: dict[str, float] = metric("", flat="kid_{}_std", doc="KID's std over subsets vs the split {}")
    kid_subset_size: int | None = metric("samples", doc="KID subset size")
    density: float | None = metric("", "higher", doc="density (Naeem et al. 2020, k = 5)")
    coverage: float | None = metric("fraction", "higher", doc="coverage (Naeem et al. 2020, k = 5)")
    prdc_n: int | None = metric("samples", doc="real and fake samples used by precision/recall/density/coverage")
    fd_classifier: float | None = metric("", "lower",
                                         doc="Fréchet distance in the dataset classifier's features (MNIST, "
                                             "CIFAR-10; not FID)")
    classifier: dict[str, Any] | None = None
    novelty_ratio: float | None = metric("", doc="median nearest-train distance of samples / of test images")
    copy_fraction: float | None = metric("fraction", "lower", doc="samples closer to a training image than 99% of test")
    nn_train_distance_median: float | None = metric("pixels/255", doc="median nearest-train distance of the samples")
    nn_train_distance_median_test: float | None = metric("pixels/255", doc="the same for the test images")
    hf_energy: float | None = metric("(pixels/255)²", doc="mean spectral energy of an image above half the Nyquist "
                                                         "frequency (the mean square of its high-pass part)")
    hf_energy_ratio: float | None = metric("", doc="hf_energy of the samples / of the test images (< 1: blurrier; "
                                                   "> 1: sharper or noisier)")
    hf_energy_log_ratio_se: float | None = metric("", doc="standard error of log hf_energy_ratio (delta method)")
    hf_energy_abs_log_ratio: float | None = metric("", "lower", se="hf_energy_log_ratio_se",
                                                   doc="|log hf_energy_ratio|: distance from the test set's "
                                                       "sharpness, blur and noise alike")
    laplacian_var: float | None = metric("(pixels/255)²", doc="mean variance of the 3x3 Laplacian of an image")
    laplacian_var_ratio: float | None = metric("", doc="laplacian_var of the samples / of the test images")
    laplacian_log_ratio_se: float | None = metric("", doc="standard error of log laplacian_var_ratio")
    laplacian_abs_log_ratio: float | None = metric("", "lower", se="laplacian_log_ratio_se",
                                                   doc="|log laplacian_var_ratio|")
    inception_score: dict[str, Any] | None = None
    metric_protocol: dict[str, Any] | None = None
    # ---- class-conditional cells (samples drawn with the labels of the first N test points; docs/conditional.md)
    guidance: float | None = metric("", doc="the sampler's classifier-free guidance scale w (0: none)")
    label_agreement: float | None = metric("fraction", "higher", se="label_agreement_se",
                                           doc="samples a classifier assigns to their requested label (2D: the "
                                               "true mixture's Bayes classifier; MNIST: the LeNet classifier)")
    label_agreement_se: float | None = metric("fraction", doc="its binomial standard error sqrt(a (1 - a) / N)")
    label_agreement_real: float | None = metric("fraction", doc="the same classifier's agreement on the N real "
                                                                "reference points and their labels (the ceiling)")
    label_agreement_unavailable: str | None = metric(doc="why there is no label agreement (no classifier)")
    cond_precision: float | None = metric("fraction", "higher",
                                          doc="k-NN precision of each class's samples against the class's reference "
                                              "points, averaged over classes weighted by their counts")
    cond_recall: float | None = metric("fraction", "higher", doc="k-NN recall, per class, averaged likewise")
    cond_density: float | None = metric("", "higher", doc="density (Naeem et al. 2020), per class, averaged likewise")
    cond_coverage: float | None = metric("fraction", "higher",
                                         doc="coverage (Naeem et al. 2020), per class, averaged likewise")
    cond_mmd2: float | None = metric("", "lower", doc="unbiased MMD² (RBF, median bandwidth) of each class's "
                                                      "samples against its reference points, averaged likewise (2D)")
    class_diversity: float | None = metric("", doc="mean pairwise distance of each class's samples over that of its "
                                                   "reference points, averaged likewise (1: as diverse as the data)")
    class_diversity_error: float | None = metric("", "lower", doc="|ln class_diversity|: 0 as diverse as the data, "
                                                                 "ln 2 twice or half as spread (the gate's reading)")
    tilted_ce_nats: float | None = metric("nats", se="tilted_ce_se_nats",
                                          doc="mean -log p_w(x|c) of the samples under the tilted target "
                                              "p_w(x|c) ∝ p(x|c)^(1+w) p(x)^(-w) (2D, quadrature-normalized)")
    tilted_ce_se_nats: float | None = metric("nats", doc="its standard error (std / sqrt(N))")
    tilted_entropy_nats: float | None = metric("nats", doc="H(p_w), the tilted target's entropy, averaged over the "
                                                           "samples' labels")
    tilted_quadrature_error_nats: float | None = metric("nats", doc="largest |log Z(n) - log Z(n/2)| of the tilted "
                                                                    "target's normalization over the classes")
    tilted_gap_nats: float | None = metric("nats", se="tilted_ce_se_nats",
                                           doc="tilted_ce − H(p_w): 0 when the samples are typical of p_w; > 0 "
                                               "where p_w is lower; < 0 concentrated on its modes")
    tilted_gap_abs_nats: float | None = metric("nats", "lower", se="tilted_ce_se_nats",
                                               doc="|tilted_gap|: how far the samples are from typical of p_w, from "
                                                   "either side (the gate's reading of the gap)")


@dataclass
class DensityResult:
    """The density stage (model needed) and the evaluate stage's likelihood metrics."""

    likelihood_kind: str | None = metric(doc="exact, bound, unnormalized or none (the family's capability)")
    density_call: str | None = metric(doc="the method timed: log_prob, log_prob_bounds or energy")
    test_n: int | None = metric("examples", doc="test examples the density was evaluated on")
    test_nll_nats: float | None = metric("nats", "lower", se="test_nll_se_nats",
                                         doc="mean test NLL (exact, or EBM by quadrature)")
    test_nll_se_nats: float | None = metric("nats", doc="standard error of test_nll_nats")
    bounds: dict[str, float] = metric("nats", "lower", flat="test_nll_bound_{}_nats", se="test_nll_bound_{}_se_nats",
                                      doc="upper bound on the test NLL from the bound {}")
    bounds_se: dict[str, float] = metric("nats", flat="test_nll_bound_{}_se_nats", doc="standard error of bound {}")
    test_nll_bound_nats: float | None = metric("nats", "lower", se="test_nll_bound_se_nats",
                                               doc="the tightest NLL bound")
    test_nll_bound_se_nats: float | None = metric("nats", doc="its standard error")
    bound_name: str | None = metric(doc="the bound that is tightest")
    standard_bound: str | None = metric(doc="the family's standard bound (ELBO)")
    test_energy_mean_nats: float | None = metric("nats", doc="mean test energy (unnormalized)")
    density_batch: int | None = metric("examples", doc="batch of the density timing")
    density_batch_ms: float | None = metric("ms", "lower", timing=True, se="density_batch_median_se_ms",
                                            doc="median time of one density batch")
    density_batch_median_se_ms: float | None = metric("ms", timing=True,
                                                      doc="standard error of that median (bootstrap over the calls)")
    density_batch_iqr_ms: float | None = metric("ms", timing=True, doc="its IQR (a spread, not an error)")
    density_throughput_per_s: float | None = metric("examples/s", "higher", timing=True,
                                                    doc="density evaluations per second")
    density_timing_repeats: int | None = metric("calls", doc="timed calls of the density timing (median, IQR)")
    # ---- 2D: quadrature and normalization
    nll_method: str | None = metric(doc="'quadrature' when log Z came from the 2D midpoint rule")
    log_z_nats: float | None = metric("nats", doc="log Z of an energy by quadrature")
    log_z_quadrature_error_nats: float | None = metric("nats", doc="|log Z(n) - log Z(n/2)|")
    quadrature_grid: int | None = metric("points/axis", doc="quadrature grid")
    quadrature_box: list[float] | None = None
    quadrature_evaluations: int | None = metric("evaluations", doc="energy evaluations of the quadrature")
    quadrature_seconds: float | None = metric("s", timing=True, doc="wall time of the quadrature")
    test_outside_box_fraction: float | None = metric("fraction", doc="test points outside the EBM's box")
    log_integral_nats: float | None = metric("nats", doc="log of the integral of p, exp(bound) or exp(-E) over a box")
    log_integral_error_nats: float | None = metric("nats", doc="its quadrature error")
    integral_box: list[float] | None = None
    integral_grid: int | None = metric("points/axis", doc="grid of the normalization check")
    integral_of: str | None = metric(doc="what was integrated (density or the standard bound)")
    # ---- 2D: evaluate stage
    kl_nats: float | None = metric("nats", "lower", se="kl_se_nats", doc="KL(p_data || p_model) = NLL - H(p_data)")
    kl_se_nats: float | None = metric("nats", doc="sqrt(SE_NLL² + SE_H²)")
    kl_bound_nats: float | None = metric("nats", "lower", se="kl_bound_se_nats",
                                         doc="upper bound on KL from the NLL bound")
    kl_bound_se_nats: float | None = metric("nats", doc="its standard error")
    true_entropy_nats: float | None = metric("nats", doc="H(p_data) by Monte Carlo")
    true_entropy_se_nats: float | None = metric("nats", doc="its standard error")
    # ---- images: evaluate stage
    dims: int | None = metric("dimensions", doc="the data's dimension D (images: C·H·W)")
    test_bpd: float | None = metric("bits/dim", "lower", se="test_bpd_se", doc="exact test bits/dim")
    test_bpd_se: float | None = metric("bits/dim", doc="its standard error")
    bounds_bpd: dict[str, float] = metric("bits/dim", "lower", flat="test_bpd_bound_{}", se="test_bpd_bound_{}_se",
                                          doc="upper bound on bits/dim from the bound {}")
    bounds_bpd_se: dict[str, float] = metric("bits/dim", flat="test_bpd_bound_{}_se", doc="its standard error")
    test_bpd_bound: float | None = metric("bits/dim", "lower", se="test_bpd_bound_se",
                                          doc="the tightest bits/dim bound")
    test_bpd_bound_se: float | None = metric("bits/dim", doc="its standard error")
    bpd_unavailable: str | None = metric(doc="why there is no bits/dim")
    # ---- the probability-flow ODE's exact likelihood (diffusion, score; density stage)
    ode_sampler: str | None = metric(doc="the pf_ode sampler whose ODE gave the likelihood")
    ode_test_n: int | None = metric("examples", doc="test examples of the ODE likelihood")
    ode_test_nll_nats: float | None = metric("nats", "lower", se="ode_test_nll_se_nats",
                                             doc="mean test NLL by the probability-flow ODE (images: dequantized)")
    ode_test_nll_se_nats: float | None = metric("nats", doc="its standard error")
    ode_nfe: int | None = metric("NFE", doc="network evaluations per point of the ODE likelihood")
    ode_trace: str | None = metric(doc="the divergence: 'exact' (D backward passes per NFE) or 'hutchinson' (one)")
    ode_ms_per_example: float | None = metric("ms", "lower", timing=True,
                                              doc="wall time of the ODE likelihood per test example")
    ode_seconds: float | None = metric("s", timing=True, doc="wall time of the ODE likelihood on the test examples")
    ode_steps: int | None = metric("steps", doc="the ODE solver's steps (NFE = steps for Euler, 2 steps for Heun)")
    ode_method: str | None = metric(doc="the ODE solver: 'euler' (order 1) or 'heun' (order 2)")
    ode_check_steps: int | None = metric("steps", doc="steps of the solver-error check: ode_steps // 2")
    ode_check_n: int | None = metric("examples", doc="test examples solved again at ode_check_steps")
    ode_step_change_nats: float | None = metric("nats", se="ode_step_change_se_nats",
                                                doc="mean paired change of the NLL from ode_check_steps to "
                                                    "ode_steps; the error left is about it / (2^order - 1)")
    ode_step_change_se_nats: float | None = metric("nats", doc="its standard error")
    ode_check_seconds: float | None = metric("s", timing=True, doc="wall time of the half-step solve")
    ode_log_integral_nats: float | None = metric("nats", doc="log of the integral of the ODE density over a box (2D)")
    ode_log_integral_error_nats: float | None = metric("nats", doc="its quadrature error")
    ode_integral_grid: int | None = metric("points/axis", doc="grid of that integral")
    ode_kl_nats: float | None = metric("nats", "lower", se="ode_kl_se_nats", doc="ode_test_nll_nats - H(p_data) (2D)")
    ode_kl_se_nats: float | None = metric("nats", doc="its standard error")
    ode_test_bpd: float | None = metric("bits/dim", "lower", se="ode_test_bpd_se",
                                        doc="test bits/dim by the ODE, dequantized (an upper bound on the discrete)")
    ode_test_bpd_se: float | None = metric("bits/dim", doc="its standard error")
    # ---- Theis et al. 2016's mixture 0.01 p_model + 0.99 uniform noise (exact image likelihoods)
    theis_weight: float | None = metric("fraction", doc="weight of the model in the noise mixture")
    theis_test_n: int | None = metric("examples", doc="test images of the mixture's bits/dim")
    theis_test_bpd: float | None = metric("bits/dim", doc="test bits/dim of the mixture, exact (logsumexp)")
    theis_bpd_shift: float | None = metric("bits/dim", doc="theis_test_bpd - test_bpd (at most log2(1/weight)/D)")
    theis_fid: float | None = metric("", doc="FID of the mixture's samples (the default sampler's, all but the "
                                             "weight's share replaced by uniform noise)")
    theis_kid_mean: float | None = metric("", doc="KID of the mixture's samples")
    theis_kid_std: float | None = metric("", doc="its std over subsets")
    theis_model_fid: float | None = metric("", doc="FID of the default sampler's samples (the same split)")
    theis_model_fid_se: float | None = metric("", doc="bootstrap standard error of theis_model_fid over its samples")


@dataclass
class LatentResult:
    """The latent stage: latent inference x -> z (``to_latent``), its cost, and the x -> z -> x reconstruction.

    A family without latent inference has ``latent_kind == "none"`` and nothing else: it is
    stated, never timed as zero.
    """

    latent_kind: str | None = metric(doc="amortized, exact, inversion or none (the family's capability)")
    latent_nfe: int | None = metric("NFE", doc="sequential network evaluations of one to_latent call")
    latent_dim: int | None = metric("dimensions", doc="dimension of z")
    latent_n: int | None = metric("examples", doc="test examples of the reconstruction error")
    latent_recon_rmse: float | None = metric("data units", "lower",
                                             doc="root mean squared error of from_latent(to_latent(x)) per "
                                                 "coordinate (2D: raw coordinates; images: pixel levels 0..255)")
    latent_recon_l2: float | None = metric("data units", "lower", se="latent_recon_l2_se",
                                           doc="mean L2 norm of x - from_latent(to_latent(x)) per example")
    latent_recon_l2_se: float | None = metric("data units", doc="its standard error")
    latent_recon_max_abs: float | None = metric("data units", doc="largest absolute error of one coordinate")
    latent_batch: int | None = metric("examples", doc="batch of the latent timing")
    latent_batch_ms: float | None = metric("ms", "lower", timing=True, se="latent_batch_median_se_ms",
                                           doc="median time of one to_latent batch")
    latent_batch_median_se_ms: float | None = metric("ms", timing=True,
                                                     doc="standard error of that median (bootstrap over the calls)")
    latent_batch_iqr_ms: float | None = metric("ms", timing=True, doc="its IQR (a spread, not an error)")
    latent_throughput_per_s: float | None = metric("examples/s", "higher", timing=True,
                                                   doc="latent inferences per second")
    latent_timing_warmup: int | None = metric("calls", doc="untimed calls before the latent timing")
    latent_timing_repeats: int | None = metric("calls", doc="timed calls of the latent timing (median, IQR)")


@dataclass
class ReferenceEstimate:
    """A density estimator without a network, fitted to the training split: claim T30's "simple density
    estimators" (one Gaussian, a kernel density estimate), scored like the families.

    Attributes:
        method: ``"gaussian"`` (maximum likelihood mean and covariance) or ``"kde"`` (Gaussian kernels).
        bandwidth: the KDE's bandwidth in data units (pixel levels for images), chosen by validation NLL.
        fit_n: training examples fitted.
        seconds: wall time of the fit and the evaluation.
        density: test NLL (and KL in 2D, bits/dim on images), as a family's.
        samples: sample metrics of its samples (2D), as a family sampler's.
    """

    method: str
    bandwidth: float | None = None
    fit_n: int | None = None
    seconds: float | None = None
    density: DensityResult = field(default_factory=DensityResult)
    samples: SamplerResult | None = None


@dataclass
class CellEstimate:
    """The plan's estimate of a cell's wall time, from :mod:`bench.execution.plan`'s cost model (seconds).

    The measured times are the record's ``stage_seconds`` and ``wall_seconds``; the report
    shows the estimate's error.
    """

    cost_model: str | None = metric(doc="the cost model's version (bench.execution.plan.COST_MODEL)")
    est_train_seconds: float | None = metric("s", timing=True, doc="estimated training time")
    est_sample_seconds: float | None = metric("s", timing=True, doc="estimated sampling and its timings")
    est_density_seconds: float | None = metric("s", timing=True, doc="estimated density evaluation and timing")
    est_evaluate_seconds: float | None = metric("s", timing=True, doc="estimated evaluate stage (metrics)")
    est_one_off_seconds: float | None = metric("s", timing=True,
                                               doc="estimated one-off builds this cell pays for (reference "
                                                   "statistics, classifier, extractor load)")
    est_total_seconds: float | None = metric("s", timing=True, doc="estimated wall time of the cell")
    one_off: dict[str, float] = field(default_factory=dict)


@dataclass
class CellConfig:
    """The resolved configuration a cell ran with (plain data)."""

    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    samplers: dict[str, Any] = field(default_factory=dict)  # name -> settings (kind included); absent before 0.2
    suite_file: str = ""
    profile: str | None = None
    profile_reason: str = ""


@dataclass
class CellRecord:
    """Everything one cell stored: identity, status, provenance, and each stage's result."""

    suite: str
    run_id: str
    dataset: str
    family: str
    seed: int
    status: str = "running"  # running, partial, ok, failed, interrupted (Ctrl-C; resumable)
    registered_family: str | None = None  # the models registry's family the cell ran; None before cell/5: family
    lr_scale: float | None = None  # the entry's learning-rate multiplier (a variant's); None before cell/5: 1
    reason: str | None = None
    traceback: str | None = None
    modality: str | None = None
    likelihood_kind: str | None = None
    capabilities: dict[str, bool] = field(default_factory=dict)
    model_class: str | None = None
    reference: str | None = None
    textbook: dict[str, Any] | None = None
    config: CellConfig = field(default_factory=CellConfig)
    git_sha: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    model_device: dict[str, Any] | None = None
    dataset_info: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    stages_done: list[str] = field(default_factory=list)
    wall_seconds: float | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    estimate: CellEstimate | None = None
    train: TrainResult | None = None
    samplers: dict[str, SamplerResult] = field(default_factory=dict)
    density: DensityResult | None = None
    latent: LatentResult | None = None
    reference_sample_metrics: SamplerResult | None = None
    reference_estimates: dict[str, ReferenceEstimate] = field(default_factory=dict)
    figure_box: list[float] | None = None
    protocol: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA

    @property
    def cell_id(self) -> str:
        """``<dataset>__<family>__s<seed>``, the cell's folder name."""
        return f"{self.dataset}__{self.family}__s{self.seed}"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def base_family(self) -> str:
        """The registered family the cell ran: ``registered_family``, else (records before ``genbench.cell/5``)
        ``family``."""
        return self.registered_family or self.family

    def primary(self) -> tuple[str | None, SamplerResult]:
        """(name, result) of the family's default sampler (the first one), or (None, empty)."""
        for name, m in self.samplers.items():
            return name, m
        return None, SamplerResult()


# --------------------------------------------------------------------------- (de)serialisation
_PARTS = {"train": TrainResult, "density": DensityResult, "latent": LatentResult,
          "reference_sample_metrics": SamplerResult, "config": CellConfig, "estimate": CellEstimate}


def _pattern(template: str) -> re.Pattern:
    return re.compile("^" + re.escape(template).replace(r"\{\}", "(.+)") + "$")


def _flat_fields(cls: type) -> list[tuple[dataclasses.Field, re.Pattern]]:
    """A part's dict fields with their key patterns, the longest template first, so that
    ``test_nll_bound_elbo_se_nats`` is read as the SE of "elbo", not as a bound named "elbo_se"."""
    flats = [f for f in dataclasses.fields(cls) if f.metadata.get("flat")]
    flats.sort(key=lambda f: -len(f.metadata["flat"]))
    return [(f, _pattern(f.metadata["flat"])) for f in flats]


def part_to_dict(obj: Any) -> dict[str, Any]:
    """A part (e.g. :class:`SamplerResult`) as the flat JSON dict stored on disk; ``None`` fields are left out."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        tpl = f.metadata.get("flat")
        if tpl:
            out.update({tpl.format(k): x for k, x in v.items()})
        elif v is not None:
            out[f.name] = v
    return out


def part_from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build part ``cls`` from its flat JSON dict.

    Raises:
        SchemaError: a key the schema does not know (named with ``where``).
    """
    names = {f.name for f in dataclasses.fields(cls) if not f.metadata.get("flat")}
    flats = _flat_fields(cls)
    kwargs: dict[str, Any] = {f.name: {} for f, _ in flats}
    for k, v in data.items():
        if k in names:
            kwargs[k] = v
            continue
        for f, pattern in flats:
            m = pattern.match(k)
            if m:
                kwargs[f.name][m.group(1)] = v
                break
        else:
            raise SchemaError(f"{where}{k}: not a {cls.__name__} field of {SCHEMA}")
    return cls(**kwargs)


def record_to_dict(rec: CellRecord) -> dict[str, Any]:
    """The record as JSON-ready plain data (flat metric keys, ``None`` left out of the metric parts)."""
    out: dict[str, Any] = {"schema": rec.schema}
    for f in dataclasses.fields(rec):
        if f.name == "schema":
            continue
        v = getattr(rec, f.name)
        if f.name in _PARTS:
            out[f.name] = None if v is None else (dataclasses.asdict(v) if f.name == "config" else part_to_dict(v))
        elif f.name == "samplers":
            out[f.name] = {name: part_to_dict(m) for name, m in v.items()}
        elif f.name == "reference_estimates":
            out[f.name] = {name: reference_to_dict(e) for name, e in v.items()}
        else:
            out[f.name] = v
    return out


def reference_to_dict(e: ReferenceEstimate) -> dict[str, Any]:
    """A :class:`ReferenceEstimate` as plain data (its density and samples as flat parts)."""
    return {"method": e.method, "bandwidth": e.bandwidth, "fit_n": e.fit_n, "seconds": e.seconds,
            "density": part_to_dict(e.density), "samples": None if e.samples is None else part_to_dict(e.samples)}


def reference_from_dict(data: dict[str, Any], where: str = "") -> ReferenceEstimate:
    """The inverse of :func:`reference_to_dict`.

    Raises:
        SchemaError: an unknown key (named with ``where``).
    """
    known = {"method", "bandwidth", "fit_n", "seconds", "density", "samples"}
    unknown = set(data) - known
    if unknown or "method" not in data:
        raise SchemaError(f"{where}{sorted(unknown)[0] if unknown else 'method'}: not a ReferenceEstimate field "
                          f"of {SCHEMA}" if unknown else f"{where}missing key 'method'")
    return ReferenceEstimate(
        method=data["method"], bandwidth=data.get("bandwidth"), fit_n=data.get("fit_n"), seconds=data.get("seconds"),
        density=part_from_dict(DensityResult, data.get("density") or {}, f"{where}density."),
        samples=None if data.get("samples") is None else part_from_dict(SamplerResult, data["samples"],
                                                                         f"{where}samples."))


def record_from_dict(data: dict[str, Any], where: str = "") -> CellRecord:
    """Load a record of any readable version (:data:`READABLE`).

    Raises:
        SchemaError: an unknown version, a missing identity key, or an unknown key
            (the message names the key, the version and ``where``).
    """
    version = data.get("schema", "genbench.cell/1")
    if version not in READABLE:
        raise SchemaError(f"{where}record schema {version!r} is not readable by this genbench "
                          f"(reads {', '.join(READABLE)}); upgrade genbench or re-run the cell")
    names = {f.name for f in dataclasses.fields(CellRecord)}
    kwargs: dict[str, Any] = {}
    for k, v in data.items():
        if k not in names:
            raise SchemaError(f"{where}{k}: not a field of a {version} record")
        if k in _PARTS and v is not None:
            v = CellConfig(**v) if k == "config" else part_from_dict(_PARTS[k], v, f"{where}{k}.")
        elif k == "samplers":
            v = {name: part_from_dict(SamplerResult, m, f"{where}samplers.{name}.") for name, m in (v or {}).items()}
        elif k == "reference_estimates":
            v = {name: reference_from_dict(e, f"{where}reference_estimates.{name}.") for name, e in (v or {}).items()}
        kwargs[k] = v
    for k in ("suite", "run_id", "dataset", "family", "seed"):
        if k not in kwargs:
            raise SchemaError(f"{where}missing key {k!r} in a {version} record")
    kwargs["schema"] = SCHEMA
    try:
        return CellRecord(**kwargs)
    except TypeError as e:
        raise SchemaError(f"{where}{e}") from None


# --------------------------------------------------------------------------- metric lookup
_METRIC_PARTS = (TrainResult, SamplerResult, DensityResult, LatentResult)
_PLAIN = {f.name: f for cls in _METRIC_PARTS for f in dataclasses.fields(cls)
          if "unit" in f.metadata and not f.metadata.get("flat")}
_FLAT = [pf for cls in _METRIC_PARTS for pf in _flat_fields(cls)]


def _info(column: str, f: Any, key: str | None = None) -> MetricInfo:
    meta = f.metadata
    fmt = (lambda t: t.format(key)) if key is not None else (lambda t: t)
    return MetricInfo(column, meta["unit"], meta["better"], meta["timing"], fmt(meta["se"]) if meta["se"] else None,
                      fmt(meta["doc"]), source_of(f))


def metric_info(column: str) -> MetricInfo | None:
    """The unit, direction and SE column of a flattened metric column, or ``None`` if it is not a metric.

    >>> metric_info("fid_test").better, metric_info("kid_test_mean").se
    ('lower', 'kid_test_std')
    """
    if column in _PLAIN:
        return _info(column, _PLAIN[column])
    for f, pattern in _FLAT:
        hit = pattern.match(column)
        if hit:
            return _info(column, f, hit.group(1))
    return None


def flat_metrics(rec: CellRecord) -> dict[str | None, dict[str, Any]]:
    """Per sampler (``None`` for the cell-level train and density parts), the flat numeric metric columns."""
    def numeric(d: dict) -> dict:
        return {k: v for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

    cell = {}
    if rec.train is not None:
        cell.update(numeric(part_to_dict(rec.train)))
    if rec.density is not None:
        cell.update(numeric(part_to_dict(rec.density)))
    if rec.latent is not None:
        cell.update(numeric(part_to_dict(rec.latent)))
    out: dict[str | None, dict[str, Any]] = {None: cell}
    for name, m in rec.samplers.items():
        out[name] = numeric(part_to_dict(m))
    return out
