"""The new-partition paths: how a new key is held, and what a cold load leaves behind."""

from __future__ import annotations

import threading
from collections.abc import Hashable

import pytest

from asherah import SessionFactory
from asherah._key_cache import KeyCache
from asherah._keys import CryptoKey
from asherah.cache._policies import LeastRecentlyUsed
from asherah.hazmat.aead import AeadError
from asherah.hazmat.memory import KeyStore
from asherah.hooks import hookimpl

from .conftest import FakeClock, static_config

MATERIAL = bytes(range(32))
CONFIG = static_config()


@pytest.mark.parametrize("mode", ["mlock", "encrypted", "none"])
def test_a_key_with_a_cached_schedule_keeps_no_copy_in_the_store(mode: str) -> None:
    with KeyStore(mode) as store:
        material = bytearray(MATERIAL)
        key = CryptoKey(store, material, 1, cache_schedule=True)
        # Moved into the cipher: the buffer was zeroed, then emptied (the cipher keeps a
        # reference to it; its storage need not stay).
        assert material == bytearray()
        assert store.stats().keys == 0
        assert key.prepared is not None
        sealed = key.seal(b"k" * 32)

        stored = CryptoKey(store, bytearray(MATERIAL), 1, cache_schedule=False)
        assert stored.prepared is None
        assert store.stats().keys == 1
        # The same material either way: each opens what the other sealed.
        assert stored.open_key(sealed) == bytearray(b"k" * 32)
        assert key.open_key(stored.seal(b"j" * 32)) == bytearray(b"j" * 32)

        key.wipe()
        stored.wipe()
        assert store.stats().keys == 0
        for wiped in (key, stored):
            with pytest.raises(AeadError, match="wiped"):
                wiped.seal(b"x")


def test_a_wrong_sized_key_is_refused_and_wiped_either_way() -> None:
    with KeyStore("none") as store:
        for schedule in (True, False):
            material = bytearray(b"\x07" * 16)
            with pytest.raises(AeadError, match="invalid key size"):
                CryptoKey(store, material, 1, cache_schedule=schedule)
            assert material == bytearray(16)
        assert store.stats().keys == 0


# -- load locks --------------------------------------------------------------------------------


def test_load_locks_are_forgotten_once_no_one_holds_or_awaits_them() -> None:
    with SessionFactory(CONFIG) as factory:
        for i in range(50):
            with factory.get_session(f"p{i}") as session:
                session.decrypt_bytes(session.encrypt_bytes(b"x"))
        keys = factory._keys
        assert len(keys.intermediate_keys) == 50
        assert keys.intermediate_keys.load_locks == 0
        assert keys.system_keys.load_locks == 0


def test_a_load_lock_is_kept_while_a_caller_waits_and_is_one_flight() -> None:
    cache = KeyCache("test", 60.0, 3600.0)
    held = cache.lock_for("id")
    entered = threading.Event()
    order: list[str] = []

    def waiter() -> None:
        lock = cache.lock_for("id")
        entered.set()
        with lock:
            order.append("waiter")

    with held:
        thread = threading.Thread(target=waiter)
        thread.start()
        assert entered.wait(5)
        assert cache.load_locks == 1
        # A third caller gets the same lock, not a new one: still one flight.
        assert cache.lock_for("id") is held
        held.users -= 1  # that third caller never entered; undo its count
        order.append("holder")
    thread.join(5)
    assert order == ["holder", "waiter"]
    assert cache.load_locks == 0


# -- parents, recency ----------------------------------------------------------------------------


@pytest.mark.parametrize("deny", [False, True])
def test_ik_parents_are_kept_only_for_deny_revoked_on_decrypt(deny: bool) -> None:
    with SessionFactory({**CONFIG, "deny_revoked_on_decrypt": deny}) as factory:
        for partition in ("a", "b"):
            with factory.get_session(partition) as session:
                assert session.decrypt_bytes(session.encrypt_bytes(b"x")) == b"x"
        parents = factory._keys._parents
        assert len(parents) == (2 if deny else 0)
        if deny:
            assert {meta.key_id for meta in parents.values()} == {"_SK_svc_prod"}


class CountingLru(LeastRecentlyUsed):
    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.touches = 0

    def touch(self, key: Hashable) -> None:
        self.touches += 1
        super().touch(key)


def test_inserting_a_key_counts_as_its_use_for_the_eviction_policy() -> None:
    clock = FakeClock()
    policy = CountingLru(10)
    cache = KeyCache("test", 60.0, 3600.0, policy, jitter=0.0, clock=clock)
    with KeyStore("none") as store:
        key = CryptoKey(store, bytearray(MATERIAL), 1)
        cache.set_latest("id", key, clock())
        assert key.touched == clock()
        cache.touch("id", key, clock() + 0.5)
        assert policy.touches == 0  # told at insert, less than a second ago
        cache.touch("id", key, clock() + 1.5)
        assert policy.touches == 1
        entry = cache.latest_entries["id"]
        assert entry.fresh_until == clock() + 60.0
        assert entry.serve_until == min(entry.fresh_until, entry.valid_until)
        assert entry.valid_until == 1 + 3600.0
        assert entry.serve_until == entry.valid_until  # created long ago: expiry comes first
        cache.clear()


# -- session cache -------------------------------------------------------------------------------


class SessionEvictions:
    def __init__(self) -> None:
        self.partitions: list[str] = []

    @hookimpl
    def asherah_cache_event(self, cache: str, event: str, lookup: str, key_id: str) -> None:
        if cache == "session" and event == "eviction":
            self.partitions.append(key_id)


@pytest.mark.parametrize("policy", ["lru", "slru", "lfu"])
def test_session_churn_evicts_each_core_once_and_finishes_it(policy: str) -> None:
    evictions = SessionEvictions()
    config = {
        **CONFIG,
        "SessionCacheMaxSize": 3,
        "session_cache_eviction_policy": policy,
        "shared_intermediate_key_cache": False,
    }
    with SessionFactory(config, plugins=[evictions]) as factory:
        cores = []
        for i in range(20):
            with factory.get_session(f"p{i}") as session:
                session.encrypt_bytes(b"x")
            cores.append(factory._sessions._cores[f"p{i}"])
        assert len(factory._sessions) == 3
        assert sorted(evictions.partitions) == sorted(f"p{i}" for i in range(17))
        for core in cores[:17]:
            assert core.cached is False
            assert len(core.keys.intermediate_keys) == 0  # its own IK cache was emptied
        for core in cores[17:]:
            assert core.cached is True
            assert len(core.keys.intermediate_keys) == 1


def test_a_key_buffer_someone_still_views_is_zeroed_and_kept() -> None:
    with KeyStore("none") as store:
        material = bytearray(MATERIAL)
        view = memoryview(material)
        key = CryptoKey(store, material, 1)
        assert view.tobytes() == bytes(32)
        view.release()
        assert key.open_key(key.seal(b"k" * 32)) == bytearray(b"k" * 32)
