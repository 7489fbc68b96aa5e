"""The tiered key store: hot cache, enclaves, the coffer split, modes, closing and misuse."""

from __future__ import annotations

import ctypes
import gc
import hashlib
import os
import pickle
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from asherah._errors import ConfigError
from asherah.hazmat import aead
from asherah.hazmat.memory import (
    PAGE_SIZE,
    KeyHandle,
    KeyStore,
    SecureMemoryError,
    _aead,
    _enclave,
    _libc,
    decrypt_into,
    decrypt_into_with,
    default_hot_cache_size,
    default_mode,
    locked_bytes,
    random_key,
)
from asherah.hazmat.memory._slab import Slab
from asherah.hazmat.memory._store import _SealedBackend
from testsupport.child import run_json

NONCE = b"\x01" * 12


def fresh_key() -> tuple[bytearray, bytes]:
    """A key to hand to the store, and the test's own copy to check results against."""
    key = random_key()
    return key, bytes(key)


def works_with(handle: KeyHandle, expected: bytes) -> bool:
    """Encrypt with the stored key through AESGCM, decrypt with the expected one."""
    sealed = handle.use(lambda key: AESGCM(key).encrypt(NONCE, b"payload", None))
    return AESGCM(expected).decrypt(NONCE, sealed, None) == b"payload"


def sealed_backend(store: KeyStore) -> _SealedBackend:
    backend = store._backend
    assert isinstance(backend, _SealedBackend)
    return backend


@pytest.fixture
def events() -> list[tuple[str, object]]:
    return []


@pytest.fixture
def small_store(events: list[tuple[str, object]]) -> Iterator[KeyStore]:
    store = KeyStore(
        "mlock", slab_slots=4, hot_cache_size=2, on_event=lambda k, lbl: events.append((k, lbl))
    )
    yield store
    store.close()


def test_hot_cache_of_two_with_ten_keys(
    small_store: KeyStore, events: list[tuple[str, object]]
) -> None:
    handles, expected = [], []
    for partition in range(10):
        key, copy = fresh_key()
        handles.append(small_store.put(key, label=f"_IK_p{partition}"))
        expected.append(copy)
        assert key == bytearray(32)  # put wiped the caller's buffer
    stats = small_store.stats()
    assert (stats.keys, stats.resident, stats.evictions, stats.misses) == (10, 2, 8, 0)

    # Every key still works, although only two stay decrypted: 0..7 come back from their
    # enclaves, and by the time 8 and 9 are used they were evicted too.
    for handle, copy in zip(handles, expected, strict=True):
        assert works_with(handle, copy)
    stats = small_store.stats()
    assert (stats.hits, stats.misses, stats.promotions, stats.evictions) == (0, 10, 10, 18)
    assert stats.resident == 2

    # The two most recently used are hot now.
    assert works_with(handles[9], expected[9])
    assert works_with(handles[8], expected[8])
    stats = small_store.stats()
    assert (stats.hits, stats.misses) == (2, 10)

    kinds = Counter(kind for kind, _ in events)
    assert kinds == {"eviction": 18, "miss": 10, "promotion": 10, "hit": 2}
    assert ("hit", "_IK_p8") in events
    assert ("promotion", "_IK_p0") in events
    assert ("eviction", "_IK_p0") in events


def test_coffer_halves_differ_from_the_coffer_key(small_store: KeyStore) -> None:
    key, copy = fresh_key()
    handle = small_store.put(key)
    backend = sealed_backend(small_store)
    slab = backend.slab
    with slab.buffer.write() as view:
        left = bytes(view[slab.coffer_left : slab.coffer_left + 32])
        right = bytes(view[slab.coffer_right : slab.coffer_right + 32])
        with backend.coffer.derive(view) as derived:
            coffer_key = bytes(derived)
        backend.coffer.clear()
        scratch = bytes(view[slab.coffer_scratch : slab.coffer_scratch + 32])
    assert len({left, right, coffer_key}) == 3
    assert coffer_key != bytes(32)
    assert scratch == bytes(32)  # the derived key does not outlive its use
    digest = hashlib.sha256(left).digest()
    assert bytes(a ^ b for a, b in zip(digest, right, strict=True)) == coffer_key
    # The two halves sit on different pages once the slab spans two (here it does not).
    assert slab.coffer_right - slab.coffer_left == (slab.slots + 2) * 32

    # The derived key really is the coffer key: it opens the key's enclave.
    enclave = handle._entry.sealed
    assert enclave is not None
    assert copy not in enclave
    assert AESGCM(coffer_key).decrypt(enclave[:12], enclave[12:], None) == copy


def test_a_deferred_store_maps_nothing_until_its_first_key() -> None:
    events: list[tuple[str, object]] = []
    before = locked_bytes()
    store = KeyStore("mlock", slab_slots=4, defer=True, on_event=lambda k, _: events.append(k))
    try:
        assert store.deferred
        assert store.mode == "mlock"
        assert store.hot_cache_size == default_hot_cache_size(4)
        assert locked_bytes() == before
        assert store.stats().locked_bytes == 0
        key, copy = fresh_key()
        handle = store.put(key, label="k")
        assert key == bytearray(32)
        assert not store.deferred
        assert store.stats().locked_bytes == PAGE_SIZE
        assert locked_bytes() == (before or 0) + PAGE_SIZE
        assert handle.use(bytes) == copy
        assert events == ["hit"]
    finally:
        store.close()
    assert locked_bytes() == before


def test_a_deferred_store_closed_before_any_key_refuses_one_and_wipes_it() -> None:
    store = KeyStore("encrypted", defer=True)
    store.close()
    store.close()  # idempotent
    assert store.closed
    key, _ = fresh_key()
    with pytest.raises(SecureMemoryError, match="key store is closed"):
        store.put(key)
    assert key == bytearray(32)
    assert store.deferred  # never built: nothing was mapped


def test_slab_slots_come_back_last_in_first_out_then_lowest_unused() -> None:
    slab = Slab(4, lock=False)
    try:
        with slab.buffer.write() as view:
            view[:] = b"\xaa" * slab.buffer.size
            taken = [slab.take(), slab.take(), slab.take()]
            assert taken == [64, 96, 128]  # after the coffer's left half and scratch slot
            assert slab.free_slots == 1
            slab.give_back(96)
            slab.give_back(64)
            assert bytes(view[64:96]) == bytes(view[96:128]) == bytes(32)  # wiped on return
            assert slab.free_slots == 3
            assert [slab.take(), slab.take(), slab.take(), slab.take()] == [64, 96, 160, None]
            assert slab.free_slots == 0
            assert slab.coffer_right == 192  # never handed out
    finally:
        slab.buffer.close()


def test_coffer_halves_are_on_different_pages_in_a_multi_page_slab() -> None:
    with KeyStore("mlock", slab_slots=256) as store:
        slab = sealed_backend(store).slab
        start = slab.buffer.address
        assert (start + slab.coffer_left) // PAGE_SIZE != (start + slab.coffer_right) // PAGE_SIZE
        assert store.hot_cache_size == default_hot_cache_size(256) == 224


def test_enclave_round_trip_and_tamper_detection() -> None:
    coffer, material = random_key(), random_key()
    expected = bytes(material)
    enclave = _enclave.seal(memoryview(coffer), memoryview(material))
    assert len(enclave) == 12 + 32 + 16
    assert expected not in enclave
    out = bytearray(32)
    _enclave.open_into(memoryview(coffer), enclave, memoryview(out))
    assert out == expected
    tampered = enclave[:-1] + bytes([enclave[-1] ^ 1])
    with pytest.raises(SecureMemoryError, match="enclave authentication failed"):
        _enclave.open_into(memoryview(coffer), tampered, memoryview(out))
    assert out == bytearray(32)  # wiped on failure


def _with_prepared_cipher(key: bytes, nonce: bytes, data: bytes, out: bytearray) -> None:
    decrypt_into_with(AESGCM(key), nonce, data, out)


def _with_prepared_cipher_without_decrypt_into(
    key: bytes, nonce: bytes, data: bytes, out: bytearray
) -> None:
    # The path for cryptography releases without ``AESGCM.decrypt_into``.
    class OldAesGcm:
        def __init__(self, key: bytes) -> None:
            self._cipher = AESGCM(key)

        def decrypt(self, nonce: bytes, data: bytes, aad: None) -> bytes:
            return self._cipher.decrypt(nonce, data, aad)

    if len(data) - 16 != len(out):
        raise ValueError("buffer must be 32 bytes")
    real = _aead.HAS_DECRYPT_INTO
    _aead.HAS_DECRYPT_INTO = False
    try:
        decrypt_into_with(OldAesGcm(key), nonce, data, out)  # type: ignore[arg-type]
    finally:
        _aead.HAS_DECRYPT_INTO = real


@pytest.mark.parametrize(
    "opener",
    [
        decrypt_into,
        _aead.decrypt_into_streaming,
        _with_prepared_cipher,
        _with_prepared_cipher_without_decrypt_into,
    ],
)
def test_decrypt_into_writes_only_into_the_callers_buffer(
    opener: Callable[[bytes, bytes, bytes, bytearray], None],
) -> None:
    # ``decrypt_into_streaming`` serves cryptography releases without ``AESGCM.decrypt_into``.
    key, child = random_key(), random_key()
    expected = bytes(child)
    blob = aead.seal(key, child)  # Asherah layout: ciphertext || tag || nonce
    out = bytearray(32)
    opener(bytes(key), blob[-12:], blob[:-12], out)
    assert out == expected
    tampered = bytes([blob[0] ^ 1]) + blob[1:]
    with pytest.raises(InvalidTag):
        opener(bytes(key), tampered[-12:], tampered[:-12], out)
    assert out == bytearray(32)
    with pytest.raises(ValueError, match=r"output buffer|buffer must be 32 bytes"):
        opener(bytes(key), blob[-12:], blob[:-12], bytearray(31))


def test_use_hands_aesgcm_a_buffer_and_the_view_dies_after() -> None:
    with KeyStore("mlock", slab_slots=4) as store:
        key, copy = fresh_key()
        handle = store.put(key)
        cipher = handle.use(AESGCM)  # the cipher keeps its own key schedule
        assert AESGCM(copy).decrypt(NONCE, cipher.encrypt(NONCE, b"x", None), None) == b"x"
        leaked = handle.use(lambda view: view)
        with pytest.raises(ValueError, match="released"):
            _ = leaked[0]
        with handle.borrow() as view:
            assert view.readonly
            assert view.format == "B"
            assert bytes(view) == copy


def test_exported_view_is_reported_and_the_store_stays_usable() -> None:
    with KeyStore("mlock", slab_slots=4) as store:
        key, copy = fresh_key()
        handle = store.put(key)
        kept: list[pickle.PickleBuffer] = []
        with pytest.raises(SecureMemoryError, match="exported"):
            handle.use(lambda view: kept.append(pickle.PickleBuffer(view)))
        kept.pop().release()
        assert works_with(handle, copy)
        assert sealed_backend(store).active == 0


def test_encrypted_mode_keeps_nothing_decrypted_and_locks_nothing() -> None:
    before = locked_bytes()
    events: list[str] = []
    with KeyStore(
        "encrypted", slab_slots=4, hot_cache_size=4, on_event=lambda k, _: events.append(k)
    ) as store:
        assert locked_bytes() == before
        assert store.hot_cache_size == 0
        handles = []
        for _ in range(3):
            key, copy = fresh_key()
            handles.append((store.put(key), copy))
        for handle, copy in handles * 2:
            assert works_with(handle, copy)
        stats = store.stats()
        assert (stats.mode, stats.locked_bytes, stats.resident, stats.hits) == (
            "encrypted",
            0,
            0,
            0,
        )
        assert stats.misses == stats.promotions == stats.evictions == 6
        assert events == ["miss", "promotion", "eviction"] * 6


def test_none_mode_wipes_on_close() -> None:
    with KeyStore("none") as store:
        key, copy = fresh_key()
        handle = store.put(key)
        assert key == bytearray(32)
        assert works_with(handle, copy)
        plain = handle._entry.plain
        assert plain == bytearray(copy)
    assert plain == bytearray(32)
    assert store.stats().hits == 1
    with pytest.raises(SecureMemoryError, match="closed"):
        handle.use(bytes)


def test_closing_a_handle_wipes_its_slot(small_store: KeyStore) -> None:
    handle = small_store.put(random_key())
    backend = sealed_backend(small_store)
    slot = handle._entry.slot
    assert slot >= 0
    handle.close()
    handle.close()  # idempotent
    assert handle.closed
    with backend.buffer.read() as view:
        assert bytes(view[slot : slot + 32]) == bytes(32)
    assert backend.slab.free_slots == 4
    with pytest.raises(SecureMemoryError, match="handle is closed"):
        handle.use(bytes)
    assert small_store.stats().keys == 0


def test_closing_a_handle_during_its_use_wipes_it_after(small_store: KeyStore) -> None:
    key, copy = fresh_key()
    handle = small_store.put(key)
    backend = sealed_backend(small_store)

    def close_midway(view: memoryview) -> bytes:
        handle.close()
        return bytes(view)  # still readable: the slot is freed when the use ends

    assert handle.use(close_midway) == copy
    assert backend.slab.free_slots == 4
    assert backend.resident() == 0


def test_store_close_wipes_and_unmaps_the_slab(monkeypatch: pytest.MonkeyPatch) -> None:
    store = KeyStore("mlock", slab_slots=4)
    pairs = [fresh_key() for _ in range(3)]
    handles = [store.put(key) for key, _ in pairs]
    buffer = sealed_backend(store).buffer
    with buffer.read() as view:
        contents = bytes(view)
    assert all(copy in contents for _, copy in pairs)  # all three are hot (default 3 of 4)
    seen: list[bytes] = []
    real_munmap = _libc.munmap

    def spying_munmap(address: int, length: int) -> None:
        seen.append(ctypes.string_at(address + PAGE_SIZE, length - 2 * PAGE_SIZE))
        real_munmap(address, length)

    monkeypatch.setattr(_libc, "munmap", spying_munmap)
    before = locked_bytes()
    store.close()
    store.close()  # idempotent
    assert seen == [bytes(PAGE_SIZE)]
    assert buffer.closed
    assert locked_bytes() == (before or 0) - PAGE_SIZE
    for handle in handles:
        assert handle.closed
        with pytest.raises(SecureMemoryError, match="store is closed"):
            handle.use(bytes)
    with pytest.raises(SecureMemoryError, match="store is closed"):
        store.put(random_key())


def test_store_close_during_a_use_waits_for_it() -> None:
    store = KeyStore("mlock", slab_slots=4)
    key, copy = fresh_key()
    handle = store.put(key)
    buffer = sealed_backend(store).buffer

    def close_midway(view: memoryview) -> bytes:
        store.close()
        assert not buffer.closed  # still mapped: this view is in use
        return bytes(view)

    assert handle.use(close_midway) == copy
    assert buffer.closed
    assert store.closed


def test_nested_use_beyond_the_slab_spills_and_wipes(events: list[tuple[str, object]]) -> None:
    with KeyStore(
        "mlock", slab_slots=1, hot_cache_size=1, on_event=lambda k, lbl: events.append((k, lbl))
    ) as store:
        first, first_copy = fresh_key()
        second, second_copy = fresh_key()
        outer = store.put(first, label="outer")
        inner = store.put(second, label="inner")  # evicts "outer" from the only slot
        spills: list[bytes] = []

        def nested(outer_view: memoryview) -> bytes:
            # "inner" is pinned by nobody, but the only slot holds "outer", which is in use.
            spills.append(inner.use(bytes))
            return bytes(outer_view)

        assert outer.use(nested) == first_copy
        assert spills == [second_copy]
        stats = store.stats()
        assert stats.overflows == 1
        assert ("overflow", "inner") in events
        assert works_with(inner, second_copy)


def test_garbage_collected_handles_are_closed_on_the_next_put(small_store: KeyStore) -> None:
    handle = small_store.put(random_key())
    assert small_store.stats().keys == 1
    del handle
    gc.collect()
    small_store.put(random_key())
    assert small_store.stats().keys == 1


def test_put_validates_the_buffer(small_store: KeyStore) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        small_store.put(bytearray(16))
    with pytest.raises(ValueError, match="writable"):
        small_store.put(memoryview(bytes(32)))
    key = bytearray(os.urandom(32))
    small_store.put(memoryview(key))
    assert key == bytearray(32)


@pytest.mark.parametrize(
    ("mode", "slots", "hot"),
    [("secure", 4, 2), ("mlock", 0, 0), ("mlock", 4, 5), ("mlock", 4, -1)],
)
def test_bad_configuration_is_a_config_error(mode: str, slots: int, hot: int) -> None:
    with pytest.raises(ConfigError):
        KeyStore(mode, slab_slots=slots, hot_cache_size=hot)  # type: ignore[arg-type]


def test_repr_and_events_carry_no_key_material(
    small_store: KeyStore, events: list[tuple[str, object]]
) -> None:
    key, copy = fresh_key()
    handle = small_store.put(key, label=("_IK_p_svc_prod", 1700000000))
    handle.use(bytes)
    text = repr(handle) + repr(small_store) + repr(events) + repr(small_store.stats())
    assert copy.hex() not in text
    assert repr(copy)[2:-1] not in text
    assert events == [("hit", ("_IK_p_svc_prod", 1700000000))]


def test_default_mode_is_mlock_on_linux() -> None:
    assert default_mode() == "mlock"


def test_threads_share_the_store_without_faults() -> None:
    # In a child: a window bug here would be a segfault, which must not kill pytest.
    code = """
    import json, threading
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from asherah.hazmat.memory import KeyStore, random_key
    store = KeyStore("mlock", slab_slots=3, hot_cache_size=2)
    keys = [random_key() for _ in range(6)]
    copies = [bytes(k) for k in keys]
    handles = [store.put(k) for k in keys]
    failures = []
    def worker(seed):
        for i in range(200):
            n = (seed * 7 + i) % 6
            if handles[n].use(bytes) != copies[n]:
                failures.append(n)
            AESGCM(copies[n]).decrypt(b"0" * 12, handles[n].use(
                lambda key: AESGCM(key).encrypt(b"0" * 12, b"x", None)), None)
    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    s = store.stats()
    store.close()
    print(json.dumps({"failures": failures, "uses": s.hits + s.misses,
                      "overflows": s.overflows, "closed": store.closed}))
    """
    result = run_json(code, timeout=120)
    assert result["failures"] == []
    assert result["uses"] == 4 * 200 * 2
    assert result["closed"] is True
