"""The driver dialects with SQLAlchemy's first-connect server probe deferred to Core's first use.

SQLAlchemy calls ``Dialect.initialize`` on an engine's first connection: four round trips on
PostgreSQL (server version, current schema, isolation level, string escaping) and five on
MySQL/MariaDB (version, database, isolation level, SQL mode, name casing), before the
connection can be used. Only Core execution, reflection and DDL read what it learns; the
metastore's per-key statements run on the driver's cursor (``_raw``) and need none of it.
These subclasses of the stock dialects (registered under their own driver names) turn the
first-connect call into a no-op and run the real probe, once per engine, the first time a
``Connection`` is opened on the engine (:func:`probe_on_first_core_use`): by the metastore's
own Core paths or by anyone using :attr:`SqlMetastore.engine`. The first cold start of a
process therefore pays one connection, not a connection and a probe.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Connection, Engine, event
from sqlalchemy.dialects import registry
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.exc import DBAPIError

#: Our registered driver name for each backend, as ``URL`` drivernames.
DRIVERS = {
    "postgres": "postgresql+asherah_psycopg",
    "mysql": "mysql+asherah_pymysql",
    "sqlite": "sqlite+asherah_pysqlite",
}

_lock = threading.Lock()
_log = logging.getLogger("asherah.metastore.sql")


class DeferredProbe(DefaultDialect):
    """Mixin (first base) for a stock dialect class: :meth:`initialize` waits for :meth:`probe`."""

    probed = False

    def initialize(self, connection: Connection) -> None:
        """SQLAlchemy's first-connect call: deferred to :meth:`probe`."""

    def probe(self, connection: Connection) -> None:
        """Run the stock dialect's ``initialize`` on ``connection``, once per dialect."""
        if self.probed:
            return
        with _lock:
            if not self.probed:
                super().initialize(connection)
                self.probed = True


def probe_on_first_core_use(engine: Engine, label: str) -> None:
    """Probe when the engine's first ``Connection`` opens (raw DBAPI checkouts never do).

    The probe may meet a pooled connection the server has since dropped (SQLAlchemy's own
    probe only ever ran on a new one): it then runs once more on a new connection, as the
    metastore's statements do.
    """
    dialect = engine.dialect
    if not isinstance(dialect, DeferredProbe):
        return

    @event.listens_for(engine, "engine_connect")
    def _probe(connection: Connection) -> None:
        if dialect.probed:
            return
        try:
            for attempt in (1, 2):
                try:
                    dialect.probe(connection)
                    break
                except Exception as exc:
                    if attempt == 2 or not _lost(dialect, connection, exc):
                        raise
                    _log.warning(
                        "%s connection lost (%s); retrying once on a new connection",
                        label,
                        type(getattr(exc, "orig", None) or exc).__name__,
                    )
                    connection.invalidate()  # the next statement gets a new connection
                finally:
                    # The probe's statements may have autobegun a (no-op, autocommit)
                    # transaction: end it, so a retry can reconnect and the caller can begin.
                    if connection.in_transaction():
                        connection.rollback()
        except BaseException:
            connection.close()  # back to the pool, or discarded if invalidated
            raise


def _lost(dialect: DeferredProbe, connection: Connection, exc: Exception) -> bool:
    """The server dropped the connection: SQLAlchemy said so, or the driver's error (some
    probe queries run on the driver's cursor) is one the dialect counts as a disconnect."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated
    if not isinstance(exc, dialect.loaded_dbapi.Error):
        return False
    return dialect.is_disconnect(exc, connection.connection.dbapi_connection, None)


def _register() -> None:
    for backend, module in (("postgresql", "postgres"), ("mysql", "mysql"), ("sqlite", "sqlite")):
        name = DRIVERS[module].split("+", 1)[1]
        registry.register(f"{backend}.{name}", f"{__name__}.{module}", "Dialect")


_register()

__all__ = ["DRIVERS", "DeferredProbe", "probe_on_first_core_use"]
