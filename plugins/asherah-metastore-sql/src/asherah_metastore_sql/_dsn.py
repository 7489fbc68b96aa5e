"""Connection strings: the canonical Asherah forms, plus SQLAlchemy URLs, into one target.

The canonical forms are the reference's (spec §3.1): ``postgres://`` / ``postgresql://``,
``mysql://``, ``sqlite://<path>`` (the prefix is stripped; the rest is a file path), a Go MySQL
DSN ``user:pass@tcp(host:port)/db?...``, and a scheme-less string with ``SQLMetastoreDBType``
naming the backend. SQLAlchemy URLs for the drivers this package uses
(``postgresql+psycopg://``, ``mysql+pymysql://``, ``mariadb+pymysql://``,
``sqlite+pysqlite://``) are accepted too. No error message ever repeats the string: it may hold
a password.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from asherah import ConfigError

Backend = Literal["sqlite", "mysql", "postgres"]
TlsMode = Literal["disable", "prefer", "require", "verify-ca", "verify-full"]

UNRECOGNISED = (
    "Unrecognized RDBMS connection string format. Set SQLMetastoreDBType to 'mysql' or "
    "'postgres', or use a standard connection URL (mysql://... or postgres://...)"
)

#: Go MySQL driver parameters the reference strips from a Go DSN (it has no use for them).
GO_DSN_IGNORED = frozenset(
    {
        "parseTime",
        "loc",
        "allowNativePasswords",
        "allowOldPasswords",
        "charset",
        "collation",
        "clientFoundRows",
        "columnsWithAlias",
        "interpolateParams",
        "maxAllowedPacket",
        "multiStatements",
        "rejectReadOnly",
        "checkConnLiveness",
    }
)
#: Go DSN timeouts (Go durations), honoured as PyMySQL's timeouts.
_GO_TIMEOUTS = {
    "timeout": "connect_timeout",
    "readTimeout": "read_timeout",
    "writeTimeout": "write_timeout",
}
_MYSQL_TIMEOUTS = ("connect_timeout", "read_timeout", "write_timeout")

_SQLALCHEMY_DRIVERS: dict[str, Backend] = {
    "postgresql+psycopg": "postgres",
    "mysql+pymysql": "mysql",
    "mariadb+pymysql": "mysql",
    "sqlite+pysqlite": "sqlite",
}

_MYSQL_SSL_MODES: dict[str, TlsMode] = {
    "disabled": "disable",
    "preferred": "prefer",
    "required": "require",
    "verify_ca": "verify-ca",
    "verify_identity": "verify-full",
    "disable": "disable",
    "prefer": "prefer",
    "require": "require",
    "verify-ca": "verify-ca",
    "verify-full": "verify-full",
}


@dataclass(frozen=True, slots=True)
class ConnectionTarget:
    """Where the metastore lives. ``repr`` never shows the password or driver parameters."""

    backend: Backend
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    database: str | None = None
    #: Extra driver connect parameters (libpq keywords, or PyMySQL keyword arguments).
    params: dict[str, object] = field(default_factory=dict, repr=False)
    #: TLS settings named by the string itself (Go ``tls=``, MySQL ``ssl-mode=``, ``ssl-ca=``).
    tls_mode: TlsMode | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    #: SQLite only: the file path (``:memory:`` or empty for a private in-memory database).
    path: str | None = None


def normalise_db_type(value: str | None) -> Backend | None:
    """``SQLMetastoreDBType``: ``mysql``, ``postgres``/``postgresql`` or ``sqlite``."""
    if value is None or not value.strip():
        return None
    lowered = value.strip().lower()
    if lowered in ("postgres", "postgresql"):
        return "postgres"
    if lowered in ("mysql", "mariadb"):
        return "mysql"
    if lowered == "sqlite":
        return "sqlite"
    raise ConfigError(
        f"SQLMetastoreDBType {value!r} is not one of 'mysql', 'postgres', 'postgresql', 'sqlite'"
    )


def parse_connection_string(value: str, db_type: str | None = None) -> ConnectionTarget:
    """Classify and parse ``value`` as the reference does, SQLAlchemy URLs besides.

    ``db_type`` ``sqlite`` means ``value`` is a file path (``Metastore = "sqlite"``); for the
    server backends it only names the backend of a string without a scheme.
    """
    text = value.strip()
    kind = normalise_db_type(db_type)
    lowered = text.lower()
    if kind == "sqlite" and "+" not in lowered.partition("://")[0]:
        return _sqlite_path(text)
    if lowered.startswith(("postgres://", "postgresql://")):
        return _postgres_url(text)
    if lowered.startswith("mysql://"):
        return _mysql_url(text)
    if lowered.startswith("sqlite://"):
        return _sqlite_path(text)
    if "tcp(" in text:
        return _go_dsn(text)
    scheme = lowered.partition("://")[0] if "://" in lowered else ""
    if scheme in _SQLALCHEMY_DRIVERS:
        return _sqlalchemy_url(text, _SQLALCHEMY_DRIVERS[scheme])
    if scheme and "+" in scheme:
        raise ConfigError(
            f"SQLAlchemy driver {scheme!r} is not supported; use one of "
            f"{', '.join(sorted(_SQLALCHEMY_DRIVERS))}"
        )
    if kind == "mysql" and not scheme:
        return _mysql_url("mysql://" + text)
    if kind == "postgres" and not scheme:
        return _postgres_url("postgres://" + text)
    raise ConfigError(UNRECOGNISED)


def parse_url(value: str) -> ConnectionTarget:
    """A SQLAlchemy URL (the ``url`` option). Only ``sqlite://`` differs from
    :func:`parse_connection_string`: SQLAlchemy's ``sqlite:///rel.db`` is relative and
    ``sqlite:////abs.db`` absolute, where the canonical form takes everything after
    ``sqlite://`` as the path."""
    text = value.strip()
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme == "sqlite":
        return _sqlalchemy_url(text, "sqlite")
    if not scheme:
        raise ConfigError("url must be a URL such as postgresql+psycopg://user@host/db")
    return parse_connection_string(text)


def _sqlite_path(text: str) -> ConnectionTarget:
    path = text[len("sqlite://") :] if text.lower().startswith("sqlite://") else text
    return ConnectionTarget("sqlite", path=path)


def _split_url(
    text: str, what: str
) -> tuple[str | None, str | None, str | None, int | None, str | None, dict[str, str]]:
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        # The parser's message repeats the whole string, password included: not chained.
        raise ConfigError(f"{what} connection URL could not be parsed") from None
    query: dict[str, str] = {}
    for key, raw in url.query.items():
        query[key] = raw if isinstance(raw, str) else raw[-1]
    return url.username, url.password, url.host, url.port, url.database, query


def _postgres_url(text: str) -> ConnectionTarget:
    user, password, host, port, database, query = _split_url(text, "PostgreSQL")
    # libpq keywords (sslmode, options, application_name, ...) go to psycopg as they are.
    return ConnectionTarget("postgres", user, password, host, port, database, params=dict(query))


def _mysql_url(text: str) -> ConnectionTarget:
    user, password, host, port, database, query = _split_url(text, "MySQL")
    return _mysql_target(user, password, host, port or 3306, database, query, go=False)


def _sqlalchemy_url(text: str, backend: Backend) -> ConnectionTarget:
    if backend == "postgres":
        return _postgres_url(text)
    if backend == "mysql":
        return _mysql_url(text)
    _, _, _, _, database, query = _split_url(text, "SQLite")
    if query:
        raise ConfigError(
            "SQLite URL parameters are not supported; use a 'file:...?mode=...' URI as the path"
        )
    return ConnectionTarget("sqlite", path=database or ":memory:")


def _go_dsn(text: str) -> ConnectionTarget:
    """``[user[:password]@][tcp[(host[:port])]]/dbname[?param=value&...]`` as Go parses it:
    the last ``/`` ends the address (passwords may hold ``/`` and ``@``)."""
    slash = text.rfind("/")
    if slash < 0:
        raise ConfigError("Go MySQL DSN has no '/dbname' part")
    head, tail = text[:slash], text[slash + 1 :]
    database, _, raw_query = tail.partition("?")
    creds, at, net = head.rpartition("@")
    if not at:
        creds, net = "", head
    user, _, password = creds.partition(":")
    match = re.fullmatch(r"(\w*)(?:\((.*)\))?", net)
    if match is None or match.group(1) not in ("", "tcp"):
        raise ConfigError("Go MySQL DSN: only the tcp(host:port) network is supported")
    host, port = _host_port(match.group(2) or "")
    try:
        pairs = urllib.parse.parse_qsl(raw_query, keep_blank_values=True, strict_parsing=False)
    except ValueError:
        raise ConfigError("Go MySQL DSN parameters could not be parsed") from None
    query = dict(pairs)
    return _mysql_target(
        user or None, password or None, host, port, database or None, query, go=True
    )


def _host_port(addr: str) -> tuple[str, int]:
    if not addr:
        return "127.0.0.1", 3306
    if addr.startswith("["):
        host, _, rest = addr[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif addr.count(":") == 1:
        host, _, port_text = addr.partition(":")
    else:
        host, port_text = addr, ""
    if not port_text:
        return host, 3306
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError("Go MySQL DSN: the port is not a number between 1 and 65535")
    return host, int(port_text)


def _mysql_target(
    user: str | None,
    password: str | None,
    host: str | None,
    port: int | None,
    database: str | None,
    query: dict[str, str],
    *,
    go: bool,
) -> ConnectionTarget:
    params: dict[str, object] = {}
    tls_mode: TlsMode | None = None
    files: dict[str, str] = {}
    for key, value in query.items():
        norm = key.replace("-", "_").lower()
        if key == "tls":
            tls_mode = _go_tls(value)
        elif norm in ("ssl_mode", "sslmode"):
            mode = _MYSQL_SSL_MODES.get(value.strip().lower())
            if mode is None:
                raise ConfigError(f"MySQL ssl-mode {value!r} is not a known mode")
            tls_mode = mode
        elif norm in ("ssl_ca", "ssl_cert", "ssl_key"):
            files[norm] = value
        elif go and key in _GO_TIMEOUTS:
            params[_GO_TIMEOUTS[key]] = parse_go_duration(value, key)
        elif go and key in GO_DSN_IGNORED:
            continue
        elif not go and norm in _MYSQL_TIMEOUTS:
            params[norm] = _seconds(value, key)
        elif not go and norm == "charset":
            params["charset"] = value
        else:
            raise ConfigError(f"unsupported MySQL connection parameter {key!r}")
    return ConnectionTarget(
        "mysql",
        user,
        password,
        host,
        port,
        database,
        params=params,
        tls_mode=tls_mode,
        tls_ca_file=files.get("ssl_ca"),
        tls_cert_file=files.get("ssl_cert"),
        tls_key_file=files.get("ssl_key"),
    )


def _go_tls(value: str) -> TlsMode:
    """As the reference: ``false`` no TLS, ``skip-verify`` TLS without verification, anything
    else (``true``, ``preferred``, a registered config name) verified TLS."""
    lowered = value.strip().lower()
    if lowered == "false":
        return "disable"
    if lowered == "skip-verify":
        return "require"
    return "verify-full"


def _seconds(value: str, key: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(
            f"MySQL connection parameter {key!r} must be a number of seconds"
        ) from None
    if seconds <= 0:
        raise ConfigError(f"MySQL connection parameter {key!r} must be positive")
    return seconds


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(value: str, key: str = "duration") -> float:
    """A Go ``time.Duration`` string (``30s``, ``1m30s``, ``500ms``) in seconds."""
    text = value.strip()
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text) or total <= 0:
        raise ConfigError(f"Go DSN parameter {key!r} must be a positive Go duration such as 30s")
    return total
