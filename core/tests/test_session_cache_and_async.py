"""The factory's session cache, and the asyncio API."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import asherah
from asherah import AsherahError, SessionFactory
from asherah.hooks import hookimpl
from asherah.kms import StaticKeyManagementService

from .conftest import KEY_HEX, FakeClock, _base_config
from .test_key_caches import ControllableMetastore

CONFIG = _base_config()


class Evictions:
    def __init__(self) -> None:
        self.partitions: list[str] = []

    @hookimpl
    def asherah_cache_event(self, cache: str, event: str, key_id: str) -> None:
        if cache == "session" and event == "eviction":
            self.partitions.append(key_id)


def test_sessions_of_a_partition_share_one_core_and_close_independently() -> None:
    with SessionFactory(CONFIG) as factory:
        first, second = factory.get_session("p"), factory.get_session("p")
        assert first._ids is second._ids  # one cached core
        record = first.encrypt_bytes(b"x")
        first.close()
        assert second.decrypt_bytes(record) == b"x"
        with pytest.raises(AsherahError, match="closed"):
            first.encrypt_bytes(b"y")


@pytest.mark.parametrize("policy", ["lru", "slru"])
def test_in_use_sessions_survive_eviction_pressure(policy: str) -> None:
    evictions = Evictions()
    config = {**CONFIG, "SessionCacheMaxSize": 2, "session_cache_eviction_policy": policy}
    with SessionFactory(config, plugins=[evictions]) as factory:
        held = factory.get_session("held")
        held_ids = held._ids
        for i in range(10):
            with factory.get_session(f"churn{i}") as session:
                session.encrypt_bytes(b"x")
        assert "held" not in evictions.partitions
        assert len(evictions.partitions) >= 8
        assert factory.get_session("held")._ids is held_ids
        assert held.decrypt_bytes(held.encrypt_bytes(b"still works")) == b"still works"
        held.close()


@pytest.mark.parametrize("policy", ["lru", "slru", "lfu"])
def test_a_one_entry_cache_never_evicts_the_session_in_use(policy: str) -> None:
    # The first newcomer's victim is the held core: it is parked outside the policy while in
    # use, and each later newcomer evicts the one before it.
    evictions = Evictions()
    config = {**CONFIG, "SessionCacheMaxSize": 1, "session_cache_eviction_policy": policy}
    with SessionFactory(config, plugins=[evictions]) as factory:
        held = factory.get_session("held")
        for i in range(5):
            with factory.get_session(f"new{i}") as session:
                assert session.decrypt_bytes(session.encrypt_bytes(b"x")) == b"x"
        assert "held" not in evictions.partitions
        assert evictions.partitions == [f"new{i}" for i in range(4)]
        assert len(factory._sessions) == 2  # the parked core and the policy's one entry
        with factory.get_session("held") as again:
            assert again._ids is held._ids  # the parked core is still shared
        assert "held" not in evictions.partitions
        held.close()  # its last user: back into the policy, which now evicts the newcomer
        assert evictions.partitions[-1] == "new4"
        assert len(factory._sessions) == 1
        factory.get_session("other").close()  # the held core is idle now: it goes
        assert evictions.partitions[-1] == "held"
        assert len(factory._sessions) == 1


class _CountingPolicy:
    """Wraps a policy and counts its calls."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.policy, name)

        def counted(*args: Any) -> Any:
            self.calls += 1
            return method(*args)

        return counted


@pytest.mark.parametrize("policy", ["lru", "slru", "lfu"])
def test_a_miss_costs_the_same_however_many_sessions_are_held(policy: str) -> None:
    evictions = Evictions()
    config = {**CONFIG, "SessionCacheMaxSize": 4, "session_cache_eviction_policy": policy}
    with SessionFactory(config, plugins=[evictions]) as factory:
        held = [factory.get_session(f"held{i}") for i in range(40)]
        counting = _CountingPolicy(factory._sessions._policy)
        factory._sessions._policy = counting
        for i in range(3):
            factory.get_session(f"new{i}").close()
            assert counting.calls == i + 1  # one insert per miss, not one per held session
        assert not set(evictions.partitions) & {f"held{i}" for i in range(40)}
        assert len(factory._sessions) == 40 + 3  # every held core, and the newcomers
        for session in held:
            session.close()
        assert len(factory._sessions) == 4  # released cores went back in and evicted others
        assert len(evictions.partitions) == 40 + 3 - 4


def test_lru_session_eviction_order() -> None:
    evictions = Evictions()
    config = {**CONFIG, "SessionCacheMaxSize": 2, "session_cache_eviction_policy": "lru"}
    with SessionFactory(config, plugins=[evictions]) as factory:
        for partition in ("a", "b", "a", "c", "d"):
            factory.get_session(partition).close()
        assert evictions.partitions == ["b", "a"]


def test_idle_sessions_expire_and_caching_can_be_off() -> None:
    clock = FakeClock()
    config = {**CONFIG, "SessionCacheDuration": 10}
    with SessionFactory(config, clock=clock) as factory:
        first = factory.get_session("p")
        first.close()
        clock.advance(11)
        assert factory.get_session("p")._ids is not first._ids
    with SessionFactory({**CONFIG, "EnableSessionCaching": False}) as factory:
        assert factory.get_session("p")._ids is not factory.get_session("p")._ids


def test_async_round_trip_context_managers_and_text() -> None:
    async def main() -> None:
        async with SessionFactory(CONFIG) as factory, factory.get_session("p") as session:
            record = await session.encrypt_bytes_async(b"async bytes")
            assert await session.decrypt_bytes_async(record) == b"async bytes"
            text = await session.encrypt_text_async("ünïcode")
            assert await session.decrypt_text_async(text) == "ünïcode"
            assert session.decrypt_bytes(record) == b"async bytes"  # sync and async interoperate
            big = bytes(300 * 1024)
            assert await session.decrypt_bytes_async(await session.encrypt_bytes_async(big)) == big
        assert factory.closed

    asyncio.run(main())


def test_cached_path_runs_inline_and_never_stalls_the_loop() -> None:
    async def main() -> tuple[float, float]:
        with SessionFactory(CONFIG) as factory:
            session = factory.get_session("p")
            records = [await session.encrypt_bytes_async(b"warm-up")]
            gaps: list[float] = []
            stop = False

            async def probe() -> None:
                last = time.perf_counter()
                while not stop:
                    await asyncio.sleep(0)
                    now = time.perf_counter()
                    gaps.append(now - last)
                    last = now

            ticker = asyncio.create_task(probe())
            slowest = 0.0
            for _ in range(500):
                started = time.perf_counter()
                record = await session.encrypt_bytes_async(b"x" * 64)
                assert await session.decrypt_bytes_async(record) == b"x" * 64
                slowest = max(slowest, time.perf_counter() - started)
                await asyncio.sleep(0)
            stop = True
            await ticker
            assert records
            return slowest, max(gaps)

    slowest_op, worst_gap = asyncio.run(main())
    # A cached encrypt+decrypt is tens of microseconds; the bound is generous for CI noise.
    assert slowest_op < 0.02
    assert worst_gap < 0.05


def test_cold_path_runs_off_the_loop_and_cancellation_is_safe() -> None:
    metastore = ControllableMetastore()
    metastore.delay = 0.2
    kms = StaticKeyManagementService(bytes.fromhex(KEY_HEX))

    async def main() -> None:
        with SessionFactory({**CONFIG}, metastore=metastore, kms=kms) as factory:
            session = factory.get_session("p")
            ticks = 0

            async def probe() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            ticker = asyncio.create_task(probe())
            cancelled = asyncio.create_task(session.encrypt_bytes_async(b"cancel me"))
            await asyncio.sleep(0.05)
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            record = await session.encrypt_bytes_async(b"after the cancel")
            ticker.cancel()
            assert ticks >= 5  # the loop kept running during the slow loads
            assert await session.decrypt_bytes_async(record) == b"after the cancel"
            assert all(name != threading.main_thread().name for name in metastore.load_threads)
            assert len(metastore.inner.rows()) == 2  # one SK, one IK: nothing doubled

    asyncio.run(main())


class _LoadThreads(ControllableMetastore):
    """Records which thread made each exact ``load`` (the decrypt path's read)."""

    def __init__(self) -> None:
        super().__init__()
        self.exact_load_threads: list[str] = []

    def load(self, key_id: str, created: int) -> Any:
        self.exact_load_threads.append(threading.current_thread().name)
        return super().load(key_id, created)


def test_async_decrypt_of_an_uncached_key_loads_off_the_loop_then_runs_inline() -> None:
    from asherah._session import _INLINE_ONLY

    metastore = _LoadThreads()
    kms = StaticKeyManagementService(bytes.fromhex(KEY_HEX))
    with SessionFactory(CONFIG, metastore=metastore, kms=kms) as writer:
        records = [writer.get_session("p").encrypt_bytes(b"row %d" % i) for i in range(3)]

    async def main() -> None:
        with SessionFactory(CONFIG, metastore=metastore, kms=kms) as reader:
            session = reader.get_session("p")
            assert await session.decrypt_bytes_async(records[0]) == b"row 0"
            loads = list(metastore.exact_load_threads)
            assert loads  # the IK (and SK) rows were read ...
            assert threading.main_thread().name not in loads  # ... on worker threads
            assert _INLINE_ONLY.get() is False  # the signal never outlives the call
            assert [await session.decrypt_bytes_async(r) for r in records[1:]] == [
                b"row 1",
                b"row 2",
            ]
            assert metastore.exact_load_threads == loads  # cached now: nothing read again
            assert session.decrypt_bytes(records[2]) == b"row 2"  # sync in the loop thread

    asyncio.run(main())


def test_module_level_async_api() -> None:
    async def main() -> Any:
        await asherah.setup_async(CONFIG)
        try:
            record = await asherah.encrypt_bytes_async("p", b"module async")
            assert await asherah.decrypt_bytes_async("p", record) == b"module async"
            text = await asherah.encrypt_string_async("p", "text")
            assert await asherah.decrypt_string_async("p", text) == "text"
        finally:
            await asherah.shutdown_async()
        assert not asherah.get_setup_status()

    asyncio.run(main())
