"""What the suite run (``run_bench.py``) and the subcommands that run suites (``gate``) parse alike: the default
suite and the count of cells or threads. No torch here: ``run_bench.py`` imports it before torch loads."""

from __future__ import annotations

import argparse
from pathlib import Path

#: the suite ``python run_bench.py`` runs without one
DEFAULT_SUITE = Path(__file__).resolve().parents[2] / "suites" / "toy2d.yaml"


def positive(text: str) -> int:
    """``--jobs`` and ``--threads``: an integer in [1, 1024].

    Raises:
        argparse.ArgumentTypeError: anything else (argparse reports it as one line, exit 2).
    """
    if not text.isdigit() or not 1 <= int(text) <= 1024:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed (must be an integer in [1, 1024])")
    return int(text)
