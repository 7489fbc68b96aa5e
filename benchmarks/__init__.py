"""Benchmarks: our engine beside the reference (PyPI ``asherah`` 0.5.56) and a minimal floor.

Run ``python -m benchmarks.bench_core`` (or ``python benchmarks/run.py``) from the repository
root; ``--quick`` is a smoke run. Nothing here is imported by the library or its tests.
"""
