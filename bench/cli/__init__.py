"""Layer 8, cli: the command line's subcommands (``compare``, ``baseline``, ``history``, ``report``), each a
``main(argv) -> exit code`` that parses its arguments and calls the layers below. ``run_bench.py`` wires the
suite run."""
