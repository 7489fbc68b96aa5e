"""``load_many`` as one statement: a cold start's drift-guard row and latest system key come
in one round trip, so a re-created factory's first encrypt runs two statements, not three."""

from __future__ import annotations

from typing import Any

import pytest
from sql_testlib import config, open_metastore, record, record_raw_statements, unique

from asherah import MetastoreError, SessionFactory
from asherah_metastore_sql import SqlMetastore


def test_one_statement_answers_exact_and_latest_reads(
    metastore: SqlMetastore, statements: list[str]
) -> None:
    key_id, other = unique("_IK_"), unique("_SK_")
    for created in (1_700_000_060, 1_700_000_120):
        assert metastore.store(key_id, created, record(created, 4))
    statements.clear()
    found = metastore.load_many(
        [(key_id, 1_700_000_060), (key_id, None), (other, None), (other, 1_700_000_060)]
    )
    assert found == [record(1_700_000_060, 4), record(1_700_000_120, 4), None, None]
    assert len(statements) == 1


def test_a_cold_start_runs_two_statements(
    backend: str, connection_string: str, statements: list[str]
) -> None:
    service = unique("svc")
    cfg = config(connection_string, service)
    with SessionFactory(cfg) as factory:
        factory.get_session("alice").encrypt_bytes(b"x")
    statements.clear()
    with SessionFactory(cfg) as factory:
        factory.get_session("alice").encrypt_bytes(b"payload")
    assert [sql.split(" FROM ")[0][:20] for sql in statements] == [
        "SELECT (SELECT CAST(" if backend == "postgres" else "SELECT (SELECT key_r",
        "SELECT CAST(key_reco" if backend == "postgres" else "SELECT key_record",
    ]


def test_a_broken_batch_names_the_ids(own_table: Any, backend: str) -> None:
    driver = own_table(backend, create_schema=False)
    with pytest.raises(MetastoreError, match=r"load_many failed for table=.* id=a,b"):
        driver.load_many([("a", None), ("b", 1_700_000_000)])


def test_a_single_request_is_a_plain_load(connection_string: str, statements: list[str]) -> None:
    driver = open_metastore(connection_string, create_schema=True)
    try:
        statements.clear()
        assert driver.load_many([(unique("_SK_"), None)]) == [None]
        assert "ORDER BY created DESC" in statements[0]
        assert not statements[0].startswith("SELECT (SELECT")
    finally:
        driver.close()


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL of every per-key statement run during the test."""
    return record_raw_statements(monkeypatch)
