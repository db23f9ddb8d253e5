"""Layer 4, evaluation: from samples and densities to metrics. The modalities (:mod:`bench.evaluation.modality`:
what differs between vectors and images), 2D evaluation against the closed-form density
(:mod:`bench.evaluation.vector`), image evaluation from stored samples (:mod:`bench.evaluation.image`), the
metrics (:mod:`bench.evaluation.metrics`), the FID Inception network (:mod:`bench.evaluation.inception`) and
the protocol fingerprints that say how a value was computed (:mod:`bench.evaluation.protocol`)."""
