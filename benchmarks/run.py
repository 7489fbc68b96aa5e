"""Run every benchmark scenario and print one table: ``.venv/bin/python benchmarks/run.py``."""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import (
    bench_async,
    bench_core,
    bench_loop,
    bench_memory,
    bench_partitions,
    bench_sql,
    bench_threads,
)
from benchmarks._cli import main

SCENARIOS = {
    **bench_core.SCENARIOS,
    **bench_loop.SCENARIOS,
    **bench_memory.SCENARIOS,
    **bench_async.SCENARIOS,
    **bench_threads.SCENARIOS,
    **bench_partitions.SCENARIOS,
    **bench_sql.SCENARIOS,
}

if __name__ == "__main__":
    sys.exit(main(SCENARIOS))
