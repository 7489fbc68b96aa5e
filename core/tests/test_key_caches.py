"""Key caches: stale-while-revalidate, failed reloads, single flight, bounds and jitter."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from asherah import EnvelopeKeyRecord, InMemoryMetastore, MetastoreError, SessionFactory
from asherah.hooks import hookimpl
from asherah.kms import StaticKeyManagementService
from asherah.metastore import Metastore
from asherah.testing import CountingKms

from .conftest import KEY_HEX, START, FakeClock

CONFIG = {"ServiceName": "svc", "ProductID": "prod", "cache_ttl_jitter": 0.0, "CheckInterval": 600}
IK = "_IK_p1_svc_prod"


class ControllableMetastore(Metastore):
    """In-memory rows; ``load_latest`` can be made to block, fail or lag, and is counted per id."""

    def __init__(self) -> None:
        self.inner = InMemoryMetastore()
        self.release = threading.Event()
        self.release.set()
        self.fail = False
        self.delay = 0.0
        self.latest_calls: dict[str, int] = {}
        self.load_threads: list[str] = []
        self._lock = threading.Lock()

    def load(self, key_id: str, created: int) -> EnvelopeKeyRecord | None:
        return self.inner.load(key_id, created)

    def load_latest(self, key_id: str) -> EnvelopeKeyRecord | None:
        with self._lock:
            self.latest_calls[key_id] = self.latest_calls.get(key_id, 0) + 1
            self.load_threads.append(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        if not self.release.wait(10):
            raise MetastoreError("test never released the metastore")
        if self.fail:
            raise MetastoreError("metastore unavailable (test)")
        return self.inner.load_latest(key_id)

    def store(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> bool:
        return self.inner.store(key_id, created, record)

    def upsert(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> None:
        self.inner.upsert(key_id, created, record)


def _factory(
    metastore: Metastore, clock: Any = None, kms: Any = None, **extra: Any
) -> SessionFactory:
    return SessionFactory(
        {**CONFIG, **extra},
        metastore=metastore,
        kms=kms or StaticKeyManagementService(bytes.fromhex(KEY_HEX)),
        clock=clock,
    )


def _ik_created(record: str) -> int:
    import json

    return int(json.loads(record)["Key"]["ParentKeyMeta"]["Created"])


def test_stale_key_is_served_at_once_while_one_caller_reloads() -> None:
    clock = FakeClock()
    metastore = ControllableMetastore()
    with _factory(metastore, clock) as factory:
        session = factory.get_session("p1")
        first = session.encrypt_bytes(b"warm")
        calls_before = metastore.latest_calls[IK]
        clock.advance(601)  # stale, far from expiry
        metastore.release.clear()
        reloader = threading.Thread(target=session.encrypt_bytes, args=(b"elected",))
        reloader.start()
        deadline = time.monotonic() + 5
        while metastore.latest_calls[IK] == calls_before and time.monotonic() < deadline:
            time.sleep(0.001)
        assert metastore.latest_calls[IK] == calls_before + 1  # the reloader is in the metastore
        started = time.monotonic()
        served = [session.encrypt_bytes(b"meanwhile") for _ in range(20)]
        assert time.monotonic() - started < 1.0  # nobody waited for the blocked reload
        assert reloader.is_alive()
        assert metastore.latest_calls[IK] == calls_before + 1  # exactly one reloader
        assert {_ik_created(r) for r in served} == {_ik_created(first)}
        metastore.release.set()
        reloader.join(5)
        assert not reloader.is_alive()
        assert session.decrypt_bytes(served[0]) == b"meanwhile"


def test_a_failed_reload_keeps_the_stale_key_and_retries_next_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    metastore = ControllableMetastore()
    with _factory(metastore, clock) as factory:
        session = factory.get_session("p1")
        first = session.encrypt_bytes(b"warm")
        base = metastore.latest_calls[IK]
        clock.advance(601)
        metastore.fail = True
        stale = session.encrypt_bytes(b"during the outage")
        assert _ik_created(stale) == _ik_created(first)
        assert metastore.latest_calls[IK] == base + 1
        assert any("reloading intermediate key" in m for m in caplog.messages)
        clock.advance(300)  # within the next interval: no new attempt
        session.encrypt_bytes(b"still out")
        assert metastore.latest_calls[IK] == base + 1
        clock.advance(301)
        metastore.fail = False
        session.encrypt_bytes(b"back")
        assert metastore.latest_calls[IK] == base + 2
        assert session.decrypt_bytes(stale) == b"during the outage"


def test_an_expired_key_is_never_served_stale() -> None:
    clock = FakeClock()
    metastore = ControllableMetastore()
    with _factory(metastore, clock, ExpireAfter=3600) as factory:
        session = factory.get_session("p1")
        first = session.encrypt_bytes(b"old")
        clock.advance(3600)
        metastore.fail = True
        with pytest.raises(MetastoreError):
            session.encrypt_bytes(b"must not use the expired key")
        metastore.fail = False
        assert _ik_created(session.encrypt_bytes(b"new")) > _ik_created(first)


def test_cold_miss_from_100_threads_and_100_tasks_is_one_load_and_one_kms_call() -> None:
    metastore = ControllableMetastore()
    metastore.delay = 0.05
    kms = CountingKms(StaticKeyManagementService(bytes.fromhex(KEY_HEX)))
    with _factory(metastore, kms=kms) as factory:
        barrier = threading.Barrier(101)
        records: list[str] = []
        errors: list[BaseException] = []

        def thread_encrypt() -> None:
            barrier.wait()
            try:
                records.append(factory.get_session("p1").encrypt_bytes(b"t"))
            except BaseException as exc:  # asserted below
                errors.append(exc)

        async def tasks() -> list[str]:
            session = factory.get_session("p1")
            return await asyncio.gather(*(session.encrypt_bytes_async(b"a") for _ in range(100)))

        threads = [threading.Thread(target=thread_encrypt) for _ in range(100)]
        for thread in threads:
            thread.start()
        barrier.wait()
        task_records = asyncio.run(tasks())
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(records) == 100
        assert len(task_records) == 100
        assert metastore.latest_calls[IK] == 1
        assert metastore.latest_calls["_SK_svc_prod"] == 1
        assert kms.calls["encrypt_key"] == 1
        assert kms.calls["decrypt_key"] == 0
        assert len({_ik_created(r) for r in records + task_records}) == 1


def test_bounded_intermediate_cache_evicts_and_reloads() -> None:
    events: list[tuple[str, str, str]] = []

    class Recorder:
        @hookimpl
        def asherah_cache_event(self, cache: str, event: str, key_id: str) -> None:
            events.append((cache, event, key_id))

    metastore = ControllableMetastore()
    config = {
        **CONFIG,
        "intermediate_key_cache_max_size": 3,
        "intermediate_key_cache_eviction_policy": "lru",
    }
    with SessionFactory(
        config,
        metastore=metastore,
        plugins=[Recorder()],
        kms=StaticKeyManagementService(bytes.fromhex(KEY_HEX)),
    ) as factory:
        records = {p: factory.get_session(p).encrypt_bytes(p.encode()) for p in "abcde"}
        evicted = {
            key_id
            for cache, event, key_id in events
            if cache == "intermediate" and event == "eviction"
        }
        assert evicted == {"_IK_a_svc_prod", "_IK_b_svc_prod"}
        loads_before = dict(metastore.latest_calls)
        for partition, record in records.items():
            assert factory.get_session(partition).decrypt_bytes(record) == partition.encode()
        factory.get_session("a").encrypt_bytes(b"again")
        assert metastore.latest_calls["_IK_a_svc_prod"] == loads_before["_IK_a_svc_prod"] + 1


def test_jitter_only_ever_shortens_the_interval() -> None:
    clock = FakeClock(START)
    metastore = ControllableMetastore()
    with _factory(metastore, clock, cache_ttl_jitter=0.1) as factory:
        session = factory.get_session("p1")
        session.encrypt_bytes(b"x")
        base = metastore.latest_calls[IK]
        clock.advance(539)  # below 0.9 * 600: always fresh
        session.encrypt_bytes(b"x")
        assert metastore.latest_calls[IK] == base
        clock.advance(61)  # at 600: always stale
        session.encrypt_bytes(b"x")
        assert metastore.latest_calls[IK] == base + 1
