#!/usr/bin/env python
"""The wall time that the Ray launcher adds per cell, measured with tiny cells.

A suite of N one-second GAN cells (8gaussians, seeds 0..N-1, 5 training steps, a 300-sample
evaluation) runs with the local launcher and on a local Ray whose tasks each reserve all of this
machine's CPUs, so that both run one cell at a time and the difference is the launcher's own
cost: task submission, scheduling, passing the suite and dataset, the worker's result, the
driver's wait. The rounds alternate local and Ray; the first Ray round also pays the workers'
start (importing torch and genbench), reported apart from the warm rounds.

    python scripts/ray_overhead.py --cells 20 --rounds 3

Prints, per round, the wall seconds of the cell loop (``run_suite`` up to the evaluate stage,
summary and history included on both sides), and the median and range of
``(T_ray - T_local) / N`` over the warm rounds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SUITE = """\
name: overhead
datasets: [8gaussians]
seeds: {seeds}
data: {{n_train: 2000, n_val: 200, n_test: 500, root: {root}}}
eval: {{n_samples: 300, bound_n: 100, throughput_batch: 300, quadrature_grid: 64, density_grid: 16,
        monitor_points: 0}}
resources: {{num_cpus: {cpus}}}
families:
  gan: {{model: {{hidden: 16}}, train: {{steps: 5}}}}
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    import numpy as np
    import ray

    from bench.config.suite import load_suite
    from bench.core.timing import Stopwatch
    from bench.execution import preflight
    from bench.execution.cell import RunOptions, run_suite
    from bench.execution.ray_launcher import ray_init

    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "overhead.yaml"
        path.write_text(SUITE.format(seeds=list(range(args.cells)), root=Path(tmp) / "data", cpus=cpus))
        suite = load_suite(path)
        ready = preflight.run(suite, dataset_names=suite.datasets, families=list(suite.families),
                              stages=("train", "sample", "evaluate"), results_root=Path(tmp) / "res")
        with Stopwatch() as start:
            ray_init(None, num_cpus=cpus)
        print(f"ray start: {start.seconds:.2f} s ({cpus} CPUs; one task at a time, {cpus} torch threads each)")
        extra = []
        for k in range(args.rounds):
            walls = {}
            for launcher in ("local", "ray"):
                opts = RunOptions(root=Path(tmp) / "res", run_id=f"{launcher}{k}", progress=False,
                                  stages=("train", "sample", "evaluate"), launcher=launcher)
                with Stopwatch() as clock:
                    run = run_suite(suite, opts, ready)
                walls[launcher] = clock.seconds
                assert all(r.status == "ok" for r in run.records())
            per_cell = (walls["ray"] - walls["local"]) / args.cells
            print(f"round {k + 1}: local {walls['local']:.2f} s, ray {walls['ray']:.2f} s for {args.cells} cells: "
                  f"{1e3 * per_cell:+.0f} ms per cell" + (" (cold workers)" if k == 0 else ""))
            if k > 0:
                extra.append(per_cell)
        ray.shutdown()
    if extra:
        ms = 1e3 * np.asarray(extra)
        print(f"Ray's overhead per cell, warm workers: median {np.median(ms):.0f} ms "
              f"(range {ms.min():.0f} to {ms.max():.0f} ms, {len(ms)} rounds of {args.cells} cells)")


if __name__ == "__main__":
    main()
