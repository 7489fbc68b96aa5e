"""The SQL each backend runs, and how ``created`` is encoded, exactly as the reference does.

``created`` is the part that must match byte for byte, or rows written by one implementation
are invisible to another (spec §3.1): SQLite stores ``datetime(created, 'unixepoch')`` text,
MySQL gets a hand-built UTC ``YYYY-MM-DD HH:MM:SS`` string, PostgreSQL ``to_timestamp(created)``.
``key_record`` is read as text on every backend (JSON/JSONB columns are cast), so TEXT, JSON
and JSONB columns all work.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import TextClause, text

from asherah_metastore_sql._dsn import Backend

_EPOCH = datetime(1970, 1, 1)

#: ``LIKE ... ESCAPE '!'`` works unchanged on all three backends.
LIKE_ESCAPE = "!"


def mysql_created(created: int) -> str:
    """The reference's MySQL ``created`` value: UTC ``YYYY-MM-DD HH:MM:SS`` (no ``FROM_UNIXTIME``,
    which would depend on the session time zone)."""
    moment = _EPOCH + timedelta(seconds=created)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )


def like_prefix(prefix: str) -> str:
    """A ``LIKE`` pattern matching ids that start with ``prefix`` (key ids are full of ``_``)."""
    escaped = (
        prefix.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )
    return escaped + "%"


@dataclass(frozen=True, slots=True)
class Statements:
    """One backend's statements for one (already quoted) table name."""

    load: TextClause
    load_latest: TextClause
    store: TextClause
    upsert: TextClause
    list_rows: TextClause
    create_table: Callable[[str | None], str]
    #: Python value bound to ``:created``.
    created: Callable[[int], object]
    #: ``store`` reports a duplicate as an error (MySQL) rather than as 0 rows.
    duplicate_raises: bool
    #: The ``key_record`` column as read, and ``created`` compared with a bind name.
    column: str
    at: Callable[[str], str]
    table: str

    def load_many(self, shape: tuple[bool, ...]) -> TextClause:
        """One row of ``len(shape)`` scalar subqueries: ``load`` where ``shape`` says exact
        (binds ``id<i>``, ``created<i>``), ``load_latest`` otherwise (binds ``id<i>``)."""
        return _load_many(self, shape)


@functools.lru_cache(maxsize=64)
def _load_many(sql: Statements, shape: tuple[bool, ...]) -> TextClause:
    t, column = sql.table, sql.column
    parts = [
        f"(SELECT {column} FROM {t} WHERE id = :id{i} AND created = {sql.at(f'created{i}')})"  # noqa: S608 - t is a quoted identifier
        if exact
        else f"(SELECT {column} FROM {t} WHERE id = :id{i} ORDER BY created DESC LIMIT 1)"  # noqa: S608
        for i, exact in enumerate(shape)
    ]
    return text("SELECT " + ", ".join(parts))


@functools.lru_cache(maxsize=64)
def statements(backend: Backend, table: str) -> Statements:
    """The statements for ``backend`` on ``table`` (a quoted identifier, never user text);
    built once per process (parsing the bind names of five statements costs a cold start
    about 50 us)."""
    if backend == "sqlite":
        return _sqlite(table)
    if backend == "postgres":
        return _postgres(table)
    return _mysql(table)


def _sqlite_at(name: str) -> str:
    return f"datetime(:{name}, 'unixepoch')"


def _postgres_at(name: str) -> str:
    return f"to_timestamp(:{name})"


def _mysql_at(name: str) -> str:
    return f":{name}"


def _sqlite(t: str) -> Statements:
    at = _sqlite_at("created")
    insert = f"INSERT INTO {t} (id, created, key_record) VALUES (:id, {at}, :key_record)"  # noqa: S608 - t is a quoted identifier
    return Statements(
        load=text(f"SELECT key_record FROM {t} WHERE id = :id AND created = {at}"),  # noqa: S608
        load_latest=text(
            f"SELECT key_record FROM {t} WHERE id = :id ORDER BY created DESC LIMIT 1"  # noqa: S608
        ),
        # ON CONFLICT (not INSERT OR IGNORE): only a uniqueness conflict is "duplicate"; a NOT
        # NULL failure (a created beyond SQLite's date range) stays an error.
        store=text(insert + " ON CONFLICT DO NOTHING"),
        upsert=text(
            insert + " ON CONFLICT (id, created) DO UPDATE SET key_record = excluded.key_record"
        ),
        list_rows=text(
            "SELECT id, CAST(strftime('%s', created) AS INTEGER) AS created_s, key_record "  # noqa: S608
            f"FROM {t} WHERE id LIKE :prefix ESCAPE '{LIKE_ESCAPE}' ORDER BY id, created"
        ),
        create_table=lambda _type: (
            f"CREATE TABLE IF NOT EXISTS {t} (id TEXT NOT NULL, created TIMESTAMP NOT NULL, "
            "key_record TEXT NOT NULL, PRIMARY KEY (id, created))"
        ),
        created=int,
        duplicate_raises=False,
        column="key_record",
        at=_sqlite_at,
        table=t,
    )


def _postgres(t: str) -> Statements:
    at = _postgres_at("created")
    insert = f"INSERT INTO {t} (id, created, key_record) VALUES (:id, {at}, :key_record)"  # noqa: S608 - t is a quoted identifier
    return Statements(
        load=text(
            f"SELECT CAST(key_record AS TEXT) FROM {t} WHERE id = :id AND created = {at}"  # noqa: S608
        ),
        load_latest=text(
            f"SELECT CAST(key_record AS TEXT) FROM {t} WHERE id = :id "  # noqa: S608
            "ORDER BY created DESC LIMIT 1"
        ),
        store=text(insert + " ON CONFLICT DO NOTHING"),
        upsert=text(
            insert + " ON CONFLICT (id, created) DO UPDATE SET key_record = EXCLUDED.key_record"
        ),
        # Via TIMESTAMPTZ so a TIMESTAMP column is read in the zone it was written in.
        list_rows=text(
            "SELECT id, CAST(EXTRACT(EPOCH FROM CAST(created AS TIMESTAMPTZ)) AS BIGINT), "  # noqa: S608
            f"CAST(key_record AS TEXT) FROM {t} WHERE id LIKE :prefix "
            f"ESCAPE '{LIKE_ESCAPE}' ORDER BY id, created"
        ),
        create_table=lambda kind: (
            f"CREATE TABLE IF NOT EXISTS {t} (id TEXT NOT NULL, created TIMESTAMP NOT NULL, "
            f"key_record {(kind or 'jsonb').upper()} NOT NULL, PRIMARY KEY (id, created))"
        ),
        # The reference binds an f64 to to_timestamp(); exact for every second up to 2^53.
        created=float,
        duplicate_raises=False,
        column="CAST(key_record AS TEXT)",
        at=_postgres_at,
        table=t,
    )


def _mysql(t: str) -> Statements:
    insert = f"INSERT INTO {t} (id, created, key_record) VALUES (:id, :created, :key_record)"  # noqa: S608 - t is a quoted identifier
    return Statements(
        load=text(f"SELECT key_record FROM {t} WHERE id = :id AND created = :created"),  # noqa: S608
        load_latest=text(
            f"SELECT key_record FROM {t} WHERE id = :id ORDER BY created DESC LIMIT 1"  # noqa: S608
        ),
        # A plain INSERT: INSERT IGNORE would also turn bad data into warnings and "False".
        store=text(insert),
        # "created = created" stops a TIMESTAMP column declared (or defaulted, with
        # explicit_defaults_for_timestamp off) ON UPDATE CURRENT_TIMESTAMP from moving the row.
        upsert=text(
            insert + " ON DUPLICATE KEY UPDATE created = created, key_record = VALUES(key_record)"
        ),
        list_rows=text(
            f"SELECT id, UNIX_TIMESTAMP(created), key_record FROM {t} "  # noqa: S608
            f"WHERE id LIKE :prefix ESCAPE '{LIKE_ESCAPE}' ORDER BY id, created"
        ),
        # The canonical Go schema, with ids compared byte for byte (the server's default
        # collation is usually case-insensitive, which would let partition "Bob" load "bob"'s
        # keys).
        create_table=lambda kind: (
            f"CREATE TABLE IF NOT EXISTS {t} ("
            "id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, "
            "created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, "
            f"key_record {'JSON' if kind in ('json', 'jsonb') else 'TEXT'} NOT NULL, "
            "PRIMARY KEY (id, created), INDEX (created)) ENGINE=InnoDB"
        ),
        created=mysql_created,
        duplicate_raises=True,
        column="key_record",
        at=_mysql_at,
        table=t,
    )
