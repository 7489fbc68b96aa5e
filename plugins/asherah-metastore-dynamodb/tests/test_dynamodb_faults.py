"""The server goes away mid-run and comes back: warm partitions carry on, cold ones fail
fast with MetastoreError, and the same factory recovers once the server is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dynamodb_testlib import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, session_config

from asherah import AsherahError, MetastoreError, SessionFactory
from asherah_metastore_dynamodb import DynamoDBMetastore
from testsupport import aws_env
from testsupport.dynamodb_local import DynamoDBLocal

#: Per call at most 2 attempts x (1 s connect + 2 s read) plus back-off.
FAST_FAILURE = {"max_attempts": 2, "connect_timeout": 1.0, "read_timeout": 2.0}
FAILURE_BUDGET_S = 8.0


@pytest.fixture(scope="module")
def flaky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DynamoDBLocal]:
    """A server of this module's own, on disk so its rows survive a restart."""
    data: Path = tmp_path_factory.mktemp("ddb-data")
    with DynamoDBLocal(shared_db=True, db_path=data) as server:
        client = aws_env.local_client(
            "dynamodb", REGION, server.endpoint, ACCESS_KEY_ID, SECRET_ACCESS_KEY
        )
        DynamoDBMetastore(client).create_schema()
        yield server


def timed_failure(call: Any) -> tuple[BaseException, float]:
    started = time.monotonic()
    with pytest.raises(AsherahError) as info:
        call()
    return info.value, time.monotonic() - started


def test_outage_and_recovery(flaky: DynamoDBLocal, service: str) -> None:
    config = session_config(flaky.endpoint, service, metastore_options=FAST_FAILURE)
    with SessionFactory(config) as writer:  # rows the outage factory has never cached
        stranger = writer.get_session("stranger").encrypt_bytes(b"written before")
    factory = SessionFactory(config)
    try:
        warm = factory.get_session("warm")
        before = warm.encrypt_bytes(b"before the outage")

        flaky.stop()
        during = warm.encrypt_bytes(b"during the outage")  # keys come from the cache
        assert warm.decrypt_bytes(before) == b"before the outage"
        assert warm.decrypt_bytes(during) == b"during the outage"

        error, elapsed = timed_failure(lambda: factory.get_session("cold").encrypt_bytes(b"x"))
        assert isinstance(error, MetastoreError)
        assert "EndpointConnectionError" in str(error)
        assert elapsed < FAILURE_BUDGET_S
        error, elapsed = timed_failure(
            lambda: factory.get_session("stranger").decrypt_bytes(stranger)
        )
        assert isinstance(error, MetastoreError)
        assert elapsed < FAILURE_BUDGET_S

        flaky.start()
        cold = factory.get_session("cold").encrypt_bytes(b"after the outage")
        assert factory.get_session("stranger").decrypt_bytes(stranger) == b"written before"
        assert factory.get_session("cold").decrypt_bytes(cold) == b"after the outage"
    finally:
        factory.close()
    with SessionFactory(config) as fresh:  # everything written reached the table
        assert fresh.get_session("warm").decrypt_bytes(during) == b"during the outage"
        assert fresh.get_session("cold").decrypt_bytes(cold) == b"after the outage"


def test_hung_server_fails_within_the_configured_timeouts(
    flaky: DynamoDBLocal, service: str
) -> None:
    """A frozen server accepts connections and never answers: only the read timeout ends it."""
    options = {"max_attempts": 2, "connect_timeout": 1.0, "read_timeout": 1.0}
    config = session_config(flaky.endpoint, service, metastore_options=options)
    with SessionFactory(config) as factory:
        warm = factory.get_session("warm")
        warm.encrypt_bytes(b"warm up")
        flaky.pause()
        try:
            assert warm.decrypt_bytes(warm.encrypt_bytes(b"cached")) == b"cached"
            error, elapsed = timed_failure(lambda: factory.get_session("cold").encrypt_bytes(b"x"))
        finally:
            flaky.resume()
        assert isinstance(error, MetastoreError)
        assert "ReadTimeoutError" in str(error)
        # Two attempts of one second each, plus botocore's back-off between them.
        assert 2.0 <= elapsed < 2 * 1.0 + 1.0 + 2.0
        assert factory.get_session("cold").encrypt_bytes(b"x")  # and recovers at once
