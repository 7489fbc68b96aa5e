"""The per-key statements (load, load_latest, store) on the pooled DBAPI connection.

SQLAlchemy's Core execution (execution context, result object, compiled-cache look-up) costs
35-80 us per statement here, as much as the statement itself on SQLite and about half of it on
a server. These three run on every cold start and every new partition, so they go straight to
the driver's cursor: compiled once per dialect by SQLAlchemy (its paramstyle and escaping),
checked out from the same pool (its connect, checkout, pre-ping and idle-limit events all
apply), with SQLAlchemy's own disconnect test deciding the one retry.
"""

from __future__ import annotations

import logging
import threading
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
        return tuple([params[name] for name in self.positional])


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


class RawRunner:
    """Runs :class:`RawStatement` s on one engine's pooled DBAPI connections.

    Built once per metastore with what every call would otherwise look up again (the
    driver's error class, the dialect); the pool itself is read per call, as
    ``engine.dispose()`` (and a fork) replace it.
    """

    __slots__ = ("_dialect", "_engine", "_error", "_label", "_lock")

    def __init__(self, engine: Engine, lock: threading.Lock | None, label: str) -> None:
        self._engine = engine
        self._dialect = engine.dialect
        self._error: type[Any] = engine.dialect.loaded_dbapi.Error
        #: Serialises the users of a single shared connection (in-memory SQLite), else None.
        self._lock = lock
        self._label = label

    def run(self, statement: RawStatement, arguments: Any, fetch: bool) -> Any:
        """Execute; return the first row (``fetch``) or the row count. Once more on a new
        connection if the server dropped the first (restart, failover, idle timeout); the
        driver's own exception otherwise."""
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            for attempt in (1, 2):
                connection = self._engine.pool.connect()
                cursor = None
                try:
                    cursor = connection.cursor()
                    cursor.execute(statement.sql, arguments)
                    return cursor.fetchone() if fetch else cursor.rowcount
                except self._error as exc:
                    if not self._dialect.is_disconnect(exc, connection.dbapi_connection, cursor):
                        raise
                    # As SQLAlchemy's own execution does: this connection and every pooled
                    # one opened before it are replaced (after a restart they are all dead).
                    self._engine.pool._invalidate(connection, exc)
                    if attempt == 2:
                        raise
                    _log.warning(
                        "%s connection lost (%s); retrying once on a new connection",
                        self._label,
                        type(exc).__name__,
                    )
                finally:
                    if cursor is not None:
                        # Not contextlib.suppress: ~1 us a call on the hot path.
                        try:  # noqa: SIM105
                            cursor.close()
                        except Exception:  # noqa: S110 - a failed close must not hide the outcome
                            pass
                    connection.close()
        finally:
            if lock is not None:
                lock.release()
        raise AssertionError("unreachable")  # pragma: no cover
