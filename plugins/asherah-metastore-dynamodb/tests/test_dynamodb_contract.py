"""The DynamoDB driver passes the contract kit every metastore driver passes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dynamodb_testlib import REGION, build

from asherah.testing import MetastoreContract, MetastoreFailureContract
from asherah_metastore_dynamodb import DynamoDBMetastore
from testsupport.dynamodb_local import DynamoDBLocal, free_port


class TestDynamoDBMetastoreContract(MetastoreContract):
    @pytest.fixture
    def metastore(self, metastore: DynamoDBMetastore) -> DynamoDBMetastore:
        return metastore


class TestUnreachableServer(MetastoreFailureContract):
    @pytest.fixture
    def broken_metastore(self) -> Iterator[DynamoDBMetastore]:
        # A port nothing listens on: connection refused, after one quick retry.
        driver = build(
            f"http://127.0.0.1:{free_port()}",
            region=REGION,
            max_attempts=2,
            connect_timeout=1,
            read_timeout=1,
        )
        yield driver
        driver.close()


class TestMissingTable(MetastoreFailureContract):
    @pytest.fixture
    def broken_metastore(self, ddb: DynamoDBLocal, table: str) -> Iterator[DynamoDBMetastore]:
        driver = build(ddb.endpoint, region=REGION, table_name="NoSuchTable")
        yield driver
        driver.close()
