"""The documentation site: generated pages are not stale, the README fits on a screen with its two commands,
the command line and the docs list the same subcommands, and the generators render hand-made inputs as a reader
can check."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import re
from pathlib import Path
from typing import Annotated

import pytest

import run_bench
from bench.analysis.claims import CLAIMS
from bench.report import docs, docs_runs
from bench.store import schema
from models import samplers
from models.fields import Range

ROOT = Path(__file__).resolve().parent.parent
INSTALL = 'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && python run_bench.py'
TESTS = "python -m pytest -q"


def _build_docs():
    spec = importlib.util.spec_from_file_location("build_docs", ROOT / "scripts" / "build_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_docs = _build_docs()


def test_no_generated_page_is_stale():
    stale = [str(p.relative_to(ROOT)) for p in build_docs.stale()]
    assert not stale, f"stale generated pages {stale}: run `python scripts/build_docs.py` and commit the result"


def test_readme_fits_on_a_screen_and_keeps_its_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    assert f"```bash\n{INSTALL}\n```" in readme and f"```bash\n{TESTS}\n```" in readme
    assert "-m pytest -q" in (ROOT / ".ci" / "run").read_text()  # the README's test command is what CI calls


def test_readme_links_and_figure_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if not t.startswith("http")]
    assert "docs/getting-started.md" in local and "docs/verdicts.md" in local
    missing = [t for t in local if not (ROOT / t).is_file()]
    assert not missing, f"README links to missing files: {missing}"
    figure = ROOT / "docs/assets/tradeoff-2d.png"
    assert ("docs/assets/tradeoff-2d.png" in local) == figure.is_file()  # the figure, once a run gave it
    assert not figure.is_file() or figure.stat().st_size < 200_000  # a small PNG


def test_every_docs_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = [p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")]
    assert pages and all(f": {p}\n" in nav for p in pages), [p for p in pages if f": {p}\n" not in nav]


def test_the_help_the_console_script_and_the_docs_list_the_same_subcommands():
    assert build_docs.console_scripts() == {"genbench": "run_bench:main"}  # genbench is python run_bench.py
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        run_bench.main(["--help"])
    assert exit_.value.code == 0
    listed = re.findall(r"^  (\w+)\s{2,}", out.getvalue().split("subcommands")[1], re.M)
    cli = (ROOT / "docs/reference/cli.md").read_text(encoding="utf-8")
    documented = re.findall(r"^### (\w+)$", cli, re.M)
    assert listed == documented == list(run_bench.SUBCOMMANDS)
    for option in ("--profile", "--set", "--resume", "--dry-run", "--launcher"):  # every option is documented
        assert f"`{option}`" in cli


# --------------------------------------------------------------------------- generators on hand-made inputs
@dataclasses.dataclass
class _Made:
    """A config made for this test.

    Attributes:
        steps: optimisation steps.
        max_seconds, warmup_seconds: wall-clock budgets,
            in seconds.
        mode: how to run.
    """

    steps: Annotated[int, Range(ge=1, le=10**9)] = 2000
    max_seconds: Annotated[float, Range(gt=0)] | None = None
    warmup_seconds: float = 1.5
    mode: str = "fast"


def test_field_rows_read_types_ranges_defaults_units_and_docstrings():
    rows = {r["key"]: r for r in docs.field_rows(_Made, "x.")}
    assert rows["`x.steps`"] == {"key": "`x.steps`", "type": "int", "allowed": "an integer in [1, 10^9]",
                                 "default": "`2000`", "unit": "steps", "meaning": "optimisation steps."}
    assert rows["`x.max_seconds`"]["type"] == "float or null"
    assert rows["`x.max_seconds`"]["allowed"] == "a finite number > 0"
    assert rows["`x.max_seconds`"]["default"] == "`null`" and rows["`x.max_seconds`"]["unit"] == "s"
    assert rows["`x.warmup_seconds`"]["meaning"] == "wall-clock budgets, in seconds."  # two names, one entry
    assert rows["`x.mode`"]["allowed"] == "any" and rows["`x.mode`"]["default"] == "`fast`"


def test_the_suites_page_lists_every_eval_key_with_its_declared_range():
    page = docs.suites_page()
    for f in dataclasses.fields(docs.EvalConfig):
        assert f"| `eval.{f.name}` |" in page
    assert "| `train.lr` | float | a finite number in (0, 10] | `0.001` |" in page
    assert docs.UNDOCUMENTED not in page  # every top-level key of bench.config.suite is described
    assert "### `ddim`" in page and "| `steps` | int | an integer in [1, 10^6] | `50` | steps |" in page


def test_the_metrics_page_has_one_row_per_declared_metric_with_its_direction_and_source():
    page = docs.metrics_page()
    declared = [f for part, _, _ in docs._PARTS for f in dataclasses.fields(part) if "unit" in f.metadata]
    rows = [line for line in page.splitlines() if line.startswith("| `") and line.count(" | ") == 7]
    assert len(rows) == len(declared)
    fid = next(line for line in rows if line.startswith("| `fid_<split>` |"))
    assert "| lower |" in fid and "Heusel et al. 2017, arXiv:1706.08500" in fid and "`metric_protocol`" in fid
    kl = next(line for line in rows if line.startswith("| `kl_nats` |"))
    assert "| nats | lower | `kl_se_nats` | max(5% of A's mean, 0.01 nats) |" in kl
    assert schema.metric_info("precision").source.startswith("Kynkäänniemi et al. 2019")
    for row in docs.readme_rows():
        assert row in page


def _snapshot(**over):
    snap = {"format": docs_runs.FORMAT, "suite": "toy2d", "profile": "default", "run_id": "r1", "git_sha": "abc1234ef",
            "launcher": "local", "started_at": "2026-12-05T10:00:00+0000", "finished_at": "2026-12-05T10:17:42+0000",
            "wall_seconds": 1062.0, "device": {"type": "cpu", "name": "AMD EPYC", "cpu_count": 2, "torch_threads": 2},
            "torch": "2.14.1", "datasets": ["8gaussians"], "seeds": [0, 1, 2], "families": ["gan", "flow"],
            "cells": {"total": 6, "ok": 6, "failed": 0}, "cell_seconds": 1000.0,
            "stage_seconds": {"train": 600.0, "sample": 200.0, "density": 100.0, "evaluate": 100.0},
            "estimate_seconds": 800.0, "per_family": {"gan": {"cells": 3, "wall_seconds": 400.0}},
            "verdicts": [{"claim": "T14", "verdict": "inconclusive", "rule": "fragile when a seed diverged.",
                          "evidence": "3 seeds, CV 0.33", "scope": "8gaussians", "family": "gan"}],
            "taxonomy": {"8gaussians": {"seed": 0, "rows": [{"family": "gan", "textbook likelihood": "none",
                                                               "NFE": "1", "cost per sample": "fastest"}]}},
            "note": "exclusive CPU lock"}
    return {**snap, **over}


def test_the_claims_page_gives_every_claim_its_texts_rule_and_verdict():
    page = docs_runs.claims_page([_snapshot()])
    assert all(f"### {c}\n" in page for c in CLAIMS)
    t14 = page.split("### T14\n")[1].split("### T15")[0]
    assert "Texts: `000`, `003`, `004`." in t14 and "Rule: fragile when a seed diverged." in t14
    assert "| 8gaussians | gan | **inconclusive** | 3 seeds, CV 0.33 |" in t14
    assert "*not measured*" in page.split("### T5\n")[1].split("### T6")[0]
    assert "*method" in page.split("### T26\n")[1].split("### T27")[0]


def test_the_results_page_gives_wall_times_with_date_device_and_the_estimate_error():
    page = docs_runs.results_page([_snapshot()])
    row = next(line for line in page.splitlines() if line.startswith("| 2026-12-05 |"))
    assert "| AMD EPYC, 2 cores, 2 torch threads |" in row and "| 17m42s |" in row
    assert "| 13m20s (+25%) |" in row  # 1000 s of cells against 800 s estimated
    assert "| 10m00s / 3m20s / 1m40s / 1m40s |" in row and "| exclusive CPU lock |" in row
    table = docs_runs.readme_taxonomy([_snapshot(profile="smoke", run_id="old"), _snapshot()])
    assert "run `r1`" in table and "| gan | none | – | – | – | 1 | fastest | – |" in table


def test_the_figure_block_shows_the_latest_2d_default_figure_or_says_how_to_add_one():
    block = docs_runs.figure_block([_snapshot()], "docs/", figure=True, report=True)
    assert block.startswith("![") and "](docs/assets/tradeoff-2d.png)" in block
    assert "±1 std over 3 seeds" in block and "[The full report](docs/reports/toy2d-default.md)" in block
    assert "--add-run" in docs_runs.figure_block([_snapshot()], "", figure=False)
    assert "--add-run" in docs_runs.figure_block([_snapshot(suite="mnist")], "", figure=True)


# --------------------------------------------------------------------------- pages and keys that land later
def test_the_nav_lists_pages_that_exist_in_order_and_any_other_page_under_more(tmp_path):
    (tmp_path / "guides").mkdir()
    for page, text in {"index.md": "# Home\n", "guides/ray.md": "# Ray\n", "testing.md": "# Tests: two tiers\n",
                       "new-topic.md": "intro\n\n# A page another branch added\n"}.items():
        (tmp_path / page).write_text(text)
    nav = build_docs.nav_yaml(tmp_path, generated=("reference/suites.md",))
    assert nav == ('nav:\n  - "Home": index.md\n  - "Guides":\n      - "Scale-out on Ray": guides/ray.md\n'
                   '  - "Design notes":\n      - "Tests: two tiers": testing.md\n'
                   '  - "Reference":\n      - "Suites": reference/suites.md\n'
                   '  - "More":\n      - "A page another branch added": new-topic.md\n')


def test_a_top_level_block_filled_by_a_suite_dataclass_documents_itself(monkeypatch):
    monkeypatch.delitem(docs._TOP, "eval")  # as if `eval:` were a block that a new branch added to Suite
    row = docs._top_row("eval")
    assert row == {"key": "`eval`", "type": "mapping", "allowed": "the keys of `eval.*` below",
                   "default": "(mapping)", "meaning": docs.first_sentence(docs.EvalConfig)}
    sections = "\n".join(docs._block_sections())
    assert sections.startswith("## `eval.*`") and "| `eval.pr_k` |" in sections
    assert docs._top_row("not_a_suite_field")["meaning"] == docs.UNDOCUMENTED


def test_the_api_reference_lists_the_public_objects_a_module_defines_in_source_order(tmp_path, monkeypatch):
    (tmp_path / "made_mod.py").write_text("from math import sqrt\n\n\nclass B:\n    pass\n\n\ndef _hidden():\n"
                                          "    pass\n\n\ndef a():\n    return sqrt(4.0)\n\n\nCONSTANT = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import made_mod

    assert docs.public_objects(made_mod) == ["B", "a"]  # not the imported sqrt, the private or the constant
    api = (ROOT / "docs/reference/api.md").read_text(encoding="utf-8")
    for kind in set(samplers.KINDS.values()):
        assert f"::: models.samplers.{kind.__name__}\n" in api  # the suites reference links to each


def test_a_copied_image_report_takes_its_cells_sample_grids_along(tmp_path, monkeypatch):
    from PIL import Image

    run = tmp_path / "run"
    (run / "figures").mkdir(parents=True)
    (run / "mnist__vae__s0").mkdir()
    Image.new("RGB", (4, 3)).save(run / "figures" / "pareto.png")
    (run / "mnist__vae__s0" / "samples_default.png").write_bytes(b"\x89PNG grid")
    (run / "report.md").write_text("![p](figures/pareto.png) ![g](mnist__vae__s0/samples_default.png) "
                                   "![x](../outside/samples_a.png) ![m](mnist__gan__s0/samples_default.png)\n")
    monkeypatch.setattr(build_docs, "REPORTS", tmp_path / "reports")
    out = build_docs.copy_report(run, {"suite": "mnist", "profile": "cpu", "run_id": "r"})
    text = out.read_text()
    assert "](mnist-cpu/figures/pareto.png)" in text and "](mnist-cpu/mnist__vae__s0/samples_default.png)" in text
    assert (tmp_path / "reports/mnist-cpu/mnist__vae__s0/samples_default.png").read_bytes() == b"\x89PNG grid"
    # a link leaving the run folder, and one to a grid the run does not have, stay as they were
    assert "](../outside/samples_a.png)" in text and "](mnist__gan__s0/samples_default.png)" in text
    assert sorted(p.name for p in (tmp_path / "reports/mnist-cpu").iterdir()) == ["figures", "mnist__vae__s0"]
