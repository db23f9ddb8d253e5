"""The FID feature extractor: TF-Inception (2015-12-05) pool3 features of uint8 images.

:mod:`~bench.evaluation.inception.extractor` is the entry point; the network (``net``), its input pipeline
(``preprocess``), weights (``weights``), the backends that run it (``backends``), key maps to other ports
(``layout``), an allocator setting (``memory``), the Inception Score (``score``) and a benchmark of the
backends (``benchmark``) are its parts."""
