"""Partition scenarios: many distinct partitions, and session-cache churn.

``partitions``: 10,000 distinct partitions (memory metastore, static KMS), each a session,
one 64 B encrypt and a close. ``cold`` is the first pass on a new factory (a new intermediate
key per partition: created, wrapped, stored, cached); ``warm`` the same partitions again on
that factory (keys cached; sessions rebuilt, as both session caches hold 1,000). Ours is
configured with ``intermediate_key_cache_max_size = 20000`` so it keeps every key, as the
reference's unbounded default does. Each round runs both implementations on fresh factories
in alternating order; the figure is wall time over the pass divided by the partitions (GC on:
10,000 partitions make garbage, and both pay for theirs), median over rounds. Targets (the
cache/async issue): ours/ref ≤ 2.0 cold, ≤ 1.0 warm. Memory per cached partition is the RSS
growth over such a cold pass in a fresh interpreter per implementation
(:mod:`benchmarks._rss_child`), metastore rows included for both.

``churn``: 100,000 new partitions through the default 1,000-entry session cache, each
implementation in its own fresh interpreter; peak RSS, and RSS growth per 1,000 partitions
over the second half. The memory metastore keeps every intermediate key row, so some growth
is expected from it for both; our key caches are bounded (1,000 by default), the reference's
intermediate key cache is not.

Run with ``.venv/bin/python -m benchmarks.bench_partitions [--scenario partitions]``.
"""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any

import asherah
from benchmarks._cli import Context, main
from benchmarks._rss_child import OUR_PARTITION_OVERRIDES, PLAINTEXT
from benchmarks._subprocess import run_probe
from benchmarks._table import Check, Row
from benchmarks._timing import Measurement, paired_ratio
from benchmarks.bench_core import CONFIG

TARGETS = {"cold": 2.0, "warm": 1.0}


@dataclass(frozen=True)
class Plan:
    partitions: int
    rounds: int
    churn: int


QUICK = Plan(partitions=10_000, rounds=1, churn=20_000)
FULL = Plan(partitions=10_000, rounds=5, churn=100_000)


def _pass(factory: Any, count: int) -> float:
    """Seconds per partition for one pass over ``p0 .. p{count-1}``."""
    gc.collect()
    start = perf_counter_ns()
    for i in range(count):
        session = factory.get_session(f"p{i}")
        session.encrypt_bytes(PLAINTEXT)
        session.close()
    return (perf_counter_ns() - start) / 1e9 / count


def _child(context: Context, impl: str, job: str, count: int) -> dict[str, float]:
    """Run :mod:`benchmarks._rss_child` in a fresh interpreter and return its JSON."""
    result: dict[str, float] = run_probe(context, "benchmarks._rss_child", impl, job, count)
    return result


def partitions_rows(context: Context) -> list[Row]:
    plan = QUICK if context.quick else FULL
    modules = {"ours": asherah, "reference": context.reference}
    configs = {"ours": CONFIG | OUR_PARTITION_OVERRIDES, "reference": CONFIG}
    per_round: dict[str, list[float]] = {
        f"{name} {phase}": [] for name in modules for phase in ("cold", "warm")
    }
    for r in range(plan.rounds):
        names = list(modules)[r % 2 :] + list(modules)[: r % 2]
        for name in names:
            with modules[name].SessionFactory(configs[name]) as factory:
                per_round[f"{name} cold"].append(_pass(factory, plan.partitions))
                per_round[f"{name} warm"].append(_pass(factory, plan.partitions))
    results = {key: Measurement(values) for key, values in per_round.items()}
    memory = {
        name: _child(context, name, "partitions", plan.partitions)["bytes_per_partition"]
        for name in modules
    }
    print("  measured partitions", file=sys.stderr, flush=True)
    rows = []
    for phase, target in TARGETS.items():
        ours, reference = results[f"ours {phase}"], results[f"reference {phase}"]
        rows.append(
            Row(
                scenario="partitions",
                case=f"{plan.partitions:,} partitions, {phase}",
                unit="us/partition",
                values={"ours": ours.micros, "reference": reference.micros},
                checks=[Check("ours/ref", paired_ratio(ours, reference), target)],
                spread=max(ours.spread, reference.spread),
            )
        )
    rows.append(
        Row(
            scenario="partitions",
            case="memory per cached partition",
            unit="bytes",
            values=memory,
            checks=[Check("ours/ref", memory["ours"] / memory["reference"])],
        )
    )
    return rows


def churn_rows(context: Context) -> list[Row]:
    plan = QUICK if context.quick else FULL
    results = {name: _child(context, name, "churn", plan.churn) for name in ("ours", "reference")}
    print("  measured churn", file=sys.stderr, flush=True)
    case = f"{plan.churn:,} partitions, 1,000 sessions"
    rows = []
    for field, label, unit in (
        ("peak_mib", "peak RSS", "MiB"),
        ("kib_per_1k_second_half", "RSS growth, 2nd half", "KiB/1k partitions"),
    ):
        values = {name: result[field] for name, result in results.items()}
        ratio = values["ours"] / values["reference"] if values["reference"] else float("nan")
        rows.append(
            Row(
                scenario="churn",
                case=f"{case}: {label}",
                unit=unit,
                values=values,
                checks=[Check("ours/ref", ratio)],
            )
        )
    return rows


SCENARIOS = {"partitions": partitions_rows, "churn": churn_rows}

if __name__ == "__main__":
    sys.exit(main(SCENARIOS))
