"""The memory scanner counts exactly the copies that exist, and measures what the store leaves."""

from __future__ import annotations

import ctypes
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from asherah.hazmat.memory import (
    PAGE_SIZE,
    KeyStore,
    MemoryScanner,
    _libc,
    count_in_memory,
    random_key,
    wipe,
)


def scanner_for(key: bytearray) -> MemoryScanner:
    """A scanner for ``key``'s bytes; the needle buffer is wiped, the key is left alone."""
    needle = bytearray(len(key))
    needle[:] = key
    scanner = MemoryScanner(needle)
    assert needle == bytearray(len(key))
    return scanner


def test_counts_a_known_pattern_and_its_copies_going_away() -> None:
    original = random_key()  # getrandom() straight into the bytearray: no stray copy
    second, third = bytearray(32), bytearray(32)
    second[:] = original
    third[:] = original
    with scanner_for(original) as scanner:
        assert scanner.count() == 3
        wipe(second)
        assert scanner.count() == 2
        wipe(original)
        wipe(third)
        assert scanner.count() == 0


def test_count_in_memory_includes_the_callers_copy() -> None:
    pattern = random_key()
    assert count_in_memory(pattern) == 1
    copy = bytearray(pattern)
    assert count_in_memory(pattern) == 2
    wipe(copy)
    wipe(pattern)


def test_matches_across_chunk_boundaries_are_counted_once() -> None:
    length, size = 32, 4 * PAGE_SIZE
    pattern = random_key()
    region = _libc.mmap_anonymous(size)
    view = memoryview((ctypes.c_char * size).from_address(region)).cast("B")
    # With 64-byte chunks (each step advances 33 bytes): one straddling the first chunk edge,
    # one inside a chunk, two back to back, one further on, and one ending the region.
    offsets = [50, 90, 127, 159, 1000, size - length]
    try:
        for offset in offsets:
            view[offset : offset + length] = pattern
        with scanner_for(pattern) as small, open("/proc/self/mem", "rb", buffering=0) as mem:
            small._chunk = 64  # small chunks: every match lands near an edge
            found_small = small._scan_region(mem.fileno(), region, region + size)
            with scanner_for(pattern) as large:
                found_large = large._scan_region(mem.fileno(), region, region + size)
        assert found_small == len(offsets)
        assert found_large == len(offsets)
    finally:
        view.release()
        _libc.munmap(region, size)
        wipe(pattern)


def test_the_scanners_own_copy_is_never_counted() -> None:
    pattern = random_key()
    with scanner_for(pattern) as scanner:
        wipe(pattern)
        assert scanner.count() == 0
        assert scanner.count(include_protected=True) == 0


def test_pattern_validation() -> None:
    with pytest.raises(ValueError, match="1 to 4096"):
        MemoryScanner(bytearray(0))
    with pytest.raises(ValueError, match="writable"):
        MemoryScanner(os.urandom(8))


def test_mlock_store_key_is_only_in_protected_memory_and_gone_after_close() -> None:
    key = random_key()
    with scanner_for(key) as scanner:
        store = KeyStore("mlock", slab_slots=8)
        handle = store.put(key)  # wipes ``key``
        assert scanner.count() == 0  # not readable: the slab is PROT_NONE while idle
        assert scanner.count(include_protected=True) == 1  # the hot slot
        assert handle.use(lambda _view: scanner.count()) == 1  # readable inside the window
        cipher = handle.use(AESGCM)
        live_schedules = scanner.count()
        del cipher
        assert scanner.count() == 0  # OpenSSL cleansed its contexts on free
        store.close()
        assert scanner.count(include_protected=True) == 0
    # AES-NI key schedules begin with the raw key: one per cipher context (encrypt, decrypt).
    assert live_schedules in (0, 2)


def test_encrypted_store_keeps_no_plaintext_at_rest() -> None:
    key = random_key()
    with scanner_for(key) as scanner:
        store = KeyStore("encrypted", slab_slots=8)
        handle = store.put(key)
        assert scanner.count(include_protected=True) == 0
        assert handle.use(lambda _view: scanner.count()) == 1
        assert scanner.count(include_protected=True) == 0  # the slot was wiped after use
        store.close()
