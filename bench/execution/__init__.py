"""Layer 5, execution: running a suite. Cells and their stages (:mod:`bench.execution.cell`), the suite loop and
its launchers (:mod:`bench.execution.suite`, :mod:`bench.execution.ray_launcher`), the training loop
(:mod:`bench.execution.train`), the checks before the first cell (:mod:`bench.execution.preflight`), the plan
and its cost model (:mod:`bench.execution.plan`), and what a re-run may reuse (:mod:`bench.execution.resume`)."""
