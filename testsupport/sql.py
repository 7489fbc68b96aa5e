"""PostgreSQL and MariaDB for tests: throwaway databases on the servers CI keeps running.

The servers themselves are started by ``.ci/run`` (and are already up on the development
machines): PostgreSQL on 127.0.0.1:5432 (trust), MariaDB on 127.0.0.1:3306 (root, empty
password). ``ASHERAH_TEST_POSTGRES_URL`` / ``ASHERAH_TEST_MYSQL_URL`` point elsewhere (an admin
URL of the ``scheme://user:pass@host:port/db`` form). Each test run creates its own database
(``asherah_test_<random>``) and drops it afterwards, so runs never see each other's rows.
Plain Python (no pytest); the helpers raise ``RuntimeError`` when a server is unreachable so a
fixture fails loudly instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa

from testsupport._process import free_port

ServerKind = Literal["postgres", "mysql"]

POSTGRES_ADMIN_URL = os.environ.get(
    "ASHERAH_TEST_POSTGRES_URL", "postgres://root@127.0.0.1:5432/test"
)
MYSQL_ADMIN_URL = os.environ.get("ASHERAH_TEST_MYSQL_URL", "mysql://root:@127.0.0.1:3306/test")

_SQLALCHEMY_SCHEME = {"postgres": "postgresql+psycopg", "mysql": "mysql+pymysql"}


@dataclass(frozen=True)
class TempDatabase:
    """A database created for one test run."""

    kind: ServerKind
    name: str
    #: Canonical connection string (``postgres://`` / ``mysql://``), as Asherah configs use.
    url: str

    @property
    def sqlalchemy_url(self) -> str:
        return sqlalchemy_url(self.url)

    def engine(self, *, autocommit: bool = True) -> sa.Engine:
        """An engine on this database, for looking at rows behind a driver's back (with
        ``autocommit=False`` to hold locks in an open transaction)."""
        isolation = "AUTOCOMMIT" if autocommit else "READ COMMITTED"
        return sa.create_engine(
            self.sqlalchemy_url, isolation_level=isolation, poolclass=sa.NullPool
        )


def admin_url(kind: ServerKind) -> str:
    return POSTGRES_ADMIN_URL if kind == "postgres" else MYSQL_ADMIN_URL


def sqlalchemy_url(url: str) -> str:
    """``postgres://`` / ``mysql://`` with the SQLAlchemy driver name."""
    scheme, rest = url.split("://", 1)
    kind = "postgres" if scheme.startswith("postgres") else "mysql"
    return f"{_SQLALCHEMY_SCHEME[kind]}://{rest}"


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def server_address(kind: ServerKind) -> tuple[str, int]:
    parts = urlsplit(admin_url(kind))
    return parts.hostname or "127.0.0.1", parts.port or (5432 if kind == "postgres" else 3306)


def check_server(kind: ServerKind, timeout: float = 5.0) -> None:
    """Raise ``RuntimeError`` with the fix when the server does not answer a query."""
    engine = sa.create_engine(
        sqlalchemy_url(admin_url(kind)),
        poolclass=sa.NullPool,
        connect_args={"connect_timeout": int(timeout)},
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        host, port = server_address(kind)
        reason = type(getattr(exc, "orig", None) or exc).__name__
        raise RuntimeError(
            f"{kind} test server at {host}:{port} is not usable ({reason}); "
            "start it as .ci/run does (see docs/services.md) or set "
            f"ASHERAH_TEST_{'POSTGRES' if kind == 'postgres' else 'MYSQL'}_URL"
        ) from exc
    finally:
        engine.dispose()


@contextmanager
def temporary_database(kind: ServerKind, prefix: str = "asherah_test") -> Iterator[TempDatabase]:
    """Create ``<prefix>_<random>`` on the server, yield it, drop it (connections and all)."""
    check_server(kind)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(
        sqlalchemy_url(admin_url(kind)), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )
    quoted = f'"{name}"' if kind == "postgres" else f"`{name}`"
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
    try:
        yield TempDatabase(kind, name, with_database(admin_url(kind), name))
    finally:
        with admin.connect() as conn:
            if kind == "postgres":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}"))
        admin.dispose()


__all__ = [
    "MYSQL_ADMIN_URL",
    "POSTGRES_ADMIN_URL",
    "TempDatabase",
    "check_server",
    "free_port",
    "sqlalchemy_url",
    "temporary_database",
    "with_database",
]
