"""The SQL driver passes the contract kit every metastore driver passes, on all three backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sql_testlib import open_metastore, server_database, unique

from asherah.testing import MetastoreContract, MetastoreFailureContract
from asherah_metastore_sql import SqlMetastore
from testsupport.sql import free_port


class TestSqlMetastoreContract(MetastoreContract):
    """Runs once per backend (the ``metastore`` fixture is parametrised in conftest)."""

    @pytest.fixture
    def metastore(self, metastore: SqlMetastore) -> SqlMetastore:
        return metastore


class TestServerUnreachable(MetastoreFailureContract):
    @pytest.fixture(params=["postgres", "mysql"])
    def broken_metastore(self, request: pytest.FixtureRequest) -> Iterator[SqlMetastore]:
        scheme = "postgres" if request.param == "postgres" else "mysql"
        driver = open_metastore(f"{scheme}://root@127.0.0.1:{free_port()}/test", connect_timeout=2)
        yield driver
        driver.close()


class TestTableMissing(MetastoreFailureContract):
    @pytest.fixture
    def broken_metastore(self, connection_string: str) -> Iterator[SqlMetastore]:
        driver = open_metastore(
            connection_string, table_name=unique("missing_"), create_schema=False
        )
        yield driver
        driver.close()


class TestBadCredentials(MetastoreFailureContract):
    @pytest.fixture(params=["postgres", "mysql"])
    def broken_metastore(self, request: pytest.FixtureRequest) -> Iterator[SqlMetastore]:
        db = server_database(request, request.param)
        scheme, rest = db.url.split("://", 1)
        host_part = rest.split("@", 1)[1]
        # PostgreSQL trusts loopback, so a role that does not exist is the bad credential.
        user = "no_such_role_asherah" if request.param == "postgres" else "root"
        driver = open_metastore(f"{scheme}://{user}:Wr0ngPassw0rd@{host_part}")
        yield driver
        driver.close()
