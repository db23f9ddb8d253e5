"""Layer 1, store: results on disk. The typed, versioned cell record and every metric's unit, direction and
standard error (:mod:`bench.store.schema`); run folders, locks, checksums and ``summary.csv``
(:mod:`bench.store.runs`)."""
