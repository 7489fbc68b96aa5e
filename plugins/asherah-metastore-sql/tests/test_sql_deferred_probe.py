"""SQLAlchemy's first-connect server probe waits for Core: a cold start (driver set-up, drift
guard, key loads and stores, SQLite's CREATE TABLE) never runs it; the first Core use does,
once, and leaves the connection as it found it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sql_testlib import config, open_metastore, record, server_database, unique

import asherah
from asherah_metastore_sql import SqlMetastore, dispose_engines
from testsupport.sql import TempDatabase

PLAINTEXT = b"payload"


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    dispose_engines()
    yield
    dispose_engines()


def _core_statements(engine: sa.Engine) -> list[str]:
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda _c, _cur, s, *_: seen.append(s))
    return seen


def _probed(metastore: SqlMetastore) -> bool:
    probed: bool = getattr(metastore.engine.dialect, "probed")  # noqa: B009 - ours, not SA's
    return probed


def test_key_statements_and_create_schema_never_probe(backend: str, connection_string: str) -> None:
    driver = open_metastore(connection_string, create_schema=True, shared_engine=False)
    core = _core_statements(driver.engine)
    key_id = unique("_IK_probe_")
    assert driver.load_latest(key_id) is None
    assert driver.store(key_id, 1705325400, record(1705325400)) is True
    assert driver.store(key_id, 1705325400, record(1705325400)) is False
    assert driver.load(key_id, 1705325400) == record(1705325400)
    assert not _probed(driver)
    assert driver.engine.dialect.server_version_info is None
    assert core == []
    # The first Core use probes, once, then runs its own statement.
    assert [row[0] for row in driver.list_rows(key_id)] == [key_id]
    assert _probed(driver)
    assert driver.engine.dialect.server_version_info is not None
    assert driver.engine.dialect.default_schema_name
    assert "LIKE" in core[-1]
    seen = len(core)
    assert [row[0] for row in driver.list_rows(key_id)] == [key_id]
    assert len(core) == seen + 1  # probed once only
    driver.close()


def test_a_factory_cold_start_never_probes(backend: str, connection_string: str) -> None:
    cfg: dict[str, Any] = config(connection_string, unique("svc"))
    SqlMetastore.from_options(
        SqlMetastore.Options(connection_string=connection_string, create_schema=True)
    ).close()
    dispose_engines()
    with asherah.SessionFactory(cfg) as factory:
        assert isinstance(factory.metastore, SqlMetastore)
        session = factory.get_session("alice")
        record_text = session.encrypt_bytes(PLAINTEXT)
        assert session.decrypt_bytes(record_text) == PLAINTEXT
        session.close()
        assert not _probed(factory.metastore)


def test_the_probe_leaves_no_transaction_open(backend: str, connection_string: str) -> None:
    driver = open_metastore(connection_string, shared_engine=False)
    with driver.engine.connect() as conn:  # the probe runs here, on the caller's connection
        assert _probed(driver)
        assert not conn.in_transaction()
        with conn.begin():
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    driver.close()


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_a_probe_on_a_dead_pooled_connection_costs_one_retry(
    backend: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    db = server_database(request, backend)
    driver = open_metastore(db.url, create_schema=True, shared_engine=False, pool_max_idle=1)
    key_id = unique("_IK_dead_")
    assert driver.store(key_id, 1705325400, record(1705325400))
    # The pooled connection's server id, read without Core (which would probe now).
    raw = driver.engine.raw_connection()
    cursor = raw.cursor()
    cursor.execute("SELECT pg_backend_pid()" if backend == "postgres" else "SELECT CONNECTION_ID()")
    server_id = int(cursor.fetchone()[0])
    cursor.close()
    raw.close()
    admin = db.engine()
    with admin.connect() as conn:
        if backend == "postgres":
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": server_id})
        else:
            conn.execute(sa.text(f"KILL CONNECTION {server_id}"))
    admin.dispose()
    assert not _probed(driver)
    assert [row[0] for row in driver.list_rows(key_id)] == [key_id]
    assert _probed(driver)
    assert caplog.text.count("connection lost") == 1
    driver.close()


def test_a_new_mysql_connection_is_set_up_in_two_round_trips(mysql_db: TempDatabase) -> None:
    """PyMySQL's SET NAMES and the session settings: no SET AUTOCOMMIT pair, no second
    SET NAMES; the session still ends up in autocommit, utf8mb4 and UTC."""
    driver = open_metastore(
        mysql_db.url, create_schema=True, shared_engine=False, pool_max_idle=1
    )  # create_schema opens the pooled connection
    raw = driver.engine.raw_connection()
    cursor = raw.cursor()
    cursor.execute("SHOW SESSION STATUS LIKE 'Com_set_option'")
    set_statements = int(cursor.fetchone()[1])
    cursor.execute(
        "SELECT @@autocommit, @@character_set_client, @@character_set_connection, "
        "@@character_set_results, @@time_zone"
    )
    settings = cursor.fetchone()
    cursor.close()
    raw.close()
    assert set_statements == 2
    assert settings == (1, "utf8mb4", "utf8mb4", "utf8mb4", "+00:00")
    driver.close()
