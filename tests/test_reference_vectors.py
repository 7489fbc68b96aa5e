"""Records written by the reference (PyPI asherah 0.5.56, static KMS, SQLite metastore) decrypt
here after their metastore rows are loaded into the in-memory metastore.

The vectors file is a copy of the shared one, so the suite never reads outside the repository.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from asherah import (
    ConfigDriftError,
    DataRowRecord,
    DecryptionError,
    EnvelopeKeyRecord,
    InMemoryMetastore,
    SessionFactory,
)
from asherah._drift_guard import encode_snapshot, guard_id, snapshot
from asherah.testing import CountingMetastore

VECTORS = Path(__file__).parent / "data" / "reference-static-sqlite.json"
#: The SQLite file the vectors were written to; the reference's guard row records its path.
VECTOR_DB_PATH = "/tmp/probe/vec.db"


class SqliteIdentityMetastore(InMemoryMetastore):
    """In-memory rows that identify as the reference's SQLite metastore at ``path``, so the
    reference's drift-guard row in the same rows is checked, not tripped over."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def drift_identity(self) -> dict[str, Any]:
        return {"kind": "sqlite", "path": self.path}


def sqlite_created(text: str) -> int:
    """The reference's SQLite ``created`` column: ``YYYY-MM-DD HH:MM:SS`` in UTC."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return data


def load_rows(vectors: dict[str, Any], metastore: InMemoryMetastore) -> None:
    for row in vectors["metastore_rows"]:
        record = EnvelopeKeyRecord.from_json(row["key_record"])
        assert record.created == sqlite_created(row["created"]), row["id"]
        assert metastore.store(row["id"], record.created, record)


def vector_config(vectors: dict[str, Any]) -> dict[str, Any]:
    """The config the reference wrote the vectors with (the metastore is passed separately)."""
    return {
        "ServiceName": vectors["service_name"],
        "ProductID": vectors["product_id"],
        "Metastore": "memory",
        "KMS": "static",
        "StaticMasterKeyHex": vectors["static_master_key_hex"],
    }


@pytest.fixture(scope="module")
def loaded(vectors: dict[str, Any]) -> Any:
    metastore = SqliteIdentityMetastore(VECTOR_DB_PATH)
    load_rows(vectors, metastore)
    counting = CountingMetastore(metastore)
    config = vector_config(vectors)
    factory = SessionFactory(config, metastore=counting)
    yield factory, counting
    factory.close()


def test_vector_file_covers_the_interesting_partitions(vectors: dict[str, Any]) -> None:
    partitions = {record["partition"] for record in vectors["records"]}
    assert {"user-1", "tenant_with_underscores_x", "ünicode-partition"} <= partitions
    assert any(len(p) >= 200 for p in partitions)
    assert len(vectors["records"]) == 21


def test_every_vector_record_decrypts(loaded: Any, vectors: dict[str, Any]) -> None:
    factory, counting = loaded
    sessions: dict[str, Any] = {}
    for record in vectors["records"]:
        partition = record["partition"]
        session = sessions.setdefault(partition, factory.get_session(partition))
        expected = base64.b64decode(record["plaintext_b64"], validate=True)
        assert session.decrypt_bytes(record["data_row_record"]) == expected, record["payload_name"]
        assert session.decrypt_bytes(record["data_row_record"].encode()) == expected
    # The reference's guard row was accepted and nothing at all was written.
    assert counting.writes == 0


def test_vector_records_reserialize_byte_exact(vectors: dict[str, Any]) -> None:
    for row in vectors["metastore_rows"]:
        assert EnvelopeKeyRecord.from_json(row["key_record"]).to_json() == row["key_record"]
    for record in vectors["records"]:
        text = record["data_row_record"]
        assert DataRowRecord.from_json(text).to_json() == text


def test_vector_records_stay_in_their_partition(loaded: Any, vectors: dict[str, Any]) -> None:
    factory, counting = loaded
    by_partition = {r["partition"]: r["data_row_record"] for r in vectors["records"]}
    partitions = sorted(by_partition)
    for mine, theirs in zip(partitions, partitions[1:] + partitions[:1], strict=True):
        with pytest.raises(DecryptionError, match="another partition"):
            factory.get_session(mine).decrypt_bytes(by_partition[theirs])
    # "tenant" is a prefix of "tenant_with_underscores_x": still not its partition.
    with pytest.raises(DecryptionError):
        factory.get_session("tenant").decrypt_bytes(by_partition["tenant_with_underscores_x"])
    assert counting.writes == 0


def test_reference_guard_row_is_our_snapshot_byte_for_byte(vectors: dict[str, Any]) -> None:
    guard = next(r for r in vectors["metastore_rows"] if r["id"].startswith("__asherah"))
    assert guard["id"] == guard_id(vectors["service_name"], vectors["product_id"])
    assert guard["created"] == "2000-01-01 00:00:00"
    stored = EnvelopeKeyRecord.from_json(guard["key_record"]).encrypted_key
    ours = snapshot(
        vectors["service_name"],
        vectors["product_id"],
        None,
        {"kind": "sqlite", "path": VECTOR_DB_PATH},
        {"kind": "static"},
    )
    assert encode_snapshot(ours) == stored


def test_reference_guard_row_refuses_a_different_metastore(vectors: dict[str, Any]) -> None:
    metastore = InMemoryMetastore()  # identifies as {"kind": "memory"}
    load_rows(vectors, metastore)
    before = metastore.rows()
    config = vector_config(vectors)
    with pytest.raises(ConfigDriftError, match="config drift guard mismatch"):
        SessionFactory(config, metastore=metastore)
    assert metastore.rows() == before
