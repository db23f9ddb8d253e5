"""Shared fixtures."""

import os

# On a shared machine, OpenMP threads that spin while waiting make small ops ~100x slower
# when another process holds a core; passive waiting costs nothing measurable otherwise.
# It must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
