"""Building the SQLAlchemy engine: driver, pool, TLS and per-connection session settings.

Every statement the metastore runs is a single statement, so connections run in autocommit:
no BEGIN/COMMIT round trips, and nothing is left open when a connection goes back to the pool.
"""

from __future__ import annotations

import math
import sqlite3
import ssl
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import NullPool, QueuePool, StaticPool

from asherah import ConfigError
from asherah_metastore_sql._dialects import DRIVERS, probe_on_first_core_use
from asherah_metastore_sql._dsn import ConnectionTarget, TlsMode
from asherah_metastore_sql._errors import LABELS
from asherah_metastore_sql._options import SqlMetastoreOptions

_IDLE_SINCE = "asherah_idle_since"
_CLIENT_SSL = 2048  # pymysql.constants.CLIENT.SSL: the server offers TLS
_TLS_ENFORCED = ("require", "verify-ca", "verify-full")
#: PostgreSQL's names for UTC (upper case).
_UTC_NAMES = frozenset(
    {"UTC", "ETC/UTC", "UCT", "ETC/UCT", "UNIVERSAL", "ETC/UNIVERSAL", "ZULU", "ETC/ZULU"}
)


#: Parsed once (create_engine would parse the string on every new engine).
_SQLITE_URL = make_url(f"{DRIVERS['sqlite']}://")


def is_memory_path(path: str) -> bool:
    """SQLite's private in-memory databases (``""`` is a private temporary one)."""
    return path in ("", ":memory:") or (path.startswith("file:") and "mode=memory" in path)


def build_engine(target: ConnectionTarget, options: SqlMetastoreOptions) -> Engine:
    """The engine for ``target``; its dialect probes the server on first Core use only (see
    :mod:`asherah_metastore_sql._dialects`)."""
    if target.backend == "sqlite":
        engine = _sqlite_engine(target.path or "", options)
    else:
        engine = _server_engine(target, options)
    probe_on_first_core_use(engine, LABELS[target.backend])
    return engine


def _server_engine(target: ConnectionTarget, options: SqlMetastoreOptions) -> Engine:
    url = URL.create(
        DRIVERS[target.backend],
        target.username,
        target.password,
        target.host,
        target.port,
        target.database,
    )
    dialect_args: dict[str, Any] = {}
    if target.backend == "postgres":
        connect_args = _postgres_connect_args(target, options)
        # The metastore never binds hstore: without this, the dialect's probe also looks up
        # the hstore type (a catalog query as slow as the rest of the probe together).
        dialect_args["use_native_hstore"] = False
    else:
        connect_args = _mysql_connect_args(target, options)
    engine = create_engine(
        url,
        connect_args=connect_args,
        **dialect_args,
        isolation_level="AUTOCOMMIT",
        skip_autocommit_rollback=True,  # autocommit: a ROLLBACK per call would be a wasted trip
        hide_parameters=True,
        pool_pre_ping=options.pool_pre_ping,
        **_pool_arguments(options),
    )
    _install_session_setup(engine, target, options)
    _install_idle_limit(engine, options)
    return engine


def _pool_arguments(options: SqlMetastoreOptions) -> dict[str, Any]:
    """The canonical pool settings (Go ``database/sql`` semantics) as a SQLAlchemy pool."""
    if options.pool_max_idle == 0:
        # Keep nothing idle: a fresh connection per call (max_open cannot be enforced then).
        return {"poolclass": NullPool}
    size = options.pool_max_idle
    if options.pool_max_open:
        size = min(size, options.pool_max_open)
    return {
        "poolclass": QueuePool,
        "pool_size": size,
        "max_overflow": -1 if options.pool_max_open == 0 else options.pool_max_open - size,
        "pool_recycle": options.pool_max_lifetime or -1,
        "pool_timeout": options.pool_timeout,
        "pool_reset_on_return": None,  # autocommit: no transaction is ever left open
    }


def _sqlite_engine(path: str, options: SqlMetastoreOptions) -> Engine:
    uri = path.startswith("file:")

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(
            path or ":memory:",
            timeout=options.busy_timeout,
            check_same_thread=False,
            uri=uri,
        )

    if is_memory_path(path):
        # One shared connection, or every pooled connection would see its own empty database.
        return create_engine(
            _SQLITE_URL,
            creator=connect,
            poolclass=StaticPool,
            isolation_level="AUTOCOMMIT",
            skip_autocommit_rollback=True,
            hide_parameters=True,
        )
    return create_engine(
        _SQLITE_URL,
        creator=connect,
        isolation_level="AUTOCOMMIT",
        skip_autocommit_rollback=True,
        hide_parameters=True,
        **_pool_arguments(options),
    )


def _postgres_connect_args(
    target: ConnectionTarget, options: SqlMetastoreOptions
) -> dict[str, Any]:
    args: dict[str, Any] = dict(target.params)
    # libpq wants whole seconds (and at least 2).
    args.setdefault("connect_timeout", str(max(2, math.ceil(options.connect_timeout))))
    if options.tls_mode is not None:
        args["sslmode"] = options.tls_mode
    for option, keyword in (
        ("tls_ca_file", "sslrootcert"),
        ("tls_cert_file", "sslcert"),
        ("tls_key_file", "sslkey"),
    ):
        value = getattr(options, option)
        if value is not None:
            args[keyword] = value
    return args


def _mysql_connect_args(target: ConnectionTarget, options: SqlMetastoreOptions) -> dict[str, Any]:
    args: dict[str, Any] = {
        "charset": "utf8mb4",
        "connect_timeout": options.connect_timeout,
        # The engine runs in autocommit; said at connect, PyMySQL sends no SET AUTOCOMMIT = 0
        # (its default) that the engine's SET AUTOCOMMIT = 1 would then undo: two round trips
        # per new connection.
        "autocommit": True,
    }
    args.update(target.params)
    mode = options.tls_mode or target.tls_mode
    ca = options.tls_ca_file or target.tls_ca_file
    cert = options.tls_cert_file or target.tls_cert_file
    key = options.tls_key_file or target.tls_key_file
    if mode in _TLS_ENFORCED or (mode is None and (ca or cert)):
        args["ssl"] = _ssl_context(mode or "verify-full", ca, cert, key)
    elif mode is None or mode == "disable":
        # No TLS unless asked, as the reference and Go's driver: PyMySQL's own default
        # ("preferred", unverified) loads the system CA store on every connect (~50 ms).
        args["ssl_disabled"] = True
    # "prefer": PyMySQL's default, TLS without verification when the server offers it.
    return args


def _ssl_context(
    mode: TlsMode, ca: str | None, cert: str | None, key: str | None
) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=ca)
        if cert:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"MySQL TLS files could not be loaded: {exc.strerror or exc}") from None
    if mode == "require":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif mode == "verify-ca":
        context.check_hostname = False
    return context


def same_zone(wanted: str, reported: str | None) -> bool:
    """``reported`` (the zone PostgreSQL announced at connect) is ``wanted``, or both are
    names of UTC; anything else, offsets included, is not assumed equal."""
    if reported is None:
        return False
    return wanted == reported or (wanted.upper() in _UTC_NAMES and reported.upper() in _UTC_NAMES)


def session_statements(
    target: ConnectionTarget,
    options: SqlMetastoreOptions,
    server_info: str = "",
    server_zone: str | None = None,
) -> list[str]:
    """What every new connection runs first. Values were validated by the options model.
    ``server_zone``: the session zone PostgreSQL reported in its start-up reply."""
    zone, timeout, replica = (
        options.time_zone,
        options.statement_timeout,
        options.replica_read_consistency,
    )
    if target.backend == "postgres":
        out = []
        # The server reports its session TimeZone as the connection starts (no query): when
        # that already is the zone asked for, SET TIME ZONE would be a round trip for nothing.
        if zone is not None and not same_zone(zone, server_zone):
            out.append(f"SET TIME ZONE '{zone}'")
        if timeout is not None:
            out.append(f"SET statement_timeout = {max(1, round(timeout * 1000))}")
        if replica is not None:
            out.append(f"SET apg_write_forward.consistency_mode = '{replica}'")
        return out
    if target.backend == "mysql":
        parts = []
        if zone is not None:
            # Named zones need the server's zone tables; an offset never does.
            parts.append(f"time_zone = '{'+00:00' if zone.upper() == 'UTC' else zone}'")
        if timeout is not None:
            if "mariadb" in server_info.lower():
                parts.append(f"max_statement_time = {timeout:g}")
            else:
                parts.append(f"max_execution_time = {max(1, round(timeout * 1000))}")
        if replica is not None:
            parts.append(f"aurora_replica_read_consistency = '{replica}'")
        return ["SET " + ", ".join(parts)] if parts else []
    return []


def _install_session_setup(
    engine: Engine, target: ConnectionTarget, options: SqlMetastoreOptions
) -> None:
    enforce_tls = (
        target.backend == "mysql" and (options.tls_mode or target.tls_mode) in _TLS_ENFORCED
    )

    @event.listens_for(engine, "connect", insert=True)
    def _setup(dbapi_connection: Any, connection_record: Any) -> None:
        if enforce_tls and not dbapi_connection.server_capabilities & _CLIENT_SSL:
            # PyMySQL older than 1.1.1 would silently carry on in plain text.
            raise ConnectionError("TLS is required but the MySQL server does not offer it")
        info = dbapi_connection.get_server_info() if target.backend == "mysql" else ""
        zone = None
        if target.backend == "postgres":
            zone = dbapi_connection.info.parameter_status("TimeZone")
        statements = session_statements(target, options, info, zone)
        if not statements:
            return
        autocommit = dbapi_connection.autocommit
        if target.backend == "postgres":
            # Outside a transaction, or the pool's first rollback would undo the SETs.
            dbapi_connection.autocommit = True
        cursor = dbapi_connection.cursor()
        try:
            # One round trip: PostgreSQL takes ';'-separated statements without parameters,
            # MySQL gets a single SET with a list of assignments.
            cursor.execute("; ".join(statements))
        finally:
            cursor.close()
        if target.backend == "postgres":
            dbapi_connection.autocommit = autocommit


def _install_idle_limit(engine: Engine, options: SqlMetastoreOptions) -> None:
    """``PoolMaxIdleTime``: a connection idle longer than this is replaced on checkout."""
    limit = options.pool_max_idle_time
    if not limit:
        return

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_connection: Any, connection_record: Any) -> None:
        connection_record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, connection_record: Any, proxy: Any) -> None:
        since = connection_record.info.pop(_IDLE_SINCE, None)
        if since is not None and time.monotonic() - since > limit:
            raise DisconnectionError("pooled connection idle longer than pool_max_idle_time")
