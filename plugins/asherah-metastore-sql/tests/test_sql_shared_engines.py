"""Metastores with equal options share one engine and keep its pool warm between factories;
private in-memory SQLite databases stay private; disposal and fork drop the connections."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sql_testlib import config, open_metastore, unique

import asherah
from asherah_metastore_sql import dispose_engines


def _pool_idle(metastore: Any) -> int:
    return int(metastore.engine.pool.checkedin())


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_equal_options_share_an_engine_and_its_warm_pool(
    backend: str, url_for: Callable[[str], str]
) -> None:
    url = url_for(backend)
    first = open_metastore(url, create_schema=True)
    second = open_metastore(url, create_schema=True)
    other = open_metastore(url, create_schema=True, pool_max_idle=1)
    try:
        assert first.engine is second.engine
        assert other.engine is not first.engine  # different pool settings, own engine
        first.load_latest(unique("_IK_"))
    finally:
        first.close()
        second.close()
        other.close()
    # Closed metastores leave their idle connection for the next factory.
    assert _pool_idle(first) >= 1
    again = open_metastore(url, create_schema=True)
    assert again.engine is first.engine
    again.close()
    dispose_engines()
    assert _pool_idle(first) == 0  # disposed: every pooled connection closed
    fresh = open_metastore(url, create_schema=True)
    assert fresh.engine is not first.engine  # and forgotten
    fresh.close()


def test_create_schema_runs_once_per_engine(url_for: Callable[[str], str]) -> None:
    url = url_for("sqlite")
    table = unique("t_")
    ddl: list[str] = []
    first = open_metastore(url, table_name=table, create_schema=True)

    @sa.event.listens_for(first.engine, "before_cursor_execute")
    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("CREATE"):
            ddl.append(statement)

    second = open_metastore(url, table_name=table, create_schema=True)
    assert second.engine is first.engine
    assert ddl == []  # the table was made by the first metastore of this engine
    first.close()
    second.close()


def test_private_in_memory_databases_are_never_shared() -> None:
    cfg = config("sqlite://:memory:", "svc")
    with asherah.SessionFactory(cfg) as one, asherah.SessionFactory(cfg) as two:
        one.get_session("p").encrypt_bytes(b"x")
        assert two.metastore.load_latest("_IK_p_svc_prod") is None
        assert one.metastore.load_latest("_IK_p_svc_prod") is not None


def test_no_idle_connections_kept_with_pool_max_idle_zero(
    url_for: Callable[[str], str],
) -> None:
    metastore = open_metastore(url_for("postgres"), pool_max_idle=0)
    metastore.load_latest(unique("_IK_"))
    metastore.close()
    assert isinstance(metastore.engine.pool, sa.pool.NullPool)


def test_a_forked_child_drops_the_parents_pooled_connections(
    url_for: Callable[[str], str],
) -> None:
    metastore = open_metastore(url_for("postgres"))
    metastore.load_latest(unique("_IK_"))
    assert _pool_idle(metastore) >= 1
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the inherited pool must be empty (SQLAlchemy's dispose(close=False))
        try:
            os.close(read_end)
            os.write(write_end, str(_pool_idle(metastore)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child_idle = int(pipe.read())
    os.waitpid(pid, 0)
    assert child_idle == 0
    assert _pool_idle(metastore) >= 1  # the parent's connection is untouched
    assert metastore.load_latest(unique("_IK_")) is None
    metastore.close()
