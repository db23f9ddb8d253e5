"""Layer 6, analysis: what the records say, as numbers and verdicts, without formatting. Seed statistics
(:mod:`bench.analysis.aggregate`), the regression gate (:mod:`bench.analysis.compare`), baselines and history
(:mod:`bench.analysis.baselines`, :mod:`bench.analysis.history`), training statistics
(:mod:`bench.analysis.taxonomy`), the textbook's claims (:mod:`bench.analysis.claims`) and the verdicts on them
(:mod:`bench.analysis.verdicts`)."""
