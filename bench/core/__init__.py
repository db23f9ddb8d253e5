"""Layer 0, core: what every other layer may use. Files written atomically and checksummed, safe names
(:mod:`bench.core.files`), timing (:mod:`bench.core.timing`, the only place that reads a clock), and where a
result was computed (:mod:`bench.core.env`)."""
