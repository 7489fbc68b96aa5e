"""SQLAlchemy's ``psycopg`` dialect with the server probe deferred (see the package docstring)."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

from asherah_metastore_sql._dialects import DeferredProbe


class Dialect(DeferredProbe, PGDialect_psycopg):
    # SQLAlchemy asks every dialect class to say so itself; nothing here changes compilation.
    supports_statement_cache = True
