"""The duplicate-create race: ``store`` returning False means another writer won (load its key
and use it); any other store failure is an error, never a lost race."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from asherah import (
    EnvelopeKeyRecord,
    InMemoryMetastore,
    KeyCreationError,
    KmsError,
    Metastore,
    MetastoreError,
)
from asherah.kms import KeyManagementService

START = 1_699_999_980
IK = "_IK_p1_svc_prod"
SK = "_SK_svc_prod"


class RacingMetastore(Metastore):
    """Delegates to ``inner``; the first ``store`` of an id with ``prefix`` first runs
    ``before`` (another writer), then reports what ``inner`` says, or ``result`` if given."""

    def __init__(
        self,
        inner: InMemoryMetastore,
        prefix: str,
        before: Callable[[], None] | None = None,
        result: bool | None = None,
        always: bool = False,
    ) -> None:
        self.inner = inner
        self.prefix = prefix
        self.before = before
        self.result = result
        self.always = always
        self.raced = 0
        self.stores: list[str] = []

    def load(self, key_id: str, created: int) -> EnvelopeKeyRecord | None:
        return self.inner.load(key_id, created)

    def load_latest(self, key_id: str) -> EnvelopeKeyRecord | None:
        return self.inner.load_latest(key_id)

    def store(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> bool:
        self.stores.append(key_id)
        if key_id.startswith(self.prefix) and (self.always or not self.raced):
            self.raced += 1
            if self.before is not None:
                self.before()
            if self.result is not None:
                return self.result
        return self.inner.store(key_id, created, record)

    def upsert(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> None:
        self.inner.upsert(key_id, created, record)

    def drift_identity(self) -> dict[str, Any]:
        return {"kind": "memory"}


class FailingStoreMetastore(RacingMetastore):
    def __init__(self, inner: InMemoryMetastore, prefix: str) -> None:
        super().__init__(inner, prefix)

    def store(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> bool:
        if key_id.startswith(self.prefix):
            self.stores.append(key_id)
            raise MetastoreError(f"store failed for id={key_id}: connection reset")
        return super().store(key_id, created, record)


def parent_of(record: str) -> tuple[str, int]:
    meta = json.loads(record)["Key"]["ParentKeyMeta"]
    return meta["KeyId"], meta["Created"]


def test_lost_ik_race_loads_and_uses_the_winners_key(make_factory, memory, key_rows) -> None:
    winner = make_factory(metastore=memory)
    winner_records: list[str] = []
    racing = RacingMetastore(
        memory,
        "_IK_",
        before=lambda: winner_records.append(winner.get_session("p1").encrypt_bytes(b"w")),
    )
    loser = make_factory(metastore=racing)
    record = loser.get_session("p1").encrypt_bytes(b"l")
    assert racing.raced == 1
    assert len(key_rows(memory, IK)) == 1  # the loser's key was never stored
    assert parent_of(record) == parent_of(winner_records[0]) == (IK, START)
    # The loser really encrypts under the winner's key: the winner decrypts it (and back).
    assert winner.get_session("p1").decrypt_bytes(record) == b"l"
    assert loser.get_session("p1").decrypt_bytes(winner_records[0]) == b"w"


def test_lost_sk_race_uses_the_winners_system_key(make_factory, memory, key_rows) -> None:
    winner = make_factory(metastore=memory)
    racing = RacingMetastore(
        memory, "_SK_", before=lambda: winner.get_session("other").encrypt_bytes(b"w")
    )
    loser = make_factory(metastore=racing)
    record = loser.get_session("p1").encrypt_bytes(b"l")
    assert len(key_rows(memory, SK)) == 1
    ik_row = key_rows(memory, IK)[0]
    assert ik_row.parent_key_meta is not None
    assert ik_row.parent_key_meta.created == key_rows(memory, SK)[0].created
    assert winner.get_session("p1").decrypt_bytes(record) == b"l"


def test_false_without_a_winner_creates_again(make_factory, memory, key_rows) -> None:
    racing = RacingMetastore(memory, "_IK_", result=False)
    record = make_factory(metastore=racing).get_session("p1").encrypt_bytes(b"x")
    assert racing.stores.count(IK) == 2
    assert len(key_rows(memory, IK)) == 1
    assert make_factory(metastore=memory).get_session("p1").decrypt_bytes(record) == b"x"


def test_store_that_never_succeeds_gives_up_with_an_error(make_factory, memory) -> None:
    racing = RacingMetastore(memory, "_IK_", result=False, always=True)
    session = make_factory(metastore=racing).get_session("p1")
    with pytest.raises(KeyCreationError, match=IK):
        session.encrypt_bytes(b"x")
    assert 1 < racing.stores.count(IK) <= 5


@pytest.mark.parametrize("prefix", ["_IK_", "_SK_"])
def test_store_error_propagates_and_is_not_a_lost_race(make_factory, memory, prefix) -> None:
    failing = FailingStoreMetastore(memory, prefix)
    session = make_factory(metastore=failing).get_session("p1")
    with pytest.raises(MetastoreError, match="connection reset"):
        session.encrypt_bytes(b"x")
    # One attempt: no retry loop, no reload-and-hope.
    assert [k for k in failing.stores if k.startswith(prefix)] == [
        prefix + ("p1_svc_prod" if prefix == "_IK_" else "svc_prod")
    ]
    assert not [k for k, _, _ in memory.rows() if k.startswith(prefix)]


class FailingKms(KeyManagementService):
    def encrypt_key(self, key: Any) -> bytes:
        raise KmsError("KMS encrypt_key failed: throttled")

    def decrypt_key(self, blob: bytes) -> bytearray:
        raise KmsError("KMS decrypt_key failed: throttled")


def test_kms_error_propagates_and_nothing_is_stored(make_factory, memory, counting) -> None:
    session = make_factory(kms=FailingKms()).get_session("p1")
    with pytest.raises(KmsError, match="throttled"):
        session.encrypt_bytes(b"x")
    assert not [k for k, _, _ in memory.rows() if k.startswith(("_SK_", "_IK_"))]


class BrokenLoadMetastore(InMemoryMetastore):
    def load(self, key_id: str, created: int) -> EnvelopeKeyRecord | None:
        if key_id.startswith("_IK_"):
            raise MetastoreError("load failed: timeout")
        return super().load(key_id, created)


def test_metastore_error_on_decrypt_is_a_metastore_error(make_factory) -> None:
    broken = BrokenLoadMetastore()
    record = make_factory(metastore=broken).get_session("p1").encrypt_bytes(b"x")
    cold = make_factory(metastore=broken).get_session("p1")
    with pytest.raises(MetastoreError, match="timeout"):
        cold.decrypt_bytes(record)
