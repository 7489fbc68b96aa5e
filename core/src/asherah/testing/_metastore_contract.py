"""The metastore contract every driver must pass."""

from __future__ import annotations

import threading
import uuid

import pytest

from asherah._errors import MetastoreError
from asherah._records import EnvelopeKeyRecord, KeyMeta
from asherah.kms._static import StaticKeyManagementService
from asherah.metastore._base import Metastore

_TEST_MASTER_KEY = bytes(range(32))


def _record(
    created: int, fill: int = 1, *, parent: bool = True, revoked: bool | None = None
) -> EnvelopeKeyRecord:
    meta = KeyMeta("_SK_contract_svc", created) if parent else None
    return EnvelopeKeyRecord(created, bytes([fill]) * 60, meta, revoked)


class MetastoreContract:
    """Subclass in a ``Test*`` class and provide a ``metastore`` fixture: a driver instance
    (rows may be shared between tests; every test uses its own random key ids).

    Drivers with a backend that can fail also subclass :class:`MetastoreFailureContract`.
    """

    #: Threads racing on one (id, created) in the concurrency test.
    concurrent_writers: int = 8

    @staticmethod
    def key_id(label: str = "IK") -> str:
        return f"_{label}_contract-{uuid.uuid4().hex[:12]}_svc_prod"

    def test_missing_row_is_none(self, metastore: Metastore) -> None:
        key_id = self.key_id()
        assert metastore.load(key_id, 1_700_000_000) is None
        assert metastore.load_latest(key_id) is None

    def test_store_then_load_round_trips_every_field(self, metastore: Metastore) -> None:
        key_id = self.key_id()
        record = _record(1_700_000_040, 7)
        assert metastore.store(key_id, record.created, record) is True
        loaded = metastore.load(key_id, record.created)
        assert loaded == record
        system = EnvelopeKeyRecord(1_700_000_040, b"\x05" * 60)
        sk_id = self.key_id("SK")
        assert metastore.store(sk_id, system.created, system) is True
        assert metastore.load(sk_id, system.created) == system

    def test_duplicate_store_returns_false_and_keeps_the_first(self, metastore: Metastore) -> None:
        key_id = self.key_id()
        first, second = _record(1_700_000_100, 1), _record(1_700_000_100, 2)
        assert metastore.store(key_id, first.created, first) is True
        assert metastore.store(key_id, second.created, second) is False
        assert metastore.load(key_id, first.created) == first

    def test_load_latest_returns_newest_created(self, metastore: Metastore) -> None:
        key_id = self.key_id()
        for created in (1_700_000_060, 1_700_000_180, 1_700_000_120):
            assert metastore.store(key_id, created, _record(created, created % 250))
        latest = metastore.load_latest(key_id)
        assert latest is not None
        assert latest.created == 1_700_000_180
        assert metastore.load(key_id, 1_700_000_120) == _record(1_700_000_120, 1_700_000_120 % 250)

    def test_load_many_answers_each_request_in_order(self, metastore: Metastore) -> None:
        key_id, other = self.key_id(), self.key_id("SK")
        for created in (1_700_000_060, 1_700_000_120):
            assert metastore.store(key_id, created, _record(created, 5))
        assert metastore.store(other, 1_700_000_000, _record(1_700_000_000, 6, parent=False))
        requests: list[tuple[str, int | None]] = [
            (key_id, 1_700_000_060),
            (other, None),
            (key_id, None),
            (key_id, 1_700_000_001),
            (other + "_x", None),
        ]
        assert metastore.load_many(requests) == [
            _record(1_700_000_060, 5),
            _record(1_700_000_000, 6, parent=False),
            _record(1_700_000_120, 5),
            None,
            None,
        ]
        assert metastore.load_many([(key_id, None)]) == [_record(1_700_000_120, 5)]
        assert metastore.load_many([]) == []

    def test_ids_do_not_leak_into_each_other(self, metastore: Metastore) -> None:
        key_id = self.key_id()
        assert metastore.store(key_id, 1_700_000_000, _record(1_700_000_000))
        assert metastore.load_latest(key_id + "_x") is None
        assert metastore.load_latest(key_id[:-1]) is None
        assert metastore.load(key_id, 1_700_000_001) is None

    def test_revoked_flag_round_trips(self, metastore: Metastore) -> None:
        key_id = self.key_id()
        record = _record(1_700_000_240, 3, revoked=True)
        assert metastore.store(key_id, record.created, record)
        loaded = metastore.load(key_id, record.created)
        assert loaded is not None
        assert loaded.revoked is True

    def test_concurrent_stores_exactly_one_wins(self, metastore: Metastore) -> None:
        key_id = self.key_id()
        barrier = threading.Barrier(self.concurrent_writers)
        results: list[bool] = []
        errors: list[BaseException] = []

        def race(fill: int) -> None:
            barrier.wait()
            try:
                results.append(metastore.store(key_id, 1_700_000_300, _record(1_700_000_300, fill)))
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=race, args=(i,)) for i in range(self.concurrent_writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sorted(results) == [False] * (self.concurrent_writers - 1) + [True]

    def test_upsert_overwrites(self, metastore: Metastore) -> None:
        key_id = self.key_id("GUARD")
        metastore.upsert(key_id, 946_684_800, EnvelopeKeyRecord(946_684_800, b"one"))
        metastore.upsert(key_id, 946_684_800, EnvelopeKeyRecord(946_684_800, b"two"))
        loaded = metastore.load(key_id, 946_684_800)
        assert loaded is not None
        assert loaded.encrypted_key == b"two"

    def test_session_round_trip_through_the_driver(self, metastore: Metastore) -> None:
        from asherah._factory import SessionFactory

        service = f"contract{uuid.uuid4().hex[:8]}"
        config = {"service_name": service, "product_id": "prod"}
        kms = StaticKeyManagementService(_TEST_MASTER_KEY)
        with SessionFactory(config, metastore=_Unclosed(metastore), kms=kms) as factory:
            record = factory.get_session("alice").encrypt_bytes(b"contract payload")
        assert metastore.load_latest(f"_IK_alice_{service}_prod") is not None
        with SessionFactory(config, metastore=_Unclosed(metastore), kms=kms) as fresh:
            assert fresh.get_session("alice").decrypt_bytes(record) == b"contract payload"


class MetastoreFailureContract:
    """For drivers whose backend can fail: provide a ``broken_metastore`` fixture, a driver
    whose backend is unreachable or unusable (closed port, missing table, no permission)."""

    def test_backend_failure_is_metastore_error(self, broken_metastore: Metastore) -> None:
        key_id = MetastoreContract.key_id()
        with pytest.raises(MetastoreError):
            broken_metastore.load_latest(key_id)
        with pytest.raises(MetastoreError):
            broken_metastore.load(key_id, 1_700_000_000)
        with pytest.raises(MetastoreError):
            broken_metastore.store(key_id, 1_700_000_000, _record(1_700_000_000))
        with pytest.raises(MetastoreError):
            broken_metastore.load_many([(key_id, 1_700_000_000), (key_id, None)])


class _Unclosed(Metastore):
    """Shares the fixture's driver with a factory without letting the factory close it."""

    def __init__(self, inner: Metastore) -> None:
        self.inner = inner

    def load(self, key_id: str, created: int) -> EnvelopeKeyRecord | None:
        return self.inner.load(key_id, created)

    def load_latest(self, key_id: str) -> EnvelopeKeyRecord | None:
        return self.inner.load_latest(key_id)

    def store(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> bool:
        return self.inner.store(key_id, created, record)

    def upsert(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> None:
        self.inner.upsert(key_id, created, record)

    def drift_identity(self) -> dict[str, object] | None:
        return None

    def region_suffix(self) -> str | None:
        return self.inner.region_suffix()
