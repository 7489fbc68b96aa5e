"""Fixtures: one DynamoDB Local for the whole run, a table in it, drivers pointed at it.

The server runs with ``-sharedDb``: every region sees the same tables, as regions see one
global table. Each test uses its own random service name, partitions or key ids, so tests
share the server without seeing each other's rows.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asherah_metastore_dynamodb import DynamoDBMetastore

# The repo root (for ``testsupport``, until the root conftest adds it) and this directory
# (for ``dynamodb_testlib``, which the test modules and the race workers import).
for _path in (Path(__file__).resolve().parents[3], Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from dynamodb_testlib import (  # noqa: E402
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    TABLE,
    build,
)

from testsupport.aws_env import isolate, local_client  # noqa: E402
from testsupport.dynamodb_local import DynamoDBLocal  # noqa: E402


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and no ambient AWS settings, so every test says what it uses."""
    isolate(monkeypatch, ACCESS_KEY_ID, SECRET_ACCESS_KEY)


@pytest.fixture(scope="session")
def ddb() -> Iterator[DynamoDBLocal]:
    with DynamoDBLocal(shared_db=True) as server:
        yield server


@pytest.fixture(scope="session")
def raw_client(ddb: DynamoDBLocal) -> Any:
    """A plain boto3 client, for reading and writing items behind the driver's back."""
    return local_client("dynamodb", REGION, ddb.endpoint, ACCESS_KEY_ID, SECRET_ACCESS_KEY)


@pytest.fixture(scope="session")
def table(ddb: DynamoDBLocal, raw_client: Any) -> str:
    """The canonical table, created through the driver (``asherah metastore init``) around a
    client with explicit credentials (session fixtures run before the env fixture)."""
    DynamoDBMetastore(raw_client, table_name=TABLE).create_schema()
    return TABLE


@pytest.fixture
def metastore(ddb: DynamoDBLocal, table: str) -> Iterator[DynamoDBMetastore]:
    driver = build(ddb.endpoint, region=REGION, table_name=table)
    yield driver
    driver.close()


@pytest.fixture
def service() -> str:
    """A service name no other test uses (so key ids and the drift guard row are fresh)."""
    return f"svc{uuid.uuid4().hex[:10]}"
