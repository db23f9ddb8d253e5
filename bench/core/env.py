"""Where and with what a result was computed: device, library versions, git SHA."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from bench import __version__

if TYPE_CHECKING:
    import torch

ROOT = Path(__file__).resolve().parents[2]  # the checkout: bench/core/env.py -> repository root
_PACKAGES = ("torch", "torchvision", "numpy", "scipy", "zuko", "pandas", "matplotlib", "PyYAML")


@contextlib.contextmanager
def thread_limit(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads and at most ``n`` threads in every BLAS and OpenMP pool
    (NumPy's OpenBLAS, torch's OpenMP; threadpoolctl), then restore the previous counts."""
    import torch
    from threadpoolctl import threadpool_limits
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(old)


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; anything else is passed to ``torch.device``.

    Raises:
        RuntimeError: CUDA was asked for but is not available.
    """
    import torch  # lazy here and below: readers of records (the history database) import no torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def versions() -> dict[str, str]:
    """Installed versions of Python and the libraries a result depends on."""
    out = {"python": platform.python_version(), "genbench": _genbench_version()}
    for pkg in _PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    import torch

    out["torch_cuda"] = torch.version.cuda or "none"
    return out


def _genbench_version() -> str:
    return __version__


def device_info(device: torch.device) -> dict[str, object]:
    """The device a result was computed on: name, CPU count, threads, GPU model and memory."""
    import torch
    info: dict[str, object] = {
        "type": device.type,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    capability=f"{props.major}.{props.minor}")
    else:
        info["name"] = f"CPU ({info['processor']}, {os.cpu_count()} cores)"
    return info


def git_sha() -> str:
    """The checkout's commit SHA, suffixed ``-dirty`` with uncommitted changes; ``unknown`` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
