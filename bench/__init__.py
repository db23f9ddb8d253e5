"""genbench's harness: suites, data, training loop, timing, metrics, results and reports.

Model code lives in ``models/``; this package never knows which family it runs
beyond the capabilities the family declares.
"""

__version__ = "0.1.0"
