"""One SQLAlchemy engine per set of options, shared by every metastore of the process.

SQLAlchemy's advice is one engine per database per process, kept for the process's life.
Building one, its first connection (the dialect asks the server for its version, settings and
capabilities) and every new connection after it (a PostgreSQL backend is a new server process:
4.5 ms here for psycopg's connect and one query, as long as the reference's whole cold start)
are most of what a new ``SessionFactory`` would otherwise pay before its first key load. So
metastores built with equal options share an engine and its pool, and a closed factory leaves
its idle connections (at most ``pool_max_idle``, default 2) in the pool for the next one. They
are closed by :func:`dispose_all` (``asherah_metastore_sql.dispose_engines``), at interpreter
exit, when idle longer than ``pool_max_idle_time`` (checked on checkout), or never kept with
``pool_max_idle = 0``. The ``CREATE TABLE IF NOT EXISTS`` of ``create_schema`` runs once per
engine too.

Private in-memory SQLite databases are never shared (each metastore gets its own, closed with
it), and a forked child drops the parent's pooled connections without closing them
(SQLAlchemy's advice: a connection used from two processes corrupts both sides).
"""

from __future__ import annotations

import atexit
import os
import threading
from dataclasses import dataclass

from sqlalchemy import Engine

from asherah_metastore_sql._dsn import ConnectionTarget
from asherah_metastore_sql._engine import build_engine, is_memory_path
from asherah_metastore_sql._options import SqlMetastoreOptions


@dataclass
class SharedEngine:
    """An engine and how many open metastores use it."""

    engine: Engine
    users: int = 0
    schema_ready: bool = False
    shared: bool = True


_lock = threading.Lock()
_engines: dict[SqlMetastoreOptions, SharedEngine] = {}


def acquire(target: ConnectionTarget, options: SqlMetastoreOptions) -> SharedEngine:
    """The engine for ``options`` (built on first use), counted as used once more."""
    if target.backend == "sqlite" and is_memory_path(target.path or ""):
        return SharedEngine(build_engine(target, options), users=1, shared=False)
    with _lock:
        entry = _engines.get(options)
        if entry is None:
            entry = _engines[options] = SharedEngine(build_engine(target, options))
        entry.users += 1
        return entry


def release(entry: SharedEngine) -> None:
    """One user fewer. A shared engine keeps its pool warm for the next metastore; a private
    one (in-memory SQLite) is closed with its only user."""
    with _lock:
        entry.users -= 1
        if entry.users <= 0 and not entry.shared:
            entry.engine.dispose()


def dispose_all() -> None:
    """Close every pooled connection of every shared engine and forget the engines."""
    with _lock:
        entries = list(_engines.values())
        _engines.clear()
    for entry in entries:
        entry.engine.dispose()


def _after_fork_in_child() -> None:
    for entry in list(_engines.values()):
        entry.engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(dispose_all)
