"""Loop scenario: each implementation alone in its own process, a plain loop of one call.

The core scenario interleaves three implementations in one process, which is fair to the CPU
but not to the allocator: their buffers share one heap, and that hides what one service
calling ``encrypt_bytes`` in a loop sees. Here every (implementation, operation, size) runs in
a fresh interpreter (:mod:`benchmarks._loop_child`); the processes alternate in rotating order
for several rounds, and a figure is the median call over all of its rounds. Sizes 64 KiB and
1 MiB, where the allocator matters; targets as in the core issue (ours / reference <= 0.2x
encrypt, <= 0.25x decrypt). ``ours, no pad`` is our engine with ``malloc_top_pad = 0``, for
information: the cost of letting glibc return every large record's memory to the kernel.
Run with ``.venv/bin/python -m benchmarks.bench_loop``.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass

from benchmarks._cli import Context, main
from benchmarks._subprocess import run_probe
from benchmarks._table import Check, Row
from benchmarks.bench_core import SIZES, TARGETS

LOOP_SIZES = (64 * 1024, 1024 * 1024)
IMPLEMENTATIONS = ("ours", "reference", "ours-no-pad")


@dataclass(frozen=True)
class Plan:
    calls: dict[int, int]
    rounds: int


QUICK = Plan(calls={64 * 1024: 200, 1024 * 1024: 20}, rounds=1)
FULL = Plan(calls={64 * 1024: 1000, 1024 * 1024: 100}, rounds=3)


def _child(context: Context, impl: str, op: str, size: int, calls: int) -> list[float]:
    """One (implementation, operation, size) in a fresh interpreter: each call's seconds."""
    seconds: list[float] = run_probe(context, "benchmarks._loop_child", impl, op, size, calls)[
        "seconds"
    ]
    return seconds


def loop_rows(context: Context) -> list[Row]:
    plan = QUICK if context.quick else FULL
    rows = []
    for size in LOOP_SIZES:
        for index, op in enumerate(("encrypt", "decrypt")):
            samples: dict[str, list[float]] = {impl: [] for impl in IMPLEMENTATIONS}
            for r in range(plan.rounds):
                order = IMPLEMENTATIONS[r % 3 :] + IMPLEMENTATIONS[: r % 3]
                for impl in order:
                    samples[impl] += _child(context, impl, op, size, plan.calls[size])
            micros = {impl: statistics.median(s) * 1e6 for impl, s in samples.items()}
            target = TARGETS[size][index]
            rows.append(
                Row(
                    scenario="loop",
                    case=f"{SIZES[size]} {op}",
                    unit="us/op",
                    values=micros,
                    checks=[
                        Check("ours/ref", micros["ours"] / micros["reference"], target),
                        Check("no pad/ref", micros["ours-no-pad"] / micros["reference"]),
                    ],
                )
            )
        print(f"  measured loop {SIZES[size]}", file=sys.stderr, flush=True)
    return rows


SCENARIOS = {"loop": loop_rows}

if __name__ == "__main__":
    sys.exit(main(SCENARIOS))
