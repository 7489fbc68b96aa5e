"""One SQLAlchemy engine per connection target and engine settings, shared within a process.

A new engine costs the dialect's first-connect queries (server version, schema, isolation
level, ...), statement compilation and a new connection: milliseconds per factory on a server,
more than the rest of a cold start. Metastores with the same target and the same engine
settings therefore lease one engine. Closing a metastore returns its lease; the engine, and
the idle connections its pool keeps (at most ``pool_max_idle``), stay for the next metastore
of that target, as a long-lived factory would keep them. At most :data:`MAX_IDLE_ENGINES`
unleased engines are kept (the least recently released is disposed first);
:func:`dispose_engines` closes the unleased ones now, and a forked child never touches the
parent's connections.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.pool import Pool

from asherah_metastore_sql._dsn import ConnectionTarget
from asherah_metastore_sql._options import SqlMetastoreOptions

#: Unleased engines kept for reuse (each holding up to ``pool_max_idle`` idle connections).
MAX_IDLE_ENGINES = 8

#: Options that do not change the engine (the target stands for the connection string).
_NOT_ENGINE = frozenset(
    {
        "connection_string",
        "url",
        "db_type",
        "table_name",
        "create_schema",
        "key_record_type",
        "shared_engine",
    }
)


class SharedEngine:
    """An engine and what this process knows about it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.leases = 0
        #: Tables ``create_schema`` created or found on this engine (no DDL for them again).
        self.tables: set[str] = set()


class EngineLease:
    """One metastore's use of a shared engine; :meth:`release` is idempotent."""

    def __init__(self, key: Hashable, shared: SharedEngine) -> None:
        self._key = key
        self._shared = shared
        self._released = False

    @property
    def engine(self) -> Engine:
        return self._shared.engine

    def has_table(self, table: str) -> bool:
        return table in self._shared.tables

    def add_table(self, table: str) -> None:
        with _lock:
            self._shared.tables.add(table)

    def release(self) -> None:
        with _lock:
            if self._released:
                return
            self._released = True
            shared = self._shared
            shared.leases -= 1
            if shared.leases:
                return
            _idle[self._key] = shared
            _idle.move_to_end(self._key)
            surplus = []
            while len(_idle) > MAX_IDLE_ENGINES:
                key, oldest = _idle.popitem(last=False)
                del _engines[key]
                surplus.append(oldest)
        for old in surplus:
            old.engine.dispose()


_lock = threading.Lock()
_engines: dict[Hashable, SharedEngine] = {}
#: The unleased subset of ``_engines``, least recently released first.
_idle: OrderedDict[Hashable, SharedEngine] = OrderedDict()
#: Pools a forked child dropped: kept referenced so their connections (the parent's) are never
#: closed from the child.
_orphaned_pools: list[Pool] = []


#: Field names read by :func:`engine_key`, listed once (every factory start computes a key).
_TARGET_FIELDS = tuple(spec.name for spec in dataclasses.fields(ConnectionTarget))
_ENGINE_OPTIONS = tuple(
    sorted(name for name in SqlMetastoreOptions.model_fields if name not in _NOT_ENGINE)
)


def engine_key(target: ConnectionTarget, options: SqlMetastoreOptions) -> Hashable:
    """Everything the engine is built from: the whole target (password included, so a wrong
    password never reaches another configuration's engine) and the engine-level options
    (plain values: strings, numbers, booleans, ``None``)."""
    parts: list[Any] = []
    for name in _TARGET_FIELDS:
        value = getattr(target, name)
        if isinstance(value, dict):
            value = tuple(sorted((str(k), repr(v)) for k, v in value.items()))
        parts.append(value)
    settings = tuple((name, getattr(options, name)) for name in _ENGINE_OPTIONS)
    return (tuple(parts), settings)


def lease_engine(
    target: ConnectionTarget,
    options: SqlMetastoreOptions,
    build: Callable[[ConnectionTarget, SqlMetastoreOptions], Engine],
    key: Hashable,
) -> EngineLease:
    """A lease on the process's engine for ``target`` (``options.target()``) and ``options``
    (``key`` is their :func:`engine_key`, which the metastore keeps per options), built on
    first use."""
    with _lock:
        shared = _engines.get(key)
        if shared is None:
            shared = _engines[key] = SharedEngine(build(target, options))
        _idle.pop(key, None)
        shared.leases += 1
    return EngineLease(key, shared)


def dispose_engines() -> int:
    """Close the shared engines no metastore uses (their idle connections included); returns
    how many. Engines still leased keep working and are disposed later, when released."""
    with _lock:
        idle = list(_idle.items())
        _idle.clear()
        for key, _ in idle:
            del _engines[key]
    for _, shared in idle:
        shared.engine.dispose()
    return len(idle)


def _after_fork_in_child() -> None:
    """The child gets fresh pools; the parent's sockets are never used or closed here."""
    global _lock
    _lock = threading.Lock()  # another thread may have held it at fork time
    for shared in _engines.values():
        _orphaned_pools.append(shared.engine.pool)
        shared.engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(dispose_engines)
