"""Fixtures: one throwaway database per server per run, a SQLite file, drivers pointed at them.

PostgreSQL and MariaDB must be running (CI starts them; see ``testsupport/sql.py``): when they
are not, the fixtures fail with the fix rather than skip. Each run creates its own databases
and drops them afterwards; tests inside a run use random key ids (or their own tables), so they
share the databases without seeing each other's rows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

# The repo root (for ``testsupport``) and this directory (for ``sql_testlib``, which the test
# modules import).
for _path in (Path(__file__).resolve().parents[3], Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from sql_testlib import BACKENDS, open_metastore, server_database, unique  # noqa: E402

from asherah_metastore_sql import SqlMetastore  # noqa: E402
from testsupport.sql import TempDatabase, temporary_database  # noqa: E402


@pytest.fixture(autouse=True)
def _no_drift_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ASHERAH_CONFIG_DRIFT_FORCE_RUN", "ASHERAH_CONFIG_DRIFT_FORCE_UPDATE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def pg_db() -> Iterator[TempDatabase]:
    with temporary_database("postgres") as db:
        yield db


@pytest.fixture(scope="session")
def mysql_db() -> Iterator[TempDatabase]:
    with temporary_database("mysql") as db:
        yield db


@pytest.fixture(scope="session")
def sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sqlite") / "keys.db"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def url_for(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """The canonical ConnectionString of this run's database on a backend (created lazily)."""

    def get(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite://{request.getfixturevalue('sqlite_file')}"
        return server_database(request, backend).url

    return get


@pytest.fixture
def connection_string(backend: str, url_for: Callable[[str], str]) -> str:
    return url_for(backend)


@pytest.fixture
def own_table(url_for: Callable[[str], str]) -> Iterator[Callable[..., SqlMetastore]]:
    """Factory: a driver on a table of this test's own, dropped afterwards."""
    drivers: list[SqlMetastore] = []

    def make(backend: str, **options: Any) -> SqlMetastore:
        driver = open_metastore(url_for(backend), table_name=unique("t_"), **options)
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        with driver.engine.connect() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {driver.table_name}"))
        driver.close()


@pytest.fixture
def metastore(backend: str, connection_string: str) -> Iterator[SqlMetastore]:
    """A driver on the run's shared ``encryption_key`` table (created if missing)."""
    driver = open_metastore(connection_string, create_schema=True)
    yield driver
    driver.close()
