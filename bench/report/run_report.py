"""``report.md`` and figures for a run, built from its records alone (no models needed).

The report reproduces the textbook taxonomy from measured numbers: for each family
the likelihood it exposes (with the measured value) and its sampling cost (NFE,
samples/s), and for each textbook claim whether the measurement agrees, with the
ratio behind the verdict. Three parts do the work:

* :mod:`bench.analysis.verdicts` decides each claim (pure functions of records);
* :mod:`bench.report.tables` and the figure modules (:mod:`~bench.report.figures` for the
  trade-off figures, :mod:`~bench.report.figures2d` for the 2D panels, :mod:`~bench.report.figures_guidance`
  for a class-conditional run's guidance sweeps) format tables and draw figures;
* :mod:`bench.report.document` writes the blocks out, as Markdown and as one self-contained HTML page.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.analysis import guidance, judges, training_verdicts, verdicts
from bench.analysis.aggregate import seed_stats
from bench.analysis.claims import claims_table
from bench.analysis.history import record_run
from bench.core.files import read_json_dict, write_text
from bench.evaluation.modality import modality as get_modality
from bench.report import document as doc_
from bench.report import figures as trade_offs
from bench.report import figures2d, figures_guidance, tables
from bench.report.document import Bullets, Document, Figure, Heading, Note, Paragraph, Table
from bench.report.figures import n_samples_of
from bench.store.runs import RunDir, write_summary
from bench.store.schema import CellRecord

__all__ = ["build_report", "write_report"]


def order_records(records: list[CellRecord], info: dict) -> tuple[dict[str, list[CellRecord]], list[str]]:
    """ok records by dataset (suite order), each list in the suite's family order, then seed; and the families."""
    resolved = info.get("resolved") or {}
    ds_order = resolved.get("datasets") or []
    fam_order = list(resolved.get("families") or {})

    def rank(order: list[str], name: str) -> tuple[int, str]:
        return (order.index(name) if name in order else len(order), name)

    ok = sorted((r for r in records if r.ok),
                key=lambda r: (rank(ds_order, r.dataset), rank(fam_order, r.family), r.seed))
    by_ds: dict[str, list[CellRecord]] = {}
    for r in ok:
        by_ds.setdefault(r.dataset, []).append(r)
    families = sorted({r.family for r in ok}, key=lambda f: rank(fam_order, f))
    return by_ds, families


def claims_blocks(by_ds: dict[str, list[CellRecord]], failed: list[CellRecord] | tuple = ()) -> list:
    """The textbook's claims T1-T30 (``bench.analysis.claims``): one row per claim with every verdict given on
    it or "not measured", then each verdict with its rule and the numbers that decided it. ``failed``: the run's
    failed cells, for the judges that count them (a diverged run is a failed run)."""
    given = judges.verdicts_for(by_ds, failed)
    blocks = [Heading("Textbook claims T1–T30"),
              Paragraph("Each claim in our words, the texts that make it (`shared/seeds/`, by number), and the "
                        "verdict of each rule that judges it, per scope; a claim no rule judges says *not measured*. "
                        "T26–T29 are methods, checked against reference implementations in the tests."),
              Table(claims_table(given))]
    if given:
        blocks += [Paragraph("**How each verdict was reached** (rule in one sentence; the numbers that decided it):"),
                   Table([{"claim": v.claim, "scope": v.scope, "family": v.family or "–", "verdict": v.verdict,
                           "rule": v.rule, "evidence": v.evidence or "–"} for v in given])]
    return blocks


def training_blocks(by_ds: dict[str, list[CellRecord]], failed: list[CellRecord] | tuple = ()) -> list:
    """The training verdicts' evidence (:mod:`bench.analysis.training_verdicts`): the rules in one sentence each,
    failed runs per family (per learning rate), the collapse table (modes or classes covered against real sample
    sets of the same N) and the convergence guard per dataset and family."""
    groups = training_verdicts.family_runs(by_ds, failed)
    rows = tables.training_rows(groups) if any(r.failed is not None for rs in groups.values() for r in rs) else []
    collapse = tables.collapse_rows(by_ds)
    if not rows and not collapse:
        return []
    tv = training_verdicts
    blocks = [Heading("Training verdicts: fragility, mode collapse, convergence"),
              Bullets([
                  f"*Failed run*: {tv.FAILURE_RULE}; the floors are {tv.MARGIN_ABS['nats']:g} nat of fidelity (2D: "
                  f"mean −log p_data beyond real samples'), {tv.MARGIN_ABS['fd']:g} of FD_classifier (images) and "
                  f"{tv.MARGIN_ABS['coverage']:g} nat of mode KL beyond real samples'.",
                  f"*T14*: {tv.T14_RULE}. *Oscillation*: {tv.T14_OSC_RULE}.",
                  f"*T15*: {tv.T15_RULE}.",
                  f"*T20*: {tv.T20_COLLAPSE_RULE}; and {tv.T20_COVERAGE_RULE}.",
                  f"*Convergence guard*: a verdict is inconclusive unless each compared family's runs at its own "
                  f"learning rate are shown to have settled on every dataset, over the last fifth of training "
                  f"(FD_classifier with its bootstrap SE on images, −log p_data of the samples with its SE in 2D): "
                  f"not still improving (z ≤ {tv.CONVERGENCE_Z:g}, or a gain below the failure rule's floor), "
                  f"better than at the first checkpoint by more than {tv.CONVERGENCE_Z:g} SE, and the change within "
                  f"the failure margin (|Δ| + {tv.CONVERGENCE_Z:g} SE ≤ margin). Otherwise it reads *still "
                  "improving* or *convergence unknown* (a monitor too noisy to tell).",
                  "Runs are pooled over the run's datasets (and learning rates): every family runs the same cells. "
                  "Families without a training claim in the texts (flows, score-based and energy-based models) are "
                  "listed but not judged."])]
    if rows:
        blocks += [Paragraph("**Failed runs per family** (the yardstick: fidelity and coverage on the true density "
                             "in 2D, the dataset classifier on images):"), Table(rows)]
    if collapse:
        blocks += [Paragraph("**Mode collapse**, per dataset and family (default sampler): modes (2D components) or "
                             "classes (images, the dataset classifier's predictions) that receive at least half "
                             "their share, against the count that 99% of real sample sets of the same N reach:"),
                   Table(collapse)]
    conv = tables.convergence_rows(by_ds)
    if conv:
        blocks += [Paragraph("**Convergence guard**, per dataset and family:"), Table(conv)]
    return blocks


def _taxonomy(by_ds: dict[str, list[CellRecord]]) -> list:
    blocks = []
    for ds, rs in by_ds.items():
        first_seed = min(r.seed for r in rs)
        rows, sentences = tables.taxonomy_rows([r for r in rs if r.seed == first_seed])
        batch = rs[0].primary()[1].sample_throughput_batch
        blocks += [Heading(f"Taxonomy reproduced from measurements: `{ds}`"),
                   Paragraph(f"Seed {first_seed}. *Sampling claim*: sampling is measured *slow* when its cost per "
                             f"sample at batch {batch} is at least {verdicts.SLOW_RATIO:g}× that of the fastest family "
                             "on this dataset. NFE counts sequential network evaluations per sampling call. "
                             "*Likelihood claim*: where the density can be integrated numerically (2D), the verdict "
                             "rests on that integral: an exact density integrates to 1, exp(bound) to less than 1, "
                             "and exp(−E) to Z ≠ 1. A family that declares no textbook claim says so."),
                   Table(rows)]
        if sentences:
            blocks.append(Bullets(sentences))
    return blocks


def run_info(path: Path) -> dict:
    """``run.json`` of a run folder, or ``{}`` when absent or damaged (the report then says less about the run)."""
    return read_json_dict(path / "run.json")


def device_text(info: dict, recs: list[CellRecord]) -> str:
    """The device the run's models ran on, in words (``cpu (x86_64, 2 torch threads)``)."""
    dev = info.get("device") or (recs[0].model_device or recs[0].device if recs else {}) or {}
    threads = f", {dev['torch_threads']} torch threads" if dev.get("torch_threads") else ""
    return f"{dev.get('type', '?')} ({dev.get('name', '?')}{threads})"


def seeds_text(recs: list[CellRecord]) -> str:
    seeds = sorted({r.seed for r in recs})
    return f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})"


def caption(info: dict, recs: list[CellRecord]) -> str:
    """The figures' caption: N, profile, device, seeds and what the error bars are."""
    n_seeds = len({r.seed for r in recs})
    bars = (f"error bars: ±1 std over the {n_seeds} seeds" if n_seeds > 1
            else "one seed: no error bars (the seed spread is unknown)")
    return (f"N = {n_samples_of(recs) or '?'} samples per sampler; profile {info.get('profile') or 'default'}; "
            f"device {device_text(info, recs)}; {seeds_text(recs)}; {bars}.")


def how_to_read(info: dict, recs: list[CellRecord]) -> str:
    """The "how to read this" paragraph: profile, N, device, what the marks mean, and what the numbers
    cannot be compared with."""
    modality = recs[0].modality if recs else None
    d = recs[0].density if recs and recs[0].density else None
    test_n = d.test_n if d and d.test_n else None
    lines = [f"**How to read this.** Profile `{info.get('profile') or 'default'}`, device {device_text(info, recs)}, "
             f"{seeds_text(recs)}; sample metrics on N = {n_samples_of(recs) or '?'} samples per sampler"
             + (f", likelihoods on {test_n} test examples" if test_n else "") + ". "
             "Numbers have 3 significant digits; **bold** is the best value of its column (lower or higher is "
             "better as declared per metric in `bench/schema.py`); ± is the sample std over seeds where a cell ran "
             "2 or more seeds, else the metric's own standard error where it has one; `≤ x` is an upper bound "
             "(ELBO, IWAE): the true NLL or bits/dim is lower. A difference is a finding only when it exceeds "
             "that spread. Timings (ms, samples/s) hold for this device and these versions only."]
    if modality is not None and get_modality(modality).inception:
        lines.append("**Not comparable with published numbers:** sample and reference counts (FID_N with small N "
                     "is biased upward), CPU-sized models and training budgets differ from papers'"
                     + ("; and the CIFAR-10 copy here is JPEG-compressed, which shifts FID and bits/dim"
                        if any(r.dataset_info.get("comparable_to_published") is False for r in recs) else "")
                     + ". Compare families within this report, not with the literature.")
    else:
        lines.append("The 2D mixtures have a known density, so NLL, KL and the normalization checks are exact "
                     "up to their stated error; training budgets are CPU-sized, so a family's rank may change "
                     "with a longer budget.")
    return " ".join(lines)


def headline_blocks(recs: list[CellRecord], dataset: str, modality: str | None, stats) -> list:
    """The dataset's headline table (:func:`bench.report.tables.headline_rows`) with its explanation."""
    if modality is None:
        return []
    rows, several = tables.headline_rows(stats, dataset, modality)
    spread = ("mean ± sample std (ddof = 1) over the seeds of each cell" if several
              else "one seed: ± is the metric's own standard error where it has one")
    return [Paragraph(f"**Headline** (`{dataset}`): {spread}; best value per column in **bold**; "
                      "every metric's mean, std and n is in `seeds.csv`."), Table(rows)]


def build_report(run: RunDir) -> Document:
    """The report of ``run`` as a :class:`~bench.report.document.Document`; draws the figures into
    ``<run>/figures/``."""
    records = run.records()
    info = run_info(run.path)
    by_ds, families = order_records(records, info)
    ok = [r for rs in by_ds.values() for r in rs]
    failed = [r for r in records if not r.ok]
    figures = run.path / "figures"
    figures.mkdir(exist_ok=True)
    dev, ver = info.get("device", {}), info.get("versions", {})
    stats = seed_stats(ok)
    doc = Document(f"genbench report: suite `{run.suite}`, run `{run.run_id}`")
    doc.add(Note(how_to_read(info, ok)))
    doc.add(Bullets([
        f"profile: {info.get('profile') or 'default'} ({info.get('profile_reason') or 'as asked'}); "
        f"suite file `{info.get('suite_file')}`",
        f"device: {dev.get('name')} ({dev.get('type')}, {dev.get('torch_threads')} torch threads)",
        "versions: " + ", ".join(f"{k} {v}" for k, v in ver.items()),
        f"git SHA: `{info.get('git_sha')}`",
        f"cells: {len(ok)} ok, {len(failed)} failed",
    ]))
    if failed:
        doc.add(Heading("Failed cells"), Table([{"cell": r.cell_id, "reason": r.reason or r.status} for r in failed]))
    modality = ok[0].modality if ok else None
    mod = get_modality(modality) if modality else None
    cap = caption(info, ok)
    if ok:  # the trade-offs at a glance first; the tables they are drawn from follow
        paths = trade_offs.all_figures(stats, ok, list(by_ds), families, modality, figures)
        doc.add(Heading("Trade-offs at a glance"), *[Figure(f"figures/{p.name}", p.stem, cap) for p in paths])
    if mod is not None and mod.closed_form_density:  # the truth each dataset is scored against
        doc.add(Heading("Datasets"), Table(tables.dataset_rows_2d(by_ds)))
    doc.add(*guidance_blocks(run, by_ds, families, modality, figures, cap))
    doc.add(*claims_blocks(by_ds, failed))
    doc.add(*_taxonomy(by_ds))
    doc.add(*_taxonomy_rest(by_ds, failed))
    doc.add(*training_blocks(by_ds, failed))
    doc.add(*samples_and_likelihoods_blocks(by_ds))
    for ds, rs in by_ds.items():
        doc.add(Heading(f"All metrics: `{ds}`"), *headline_blocks(rs, ds, modality, stats))
        if mod is not None and mod.inception:  # metrics of Inception features, with their protocol
            info_ds = rs[0].dataset_info
            if info_ds.get("comparable_to_published") is False:
                doc.add(Paragraph(f"**Not comparable with published numbers.** {info_ds.get('note', '')}"))
            doc.add(Paragraph("**Every metric**, per sampler and seed:"), Paragraph(tables.fingerprint_text(rs[0])),
                    Table(tables.image_metrics_rows(rs)))
            doc.add(*[Paragraph(line) for line in tables.protocol_lines(rs)])
        else:
            rows = tables.metrics_rows(rs)
            ref = tables.reference_row(rs)
            doc.add(Paragraph("**Every metric**, per sampler and seed; the *true mixture* row scores fresh samples "
                              "of the true density the same way (the noise floor of the sample metrics); the "
                              "*single Gaussian* and *KDE* rows are claim T30's simple density estimators, fitted "
                              "to the training split (no network; their train column is the fit's seconds):"),
                    Table(rows + ([ref] if ref else []) + tables.estimator_rows_2d(rs)))
    if mod is not None and mod.closed_form_density:  # samples and model densities next to the true density
        paths = figures2d.samples_and_densities(run, by_ds, families, figures) + [
            figures2d.cost_vs_kl(by_ds, families, figures)]
        doc.add(Heading("Samples and densities"), *[Figure(f"figures/{p.name}", p.stem, cap) for p in paths])
    elif mod is not None:  # sample grids
        doc.add(Heading("Samples"))
        for r in ok:
            for sampler in r.samplers:
                if (run.cell(r.cell_id) / f"samples_{sampler}.png").exists():
                    doc.add(Paragraph(f"**{r.dataset} / {r.family} / {sampler}** (seed {r.seed})"),
                            Figure(f"{r.cell_id}/samples_{sampler}.png", f"{r.family} {sampler}"))
    plan = read_json_dict(run.path / "plan.json")
    order = [c["cell"] for c in plan.get("cells", [])]
    estimates = tables.estimate_rows(sorted(records, key=lambda r: (r.cell_id not in order,
                                                                    order.index(r.cell_id) if r.cell_id in order
                                                                    else 0, r.cell_id)))
    if estimates:
        doc.add(Heading("Plan: estimated and measured wall time"),
                Paragraph(f"Cost model `{plan.get('cost_model', '?')}` (bench/plan.py): rates measured on this "
                          f"device by probes that took {plan.get('probe_seconds', 0):.1f} s "
                          f"({plan.get('probes_run', 0)} measured, {plan.get('probes_cached', 0)} cached), "
                          f"preflight {plan.get('preflight_seconds', 0):.1f} s. Seconds measured (estimated); "
                          "error = measured / estimated − 1. The report stage is not estimated."),
                Table(estimates))
    protocol = next((r.protocol for r in ok if r.protocol), None)
    if protocol:
        doc.add(Heading("Protocol"), Bullets([f"**{k}**: {v}" for k, v in protocol.items()]))
    return doc


def guidance_blocks(run: RunDir, by_ds: dict[str, list[CellRecord]], families: list[str], modality: str | None,
                    figures: Path, cap: str) -> list:
    """A class-conditional run's section (docs/conditional.md): the guidance figures, per dataset the sweep table
    and the T25 verdict of each sweep in one sentence, and every family's conditioning (T24); nothing for an
    unconditional run."""
    recs = [r for rs in by_ds.values() for r in rs]
    cond = [r for r in recs if any(m.guidance is not None for m in r.samplers.values())]
    if not cond or modality is None:
        return []
    sweeps = guidance.sweeps(cond)
    blocks: list = [
        Heading("Conditional generation and classifier-free guidance"),
        Paragraph("Every family here is class-conditional (the label: the mixture component that drew each point in "
                  "2D, the class for images). Each sampler draws its N samples with the labels of the first N test "
                  "points, which are each class's reference: *label agreement* is the fraction of samples the "
                  "dataset's classifier gives back the requested label (2D: the true mixture's Bayes classifier; "
                  "MNIST: the LeNet; *real reference*: the same classifier on the real points, its ceiling); the "
                  "*(cond)* metrics compare each class's samples with that class's real points and average over "
                  "classes; the *diversity ratio* is the samples' mean pairwise distance within a class over the real "
                  "points'. A guided sampler at scale w follows (1 + w) f(x, c) − w f(x, ∅) and costs twice the NFE. "
                  "In 2D, −log p_w is the samples' mean negative log-density under the tilted target "
                  "p_w(x|c) ∝ p(x|c)^(1+w) p(x)^(−w) and H(p_w) its entropy: equal for samples of p_w. Values are "
                  "mean ± std over seeds."),
        Paragraph(f"**T25 rule** (guidance trades diversity for fidelity): {guidance.T25_RULE}."),
        Paragraph(f"**T24 rule** (every family can be conditioned): {guidance.T24_RULE}."),
    ]
    paths = [figures_guidance.fidelity_diversity(sweeps, families, figures),
             figures_guidance.quality_vs_guidance(sweeps, families, modality, figures)]
    if get_modality(modality).closed_form_density:
        paths += figures_guidance.tilted_panels(run, by_ds, sweeps, figures)
    blocks += [Figure(f"figures/{p.name}", p.stem, cap) for p in paths if p is not None]
    for ds, rs in by_ds.items():
        sws = [sw for sw in sweeps if sw.dataset == ds]
        blocks.append(Heading(f"Guidance and conditioning: `{ds}`"))
        if sws:
            blocks += [Paragraph("**Guidance sweeps** (one row per sampler and scale w):"),
                       Table(figures_guidance.sweep_rows(sws, modality))]
            said = [guidance.t25(sw) for sw in sws if len(sw.ws) > 1]
            if said:
                blocks.append(Bullets([f"**T25, {v.family} {v.scope.split(': ', 1)[-1].split(' ', 1)[-1]}: "
                                       f"{v.verdict}** ({v.evidence})" for v in said]))
        rows = figures_guidance.conditioning_rows([r for r in rs if r in cond])
        if rows:
            blocks += [Paragraph("**Conditioning of every family** (unguided samples, w = 0):"), Table(rows)]
    return blocks


def write_report(run: RunDir) -> Path:
    """Write ``report.md``, ``report.html`` (self-contained: figures embedded) and ``figures/`` for ``run``;
    returns the Markdown report's path."""
    doc = build_report(run)
    write_text(run.path / "report.html", doc_.to_html(doc, run.path))
    return write_text(run.path / "report.md", doc_.to_markdown(doc))


def finish_run(run: RunDir, stages: tuple[str, ...], log: Callable[[str], None] | None = None) -> None:
    """What follows a suite's cells (``run_suite``'s ``finish``, under the run lock): ``summary.csv`` when the
    run evaluated or reports; ``seeds.csv`` and the rows of ``results/history.sqlite``
    (:func:`bench.analysis.history.record_run`); and, with the ``report`` stage, the report."""
    if {"evaluate", "report"} & set(stages):
        write_summary(run)
        record_run(run)
    if "report" in stages:
        path = write_report(run)
        if log is not None:
            log(f"genbench: report in {path}")


def samples_and_likelihoods_blocks(by_ds: dict[str, list[CellRecord]]) -> list:
    """Per dataset, the measurements behind the sample and likelihood claims (:mod:`bench.analysis.sample_verdicts`):
    the probability-flow ODE's likelihood and its cost, sequential passes and samples/s against batch size, blur
    against the test set, Theis et al.'s noise mixture and the simple estimators (images; in 2D they are rows of
    the metrics table). Each table's verdicts are in the claims table above."""
    blocks = []
    for ds, rs in by_ds.items():
        parts = []
        ode = tables.ode_rows(rs)
        if ode:
            parts += [Paragraph("**Likelihood by the probability-flow ODE** (claim T3; beside the bound of claim T2): "
                                "the ODE of the cell's `pf_ode` sampler integrated from each test point up to the "
                                "prior (Song et al. 2021, arXiv:2011.13456), the divergence by the exact trace (2D) "
                                "or Hutchinson's estimator (images); images are dequantized, so their bits/dim are "
                                "upper bounds. Mean ± SE over seeds (one seed: the test-set SE)."), Table(ode)]
        passes = tables.passes_rows(rs)
        if passes:
            parts += [Paragraph("**Sequential network passes per sample** (claims T7–T10): NFE first, against the "
                                "fewest any family needs; the wall clock per sample (throughput batch) second, with "
                                "the parameter count; samples/s against batch size for each default sampler "
                                "(first seed)."), Table(passes)]
        blur = tables.blur_rows(rs)
        if blur:
            parts += [Paragraph("**Blur against the test set** (claims T17, T18): high-frequency spectral energy above "
                                "half Nyquist (Durall et al. 2020, arXiv:2003.01826) and the variance of the "
                                "Laplacian, each relative to the test images' (< 1 blurrier, > 1 sharper or noisier); "
                                "|log| is the distance from the data's sharpness either way. The VAE's `decoder_mean` "
                                "sampler is E[x|z], its `default` the full draw x ~ p(x|z)."), Table(blur)]
        theis = tables.theis_rows(rs)
        if theis:
            parts += [Paragraph("**Likelihood against sample quality** (claim T6; Theis et al. 2016, "
                                "arXiv:1511.01844): the mixture 0.01 p_model + 0.99 uniform noise, its bits/dim exact "
                                "by logsumexp on the same test images, its samples the model's with 99% replaced by "
                                "noise."), Table(theis)]
        if rs and rs[0].modality == "image":
            est = tables.estimator_rows_image(rs)
            if any("reference" in r["model"] for r in est):
                parts += [Paragraph("**Simple density estimators** (claim T30): one Gaussian and a KDE on dequantized "
                                    "pixels, beside the families (first seed; ≤: an upper bound)."), Table(est)]
        if parts:
            blocks += [Heading(f"Samples and likelihoods: `{ds}`"), *parts]
    return blocks


def _taxonomy_rest(by_ds: dict[str, list[CellRecord]], failed: list[CellRecord]) -> list:
    """Per dataset: training cost and stability over seeds (failed seeds count), latent inference, and the
    remaining claims' verdicts."""
    blocks = []
    for ds, rs in by_ds.items():
        rows, rules = tables.taxonomy_rest_rows(rs + [r for r in failed if r.dataset == ds])
        if rows:
            blocks += [Heading(f"Training, stability, latent inference and the remaining claims: `{ds}`"),
                       Table(rows), Bullets(rules)]
    return blocks
