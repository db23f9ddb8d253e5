"""Test helpers: tiny model configs so the contract tests run in seconds on CPU, the tiny 2D suite, test-only
families that signal a test through a file, and driving ``run_bench.py`` in a child process."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
import yaml

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


# --------------------------------------------------------------------------- the tiny 2D suite
TINY_DATA = {"n_train": 2000, "n_val": 200, "n_test": 500}
TINY_EVAL = {"n_samples": 300, "bound_n": 100, "throughput_batch": 300, "quadrature_grid": 64, "density_grid": 16}


def write_tiny_suite(folder: Path, families: dict, *, name: str = "tiny", datasets=("8gaussians",),
                     data: dict | None = None, eval: dict | None = None, profiles: dict | None = None,
                     file: str = "s.yaml", **top) -> Path:
    """Write a tiny 2D suite to ``folder/file`` and return its path (the ``tiny_suite`` fixture binds ``folder``
    to the test's ``tmp_path``; module-scoped fixtures call this directly).

    The suite: ``name``, ``datasets`` (default the 8-Gaussians mixture), data ``TINY_DATA`` (2000 / 200 / 500
    points) with its root ``folder/data`` (so the plan's probe cache stays inside the test's folder), eval
    ``TINY_EVAL`` (300 samples, ...); ``data`` and ``eval`` update those blocks key by key. ``families`` is the
    families block as a dict, e.g. ``{"gan": {"model": {"hidden": 16}, "train": {"steps": 30}}}``. ``profiles``
    and any other keyword (``seeds=[0, 1]``, ``device="auto"``) become top-level keys.
    """
    doc = {"name": name, "datasets": list(datasets),
           "data": {**TINY_DATA, "root": str(Path(folder) / "data"), **(data or {})},
           "eval": {**TINY_EVAL, **(eval or {})}, **top, "families": families}
    if profiles is not None:
        doc["profiles"] = profiles
    path = Path(folder) / file
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# --------------------------------------------------------------------------- test-only families that signal
MARKER_ENV = "GENBENCH_TEST_MARKER"
SIGNALLING = ("trains_on", "pauses_after_training")
SIGNALLING_FAMILIES = '''\
"""Test-only families that tell a test, by creating a file, that a run has reached the point to interrupt or kill
it at. They act only in a process whose environment sets GENBENCH_TEST_MARKER (the file's path): elsewhere, e.g.
in the test's own process when it resumes the run, they are the GAN and the autoregressive family."""
import os
import signal
from pathlib import Path

import models
from models import register


@register("trains_on", modality="vector")
class TrainsOn(models.get("gan", "vector")):
    """The GAN; its 6th training step (beyond the plan's 4 probe steps, on another instance) creates the marker
    file, and training goes on: a test interrupts a cell that is training."""

    steps_taken = 0

    def train_step(self, x, optimizers, train):
        self.steps_taken += 1
        if self.steps_taken == 6 and os.environ.get("GENBENCH_TEST_MARKER"):
            Path(os.environ["GENBENCH_TEST_MARKER"]).touch()
        return super().train_step(x, optimizers, train)


@register("pauses_after_training", modality="vector")
class PausesAfterTraining(models.get("autoregressive", "vector")):
    """The autoregressive family; its first sampling call once its checkpoint exists (the sample stage: the plan's
    probes run before training, the training monitor before the checkpoint is written) creates the marker file and
    then waits for signals forever: a test kills the run after training and before its record."""

    def generate(self, n, generator=None):
        marker = os.environ.get("GENBENCH_TEST_MARKER")
        if marker and Path(os.environ["GENBENCH_TEST_CHECKPOINT"]).exists():
            Path(marker).touch()
            while True:
                signal.pause()
        return super().generate(n, generator)
'''


def write_signalling_families(folder: Path) -> Path:
    """Write :data:`SIGNALLING_FAMILIES` into ``folder`` (for ``GENBENCH_FAMILIES`` and :func:`models.discover`)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / "signalling_families.py").write_text(SIGNALLING_FAMILIES)
    return Path(folder)


# --------------------------------------------------------------------------- run_bench.py in a child process
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


def start_run_bench(suite, results, run_id: str, *args: str, stdout=None, new_session: bool = False,
                    env: dict[str, str] | None = None):
    """``run_bench.py SUITE --results RESULTS --run-id RUN_ID --no-progress ARGS`` in a child process, unbuffered,
    with SIGINT at its default action (:func:`default_sigint`), stderr piped; for tests that interrupt or kill
    it. ``stdout``: ``subprocess.PIPE`` to read it (default: discarded); ``new_session``: its own process group
    (to clean up the processes it starts); ``env``: variables added to this process's environment."""
    import subprocess
    import sys

    import run_bench

    cmd = [sys.executable, str(run_bench.ROOT / "run_bench.py"), str(suite), "--results", str(results),
           "--run-id", run_id, "--no-progress", *args]
    return subprocess.Popen(cmd, cwd=run_bench.ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                            stdout=subprocess.DEVNULL if stdout is None else stdout, stderr=subprocess.PIPE,
                            text=True, start_new_session=new_session, preexec_fn=default_sigint)


def wait_for_marker(proc, marker: Path, timeout: float = 300) -> None:
    """Wait until the child ``proc`` has created ``marker`` (a signalling family's file: :data:`SIGNALLING_FAMILIES`);
    fail with its stderr if it exits first. ``timeout`` is a liveness bound, not a speed claim."""
    wait_for(lambda: marker.exists() or proc.poll() is not None, timeout=timeout)
    if not marker.exists():
        assert proc.poll() is not None, f"the run did not reach the point that creates {marker.name}"
        raise AssertionError(f"the run ended (exit {proc.returncode}) before it created {marker.name}: "
                             f"{proc.stderr.read()[-2000:]}")


def interrupt_at_marker(proc, marker: Path, timeout: float) -> str:
    """Wait until the child ``proc`` has created ``marker`` (:func:`wait_for_marker`; the ``trains_on`` family makes
    it at its 6th training step), send SIGINT, and return the child's stderr once it exits (``timeout``: a liveness
    bound, not a speed claim)."""
    import signal

    wait_for_marker(proc, marker)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=timeout)
    return err
