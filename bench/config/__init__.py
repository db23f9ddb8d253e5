"""Layer 3, config: suites as typed dataclasses filled from YAML (:mod:`bench.config.suite`), and which
profile of a suite runs on this machine (:mod:`bench.config.profiles`)."""
