"""Layer 7, report: records and analyses rendered for people. The run report (:mod:`bench.report.run_report`),
its tables and figures, the document writer (Markdown and self-contained HTML, :mod:`bench.report.document`),
the comparison and history renderings, and the generated reference text (:mod:`bench.report.docs`)."""
