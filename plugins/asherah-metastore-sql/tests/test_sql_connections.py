"""Connections: errors and what they say, secrets, TLS, session settings, pool, timeouts."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sql_testlib import open_metastore, record, server_database, unique

from asherah import Config, MetastoreError
from asherah._drivers import load_metastore
from asherah_metastore_sql import SqlMetastore, create_schema
from testsupport.sql import TempDatabase, free_port

PASSWORD = "Sup3r-Secret-Pa55"


def _chain(exc: BaseException | None) -> str:
    """Every message in an exception chain, as a log line with a traceback would show."""
    out = []
    while exc is not None:
        out.append(f"{type(exc).__name__}: {exc!s} {exc!r}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(out)


def test_missing_table_error_names_table_operation_and_key(
    url_for: Callable[[str], str], backend: str
) -> None:
    table = unique("missing_")
    driver = open_metastore(url_for(backend), table_name=table, create_schema=False)
    if backend == "sqlite":
        with driver.engine.connect() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    with pytest.raises(MetastoreError) as info:
        driver.load("_IK_x_svc_prod", 1705325400)
    message = str(info.value)
    assert f"table={table}" in message
    assert "load failed" in message
    assert "id=_IK_x_svc_prod created=1705325400" in message
    assert {"sqlite": "no such table", "postgres": "does not exist", "mysql": "doesn't exist"}[
        backend
    ] in message
    with pytest.raises(MetastoreError, match="store failed"):
        driver.store("_IK_x_svc_prod", 1705325400, record(1705325400))
    driver.close()


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_unreachable_server_fails_fast_with_the_reason(backend: str) -> None:
    port = free_port()
    driver = open_metastore(
        f"{'postgres' if backend == 'postgres' else 'mysql'}://root:{PASSWORD}@127.0.0.1:{port}/test",
        connect_timeout=2,
    )
    started = time.monotonic()
    with pytest.raises(MetastoreError) as info:
        driver.load_latest("_IK_x")
    assert time.monotonic() - started < 5
    assert f"127.0.0.1:{port}" in repr(driver)
    text = _chain(info.value)
    assert "refused" in text.lower() or "can't connect" in text.lower()
    assert PASSWORD not in text
    assert PASSWORD not in repr(driver)
    driver.close()


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_bad_credentials_never_show_the_password(
    backend: str,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = server_database(request, backend)
    scheme, rest = db.url.split("://", 1)
    location = rest.split("@", 1)[1]
    user = "asherah_no_such_role" if backend == "postgres" else "root"
    caplog.set_level(logging.DEBUG)
    driver = open_metastore(f"{scheme}://{user}:{PASSWORD}@{location}")
    with pytest.raises(MetastoreError) as info:
        driver.store("_IK_x", 1705325400, record(1705325400))
    text = _chain(info.value)
    assert ("does not exist" in text) if backend == "postgres" else ("Access denied" in text)
    for shown in (text, repr(driver), str(driver.engine.url), caplog.text):
        assert PASSWORD not in shown
    # The same through the loader and a Go DSN (the reference's error echoes the string).
    go_dsn = f"root:{PASSWORD}@tcp(127.0.0.1:{free_port()})/test"
    cfg = Config.model_validate(
        {"ServiceName": "s", "ProductID": "p", "Metastore": "rdbms", "ConnectionString": go_dsn}
    )
    metastore = load_metastore(cfg)
    with pytest.raises(MetastoreError) as info:
        metastore.load_latest("_IK_x")
    assert PASSWORD not in _chain(info.value) + repr(metastore) + repr(cfg) + caplog.text
    metastore.close()
    driver.close()


def test_password_is_scrubbed_even_if_a_driver_echoes_it() -> None:
    from asherah_metastore_sql._errors import ErrorWrapper

    wrapper = ErrorWrapper("MySQL", PASSWORD)
    error = wrapper.error("load", "table=t", RuntimeError(f"login failed for {PASSWORD}\nmore"))
    assert PASSWORD not in str(error)
    assert "login failed for *** more" in str(error)


class _BlockedStore:
    """A driver ``store`` blocked behind another transaction's uncommitted row for the same
    key, and the means to kill the server session it waits in."""

    def __init__(self, db: TempDatabase, driver: SqlMetastore) -> None:
        self.backend = db.kind
        self.key_id = unique("_IK_kill_")
        self.blocker = db.engine(autocommit=False).connect()
        self.admin = db.engine().connect()
        self.transaction = self.blocker.begin()
        if self.backend == "postgres":
            insert = "INSERT INTO encryption_key VALUES (:id, to_timestamp(1705325400), '{}')"
        else:
            insert = "INSERT INTO encryption_key VALUES (:id, '2024-01-15 13:30:00', '{}')"
        self.blocker.execute(sa.text(insert), {"id": self.key_id})
        self.outcome: list[object] = []
        self.thread = threading.Thread(target=self._store, args=(driver,))
        self.thread.start()
        self.killed: set[int] = set()

    def _store(self, driver: SqlMetastore) -> None:
        try:
            self.outcome.append(driver.store(self.key_id, 1705325400, record(1705325400, 9)))
        except BaseException as exc:  # asserted by the test
            self.outcome.append(exc)

    def kill_waiting_session(self) -> None:
        victim = self._waiting_session()
        if self.backend == "postgres":
            self.admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
        else:
            self.admin.execute(sa.text(f"KILL CONNECTION {victim}"))
        self.killed.add(victim)

    def wait_until_waiting_again(self) -> None:
        self._waiting_session()

    def _waiting_session(self) -> int:
        query = (
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE :q"
            if self.backend == "postgres"
            else "SELECT id FROM information_schema.processlist WHERE info LIKE :q"
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for (pid,) in self.admin.execute(sa.text(query), {"q": "INSERT INTO%encryption_key%"}):
                if int(pid) not in self.killed:
                    return int(pid)
            time.sleep(0.05)
        raise AssertionError(f"no store for {self.key_id} is waiting on the lock")

    def finish(self, *, commit_blocker: bool = False) -> object:
        if commit_blocker:
            self.transaction.commit()
        else:
            self.transaction.rollback()
        self.thread.join(timeout=30)
        rows = self.admin.execute(
            sa.text("SELECT key_record FROM encryption_key WHERE id = :id"),
            {"id": self.key_id},
        ).all()
        self.blocker.close()
        self.admin.close()
        assert len(self.outcome) == 1
        # Parsed: a JSONB column comes back as a dict, TEXT as a string.
        self.rows = [json.loads(r[0]) if isinstance(r[0], str) else r[0] for r in rows]
        return self.outcome[0]


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_a_killed_connection_is_retried_once(
    backend: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """The server drops the connection of a store in flight (here: waiting on a lock): the
    driver retries once on a fresh connection, which completes the insert in full."""
    db = server_database(request, backend)
    driver = open_metastore(db.url, create_schema=True)
    blocked = _BlockedStore(db, driver)
    blocked.kill_waiting_session()
    blocked.wait_until_waiting_again()  # the retry, on another server session
    assert blocked.finish() is True
    assert len(blocked.rows) == 1
    assert blocked.rows[0] == json.loads(record(1705325400, 9).to_json())
    assert "connection lost" in caplog.text
    driver.close()


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_killed_twice_mid_store_is_an_error_and_leaves_no_row(
    backend: str, request: pytest.FixtureRequest
) -> None:
    db = server_database(request, backend)
    driver = open_metastore(db.url, create_schema=True)
    blocked = _BlockedStore(db, driver)
    blocked.kill_waiting_session()
    blocked.kill_waiting_session()  # the retry too
    outcome = blocked.finish()
    assert isinstance(outcome, MetastoreError)
    assert "store failed" in str(outcome)
    assert blocked.rows == []  # no half row, no row at all
    assert driver.load(blocked.key_id, 1705325400) is None  # and the pool recovered
    driver.close()


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_a_concurrent_winner_makes_the_blocked_store_a_duplicate(
    backend: str, request: pytest.FixtureRequest
) -> None:
    db = server_database(request, backend)
    driver = open_metastore(db.url, create_schema=True)
    blocked = _BlockedStore(db, driver)
    blocked.wait_until_waiting_again()
    assert blocked.finish(commit_blocker=True) is False
    assert blocked.rows == [{}]
    driver.close()


@pytest.mark.parametrize(
    ("backend", "statement"),
    [("postgres", "SHOW statement_timeout"), ("mysql", "SELECT @@max_statement_time")],
)
def test_statement_timeout_is_set_and_ends_a_blocked_store(
    backend: str, statement: str, request: pytest.FixtureRequest
) -> None:
    db = server_database(request, backend)
    driver = open_metastore(db.url, create_schema=True, statement_timeout=0.5)
    with driver.engine.connect() as conn:
        assert str(conn.execute(sa.text(statement)).scalar_one()) in ("500ms", "0.5", "0.500000")
    key_id = unique("_IK_timeout_")
    with db.engine(autocommit=False).connect() as blocker, blocker.begin():
        if backend == "postgres":
            blocker.execute(
                sa.text("INSERT INTO encryption_key VALUES (:id, to_timestamp(1705325400), '{}')"),
                {"id": key_id},
            )
        else:
            blocker.execute(
                sa.text("INSERT INTO encryption_key VALUES (:id, '2024-01-15 13:30:00', '{}')"),
                {"id": key_id},
            )
        started = time.monotonic()
        with pytest.raises(MetastoreError, match="store failed"):
            driver.store(key_id, 1705325400, record(1705325400))
        assert time.monotonic() - started < 5
    driver.close()


def test_postgres_session_settings(pg_db: TempDatabase) -> None:
    driver = open_metastore(pg_db.url, replica_read_consistency="session")
    with driver.engine.connect() as conn:
        assert (
            conn.execute(sa.text("SHOW apg_write_forward.consistency_mode")).scalar_one()
            == "session"
        )
        # UTC: set, or already the server's (its own spelling then, see the next tests).
        assert conn.execute(sa.text("SHOW TimeZone")).scalar_one() in ("UTC", "Etc/UTC")
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar_one() == "0"
    driver.close()


def test_mysql_replica_read_consistency_is_sent(mysql_db: TempDatabase) -> None:
    # Only Aurora knows the variable: MariaDB's refusal proves the driver sends it.
    driver = open_metastore(mysql_db.url, replica_read_consistency="eventual")
    with pytest.raises(MetastoreError, match="aurora_replica_read_consistency"):
        driver.load_latest("_IK_x")
    driver.close()


def test_postgres_time_zone_is_pinned_to_utc(pg_db: TempDatabase) -> None:
    """A server whose default zone is not UTC (simulated with libpq ``options``): pinned, the
    column holds UTC; with ``time_zone=None`` it holds local time, as the reference writes."""
    url = pg_db.url + "?options=-c%20TimeZone%3DAmerica/New_York"
    pinned = open_metastore(url, create_schema=True)
    server_default = open_metastore(url, time_zone=None)
    key_id = unique("_IK_tz_")
    assert pinned.store(key_id, 1705325400, record(1705325400))
    assert server_default.store(key_id, 1705325460, record(1705325460))
    with pg_db.engine().connect() as conn:
        rows = conn.execute(
            sa.text("SELECT created FROM encryption_key WHERE id = :id ORDER BY created"),
            {"id": key_id},
        ).scalars()
        assert list(rows) == [
            dt.datetime(2024, 1, 15, 8, 31),  # NY wall time (UTC-5)
            dt.datetime(2024, 1, 15, 13, 30),  # UTC wall time
        ]
    assert pinned.load(key_id, 1705325400) is not None
    assert server_default.load(key_id, 1705325460) is not None
    pinned.close()
    server_default.close()


def _session_zone(driver: SqlMetastore) -> str:
    raw = driver.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SHOW TimeZone")
        zone: str = cursor.fetchone()[0]
        cursor.close()
    finally:
        raw.close()
    return zone


@pytest.mark.parametrize(
    ("server_zone", "configured", "session_zone"),
    [
        ("Etc/UTC", "UTC", "Etc/UTC"),  # reported at connect as a UTC name: no SET
        ("UTC", "UTC", "UTC"),
        ("Europe/Paris", "Europe/Paris", "Europe/Paris"),
        ("America/New_York", "UTC", "UTC"),  # another zone: SET TIME ZONE 'UTC'
        ("Etc/UTC", "Europe/Paris", "Europe/Paris"),
        ("Etc/UTC", "+00:00", "+00:00"),  # an offset is never taken for a UTC name
    ],
)
def test_postgres_sets_the_zone_only_when_the_server_reports_another(
    pg_db: TempDatabase, server_zone: str, configured: str, session_zone: str
) -> None:
    """PostgreSQL reports the session TimeZone in its start-up reply; SET TIME ZONE is sent
    only when that is not the configured zone (the session keeps the server's spelling of
    UTC when it is not sent)."""
    url = pg_db.url + "?options=-c%20TimeZone%3D" + server_zone.replace("/", "%2F")
    driver = open_metastore(url, time_zone=configured, shared_engine=False)
    try:
        assert _session_zone(driver) == session_zone
    finally:
        driver.close()


def test_mysql_time_zone_is_pinned(mysql_db: TempDatabase) -> None:
    pinned = open_metastore(mysql_db.url, create_schema=True)
    shifted = open_metastore(mysql_db.url, time_zone="+05:00")
    key_id = unique("_IK_tz_")
    assert pinned.store(key_id, 1705325400, record(1705325400))
    assert shifted.store(key_id + "s", 1705325400, record(1705325400))
    with pinned.engine.connect() as conn:
        stamps = conn.execute(
            sa.text(
                "SELECT UNIX_TIMESTAMP(created) FROM encryption_key "
                "WHERE id IN (:a, :b) ORDER BY id"
            ),
            {"a": key_id, "b": key_id + "s"},
        ).scalars()
        # The same string means another instant in another zone: only a pinned zone agrees.
        assert [int(s) for s in stamps] == [1705325400, 1705325400 - 5 * 3600]
    pinned.close()
    shifted.close()


@pytest.mark.parametrize(
    ("backend", "url_tail"),
    [("postgres", "?sslmode=require"), ("mysql", "?tls=true"), ("mysql", "?tls=skip-verify")],
)
def test_required_tls_refuses_a_server_without_tls(
    backend: str, url_tail: str, request: pytest.FixtureRequest
) -> None:
    # Neither CI server has TLS configured, so "required" must fail rather than fall back.
    db = server_database(request, backend)
    driver = open_metastore(db.url + url_tail)
    with pytest.raises(MetastoreError) as info:
        driver.load_latest("_IK_x")
    assert "ssl" in str(info.value).lower() or "tls" in str(info.value).lower()
    driver.close()
    explicit = open_metastore(db.url, tls_mode="verify-full")
    with pytest.raises(MetastoreError):
        explicit.load_latest("_IK_x")
    explicit.close()
    # "disable" and "prefer" connect.
    for mode in ("disable", "prefer"):
        ok = open_metastore(db.url, tls_mode=mode, create_schema=True)
        assert ok.load_latest(unique("_IK_none_")) is None
        ok.close()


def test_pool_idle_time_replaces_connections(pg_db: TempDatabase) -> None:
    def backend_pid(driver: SqlMetastore) -> int:
        with driver.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())

    idle_limited = open_metastore(pg_db.url, pool_max_idle_time=0.2)
    unlimited = open_metastore(pg_db.url)
    first, steady = backend_pid(idle_limited), backend_pid(unlimited)
    assert backend_pid(idle_limited) == first  # reused while fresh
    time.sleep(0.35)
    assert backend_pid(idle_limited) != first
    assert backend_pid(unlimited) == steady
    idle_limited.close()
    unlimited.close()


def test_pool_max_open_bounds_connections(pg_db: TempDatabase) -> None:
    driver = open_metastore(pg_db.url, pool_max_open=1, pool_max_idle=1, pool_timeout=0.3)
    with driver.engine.connect():
        started = time.monotonic()
        with pytest.raises(MetastoreError, match="load_latest failed"):
            driver.load_latest("_IK_x")
        assert 0.25 < time.monotonic() - started < 3
    driver.create_schema()
    assert driver.load_latest(unique("_IK_free_")) is None  # the connection is back
    driver.close()


def test_pool_lifetime_and_zero_idle(pg_db: TempDatabase) -> None:
    recycled = open_metastore(pg_db.url, pool_max_lifetime=3600)
    assert recycled.engine.pool._recycle == 3600
    no_idle = open_metastore(pg_db.url, pool_max_idle=0)
    assert isinstance(no_idle.engine.pool, sa.pool.NullPool)
    recycled.close()
    no_idle.close()


def test_loader_builds_the_driver_for_every_canonical_metastore_value(
    url_for: Callable[[str], str], tmp_path: Path
) -> None:
    cases = {
        "sqlite": (f"{tmp_path}/loader.db", "sqlite"),
        "test-debug-sqlite": (f"sqlite://{tmp_path}/loader2.db", "sqlite"),
        "rdbms": (url_for("postgres"), "postgres"),
        "postgres": (url_for("postgres").removeprefix("postgres://"), "postgres"),
        "mysql": (url_for("mysql"), "mysql"),
        "sql": (url_for("mysql").replace("mysql://", "mysql+pymysql://"), "mysql"),
    }
    for value, (connection_string, backend) in cases.items():
        cfg = Config.model_validate(
            {
                "ServiceName": "s",
                "ProductID": "p",
                "Metastore": value,
                "ConnectionString": connection_string,
            }
        )
        metastore = load_metastore(cfg)
        assert isinstance(metastore, SqlMetastore)
        assert metastore.backend == backend
        metastore.close()


def test_module_create_schema(url_for: Callable[[str], str], tmp_path: Path) -> None:
    table = unique("init_")
    create_schema(url_for("postgres"), table_name=table)
    create_schema({"connection_string": url_for("postgres"), "table_name": table})  # idempotent
    driver = open_metastore(url_for("postgres"), table_name=table)
    assert driver.store("_IK_x", 1705325400, record(1705325400))
    with driver.engine.connect() as conn:
        conn.execute(sa.text(f"DROP TABLE {table}"))
    driver.close()
    # SQLAlchemy's URL: sqlite:/// + an absolute path.
    create_schema(url=f"sqlite:///{tmp_path}/init.db")
    engine = sa.create_engine(f"sqlite:///{tmp_path}/init.db")
    assert sa.inspect(engine).has_table("encryption_key")
    engine.dispose()


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_permission_denied_is_metastore_error(backend: str, request: pytest.FixtureRequest) -> None:
    """A login that may read but not write the table: reads work, a store raises (never a
    quiet False)."""
    db = server_database(request, backend)
    open_metastore(db.url, create_schema=True).close()
    user = unique("asherah_ro_")
    admin = db.engine()
    with admin.connect() as conn:
        if backend == "postgres":
            conn.execute(sa.text(f"CREATE ROLE {user} LOGIN"))
            conn.execute(sa.text(f"GRANT SELECT ON encryption_key TO {user}"))
        else:
            conn.execute(sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'ro-pass'"))
            conn.execute(sa.text(f"GRANT SELECT ON {db.name}.* TO '{user}'@'%'"))
    host = db.url.split("@", 1)[1]
    scheme = db.url.split("://", 1)[0]
    login = user if backend == "postgres" else f"{user}:ro-pass"
    driver = open_metastore(f"{scheme}://{login}@{host}")
    try:
        assert driver.load_latest(unique("_IK_ro_")) is None
        with pytest.raises(MetastoreError) as info:
            driver.store(unique("_IK_ro_"), 1705325400, record(1705325400))
        assert ("permission denied" in str(info.value)) or ("command denied" in str(info.value))
    finally:
        driver.close()
        with admin.connect() as conn:
            if backend == "postgres":
                conn.execute(sa.text(f"REVOKE ALL ON encryption_key FROM {user}"))
                conn.execute(sa.text(f"DROP ROLE {user}"))
            else:
                conn.execute(sa.text(f"DROP USER '{user}'@'%'"))
        admin.dispose()
