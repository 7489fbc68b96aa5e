"""Every pooled connection dead at once (a server restart or failover): the per-key statements
run on the driver's cursor, and their one retry must get a new connection, not the next dead
one from the pool."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sql_testlib import open_metastore, record, server_database, unique

from asherah import MetastoreError
from testsupport.sql import TempDatabase


def _fill_pool(driver_engine: sa.Engine, count: int) -> list[int]:
    """Open ``count`` connections at once and return them to the pool; their server ids."""
    connections = [driver_engine.connect() for _ in range(count)]
    ids = []
    for conn in connections:
        backend = driver_engine.dialect.name
        query = "SELECT pg_backend_pid()" if backend == "postgresql" else "SELECT CONNECTION_ID()"
        ids.append(int(conn.execute(sa.text(query)).scalar_one()))
    for conn in connections:
        conn.close()
    return ids


def _kill(db: TempDatabase, ids: list[int]) -> None:
    admin = db.engine()
    with admin.connect() as conn:
        for server_id in ids:
            if db.kind == "postgres":
                conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": server_id})
            else:
                conn.execute(sa.text(f"KILL CONNECTION {server_id}"))
    admin.dispose()


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
@pytest.mark.parametrize("operation", ["load", "load_latest", "store"])
def test_all_pooled_connections_dead_costs_one_retry(
    backend: str, operation: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    db = server_database(request, backend)
    driver = open_metastore(db.url, create_schema=True, shared_engine=False, pool_max_idle=3)
    key_id = unique("_IK_stale_")
    assert driver.store(key_id, 1705325400, record(1705325400))
    _kill(db, _fill_pool(driver.engine, 3))
    if operation == "load":
        assert driver.load(key_id, 1705325400) is not None
    elif operation == "load_latest":
        assert driver.load_latest(key_id) is not None
    else:
        assert driver.store(key_id, 1705325401, record(1705325401)) is True
        assert driver.store(key_id, 1705325401, record(1705325401)) is False
    assert caplog.text.count("connection lost") == 1
    driver.close()


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_a_server_error_is_not_retried_and_names_the_table(
    backend: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    db = server_database(request, backend)
    driver = open_metastore(db.url, table_name=unique("missing_"))
    with pytest.raises(MetastoreError, match="load_latest failed for table=missing_"):
        driver.load_latest("_IK_x")
    with pytest.raises(MetastoreError, match="store failed for table=missing_"):
        driver.store("_IK_x", 1705325400, record(1705325400))
    assert "connection lost" not in caplog.text
    driver.close()
