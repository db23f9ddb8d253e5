"""The sabotage battery of scripts/gate_calibration.py stays applicable: each one-line bug's text occurs exactly
once in this checkout (else the code moved and the battery must follow), and applying it to a copy changes that
one place and leaves the checkout untouched."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from bench.core.env import ROOT

spec = importlib.util.spec_from_file_location("gate_calibration", ROOT / "scripts" / "gate_calibration.py")
gate_calibration = importlib.util.module_from_spec(spec)
sys.modules.setdefault("gate_calibration", gate_calibration)  # dataclasses look their module up there
spec.loader.exec_module(gate_calibration)


def test_every_family_has_a_sabotage():
    import models

    covered = {f for s in gate_calibration.SABOTAGES for f in s.families}
    assert covered == set(models.names("vector"))


@pytest.mark.parametrize("s", gate_calibration.SABOTAGES, ids=lambda s: s.name)
def test_each_sabotage_changes_one_place_of_a_copy(s, tmp_path):
    original = (ROOT / s.path).read_text()
    assert original.count(s.old) == 1
    (tmp_path / s.path).parent.mkdir(parents=True)
    (tmp_path / s.path).write_text(original)
    gate_calibration.apply(s, tmp_path)
    patched = (tmp_path / s.path).read_text()
    assert patched.count(s.new) == 1 and patched == original.replace(s.old, s.new)
    assert len(patched.splitlines()) == len(original.splitlines())  # a change within lines: no line added or lost
    assert (ROOT / s.path).read_text() == original
    with pytest.raises(ValueError, match="occurs 0 times"):
        gate_calibration.apply(s, tmp_path)  # applied twice: the text is gone
