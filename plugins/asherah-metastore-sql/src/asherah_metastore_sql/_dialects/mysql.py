"""SQLAlchemy's ``pymysql`` dialect with the server probe deferred (see the package docstring)."""

from __future__ import annotations

from sqlalchemy.dialects.mysql.pymysql import MySQLDialect_pymysql

from asherah_metastore_sql._dialects import DeferredProbe


class Dialect(DeferredProbe, MySQLDialect_pymysql):
    # SQLAlchemy asks every dialect class to say so itself; nothing here changes compilation.
    supports_statement_cache = True
