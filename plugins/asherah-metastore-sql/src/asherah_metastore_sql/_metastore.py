"""The SQL metastore: the canonical ``encryption_key`` table on PostgreSQL, MySQL or SQLite."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from asherah import EnvelopeKeyRecord, Metastore, MetastoreError
from asherah._driver_context import DriverContext
from asherah_metastore_sql._dsn import ConnectionTarget
from asherah_metastore_sql._engine import build_engine, is_memory_path
from asherah_metastore_sql._errors import LABELS, ErrorWrapper, where
from asherah_metastore_sql._options import SqlMetastoreOptions, options_from_config
from asherah_metastore_sql._raw import RawRunner, RawStatement, compile_raw
from asherah_metastore_sql._shared import EngineLease, engine_key, lease_engine
from asherah_metastore_sql._statements import Statements, like_prefix, statements

_log = logging.getLogger("asherah.metastore.sql")
_MYSQL_DUPLICATE_ENTRY = 1062
_T = TypeVar("_T")


@dataclass(slots=True)
class _Plan:
    """What a metastore derives from its options alone, kept per options object: the driver
    loader hands every factory of a config the same validated options, so a re-created
    factory skips re-deriving it (~10 us)."""

    options: SqlMetastoreOptions  # held, so the id it is filed under stays this object's
    target: ConnectionTarget
    memory: bool
    errors: ErrorWrapper
    key: Hashable | None
    #: Known once the first engine's dialect has quoted the table and compiled the statements.
    sql: Statements | None = None
    prepared: _Prepared | None = None


@dataclass(slots=True)
class _Prepared:
    """The per-key statements compiled for one dialect and table."""

    load: RawStatement
    load_latest: RawStatement
    store: RawStatement
    #: ``load_many`` statements by shape.
    many: dict[tuple[bool, ...], RawStatement] = field(default_factory=dict)


_plans: dict[int, _Plan] = {}
_MAX_PLANS = 64


def _plan_for(options: SqlMetastoreOptions) -> _Plan:
    plan = _plans.get(id(options))
    if plan is not None and plan.options is options:
        return plan
    target: ConnectionTarget = options.target()
    # One shared in-memory SQLite connection: serialise its users.
    memory = target.backend == "sqlite" and is_memory_path(target.path or "")
    # A private in-memory database must stay private to this metastore.
    shared = options.shared_engine and not memory
    plan = _Plan(
        options,
        target,
        memory,
        ErrorWrapper(LABELS[target.backend], target.password),
        engine_key(target, options) if shared else None,
    )
    if len(_plans) >= _MAX_PLANS:
        _plans.clear()
    _plans[id(options)] = plan
    return plan


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
        plan = _plan_for(options)
        target = plan.target
        self.options = options
        self.backend = target.backend
        self.table_name = options.table_name
        self._target = target
        self._errors = plan.errors
        self._lease: EngineLease | None = None
        if plan.key is not None:
            self._lease = lease_engine(target, options, build_engine, plan.key)
            self._engine = self._lease.engine
        else:
            self._engine = build_engine(target, options)
        if plan.sql is None or plan.prepared is None:
            preparer = self._engine.dialect.identifier_preparer
            quoted = ".".join(preparer.quote(part) for part in options.table_name.split("."))
            sql = statements(target.backend, quoted)
            plan.prepared = _Prepared(
                compile_raw(sql.load, self._engine),
                compile_raw(sql.load_latest, self._engine),
                compile_raw(sql.store, self._engine),
            )
            plan.sql = sql
        self._sql: Statements = plan.sql
        self._q: _Prepared = plan.prepared
        # One shared in-memory SQLite connection: serialise its users.
        self._lock: threading.Lock | None = threading.Lock() if plan.memory else None
        self._runner = RawRunner(self._engine, self._lock, plan.errors.label)

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
        return self._load_one("load", self._q.load, params, key_id, created)

    def load_latest(self, key_id: str) -> EnvelopeKeyRecord | None:
        return self._load_one("load_latest", self._q.load_latest, {"id": key_id}, key_id, None)

    def _load_one(
        self,
        operation: str,
        statement: RawStatement,
        params: dict[str, Any],
        key_id: str,
        created: int | None,
    ) -> EnvelopeKeyRecord | None:
        try:
            row = self._runner.run(statement, statement.arguments(params), True)
        except Exception as exc:
            raise self._errors.error(
                operation, where(self.table_name, key_id, created), exc
            ) from exc
        if row is None:
            return None
        return self._parse(row[0], key_id, created)

    def load_many(
        self, requests: Sequence[tuple[str, int | None]]
    ) -> list[EnvelopeKeyRecord | None]:
        """One statement of scalar subqueries (a cold start's drift-guard row and latest system
        key: one round trip instead of two)."""
        if len(requests) < 2:
            return super().load_many(requests)
        shape = tuple([created is not None for _, created in requests])
        params: dict[str, Any] = {}
        for i, (key_id, created) in enumerate(requests):
            params[f"id{i}"] = key_id
            if created is not None:
                params[f"created{i}"] = self._sql.created(created)
        try:
            statement = self._q.many.get(shape)
            if statement is None:
                statement = compile_raw(self._sql.load_many(shape), self._engine)
                self._q.many[shape] = statement
            row = self._runner.run(statement, statement.arguments(params), True)
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
        statement = self._q.store
        try:
            params = self._row_params(key_id, created, record)
            return bool(self._runner.run(statement, statement.arguments(params), False))
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
            raw = compile_raw(ddl, self._engine)
            self._runner.run(raw, raw.arguments({}), False)
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
            with self._locked():
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

    def _locked(self) -> AbstractContextManager[Any]:
        return nullcontext() if self._lock is None else self._lock

    def _row_params(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> dict[str, Any]:
        return {"id": key_id, "created": self._sql.created(created), "key_record": record.to_json()}

    def _parse(self, value: Any, key_id: str, created: int | None) -> EnvelopeKeyRecord:
        try:
            return EnvelopeKeyRecord.from_json(value)
        except (ValueError, TypeError) as exc:
            raise self._corrupt(key_id, created, exc) from exc

    def _corrupt(self, key_id: str, created: int | None, exc: Exception) -> MetastoreError:
        at = where(self.table_name, key_id, created)
        return MetastoreError(f"{self._errors.label} row {at} holds an invalid key_record: {exc}")


def _mysql_errno(exc: BaseException) -> int | None:
    args = getattr(getattr(exc, "orig", exc), "args", ())
    return args[0] if args and isinstance(args[0], int) else None
