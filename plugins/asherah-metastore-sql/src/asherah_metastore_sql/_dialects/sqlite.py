"""SQLAlchemy's ``pysqlite`` dialect with the server probe deferred (see the package docstring)."""

from __future__ import annotations

from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from asherah_metastore_sql._dialects import DeferredProbe


class Dialect(DeferredProbe, SQLiteDialect_pysqlite):
    # SQLAlchemy asks every dialect class to say so itself; nothing here changes compilation.
    supports_statement_cache = True
