"""SQL scenario: the first encrypt of a partition on SQLite, PostgreSQL and MariaDB.

Two cases per backend, ours and the reference interleaved on the same server:

- ``cold start``: a new ``SessionFactory`` and the first encrypt for a partition whose system
  and intermediate keys are already in the table (what a re-created factory pays: driver
  set-up, drift-guard check, key loads and unwraps; ours leases the engine, and its idle
  connection, that earlier factories of this target left in the process);
- ``cold start, new engine``: the same with the process's shared SQL engines disposed first
  (untimed), so ours also pays engine creation and a first connection with its session set-up
  (what the first factory of a process pays; SQLAlchemy's dialect probe waits for the first
  Core use, which a cold start never makes), against the same reference measurements;
- ``new partition``: on a warm factory, the first encrypt for a partition never seen before
  (an intermediate key created and stored).

Both implementations share one table per backend under different service names, so neither
ever reads the other's keys. PostgreSQL and MariaDB get a throwaway database
(``testsupport.sql``); SQLite a temporary file. Closing factories and sessions is not timed.
Both run in this process, so imports are warm for both: "cold" is the factory, not Python.
Run with ``.venv/bin/python -m benchmarks.bench_sql [--quick]``.
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter_ns
from types import ModuleType
from typing import Any, Literal

from pydantic import SecretStr

import asherah
from asherah_metastore_sql import SqlMetastore, SqlMetastoreOptions, dispose_engines
from benchmarks._cli import Context, main
from benchmarks._table import Check, Row
from benchmarks._timing import Measurement, paired_ratio
from testsupport.sql import temporary_database

Backend = Literal["sqlite", "postgres", "mysql"]
BACKENDS: tuple[Backend, ...] = ("sqlite", "postgres", "mysql")
LABELS = {"sqlite": "SQLite", "postgres": "PostgreSQL", "mysql": "MariaDB"}
PRODUCT = "bench"
EXISTING = "existing"
PLAINTEXT = b"x" * 64
TARGET = 1.0  # ours / reference, from the SQL metastore issue


@dataclass(frozen=True)
class Plan:
    ops: int  # timed calls per implementation per round (the round's figure is their median)
    rounds: int


# The reference's MySQL pool keeps its connection open after ``SessionFactory.close()`` (until
# the process exits): ~60 cold starts stay well inside MariaDB's default max_connections (151).
QUICK = Plan(ops=3, rounds=7)
FULL = Plan(ops=3, rounds=19)

#: One timed call; returns the untimed cleanup (closing what it opened).
Call = Callable[[], Callable[[], None]]


def config(service: str, connection_string: str, backend: str) -> dict[str, Any]:
    return {
        "ServiceName": service,
        "ProductID": PRODUCT,
        "Metastore": "sqlite" if backend == "sqlite" else "rdbms",
        "ConnectionString": connection_string,
        "KMS": "static",
        "StaticMasterKeyHex": "22" * 32,
    }


@contextmanager
def database(backend: Backend) -> Iterator[str]:
    """A fresh database on ``backend`` holding the canonical table (JSONB on PostgreSQL, which
    the reference needs), dropped afterwards; yields its canonical connection string."""
    with ExitStack() as stack:
        if backend == "sqlite":
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="asherah-bench-"))
            url = f"sqlite://{Path(directory) / 'keys.db'}"
        else:
            url = stack.enter_context(temporary_database(backend, "asherah_bench")).url
        options = SqlMetastoreOptions(connection_string=SecretStr(url), create_schema=True)
        SqlMetastore.from_options(options).close()
        yield url


def cold_start(module: ModuleType, cfg: dict[str, Any], *, new_engine: bool = False) -> Call:
    """New factory, session for the existing partition, first encrypt; with ``new_engine``
    the shared SQL engines are disposed after each call (untimed), so the next builds one."""

    def call() -> Callable[[], None]:
        factory = module.SessionFactory(cfg)
        session = factory.get_session(EXISTING)
        session.encrypt_bytes(PLAINTEXT)

        def close() -> None:
            session.close()
            factory.close()
            if new_engine:
                dispose_engines()

        return close

    return call


def new_partition(factory: Any) -> Call:
    """On a warm factory, a session for a partition never seen, first encrypt."""

    def call() -> Callable[[], None]:
        session = factory.get_session(f"p{uuid.uuid4().hex[:16]}")
        session.encrypt_bytes(PLAINTEXT)
        return session.close  # type: ignore[no-any-return]

    return call


def interleaved(calls: dict[str, Call], plan: Plan) -> dict[str, Measurement]:
    """Per-call timing in rotating order, cleanup untimed; a round's figure is its median."""
    names = list(calls)
    for name in names:  # warm-up: one untimed call each
        calls[name]()()
    per_round: dict[str, list[float]] = {name: [] for name in names}
    enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(plan.rounds):
            order = names[r % 2 :] + names[: r % 2]
            for name in order:
                samples = []
                for _ in range(plan.ops):
                    start = perf_counter_ns()
                    close = calls[name]()
                    samples.append(perf_counter_ns() - start)
                    close()
                per_round[name].append(statistics.median(samples) / 1e9)
            gc.collect()
    finally:
        if enabled:
            gc.enable()
    return {name: Measurement(values) for name, values in per_round.items()}


def _row(backend: str, case: str, results: dict[str, Measurement], ours_key: str = "ours") -> Row:
    ours, reference = results[ours_key], results["reference"]
    return Row(
        scenario="sql",
        case=f"{LABELS[backend]} {case}",
        unit="ms/op",
        values={"ours": ours.seconds * 1e3, "reference": reference.seconds * 1e3},
        checks=[Check("ours/ref", paired_ratio(ours, reference), TARGET)],
        spread=max(ours.spread, reference.spread),
    )


def _check_rows(url: str, services: dict[str, str], new_partitions: int) -> None:
    """Cold starts reused the existing intermediate key (one row per service), and every new
    partition stored exactly one."""
    metastore = SqlMetastore(SqlMetastoreOptions(connection_string=SecretStr(url)))
    try:
        ids = [row_id for row_id, _, _ in metastore.list_rows("_IK_")]
    finally:
        metastore.close()
    for name, service in services.items():
        suffix = f"_{service}_{PRODUCT}"
        existing = ids.count(f"_IK_{EXISTING}{suffix}")
        created = sum(i.startswith("_IK_p") and i.endswith(suffix) for i in ids)
        if (existing, created) != (1, new_partitions):
            raise RuntimeError(
                f"{name}: {existing} intermediate keys for {EXISTING!r} (expected 1), "
                f"{created} for new partitions (expected {new_partitions})"
            )


def backend_rows(backend: Backend, context: Context) -> list[Row]:
    plan = QUICK if context.quick else FULL
    impls = {
        "ours": (asherah, f"ours{uuid.uuid4().hex[:6]}"),
        "reference": (context.reference, f"ref{uuid.uuid4().hex[:6]}"),
    }
    with database(backend) as url:
        configs = {name: config(service, url, backend) for name, (_, service) in impls.items()}
        for name, (module, _) in impls.items():  # the system key, the existing IK, the guard
            with module.SessionFactory(configs[name]) as factory:
                session = factory.get_session(EXISTING)
                record = session.encrypt_bytes(PLAINTEXT)
                if session.decrypt_bytes(record) != PLAINTEXT:
                    raise RuntimeError(f"{name} does not round-trip on {backend}")
                session.close()
        cold_calls = {
            name: cold_start(module, configs[name]) for name, (module, _) in impls.items()
        }
        # The reference is measured once for both cold rows (its MySQL pool leaks a connection
        # per factory, see the plans above).
        cold_calls["ours, new engine"] = cold_start(asherah, configs["ours"], new_engine=True)
        cold = interleaved(cold_calls, plan)
        with ExitStack() as stack:
            factories = {
                name: stack.enter_context(module.SessionFactory(configs[name]))
                for name, (module, _) in impls.items()
            }
            for factory in factories.values():  # system key cached, connections open
                factory.get_session(EXISTING).encrypt_bytes(PLAINTEXT)
            fresh = interleaved(
                {name: new_partition(factory) for name, factory in factories.items()}, plan
            )
        services = {name: service for name, (_, service) in impls.items()}
        _check_rows(url, services, plan.ops * plan.rounds + 1)
    print(f"  measured {LABELS[backend]}", file=sys.stderr, flush=True)
    return [
        _row(backend, "cold start", cold),
        _row(backend, "cold start, new engine", cold, "ours, new engine"),
        _row(backend, "new partition", fresh),
    ]


def sql_rows(context: Context) -> list[Row]:
    return [row for backend in BACKENDS for row in backend_rows(backend, context)]


SCENARIOS = {"sql": sql_rows}

if __name__ == "__main__":
    sys.exit(main(SCENARIOS))
