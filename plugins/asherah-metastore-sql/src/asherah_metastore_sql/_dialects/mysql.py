"""SQLAlchemy's ``pymysql`` dialect with the server probe deferred (see the package docstring)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.dialects.mysql.mysqldb import MySQLDialect_mysqldb
from sqlalchemy.dialects.mysql.pymysql import MySQLDialect_pymysql
from sqlalchemy.engine.interfaces import DBAPIConnection

from asherah_metastore_sql._dialects import DeferredProbe


class Dialect(DeferredProbe, MySQLDialect_pymysql):
    # SQLAlchemy asks every dialect class to say so itself; nothing here changes compilation.
    supports_statement_cache = True

    def on_connect(self) -> Callable[[DBAPIConnection], None]:
        """The stock set-up minus the ``mysqldb`` dialect's ``SET NAMES``: PyMySQL 1.1+ sends
        ``SET NAMES`` for the configured charset on every new connection itself, so a second
        one would only cost a round trip."""
        base = super(MySQLDialect_mysqldb, self).on_connect()

        def setup(connection: DBAPIConnection) -> None:
            if base is not None:
                base(connection)

        return setup
