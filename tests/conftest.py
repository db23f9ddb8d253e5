"""Shared fixtures."""

import os

# On a shared machine, OpenMP threads that spin while waiting make small ops ~100x slower
# when another process holds a core; passive waiting costs nothing measurable otherwise.
# It must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Suites run from tests run their cells in this process (no worker processes: the fast tier starts none) on the
# two threads the fixture below sets; tests of the parallel launcher pass --jobs and --threads themselves.
os.environ.setdefault("GENBENCH_JOBS", "1")
os.environ.setdefault("GENBENCH_THREADS", "2")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
