"""Secure-memory scenario: per-op latency at 64 B and 1 KiB in each ``secure_memory`` mode.

Our engine runs in the three modes (``mlock``, ``encrypted``, ``none``, key schedules cached
as by default) and once more as ``mlock`` without cached key schedules (information: what the
default saves), all interleaved with the reference in one process. Each factory has its own
memory metastore; decrypt cycles through 64 distinct records made by the same factory. The
core issue's ours/reference targets apply to ``mlock`` (the secure-memory issue asks that they
hold in that mode); the other rows show the ratio for information, and ``vs none`` what each
mode costs over no protection. Run with ``.venv/bin/python -m benchmarks.bench_memory``.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import asherah
from benchmarks._cli import Context, main
from benchmarks._table import Check, Row
from benchmarks._timing import Measurement, Subject, interleaved, paired_ratio
from benchmarks.bench_core import CONFIG, PARTITION, SIZES, TARGETS

DISTINCT_RECORDS = 64
MEMORY_SIZES = (64, 1024)
#: subject name -> our config overrides (the reference runs with CONFIG as is)
MODES: dict[str, dict[str, Any]] = {
    "mlock": {"secure_memory": "mlock"},
    "encrypted": {"secure_memory": "encrypted"},
    "none": {"secure_memory": "none"},
    "mlock, no key schedules": {"secure_memory": "mlock", "cache_key_schedules": False},
}
TARGETED = "mlock"


@dataclass(frozen=True)
class Plan:
    ops: int
    rounds: int


QUICK = Plan(ops=64, rounds=11)
FULL = Plan(ops=128, rounds=201)


def _rows(size: int, op: str, results: dict[str, Measurement], target: float) -> list[Row]:
    reference, none = results["reference"], results["none"]
    rows = []
    for mode in MODES:
        ours = results[mode]
        checks = [
            Check("ours/ref", paired_ratio(ours, reference), target if mode == TARGETED else None)
        ]
        if mode != "none":
            checks.append(Check("vs none", paired_ratio(ours, none)))
        rows.append(
            Row(
                scenario="memory",
                case=f"{SIZES[size]} {op}, {mode}",
                unit="us/op",
                values={"ours": ours.micros, "reference": reference.micros},
                checks=checks,
                spread=max(ours.spread, reference.spread),
            )
        )
    return rows


def memory_rows(context: Context) -> list[Row]:
    plan = QUICK if context.quick else FULL
    rows: list[Row] = []
    with ExitStack() as stack:
        sessions: dict[str, Any] = {}
        for mode, overrides in MODES.items():
            factory = stack.enter_context(asherah.SessionFactory({**CONFIG, **overrides}))
            if factory.key_store.mode != overrides["secure_memory"]:
                raise RuntimeError(f"asked for {mode}, got {factory.key_store.mode}")
            sessions[mode] = stack.enter_context(factory.get_session(PARTITION))
        ref_factory = stack.enter_context(context.reference.SessionFactory(CONFIG))
        sessions["reference"] = stack.enter_context(ref_factory.get_session(PARTITION))
        for size in MEMORY_SIZES:
            plaintext = os.urandom(size)
            encrypted = interleaved(
                [Subject(name, s.encrypt_bytes, [plaintext]) for name, s in sessions.items()],
                plan.ops,
                plan.rounds,
            )
            rows.extend(_rows(size, "encrypt", encrypted, TARGETS[size][0]))
            records = {
                name: [s.encrypt_bytes(plaintext) for _ in range(DISTINCT_RECORDS)]
                for name, s in sessions.items()
            }
            for name, s in sessions.items():
                if any(s.decrypt_bytes(record) != plaintext for record in records[name]):
                    raise RuntimeError(f"{name} does not round-trip")
            decrypted = interleaved(
                [Subject(name, s.decrypt_bytes, records[name]) for name, s in sessions.items()],
                plan.ops,
                plan.rounds,
            )
            rows.extend(_rows(size, "decrypt", decrypted, TARGETS[size][1]))
            print(f"  measured memory modes {SIZES[size]}", file=sys.stderr, flush=True)
    return rows


SCENARIOS = {"memory": memory_rows}

if __name__ == "__main__":
    sys.exit(main(SCENARIOS))
