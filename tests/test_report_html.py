"""report.html, the trade-off figures and the ``report`` subcommand, on a synthetic 2D run with known numbers.

The run has two seeds of three families on one mixture; its values are chosen so that the
table's winners, means and spreads can be checked by hand. The browser test renders the page in
headless Chromium (Debian's ``chromium``; skipped, with the reason, where it is not installed).
"""

from __future__ import annotations

import base64
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import run_bench
from bench.report import figures
from bench.report.document import Document, Figure, to_html
from bench.report.run_report import write_report
from bench.store.runs import RunDir
from bench.store.schema import CellRecord, DensityResult, SamplerResult, TrainResult

BOOK = {"flow": {"likelihood": "exact", "sampling": "fast", "likelihood_text": "exact", "sampling_text": "fast"},
        "vae": {"likelihood": "bound", "sampling": "fast", "likelihood_text": "ELBO bound", "sampling_text": "fast"},
        "gan": {"likelihood": "none", "sampling": "fast", "likelihood_text": "none", "sampling_text": "fast"}}
# per family: (MMD² by seed, precision by seed, µs/sample, NLL or bound by seed, kind)
VALUES = {"flow": ((0.010, 0.012), (0.90, 0.94), 20.0, (2.90, 2.96), "exact"),
          "vae": ((0.030, 0.050), (0.60, 0.70), 2.0, (3.50, 3.70), "bound"),
          "gan": ((0.200, 0.300), (0.95, 0.97), 1.0, None, "none")}
INFO = {"components": 8, "n_train": 100, "n_val": 10, "n_test": 50, "true_entropy_nats": 2.83,
        "true_entropy_se_nats": 0.001, "entropy_mc_samples": 1000}


def _record(family: str, seed: int, suite: str = "toy") -> CellRecord:
    mmd, prec, us, nll, kind = VALUES[family]
    d = DensityResult(likelihood_kind=kind, test_n=50)
    if kind == "exact":
        d.test_nll_nats, d.test_nll_se_nats, d.kl_nats = nll[seed], 0.02, nll[seed] - 2.83
    elif kind == "bound":
        d.test_nll_bound_nats, d.test_nll_bound_se_nats, d.bound_name = nll[seed], 0.05, "elbo"
    m = SamplerResult(sample_nfe=1, sample_us_per_sample=us, sample_throughput_per_s=1e6 / us, sample_latency_ms=0.1,
                      n_samples=200, mmd2=mmd[seed], precision=prec[seed], recall=0.5 + 0.1 * seed,
                      mode_coverage=1.0)
    history = [{"step": k, "seconds": 0.1 * k, "loss": 3.0 / k} for k in range(1, 11)]
    return CellRecord(suite=suite, run_id="r", dataset="8gaussians", family=family, seed=seed, status="ok",
                      modality="vector", likelihood_kind=kind, textbook=BOOK[family], density=d,
                      samplers={"default": m}, dataset_info=INFO, figure_box=[-4.0, 4.0],
                      train=TrainResult(train_seconds=1.0, train_steps=10, train_history=history))


def _run(root: Path, suite: str = "toy") -> RunDir:
    run = RunDir(root, suite, "r")
    run.path.mkdir(parents=True)
    for fam in VALUES:
        for seed in (0, 1):
            run.cell(f"8gaussians__{fam}__s{seed}").mkdir()
            run.write_record(_record(fam, seed, suite))
    return run


@pytest.fixture(scope="module")
def report_run(tmp_path_factory) -> RunDir:
    run = _run(tmp_path_factory.mktemp("res"))
    write_report(run)
    return run


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_the_pareto_front_of_a_known_point_set():
    # (cost, quality): (3, 4) is beaten by (2, 3); (5, 1) is beaten by (4, 1) (same quality, cheaper)
    pts = [(1, 5), (2, 3), (3, 4), (4, 1), (5, 1), (0.5, 9)]
    assert figures.pareto_front(pts) == [5, 0, 1, 3]
    assert figures.pareto_front([(1, 1)]) == [0] and figures.pareto_front([]) == []


def test_the_headline_table_bolds_the_winner_and_gives_the_seed_spread():
    from bench.analysis.aggregate import seed_stats
    from bench.report.tables import headline_rows

    rows, several = headline_rows(seed_stats([_record(f, s) for f in VALUES for s in (0, 1)]), "8gaussians", "vector")
    assert several
    by = {r["family"]: r for r in rows}
    # MMD² (lower is better): flow's mean 0.011 is the least; std of (0.010, 0.012) = 0.0014142
    assert by["flow"]["MMD²"] == "**0.0110 ± 0.0014**" and by["gan"]["MMD²"] == "0.250 ± 0.071"
    # precision (higher is better): gan's mean 0.96 is the largest
    assert by["gan"]["precision"] == "**0.960 ± 0.014**" and by["flow"]["precision"] == "0.920 ± 0.028"
    # cost (ms/sample, lower is better): gan's 1 µs = 0.001 ms; one value on both seeds, so no ±
    assert by["gan"]["cost (ms/sample)"] == "**0.00100**" and by["flow"]["cost (ms/sample)"] == "0.0200"
    # NLL: flow's exact 2.93 beats vae's bound 3.60; the bound is written with ≤; gan has none
    assert by["flow"]["NLL (nats)"] == "**2.93 ± 0.042**" and by["vae"]["NLL (nats)"] == "≤ 3.60 ± 0.14"
    assert by["gan"]["NLL (nats)"] == "–" and by["flow"]["seeds"] == "2"
    assert by["flow"]["NFE"] == "1" and by["flow"]["train (s)"] == "1"  # facts: no winner, no ±, counts as integers


def test_report_html_is_self_contained_with_decodable_figures(report_run):
    page = (report_run.path / "report.html").read_text()
    assert (report_run.path / "report.md").exists()
    text = re.sub(r'"data:image/png;base64,[A-Za-z0-9+/=]+"', '""', page)  # the page without its embedded images
    assert not re.search(r"https?:|//[a-z]|url\(|@import|<link|<script", text)  # nothing external to fetch
    srcs = re.findall(r'<img src="([^"]*)"', page)
    names = {p.name for p in (report_run.path / "figures").glob("*.png")}
    assert {"pareto.png", "likelihood.png", "training.png", "precision_recall.png", "samples.png"} <= names
    assert len(srcs) == len(names)  # every figure is embedded, none linked
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        w, h = _png_size(base64.b64decode(src.split(",", 1)[1]))
        assert w > 300 and h > 200
    assert "How to read this." in page and "<figcaption>" in page
    assert "N = 200 samples per sampler; profile default" in page and "±1 std over the 2 seeds" in page
    assert "<strong>0.0110 ± 0.0014</strong>" in page  # the bold winner reaches the HTML
    assert "≤ 3.60 ± 0.14" in page


def test_a_missing_figure_is_said_not_linked(tmp_path):
    page = to_html(Document("t").add(Figure("figures/none.png", "none", "c")), tmp_path)
    assert "missing figure: figures/none.png" in page and "<img" not in page


@pytest.mark.slow  # two runs and a comparison report (~2 s)
def test_the_report_command_compares_runs_side_by_side(tmp_path, capsys):
    a, b = _run(tmp_path / "a", "toy"), _run(tmp_path / "b", "toy")
    out = tmp_path / "cmp"
    assert run_bench.main(["report", str(a.path), str(b.path), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    # the same suite twice: two labels, two columns per claim, two sections, never one merged column
    assert "| family | toy/r: 8gaussians | toy/r#2: 8gaussians |" in md
    assert md.count("## Run `toy/r") == 2
    page = (out / "report.html").read_text()
    # per run: Pareto, likelihood, training, precision/recall; no quality-vs-NFE (no family has two samplers)
    assert page.count('<img src="data:image/png;base64,') == 2 * 4
    assert sorted(p.name for p in (out / "figures" / "toy-r").glob("*.png")) == [
        "likelihood.png", "pareto.png", "precision_recall.png", "training.png"]
    assert "https://" not in page


@pytest.mark.parametrize("args, message", [
    (["{tmp}/nothere"], "no such run folder"),
    (["{tmp}/empty"], "not a run folder"),
    (["{run}", "{run}", "--out", "{tmp}/o"], "given twice"),
    (["{run}", "{tmp}/empty2"], "several runs need --out"),
])
def test_bad_input_to_report_exits_2_before_writing(tmp_path, capsys, args, message):
    run = _run(tmp_path / "res")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty2").mkdir()
    argv = [x.format(tmp=tmp_path, run=run.path) for x in args]
    assert run_bench.main(["report", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "o").exists() and not (run.path / "report.html").exists()


CHECK = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push("error: " + (e.message || e.target.outerHTML)), true);
const _ce = console.error; console.error = (...a) => { window.__errors.push("console: " + a.join(" ")); _ce(...a); };
window.addEventListener("load", () => {
  const imgs = [...document.images], bad = imgs.filter(i => !i.complete || i.naturalWidth === 0);
  const empty = [...document.querySelectorAll("table")].filter(t => t.tBodies[0].rows.length === 0);
  const p = document.createElement("pre"); p.id = "genbench-check";
  p.textContent = JSON.stringify({images: imgs.length, broken: bad.length, tables: document.querySelectorAll("table")
    .length, empty_tables: empty.length, errors: window.__errors});
  document.body.appendChild(p);
});
</script>"""


def browser_check(page: Path, screenshot: Path) -> dict:
    """Render ``page`` in headless Chromium with a checking script added after <head>: the number of
    images and broken ones (not decoded: naturalWidth 0), tables and empty ones, and page errors; and
    save a screenshot (1400 px wide)."""
    import json

    chromium = shutil.which("chromium")
    probe = page.with_name("browser_check.html")
    probe.write_text(page.read_text().replace("<head>", "<head>" + CHECK, 1))
    flags = [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
             f"--user-data-dir={page.parent / '.chromium'}", "--virtual-time-budget=10000"]
    try:
        dom = subprocess.run([*flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink()
    found = re.search(r'<pre id="genbench-check">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"no check result from chromium: {dom.stderr[-2000:]}"
    subprocess.run([*flags, f"--screenshot={screenshot}", "--window-size=1400,3000", page.as_uri()],
                   capture_output=True, timeout=120)
    import html as html_

    return json.loads(html_.unescape(found.group(1)))


@pytest.mark.slow  # Chromium in a child process
@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium is not installed (apt-get install chromium; .ci/run installs it)")
def test_report_html_renders_in_headless_chromium(report_run):
    shot = report_run.path / "report_screenshot.png"
    result = browser_check(report_run.path / "report.html", shot)
    assert result["errors"] == [], result
    assert result["images"] >= 6 and result["broken"] == 0, result
    assert result["tables"] >= 4 and result["empty_tables"] == 0, result
    w, h = _png_size(shot.read_bytes())
    assert (w, h) == (1400, 3000)
