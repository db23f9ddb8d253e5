"""Metrics. Sample-set metrics take feature arrays; the 2D suite uses raw coordinates
as features, the image suites use network features computed once per sample set."""
