"""Async scenario: awaited encrypt and decrypt at 64 B and 1 KiB beside the reference's async.

Two API levels, each interleaved with the reference's counterpart on one event loop:

- ``session``: ``await session.encrypt_bytes_async(data)`` / ``decrypt_bytes_async(record)``
  on a session of a warm factory (ours runs inline on the loop when keys are cached; the
  reference's are native coroutines resolved from its Tokio runtime);
- ``module``: ``await asherah.encrypt_bytes_async(partition, data)`` after ``setup(config)``.

Every call is timed from the call to the end of its ``await``. Target (the cache/async
issue): ours <= 0.15 x the reference. Run with ``.venv/bin/python -m benchmarks.bench_async``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import asherah
from benchmarks._cli import Context, main
from benchmarks._table import Check, Row
from benchmarks._timing import Measurement, Subject, async_rounds, interleaved, paired_ratio
from benchmarks.bench_core import CONFIG, PARTITION, SIZES

TARGET = 0.15
ASYNC_SIZES = (64, 1024)
DISTINCT_RECORDS = 64


@dataclass(frozen=True)
class Plan:
    ops: int
    rounds: int


QUICK = Plan(ops=16, rounds=9)
FULL = Plan(ops=32, rounds=101)


@dataclass(frozen=True)
class AsyncApi:
    encrypt: Callable[[bytes], Any]  # returns an awaitable
    decrypt: Callable[[str], Any]


def _row(level: str, size: int, op: str, results: dict[str, Measurement]) -> Row:
    ours, reference = results["ours"], results["reference"]
    return Row(
        scenario="async",
        case=f"{SIZES[size]} {op}, {level}",
        unit="us/op",
        values={"ours": ours.micros, "reference": reference.micros},
        checks=[Check("ours/ref", paired_ratio(ours, reference), TARGET)],
        spread=max(ours.spread, reference.spread),
    )


@contextmanager
def _module_level(module: ModuleType) -> Iterator[AsyncApi]:
    module.setup(CONFIG)
    try:
        yield AsyncApi(
            encrypt=lambda data: module.encrypt_bytes_async(PARTITION, data),
            decrypt=lambda record: module.decrypt_bytes_async(PARTITION, record),
        )
    finally:
        module.shutdown()


def _measure(
    level: str, apis: dict[str, AsyncApi], loop: asyncio.AbstractEventLoop, plan: Plan
) -> list[Row]:
    rows = []
    runner = async_rounds(loop)
    for size in ASYNC_SIZES:
        plaintext = os.urandom(size)
        encrypted = interleaved(
            [Subject(name, api.encrypt, [plaintext]) for name, api in apis.items()],
            plan.ops,
            plan.rounds,
            runner=runner,
        )
        rows.append(_row(level, size, "encrypt", encrypted))
        records: dict[str, list[str]] = {}
        for name, api in apis.items():
            made = [
                loop.run_until_complete(api.encrypt(plaintext)) for _ in range(DISTINCT_RECORDS)
            ]
            if any(loop.run_until_complete(api.decrypt(r)) != plaintext for r in made):
                raise RuntimeError(f"{name} ({level}) does not round-trip")
            records[name] = made
        decrypted = interleaved(
            [Subject(name, api.decrypt, records[name]) for name, api in apis.items()],
            plan.ops,
            plan.rounds,
            runner=runner,
        )
        rows.append(_row(level, size, "decrypt", decrypted))
    print(f"  measured async {level}", file=sys.stderr, flush=True)
    return rows


def async_rows(context: Context) -> list[Row]:
    plan = QUICK if context.quick else FULL
    ref = context.reference
    loop = asyncio.new_event_loop()
    rows: list[Row] = []
    try:
        with (
            asherah.SessionFactory(CONFIG) as factory,
            factory.get_session(PARTITION) as ours,
            ref.SessionFactory(CONFIG) as ref_factory,
            ref_factory.get_session(PARTITION) as theirs,
        ):
            sessions = {
                "ours": AsyncApi(ours.encrypt_bytes_async, ours.decrypt_bytes_async),
                "reference": AsyncApi(theirs.encrypt_bytes_async, theirs.decrypt_bytes_async),
            }
            rows.extend(_measure("session", sessions, loop, plan))
        with _module_level(asherah) as our_module, _module_level(ref) as their_module:
            modules = {"ours": our_module, "reference": their_module}
            rows.extend(_measure("module", modules, loop, plan))
    finally:
        loop.close()
    return rows


SCENARIOS = {"async": async_rows}

if __name__ == "__main__":
    sys.exit(main(SCENARIOS))
