"""The latest system key read with the drift-guard row (metastores that batch loads): the
first encrypt or decrypt of a re-created factory reads one row, not two, and nothing about
which rows are used or written changes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from asherah import (
    ConfigDriftError,
    EnvelopeKeyRecord,
    InMemoryMetastore,
    MetastoreError,
    SessionFactory,
)
from asherah._drift_guard import GUARD_CREATED, guard_id
from asherah._instrumented import InstrumentedMetastore
from asherah.hooks._manager import Hooks, create_plugin_manager
from asherah.testing import CountingMetastore

from .conftest import FakeClock

pytestmark = pytest.mark.usefixtures("no_drift_overrides")

KEY_HEX = "22" * 32
SK = "_SK_svc_prod"
IK = "_IK_alice_svc_prod"


class BatchingMemory(InMemoryMetastore):
    """An in-memory metastore that says it answers ``load_many`` in one round trip."""

    batches_loads = True

    def __init__(self) -> None:
        super().__init__()
        self.fail_many = False

    def load_many(
        self, requests: Sequence[tuple[str, int | None]]
    ) -> list[EnvelopeKeyRecord | None]:
        if self.fail_many:
            raise MetastoreError("batch read failed")
        return super().load_many(requests)


def config(**overrides: Any) -> dict[str, Any]:
    return {
        "ServiceName": "svc",
        "ProductID": "prod",
        "KMS": "static",
        "StaticMasterKeyHex": KEY_HEX,
        **overrides,
    }


@pytest.fixture
def memory() -> BatchingMemory:
    """Guard row, system key and alice's intermediate key already stored."""
    memory = BatchingMemory()
    with SessionFactory(config(), metastore=memory) as factory:
        factory.get_session("alice").encrypt_bytes(b"x")
    return memory


def test_a_cold_start_reads_the_guard_and_system_key_together(memory: BatchingMemory) -> None:
    counting = CountingMetastore(memory)
    with SessionFactory(config(), metastore=counting) as factory:
        assert counting.calls == {"load_many": 1}
        record = factory.get_session("alice").encrypt_bytes(b"payload")
        # Only alice's latest intermediate key: its system key came with the guard row.
        assert counting.calls == {"load_many": 1, "load_latest": 1}
        # It was read as the latest: a new partition needs no system-key read either.
        factory.get_session("bob").encrypt_bytes(b"payload")
        assert counting.calls == {"load_many": 1, "load_latest": 2, "store": 1}
    with SessionFactory(config(), metastore=memory) as fresh:
        assert fresh.get_session("alice").decrypt_bytes(record) == b"payload"


def test_a_new_partition_first_uses_the_read_ahead_system_key(memory: BatchingMemory) -> None:
    counting = CountingMetastore(memory)
    with SessionFactory(config(), metastore=counting) as factory:
        factory.get_session("carol").encrypt_bytes(b"payload")
    assert counting.calls == {"load_many": 1, "load_latest": 1, "store": 1}


def test_a_stale_read_ahead_row_is_read_again(memory: BatchingMemory) -> None:
    clock = FakeClock(1_700_000_000)
    counting = CountingMetastore(memory)
    with SessionFactory(config(), metastore=counting, clock=clock) as factory:
        clock.now += factory.policy.check_interval_s
        factory.get_session("alice").encrypt_bytes(b"payload")
    assert counting.calls == {"load_many": 1, "load_latest": 1, "load": 1}


def test_a_revoked_read_ahead_system_key_is_replaced(memory: BatchingMemory) -> None:
    latest = memory.load_latest(SK)
    assert latest is not None
    memory.upsert(SK, latest.created, latest.with_revoked(True))
    counting = CountingMetastore(memory)
    with SessionFactory(config(), metastore=counting) as factory:
        factory.get_session("dave").encrypt_bytes(b"payload")
    newest = memory.load_latest(SK)
    assert newest is not None
    assert newest.created > latest.created
    assert newest.revoked is not True


def test_a_failed_batch_falls_back_to_the_guard_row_alone(memory: BatchingMemory) -> None:
    memory.fail_many = True
    counting = CountingMetastore(memory)
    with SessionFactory(config(), metastore=counting) as factory:
        assert counting.calls == {"load_many": 1, "load": 1}
        factory.get_session("alice").encrypt_bytes(b"payload")
    assert counting.calls == {"load_many": 1, "load": 2, "load_latest": 1}


def test_the_guard_still_refuses_a_drifted_config(memory: BatchingMemory) -> None:
    with pytest.raises(ConfigDriftError):
        SessionFactory(config(RegionSuffix="us-west-2"), metastore=memory)
    guard = memory.load(guard_id("svc", "prod"), GUARD_CREATED)
    assert guard is not None


def test_metastores_that_do_not_batch_read_nothing_ahead() -> None:
    memory = InMemoryMetastore()
    with SessionFactory(config(), metastore=memory) as factory:
        factory.get_session("alice").encrypt_bytes(b"x")
    counting = CountingMetastore(memory)
    with SessionFactory(config(), metastore=counting) as factory:
        assert counting.calls == {"load": 1}
        factory.get_session("alice").encrypt_bytes(b"payload")
    assert counting.calls == {"load": 2, "load_latest": 1}


def test_the_default_load_many_loads_one_by_one() -> None:
    calls: list[tuple[str, int | None]] = []

    class Recording(InMemoryMetastore):
        def load(self, key_id: str, created: int) -> EnvelopeKeyRecord | None:
            calls.append((key_id, created))
            return super().load(key_id, created)

        def load_latest(self, key_id: str) -> EnvelopeKeyRecord | None:
            calls.append((key_id, None))
            return super().load_latest(key_id)

    memory = Recording()
    record = EnvelopeKeyRecord(1_700_000_000, b"k")
    assert memory.store("a", 1_700_000_000, record)
    wrapped = InstrumentedMetastore(memory, Hooks(create_plugin_manager()))
    assert not wrapped.batches_loads
    requests: list[tuple[str, int | None]] = [("a", None), ("a", 1_700_000_000), ("b", None)]
    assert wrapped.load_many(requests) == [record, record, None]
    assert calls == requests
