"""The tutorial "add a family" (docs/tutorials/add-a-family.md) runs as written: its titled code blocks are
extracted, the family file passes every contract test, the Python script fits the 8-Gaussians mixture to within
a few hundredths of a nat of its true entropy, and (slow tier) the suite runs and reports the family."""

from __future__ import annotations

import contextlib
import io
import json
import re
import runpy
from pathlib import Path

import pytest

import models
import run_bench
from bench.report import docs_runs
from tests import test_contract as contract

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "tutorials" / "add-a-family.md"


def blocks() -> dict[str, str]:
    """The page's code blocks that carry a ``title="<file>"``, file -> code."""
    found = re.findall(r'^```\w+ title="([^"]+)"\n(.*?)^```$', PAGE.read_text(encoding="utf-8"), re.S | re.M)
    return dict(found)


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory) -> Path:
    """The tutorial's files written to a folder, its family discovered in this process and removed afterwards."""
    folder = tmp_path_factory.mktemp("tutorial")
    for name, code in blocks().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(code)
    assert models.discover(folder / "my_families") == ["genbench_family_gmm"]
    yield folder
    models.unregister("gmm", modality="vector")


def test_the_page_holds_the_family_the_script_and_the_suite():
    assert set(blocks()) == {"my_families/gmm.py", "try_gmm.py", "gmm_suite.yaml"}


@pytest.mark.parametrize("name", [n for n in dir(contract) if n.startswith("test_")])
def test_the_tutorial_family_passes_every_contract_test(tutorial, name, tmp_path):
    test = getattr(contract, name)
    kwargs = {"tmp_path": tmp_path} if "tmp_path" in test.__code__.co_varnames else {}
    test("gmm", "vector", **kwargs)


def test_the_tutorial_script_fits_the_mixture_to_its_entropy(tutorial):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ns = runpy.run_path(str(tutorial / "try_gmm.py"), run_name="__main__")
    # H(p_data) of 8 well-separated isotropic Gaussians of std 0.5/sqrt(2): log 8 + log(2 pi e 0.125) = 2.838 nats
    assert abs(ns["entropy"] - 2.838) < 0.01
    assert ns["entropy"] - 0.02 < ns["nll"] < ns["entropy"] + 0.05  # a fitted 8-component mixture reaches it
    assert tuple(ns["x"].shape) == (1000, 2) and "test NLL" in out.getvalue()


@pytest.mark.slow
def test_the_tutorial_suite_runs_and_the_report_measures_the_family(tutorial, tmp_path):
    code = run_bench.main([str(tutorial / "gmm_suite.yaml"), "--results", str(tmp_path), "--run-id", "tutorial",
                           "--no-progress"])
    assert code == 0
    run = tmp_path / "gmm-tutorial" / "tutorial"
    rec = json.loads((run / "8gaussians__gmm__s0" / "record.json").read_text())
    assert rec["status"] == "ok" and rec["textbook"] is None and rec["likelihood_kind"] == "exact"
    assert abs(rec["density"]["log_integral_nats"]) < 0.01  # its density integrates to 1 by quadrature
    assert 0 <= rec["density"]["kl_nats"] < 0.5
    snap = docs_runs.snapshot(run, cpu="test CPU")  # what the docs would show of this run
    assert snap["cells"] == {"total": 2, "ok": 2, "failed": 0} and snap["families"] == ["gmm", "gan"]
    assert snap["device"]["name"] == "test CPU" and snap["seeds"] == [0]
    assert [r["family"] for r in snap["taxonomy"]["8gaussians"]["rows"]] == ["gmm", "gan"]
