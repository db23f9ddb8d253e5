"""Shared fixtures.

Tiers: the default ``python -m pytest -q`` runs the fast tier (``-m 'not slow'`` in pyproject.toml): no child
processes, Ray, Chromium or fixtures that train many cells. ``python -m pytest -q -m slow`` runs the rest
(``.ci/run`` runs both).
"""

import os

# On a shared machine, OpenMP threads that spin while waiting make small ops ~100x slower
# when another process holds a core; passive waiting costs nothing measurable otherwise.
# It must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

import models  # noqa: E402
from tests.helpers import SIGNALLING, write_signalling_families, write_tiny_suite  # noqa: E402


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture
def tiny_suite(tmp_path):
    """A function that writes a tiny 2D suite into ``tmp_path`` and returns its path:
    ``tiny_suite(families, *, name="tiny", datasets=("8gaussians",), data=None, eval=None, profiles=None,
    file="s.yaml", **top_level_keys)`` (:func:`tests.helpers.write_tiny_suite`), e.g.
    ``tiny_suite({"gan": {"model": {"hidden": 16}, "train": {"steps": 30}}}, seeds=[0, 1])``."""

    def make(families: dict, **kw):
        return write_tiny_suite(tmp_path, families, **kw)

    return make


@pytest.fixture
def signalling_families(tmp_path_factory):
    """The folder of the test-only families ``trains_on`` and ``pauses_after_training``
    (:data:`tests.helpers.SIGNALLING_FAMILIES`), also registered in this process; removed afterwards. A child
    sees them through ``GENBENCH_FAMILIES=<folder>``."""
    folder = write_signalling_families(tmp_path_factory.mktemp("families"))
    models.discover(folder)
    yield folder
    for name in SIGNALLING:
        models.unregister(name, modality="vector")
