"""The three per-key statements (load, load_latest, store) on the pooled DBAPI connection.

SQLAlchemy's Core execution (execution context, result object, compiled-cache look-up) costs
35-80 us per statement here, as much as the statement itself on SQLite and about half of it on
a server. These three run on every cold start and every new partition, so they go straight to
the driver's cursor: compiled once per dialect by SQLAlchemy (its paramstyle and escaping),
checked out from the same pool (its connect, checkout, pre-ping and idle-limit events all
apply), with SQLAlchemy's own disconnect test deciding the one retry.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, TextClause

_log = logging.getLogger("asherah.metastore.sql")


@dataclass(frozen=True, slots=True)
class RawStatement:
    """A statement in the driver's own paramstyle."""

    sql: str
    #: Bind names in order for positional paramstyles (SQLite's ``?``); ``None``: named.
    positional: tuple[str, ...] | None

    def arguments(self, params: dict[str, Any]) -> Any:
        if self.positional is None:
            # None, not {}: the driver then parses no placeholders (DDL may hold a %).
            return params or None
        return tuple(params[name] for name in self.positional)


_compiled: dict[tuple[str, str, str, str], RawStatement] = {}
_compiled_lock = threading.Lock()


def compile_raw(statement: TextClause, engine: Engine) -> RawStatement:
    """``statement`` as ``engine``'s driver takes it, compiled once per process."""
    dialect = engine.dialect
    key = (dialect.name, dialect.driver, str(dialect.paramstyle), statement.text)
    raw = _compiled.get(key)
    if raw is None:
        compiled = statement.compile(dialect=dialect)
        positional = tuple(compiled.positiontup or ()) if compiled.positional else None
        raw = RawStatement(compiled.string, positional)
        with _compiled_lock:
            _compiled[key] = raw
    return raw


def run_raw(
    engine: Engine,
    lock: AbstractContextManager[Any],
    label: str,
    statement: RawStatement,
    params: dict[str, Any],
    result: Callable[[Any], Any],
) -> Any:
    """Execute on a pooled connection and return ``result(cursor)``; once more on a fresh
    connection if the server dropped the first (restart, failover, idle timeout). Raises the
    driver's own exception otherwise."""
    arguments = statement.arguments(params)
    error_type = engine.dialect.loaded_dbapi.Error
    for attempt in (1, 2):
        with lock:
            connection = engine.raw_connection()
            cursor = None
            try:
                cursor = connection.cursor()
                cursor.execute(statement.sql, arguments)
                return result(cursor)
            except error_type as exc:
                dbapi_connection = connection.dbapi_connection
                if not engine.dialect.is_disconnect(exc, dbapi_connection, cursor):
                    raise
                # As SQLAlchemy's own execution does: this connection and every pooled one
                # opened before it are replaced (after a restart they are all dead).
                engine.pool._invalidate(connection, exc)
                if attempt == 2:
                    raise
                _log.warning(
                    "%s connection lost (%s); retrying once on a new connection",
                    label,
                    type(exc).__name__,
                )
            finally:
                if cursor is not None:
                    with contextlib.suppress(Exception):
                        cursor.close()
                connection.close()
    raise AssertionError("unreachable")  # pragma: no cover
