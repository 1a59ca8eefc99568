"""Benchmarks: throughput, simulation quality, search efficiency and the paper's tables in miniature.

Each script runs as ``python -m benchmarks.NAME`` (or ``python benchmarks/NAME.py``) from the
repository root and, with ``--write``, replaces its own section of ``benchmarks/RESULTS.md``
(:mod:`benchmarks.results_file`).
"""
