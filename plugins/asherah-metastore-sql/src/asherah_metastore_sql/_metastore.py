"""The SQL metastore: the canonical ``encryption_key`` table on PostgreSQL, MySQL or SQLite."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Self, TypeVar

from sqlalchemy import Connection, Engine, TextClause, inspect, text
from sqlalchemy.exc import DBAPIError

from asherah import EnvelopeKeyRecord, Metastore, MetastoreError
from asherah._driver_context import DriverContext
from asherah_metastore_sql._dsn import ConnectionTarget
from asherah_metastore_sql._engine import build_engine, is_memory_path
from asherah_metastore_sql._errors import LABELS, ErrorWrapper, where
from asherah_metastore_sql._options import SqlMetastoreOptions, options_from_config
from asherah_metastore_sql._raw import compile_raw, run_raw
from asherah_metastore_sql._shared import EngineLease, lease_engine
from asherah_metastore_sql._statements import Statements, like_prefix, statements

_log = logging.getLogger("asherah.metastore.sql")
_MYSQL_DUPLICATE_ENTRY = 1062
_T = TypeVar("_T")


class SqlMetastore(Metastore):
    """Key rows in a SQL table ``(id, created, key_record)`` with primary key ``(id, created)``.

    Rows are read and written exactly as the Rust reference and the canonical Go/Java
    implementations do, so all of them can share one table. ``store`` is insert-if-absent:
    ``False`` only when ``(id, created)`` exists; every other failure (server down, table
    missing, permission denied, a corrupt row) raises :class:`asherah.MetastoreError`.

    Build it from config (``Metastore = "sqlite"`` / ``"rdbms"`` / ``"sql"`` with a
    ``ConnectionString``), or directly:
    ``SqlMetastore(SqlMetastoreOptions(connection_string="postgres://app@db/keys"))``.
    """

    Options = SqlMetastoreOptions
    batches_loads = True

    def __init__(self, options: SqlMetastoreOptions) -> None:
        target: ConnectionTarget = options.target()
        self.options = options
        self.backend = target.backend
        self._target = target
        self._errors = ErrorWrapper(LABELS[target.backend], target.password)
        # One shared in-memory SQLite connection: serialise its users.
        memory = target.backend == "sqlite" and is_memory_path(target.path or "")
        self._lease: EngineLease | None = None
        if options.shared_engine and not memory:
            # A private in-memory database must stay private to this metastore.
            self._lease = lease_engine(target, options, build_engine)
            self._engine = self._lease.engine
        else:
            self._engine = build_engine(target, options)
        preparer = self._engine.dialect.identifier_preparer
        self.table_name = options.table_name
        quoted = ".".join(preparer.quote(part) for part in options.table_name.split("."))
        self._sql: Statements = statements(target.backend, quoted)
        self._lock: AbstractContextManager[Any] = threading.Lock() if memory else nullcontext()

    @classmethod
    def options_from_config(cls, config: Any) -> dict[str, Any]:
        return options_from_config(config)

    @classmethod
    def from_options(cls, options: Any, context: DriverContext | None = None) -> Self:
        assert isinstance(options, SqlMetastoreOptions)  # noqa: S101 - the loader validated it
        metastore = cls(options)
        create = options.create_schema
        if create is None:
            create = metastore.backend == "sqlite"
        # A shared engine remembers the tables created through it: no DDL per factory.
        if create and not (metastore._lease and metastore._lease.has_table(options.table_name)):
            try:
                metastore.create_schema()
            except BaseException:
                metastore.close()
                raise
        return metastore

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (thread-safe), for callers with needs beyond the ABC."""
        return self._engine

    def __repr__(self) -> str:
        t = self._target
        if t.backend == "sqlite":
            location = f"path={t.path!r}"
        else:
            user = f"{t.username}@" if t.username else ""
            location = f"server={user}{t.host}:{t.port}/{t.database or ''}"
        return f"SqlMetastore(backend={t.backend!r}, {location}, table={self.table_name!r})"

    def load(self, key_id: str, created: int) -> EnvelopeKeyRecord | None:
        params = {"id": key_id, "created": self._sql.created(created)}
        value = self._fetch_one("load", self._sql.load, params, key_id, created)
        return None if value is None else self._parse(value, key_id, created)

    def load_latest(self, key_id: str) -> EnvelopeKeyRecord | None:
        value = self._fetch_one("load_latest", self._sql.load_latest, {"id": key_id}, key_id)
        return None if value is None else self._parse(value, key_id, None)

    def load_many(
        self, requests: Sequence[tuple[str, int | None]]
    ) -> list[EnvelopeKeyRecord | None]:
        """One statement of scalar subqueries (a cold start's drift-guard row and latest system
        key: one round trip instead of two)."""
        if len(requests) < 2:
            return super().load_many(requests)
        shape = tuple(created is not None for _, created in requests)
        params: dict[str, Any] = {}
        for i, (key_id, created) in enumerate(requests):
            params[f"id{i}"] = key_id
            if created is not None:
                params[f"created{i}"] = self._sql.created(created)
        try:
            row = self._run_raw(self._sql.load_many(shape), params, _first_row)
        except Exception as exc:
            at = where(self.table_name, ",".join(key_id for key_id, _ in requests))
            raise self._errors.error("load_many", at, exc) from exc
        return [
            None if value is None else self._parse(value, key_id, created)
            for value, (key_id, created) in zip(row, requests, strict=True)
        ]

    def store(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> bool:
        # A retry after a lost connection is safe: if the first INSERT did commit, the retry
        # finds the row and answers False, and the engine then loads that very row.
        try:
            params = self._row_params(key_id, created, record)
            return bool(self._run_raw(self._sql.store, params, _rowcount))
        except Exception as exc:
            if (
                self._sql.duplicate_raises
                and isinstance(exc, self._engine.dialect.loaded_dbapi.Error)
                and _mysql_errno(exc) == _MYSQL_DUPLICATE_ENTRY
            ):
                return False
            at = where(self.table_name, key_id, created)
            raise self._errors.error("store", at, exc) from exc

    def upsert(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> None:
        """Insert or overwrite; only for the drift-guard row and operator tools (revoke)."""
        try:
            params = self._row_params(key_id, created, record)
            self._execute(lambda conn: conn.execute(self._sql.upsert, params))
        except Exception as exc:
            at = where(self.table_name, key_id, created)
            raise self._errors.error("upsert", at, exc) from exc

    def list_rows(self, key_id_prefix: str = "") -> Iterator[tuple[str, int, EnvelopeKeyRecord]]:
        params = {"prefix": like_prefix(key_id_prefix)}
        try:
            rows = self._execute(lambda conn: conn.execute(self._sql.list_rows, params).all())
        except Exception as exc:
            raise self._errors.error("list_rows", where(self.table_name), exc) from exc
        out = []
        for key_id, created, record_text in rows:
            # Case-insensitive collations make LIKE looser than startswith.
            if str(key_id).startswith(key_id_prefix):
                created_s = int(created)
                out.append((key_id, created_s, self._parse(record_text, key_id, created_s)))
        return iter(out)

    def drift_identity(self) -> dict[str, Any]:
        """The reference's ``metastore_identity``: the SQLite path as configured, or only the
        server kind (the reference records no host, so moving servers does not trip it)."""
        if self.backend == "sqlite":
            return {"kind": "sqlite", "path": self._target.path or ""}
        return {"kind": self.backend}

    def create_schema(self) -> None:
        """``CREATE TABLE IF NOT EXISTS`` with the canonical columns for this backend."""
        # On the driver's cursor, as the per-key statements: SQLite creates by default, so
        # this is on a cold start's path (a new engine's Core set-up would double it).
        ddl = text(self._sql.create_table(self.options.key_record_type))
        try:
            self._run_raw(ddl, {}, _nothing)
        except Exception as exc:
            # Two processes creating the table at once: the loser's error is harmless.
            if not self._table_exists():
                raise self._errors.error("create_schema", where(self.table_name), exc) from exc
        if self._lease is not None:
            self._lease.add_table(self.table_name)

    def close(self) -> None:
        """Dispose an engine of its own; return a shared one's lease (its idle connections
        stay for the next metastore of this target; ``dispose_engines`` closes them)."""
        if self._lease is not None:
            self._lease.release()
        else:
            self._engine.dispose()

    def _table_exists(self) -> bool:
        schema, _, table = self.table_name.rpartition(".")
        try:
            return bool(self._execute(lambda conn: inspect(conn).has_table(table, schema or None)))
        except Exception:
            return False

    def _execute(self, work: Callable[[Connection], _T]) -> _T:
        """Run ``work`` on a pooled connection; once more on a fresh one if the server dropped
        the first (restart, failover, idle timeout), so a stale pooled connection costs no
        failed call and the steady state no ping."""
        for attempt in (1, 2):
            with self._lock:
                try:
                    # The engine's first Connection also runs the dialect's deferred server
                    # probe (``_dialects``), on what may be a pooled connection gone stale.
                    with self._engine.connect() as conn:
                        return work(conn)
                except DBAPIError as exc:
                    if attempt == 2 or not exc.connection_invalidated:
                        raise
                    _log.warning(
                        "%s connection lost (%s); retrying once on a new connection",
                        self._errors.label,
                        type(exc.orig).__name__,
                    )
        raise AssertionError("unreachable")  # pragma: no cover

    def _run_raw(
        self, statement: TextClause, params: dict[str, Any], result: Callable[[Any], _T]
    ) -> _T:
        raw = compile_raw(statement, self._engine)
        out: _T = run_raw(self._engine, self._lock, self._errors.label, raw, params, result)
        return out

    def _row_params(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> dict[str, Any]:
        return {"id": key_id, "created": self._sql.created(created), "key_record": record.to_json()}

    def _fetch_one(
        self,
        operation: str,
        statement: TextClause,
        params: dict[str, Any],
        key_id: str,
        created: int | None = None,
    ) -> str | bytes | None:
        try:
            row = self._run_raw(statement, params, _first_row)
        except Exception as exc:
            at = where(self.table_name, key_id, created)
            raise self._errors.error(operation, at, exc) from exc
        if row is None:
            return None
        value: str | bytes = row[0]
        return value

    def _parse(self, value: Any, key_id: str, created: int | None) -> EnvelopeKeyRecord:
        try:
            return EnvelopeKeyRecord.from_json(value)
        except (ValueError, TypeError) as exc:
            at = where(self.table_name, key_id, created)
            raise MetastoreError(
                f"{self._errors.label} row {at} holds an invalid key_record: {exc}"
            ) from exc


def _mysql_errno(exc: BaseException) -> int | None:
    args = getattr(getattr(exc, "orig", exc), "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _rowcount(cursor: Any) -> int:
    count: int = cursor.rowcount
    return count


def _first_row(cursor: Any) -> Any:
    return cursor.fetchone()


def _nothing(cursor: Any) -> None:
    return None
