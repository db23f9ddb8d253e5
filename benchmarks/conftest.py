"""Benchmark settings: passive OpenMP waiting (see tests/conftest.py) and the machine's default threads."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
