"""One engine per target and engine settings within a process: what is shared, what is not,
and that closing one metastore never breaks another."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sql_testlib import open_metastore, record, record_raw_statements, unique

from asherah import MetastoreError
from asherah_metastore_sql import (
    SqlMetastore,
    SqlMetastoreOptions,
    _shared,
    dispose_engines,
)


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    dispose_engines()
    yield
    dispose_engines()


def _connects(engine: sa.Engine) -> list[int]:
    """Counts new DBAPI connections the engine's pools open from now on."""
    opened: list[int] = []
    sa.event.listen(engine, "connect", lambda *_: opened.append(1))
    return opened


def test_same_target_and_settings_share_one_engine(backend: str, connection_string: str) -> None:
    first = open_metastore(connection_string, create_schema=True)
    second = open_metastore(connection_string, table_name=unique("t_"))  # table is not engine
    assert second.engine is first.engine
    first.close()
    second.close()


@pytest.mark.parametrize(
    "option",
    [
        {"pool_max_idle": 1},
        {"pool_max_open": 3},
        {"time_zone": None},
        {"connect_timeout": 3.0},
        {"pool_pre_ping": True},
        {"shared_engine": False},
    ],
)
def test_different_engine_settings_get_different_engines(
    backend: str, connection_string: str, option: dict[str, object]
) -> None:
    base = open_metastore(connection_string)
    other = open_metastore(connection_string, **option)
    assert other.engine is not base.engine
    base.close()
    other.close()


def test_different_targets_get_different_engines(url_for: Callable[[str], str]) -> None:
    drivers = [open_metastore(url_for(b)) for b in ("sqlite", "postgres", "mysql")]
    engines = {id(d.engine) for d in drivers}
    assert len(engines) == 3
    for driver in drivers:
        driver.close()


def test_the_password_is_part_of_the_key() -> None:
    def key(password: str) -> object:
        options = SqlMetastoreOptions(connection_string=f"postgres://app:{password}@db:5432/k")
        return _shared.engine_key(options.target(), options)

    assert key("right") == key("right")
    assert key("right") != key("wrong")


def test_a_wrong_password_never_reaches_the_good_engine(url_for: Callable[[str], str]) -> None:
    good_url = url_for("mysql")  # root without password: any password is wrong
    good = open_metastore(good_url, create_schema=True)
    assert good.load_latest(unique("_IK_")) is None
    bad_url = re.sub(r"^mysql://root:?@", "mysql://root:not-the-password@", good_url)
    assert bad_url != good_url
    bad = open_metastore(bad_url)
    assert bad.engine is not good.engine
    with pytest.raises(MetastoreError, match="Access denied") as info:
        bad.load_latest(unique("_IK_"))
    assert "not-the-password" not in str(info.value)
    bad.close()
    good.close()


def test_closing_one_metastore_leaves_the_others_working(
    backend: str, connection_string: str
) -> None:
    key_id = unique("_IK_shared_")
    first = open_metastore(connection_string, create_schema=True)
    second = open_metastore(connection_string)
    assert first.store(key_id, 1705325400, record(1705325400))
    first.close()
    first.close()  # idempotent: one lease returned once
    third = open_metastore(connection_string)
    assert third.engine is second.engine
    assert second.load(key_id, 1705325400) is not None
    second.close()
    assert third.load(key_id, 1705325400) is not None
    third.close()


def test_a_released_engine_keeps_its_idle_connection_for_the_next_metastore(
    backend: str, connection_string: str
) -> None:
    first = open_metastore(connection_string, create_schema=True)
    assert first.load_latest(unique("_IK_")) is None
    engine = first.engine
    opened = _connects(engine)
    first.close()
    second = open_metastore(connection_string)
    assert second.engine is engine
    assert second.load_latest(unique("_IK_")) is None
    assert opened == []  # the pooled connection, not a new one
    second.close()


def test_an_engine_of_its_own_is_disposed_on_close(backend: str, connection_string: str) -> None:
    driver = open_metastore(connection_string, shared_engine=False)
    assert driver.load_latest(unique("_IK_")) is None
    assert driver.engine.pool.checkedin() == 1
    driver.close()
    assert driver.engine.pool.checkedin() == 0
    again = open_metastore(connection_string, shared_engine=False)
    assert again.engine is not driver.engine
    again.close()


def test_private_memory_databases_are_never_shared() -> None:
    first = open_metastore("sqlite://:memory:")
    second = open_metastore("sqlite://:memory:")
    assert first.engine is not second.engine
    assert first.store("_IK_mem_svc_prod", 1705325400, record(1705325400))
    assert second.load("_IK_mem_svc_prod", 1705325400) is None
    first.close()
    second.close()


def test_create_schema_runs_once_per_shared_engine_and_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite://{tmp_path / 'keys.db'}"
    first = open_metastore(url)  # SQLite creates its table at start-up
    # The DDL runs on the driver's cursor, as the per-key statements do; Core is watched too.
    statements = record_raw_statements(monkeypatch)
    sa.event.listen(
        first.engine, "before_cursor_execute", lambda _c, _cur, s, *_: statements.append(s)
    )
    open_metastore(url).close()
    assert not [s for s in statements if s.startswith("CREATE")]
    table = unique("t_")
    other_table = open_metastore(url, table_name=table)  # a table not seen yet: created
    assert [s for s in statements if s.startswith("CREATE") and table in s]
    assert other_table.load_latest("_IK_x") is None
    other_table.close()
    first.close()


def test_dispose_engines_closes_only_unused_engines(tmp_path: Path) -> None:
    in_use = open_metastore(f"sqlite://{tmp_path / 'a.db'}")
    released = open_metastore(f"sqlite://{tmp_path / 'b.db'}")
    assert released.load_latest("_IK_x") is None
    released.close()
    assert released.engine.pool.checkedin() == 1
    assert dispose_engines() == 1
    assert released.engine.pool.checkedin() == 0
    assert in_use.load_latest("_IK_x") is None  # still leased, still working
    assert open_metastore(f"sqlite://{tmp_path / 'b.db'}").engine is not released.engine
    in_use.close()


def test_idle_engines_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_shared, "MAX_IDLE_ENGINES", 2)
    drivers = [open_metastore(f"sqlite://{tmp_path / f'{i}.db'}") for i in range(3)]
    for driver in drivers:
        assert driver.load_latest("_IK_x") is None
        driver.close()
    oldest, *newest = drivers
    assert oldest.engine.pool.checkedin() == 0  # disposed: least recently released
    assert [d.engine.pool.checkedin() for d in newest] == [1, 1]
    assert open_metastore(f"sqlite://{tmp_path / '2.db'}").engine is newest[-1].engine


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_a_forked_child_never_uses_the_parents_connections(
    backend: str, url_for: Callable[[str], str]
) -> None:
    url = url_for(backend)
    key_id = unique("_IK_fork_")
    parent = open_metastore(url, create_schema=True)
    assert parent.store(key_id, 1705325400, record(1705325400))
    parent.close()  # released: its idle connection stays in the shared pool
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            child = open_metastore(url)
            opened = _connects(child.engine)
            found = child.load(key_id, 1705325400) is not None
            code = 0 if found and opened == [1] else 2
            child.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    again = open_metastore(url)
    opened = _connects(again.engine)
    assert again.load(key_id, 1705325400) is not None  # the parent's connection, untouched
    assert opened == []
    again.close()


def test_metastores_built_by_factories_share_and_release(tmp_path: Path) -> None:
    from asherah import SessionFactory

    config = {
        "ServiceName": "svc",
        "ProductID": "prod",
        "Metastore": "sqlite",
        "ConnectionString": f"sqlite://{tmp_path / 'keys.db'}",
        "KMS": "static",
        "StaticMasterKeyHex": "22" * 32,
    }
    first = SessionFactory(config)
    second = SessionFactory(config)
    assert isinstance(first.metastore, SqlMetastore)
    assert isinstance(second.metastore, SqlMetastore)
    assert first.metastore.engine is second.metastore.engine
    with first.get_session("p") as session:
        data = session.encrypt_bytes(b"secret")
    first.close()
    with second.get_session("p") as session:
        assert session.decrypt_bytes(data) == b"secret"
    second.close()
