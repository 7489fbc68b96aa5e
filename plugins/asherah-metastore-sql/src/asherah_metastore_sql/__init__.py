"""SQL metastore for asherah (entry point ``asherah.metastore: sql``; the config values
``sqlite``, ``rdbms``, ``mysql``, ``postgres`` select it too).

PostgreSQL (psycopg 3), MySQL/MariaDB (PyMySQL) and SQLite (the standard library) through
SQLAlchemy 2, reading and writing the canonical ``encryption_key`` table row for row as the
Rust reference and the canonical Go/Java Asherah do, so they can all share one table.
"""

from asherah_metastore_sql._dsn import ConnectionTarget, parse_connection_string, parse_url
from asherah_metastore_sql._metastore import SqlMetastore
from asherah_metastore_sql._options import SqlMetastoreOptions
from asherah_metastore_sql._schema import create_schema
from asherah_metastore_sql._shared import dispose_engines
from asherah_metastore_sql._statements import mysql_created

__all__ = [
    "ConnectionTarget",
    "SqlMetastore",
    "SqlMetastoreOptions",
    "create_schema",
    "dispose_engines",
    "mysql_created",
    "parse_connection_string",
    "parse_url",
]
