"""Interleaved per-op timing: every implementation runs in every round, in a rotating order.

Each round runs ``ops`` calls of each subject, timing every call on its own; the round's
figure is the median of those calls minus the cost of the timer itself, and a subject's result
is the median over rounds. Interleaving spreads machine noise (other processes on shared
cores, frequency changes) over all subjects alike; medians drop the preempted calls. Ratios
are taken per round and then their median (:func:`paired_ratio`), because a shared machine
drifts between fast and slow phases for seconds at a time, and a round is a few milliseconds.
The garbage collector is paused while timing and run between rounds, as ``timeit`` does.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any


@dataclass(frozen=True)
class Subject:
    """A callable under test and the arguments it cycles through, one per call."""

    name: str
    call: Callable[[Any], object]
    args: Sequence[Any]


@dataclass(frozen=True)
class Measurement:
    """The per-round medians of one subject, in seconds per op."""

    rounds: list[float]

    @property
    def seconds(self) -> float:
        """Median of the round medians."""
        return statistics.median(self.rounds)

    @property
    def micros(self) -> float:
        return self.seconds * 1e6

    @property
    def spread(self) -> float:
        """Interquartile range of the round medians over their median: a noise indicator."""
        if len(self.rounds) < 4:
            return 0.0
        q1, middle, q3 = statistics.quantiles(self.rounds, n=4)
        return (q3 - q1) / middle if middle else 0.0


def paired_ratio(numerator: Measurement, denominator: Measurement) -> float:
    """Median over rounds of the per-round ratio (both were timed in the same rounds)."""
    pairs = zip(numerator.rounds, denominator.rounds, strict=True)
    return statistics.median(a / b for a, b in pairs if b > 0)


def timer_overhead_ns(samples: int = 2001) -> float:
    """The median cost of one ``perf_counter_ns`` pair, subtracted from every timed call."""
    deltas = []
    for _ in range(samples):
        start = perf_counter_ns()
        deltas.append(perf_counter_ns() - start)
    return statistics.median(deltas)


def _one_round(subject: Subject, ops: int, cursor: int, overhead: float) -> float:
    call, args = subject.call, subject.args
    count = len(args)
    samples = [0] * ops
    for i in range(ops):
        arg = args[(cursor + i) % count]
        start = perf_counter_ns()
        call(arg)
        samples[i] = perf_counter_ns() - start
    return max(statistics.median(samples) - overhead, 0.0)


#: Runs one round of one subject: ``(subject, ops, cursor, timer overhead ns) -> median ns``.
RoundRunner = Callable[[Subject, int, int, float], float]


async def _one_round_async(subject: Subject, ops: int, cursor: int, overhead: float) -> float:
    call, args = subject.call, subject.args
    count = len(args)
    samples = [0] * ops
    for i in range(ops):
        arg = args[(cursor + i) % count]
        start = perf_counter_ns()
        await call(arg)  # type: ignore[misc]
        samples[i] = perf_counter_ns() - start
    return max(statistics.median(samples) - overhead, 0.0)


def async_rounds(loop: asyncio.AbstractEventLoop) -> RoundRunner:
    """A round runner for subjects whose call returns an awaitable: each call is awaited on
    ``loop`` and timed from the call to the end of the await (what an awaiting task sees)."""

    def run(subject: Subject, ops: int, cursor: int, overhead: float) -> float:
        return loop.run_until_complete(_one_round_async(subject, ops, cursor, overhead))

    return run


def interleaved(
    subjects: Sequence[Subject],
    ops: int,
    rounds: int,
    warmup: int | None = None,
    runner: RoundRunner = _one_round,
) -> dict[str, Measurement]:
    """Time ``subjects`` against each other; returns a measurement per subject name.

    ``warmup`` untimed calls per subject (default: one round's worth) come first, so caches,
    the allocator and the page tables are in their steady state. ``runner`` times one round
    (:func:`async_rounds` for coroutines).
    """
    warmup = max(4, ops) if warmup is None else warmup
    overhead = timer_overhead_ns()
    for subject in subjects if warmup else ():
        runner(subject, warmup, 0, overhead)
    per_round: dict[str, list[float]] = {s.name: [] for s in subjects}
    cursor = warmup
    enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            shift = r % len(subjects)
            order = list(subjects[shift:]) + list(subjects[:shift])
            if (r // len(subjects)) % 2:
                order.reverse()
            for subject in order:
                per_round[subject.name].append(runner(subject, ops, cursor, overhead))
            cursor += ops
            gc.collect()
    finally:
        if enabled:
            gc.enable()
    return {name: Measurement([ns / 1e9 for ns in values]) for name, values in per_round.items()}
