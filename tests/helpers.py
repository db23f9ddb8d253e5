"""Test helpers: tiny model configs so the contract tests run in seconds on CPU."""

from __future__ import annotations

import dataclasses

import torch

import models
from models.samplers import build_samplers

# Image tests use 3 channels, so that the channel-coupled likelihoods are exercised; every
# image family also accepts (1, 28, 28) and (3, 32, 32) (tests/test_image_models.py).
DATA_SHAPES = {"vector": (2,), "image": (3, 8, 8)}


def tiny_model(name: str, modality: str, seed: int = 0, data_shape: tuple[int, ...] | None = None,
               **overrides) -> models.GenerativeModel:
    """A small, freshly initialised model of family ``name`` (seeded), optionally for another shape.

    The family's own ``tiny`` options shrink it to test size; ``overrides`` go on top.
    """
    cls = models.get(name, modality)
    cfg = dataclasses.replace(cls.Config(), **{**cls.tiny, **overrides})
    torch.manual_seed(seed)
    return cls(cfg, data_shape or DATA_SHAPES[modality])


def tiny_samplers(name: str, modality: str) -> dict:
    """The family's samplers shrunk to test size: its declared entries with its ``tiny_samplers`` settings merged
    in (:func:`models.samplers.build_samplers`), by name; the first is its default."""
    cls = models.get(name, modality)
    entries = {k: {**v, **cls.tiny_samplers.get(k, {})} for k, v in cls.samplers.items()}
    return build_samplers(entries)


def example_batch(modality: str, n: int = 64, seed: int = 0, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """A batch of data: points of the 8-Gaussians mixture for vectors, random uint8 images for images.

    The images mimic MNIST's saturation: about 40% of the pixels are 0 and 10% are 255
    (the edge bins of the discrete likelihoods), the rest uniform on 0..255.
    """
    if modality == "image":
        g = torch.Generator().manual_seed(seed)
        shape = (n, *(shape or DATA_SHAPES["image"]))
        x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
        u = torch.rand(shape, generator=g)
        return x.masked_fill(u < 0.4, 0).masked_fill(u > 0.9, 255)
    from bench.data.toy2d import eight_gaussians

    x, _ = eight_gaussians().sample(n, seed)
    return torch.from_numpy(x).float()



def default_sigint() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: restore SIGINT's default action.

    A shell that starts a job in the background (``cmd &``, ``nohup``) starts it with SIGINT ignored,
    and the ignore is inherited down to the child, where Python then installs no KeyboardInterrupt
    handler: the test's Ctrl-C would be lost. CI may run the suite that way.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(predicate, timeout: float) -> bool:
    """Poll ``predicate()`` every 0.2 s until it is true (``True``) or ``timeout`` seconds pass (``False``)."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def start_run_bench(suite, results, run_id: str, *args: str, stdout=None, new_session: bool = False):
    """``run_bench.py SUITE --results RESULTS --run-id RUN_ID --no-progress ARGS`` in a child process, unbuffered,
    with SIGINT at its default action (:func:`default_sigint`), stderr piped; for tests that interrupt or kill
    it. ``stdout``: ``subprocess.PIPE`` to read it (default: discarded); ``new_session``: its own process group
    (to clean up the processes it starts)."""
    import os
    import subprocess
    import sys

    import run_bench

    cmd = [sys.executable, str(run_bench.ROOT / "run_bench.py"), str(suite), "--results", str(results),
           "--run-id", run_id, "--no-progress", *args]
    return subprocess.Popen(cmd, cwd=run_bench.ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.DEVNULL if stdout is None else stdout, stderr=subprocess.PIPE,
                            text=True, start_new_session=new_session, preexec_fn=default_sigint)


def interrupt_second_cell(proc, run, timeout: float) -> str:
    """Wait until ``run``'s first cell (8gaussians autoregressive) has its record and the second (the GAN) has
    started, send SIGINT, and return the child's stderr once it exits (``timeout``: a liveness bound, not a
    speed claim)."""
    import signal
    import time

    started = wait_for(lambda: (run / "8gaussians__autoregressive__s0" / "record.json").exists()
                       and (run / "8gaussians__gan__s0").is_dir(), timeout=300)
    assert started, proc.stderr.read() if proc.poll() is not None else "the run did not reach the second cell"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=timeout)
    return err
