"""Driver options, and how the canonical flat config keys map onto them."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from asherah_metastore_sql._dsn import (
    ConnectionTarget,
    TlsMode,
    parse_connection_string,
    parse_url,
)

if TYPE_CHECKING:
    from asherah import Config

DEFAULT_TABLE = "encryption_key"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")
_REPLICA_VALUES = ("eventual", "global", "session")

#: ``Metastore`` values that fix the backend (``rdbms``/``sql`` classify the string instead).
_BACKEND_BY_METASTORE = {
    "sqlite": "sqlite",
    "test-debug-sqlite": "sqlite",
    "mysql": "mysql",
    "postgres": "postgres",
    "postgresql": "postgres",
}

#: Canonical ``Config`` field -> option name.
_FROM_CONFIG = {
    "replica_read_consistency": "replica_read_consistency",
    "pool_max_open": "pool_max_open",
    "pool_max_idle": "pool_max_idle",
    "pool_max_lifetime": "pool_max_lifetime",
    "pool_max_idle_time": "pool_max_idle_time",
}


class SqlMetastoreOptions(BaseModel):
    """Options of the ``sql`` metastore (config-file section ``[metastore]``).

    ``connection_string`` takes every canonical form (``postgres://``, ``mysql://``,
    ``sqlite://<path>``, a Go DSN ``user:pass@tcp(host:port)/db``) and SQLAlchemy URLs with a
    driver name; ``url`` takes SQLAlchemy URLs with SQLAlchemy's meaning of ``sqlite:///``;
    ``db_type`` is the canonical ``SQLMetastoreDBType`` (``sqlite`` makes the string a file
    path, as ``Metastore = "sqlite"`` does). Pool settings follow the canonical ``PoolMax*``
    keys: 0 open connections means unlimited, lifetimes are seconds with 0 for unlimited.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: A canonical Asherah connection string (``ConnectionString``).
    connection_string: SecretStr | None = None
    #: Or a SQLAlchemy URL (``sqlite:///relative.db`` / ``sqlite:////absolute.db`` as in
    #: SQLAlchemy); exactly one of the two.
    url: SecretStr | None = None
    db_type: Literal["sqlite", "mysql", "postgres"] | None = None
    #: ``table`` or ``schema.table`` (PostgreSQL schema, MySQL database).
    table_name: str = DEFAULT_TABLE
    #: Create the table at start-up when missing. ``None``: yes for SQLite (as the reference
    #: does), never for PostgreSQL and MySQL (use ``asherah metastore init``).
    create_schema: bool | None = None
    #: ``key_record`` column type :meth:`SqlMetastore.create_schema` uses. ``None``: JSONB on
    #: PostgreSQL (the reference can only write JSON/JSONB there), TEXT elsewhere (the canonical
    #: Go schema). Reading works with any of them.
    key_record_type: Literal["text", "json", "jsonb"] | None = None
    #: Aurora read consistency (``aurora_replica_read_consistency`` on MySQL,
    #: ``apg_write_forward.consistency_mode`` on PostgreSQL), set on every new connection.
    replica_read_consistency: str | None = None
    pool_max_open: int = Field(default=0, ge=0)
    pool_max_idle: int = Field(default=2, ge=0)
    pool_max_lifetime: float = Field(default=0, ge=0)
    pool_max_idle_time: float = Field(default=0, ge=0)
    #: Seconds to wait for a pooled connection when ``pool_max_open`` are all in use.
    pool_timeout: float = Field(default=30.0, gt=0)
    #: Test each pooled connection before use (one round trip per call). Off by default: a call
    #: whose pooled connection the server dropped is retried once on a fresh connection.
    pool_pre_ping: bool = False
    connect_timeout: float = Field(default=10.0, gt=0)
    #: Server-side limit per statement, seconds (PostgreSQL ``statement_timeout``, MariaDB
    #: ``max_statement_time``, MySQL ``max_execution_time`` for reads). Not for SQLite.
    statement_timeout: float | None = Field(default=None, gt=0)
    #: SQLite: how long a writer waits for another process's lock, seconds.
    busy_timeout: float = Field(default=10.0, ge=0)
    #: TLS for PostgreSQL and MySQL; overrides what the connection string says. Unset:
    #: libpq's default (``prefer``) on PostgreSQL; no TLS on MySQL, as the reference.
    tls_mode: TlsMode | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    #: Share one engine (its dialect set-up, compiled statements and idle connections) with
    #: every metastore of this process that has the same target and engine settings, and keep
    #: it after ``close()`` for the next one (see ``dispose_engines``). ``False``: an engine of
    #: its own, disposed on ``close()``. Private in-memory SQLite databases are never shared.
    shared_engine: bool = True
    #: Session time zone pinned on every connection, so ``created`` means the same instant to
    #: every client (PostgreSQL: no SET when the server reports that zone at connect).
    #: ``None`` keeps the server default, as the Rust reference does: only needed to share a
    #: PostgreSQL or MySQL whose default zone is not UTC with reference processes.
    time_zone: str | None = "UTC"

    @field_validator("db_type", mode="before")
    @classmethod
    def _db_type(cls, value: Any) -> Any:
        if isinstance(value, str):
            lowered = value.strip().lower()
            return {"postgresql": "postgres", "mariadb": "mysql", "": None}.get(lowered, lowered)
        return value

    @field_validator("table_name")
    @classmethod
    def _table(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(part) for part in parts):
            raise ValueError("must be 'table' or 'schema.table' of letters, digits and _")
        return value

    @field_validator("replica_read_consistency", mode="before")
    @classmethod
    def _replica(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        if value not in _REPLICA_VALUES:
            # The reference's message (case-sensitive, as the reference).
            raise ValueError(
                f"invalid REPLICA_READ_CONSISTENCY value: '{value}' "
                "(expected eventual, global, or session)"
            )
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_/+\-:]{1,64}", value):
            raise ValueError("must be a time zone name such as UTC or an offset such as +00:00")
        return value

    @model_validator(mode="after")
    def _parse_now(self) -> SqlMetastoreOptions:
        if (self.connection_string is None) == (self.url is None):
            raise ValueError("give exactly one of connection_string (ConnectionString) and url")
        # Fail at configuration time, not at the first query.
        self.target()
        return self

    def target(self) -> ConnectionTarget:
        """The parsed connection string (raises :class:`asherah.ConfigError`)."""
        if self.url is not None:
            return _parse_url(self.url.get_secret_value())
        assert self.connection_string is not None  # noqa: S101 - checked by the validator
        return _parse_connection_string(self.connection_string.get_secret_value(), self.db_type)


# Parsed once per process per string (validation and the metastore each ask, on every factory
# start). The strings, passwords included, are kept as the shared engines' keys keep them.
_parse_url = functools.lru_cache(maxsize=32)(parse_url)
_parse_connection_string = functools.lru_cache(maxsize=32)(parse_connection_string)


def options_from_config(config: Config) -> dict[str, Any]:
    """The options named by the canonical keys that are set in ``config``."""
    out: dict[str, Any] = {}
    if config.connection_string is not None:
        out["connection_string"] = config.connection_string
    backend = _BACKEND_BY_METASTORE.get(config.metastore or "")
    if backend is not None:
        out["db_type"] = backend
    elif config.sql_metastore_db_type:
        out["db_type"] = config.sql_metastore_db_type
    for name, option in _FROM_CONFIG.items():
        value = getattr(config, name, None)
        if value is not None:
            out[option] = value
    return out
