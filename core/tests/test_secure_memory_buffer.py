"""Protected buffers: guard pages fault, canaries catch underflows, memory is wiped and locked."""

from __future__ import annotations

import ctypes
import pickle
import signal
import threading

import pytest

from asherah.hazmat.memory import (
    PAGE_SIZE,
    CanaryError,
    ProtectedBuffer,
    SecureMemoryError,
    _libc,
    locked_bytes,
)
from testsupport.child import run_python
from testsupport.procfs import vm_flags


def assert_segfaults(script: str, reached: str, not_reached: str) -> None:
    """``script``, in a fresh interpreter (a fault must not take pytest down), prints
    ``reached``, then dies of SIGSEGV before it can print ``not_reached``."""
    child = run_python(script)
    assert reached in child.stdout, child.stderr
    assert not_reached not in child.stdout
    assert child.returncode == -signal.SIGSEGV


def test_write_one_byte_past_the_end_hits_the_guard_page() -> None:
    assert_segfaults(
        """
        import ctypes
        from asherah.hazmat.memory import ProtectedBuffer
        buf = ProtectedBuffer(32)
        with buf.write():
            ctypes.memset(buf.address + buf.size - 1, 0x41, 1)
            print("last byte written", flush=True)
            ctypes.memset(buf.address + buf.size, 0x41, 1)
        print("survived the overflow", flush=True)
        """,
        reached="last byte written",
        not_reached="survived",
    )


def test_write_before_the_canary_region_hits_the_leading_guard_page() -> None:
    assert_segfaults(
        f"""
        import ctypes
        from asherah.hazmat.memory import ProtectedBuffer
        buf = ProtectedBuffer(32)
        first_inner_byte = buf.address - ({PAGE_SIZE} - 32)
        with buf.write():
            ctypes.memset(first_inner_byte, 0x41, 1)
            print("canary region writable", flush=True)
            ctypes.memset(first_inner_byte - 1, 0x41, 1)
        print("survived the underflow", flush=True)
        """,
        reached="canary region writable",
        not_reached="survived",
    )


def test_reading_an_idle_buffer_faults() -> None:
    assert_segfaults(
        """
        import ctypes
        from asherah.hazmat.memory import ProtectedBuffer
        buf = ProtectedBuffer(32)
        with buf.read():
            ctypes.string_at(buf.address, 32)
            print("read inside the window", flush=True)
        ctypes.string_at(buf.address, 32)
        print("read outside the window", flush=True)
        """,
        reached="read inside the window",
        not_reached="outside",
    )


def _flip_byte_before_data(buf: ProtectedBuffer) -> None:
    """Overwrite the canary byte next to the data through ctypes (inside a write window)."""
    with buf.write():
        target = buf.address - 1
        current = ctypes.string_at(target, 1)[0]
        ctypes.memset(target, current ^ 0xFF, 1)


def test_overwritten_canary_is_detected_on_free() -> None:
    buf = ProtectedBuffer(32)
    _flip_byte_before_data(buf)
    with pytest.raises(CanaryError, match="canary overwritten"):
        buf.close()
    assert buf.closed  # wiped and unmapped all the same


def test_overwritten_canary_is_detected_on_the_next_access() -> None:
    buf = ProtectedBuffer(48)
    _flip_byte_before_data(buf)
    with pytest.raises(CanaryError, match="refusing to use it"), buf.read():
        pass  # pragma: no cover - the window must not open
    with pytest.raises(CanaryError):
        buf.close()


def test_canary_far_from_the_data_is_checked_on_free() -> None:
    buf = ProtectedBuffer(32)
    with buf.write():
        first_inner_byte = buf.address - (PAGE_SIZE - 32)
        ctypes.memset(first_inner_byte, ctypes.string_at(first_inner_byte, 1)[0] ^ 0xFF, 1)
    with buf.read() as view:  # the fast per-access check looks only next to the data
        assert len(view) == 32
    with pytest.raises(CanaryError):
        buf.close()


def test_buffer_without_canary_closes_cleanly() -> None:
    buf = ProtectedBuffer(PAGE_SIZE, canary=False)
    with buf.write() as view:
        view[:] = b"\x5a" * PAGE_SIZE
    buf.close()
    assert buf.closed


def test_freed_buffer_reads_back_as_zeros_before_unmap(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = ProtectedBuffer(100)
    with buf.write() as view:
        view[:] = b"\xa5" * 100
    with buf.read() as view:
        assert bytes(view) == b"\xa5" * 100
    seen: list[bytes] = []
    real_munmap = _libc.munmap

    def spying_munmap(address: int, length: int) -> None:
        inner = ctypes.string_at(address + PAGE_SIZE, length - 2 * PAGE_SIZE)
        seen.append(inner)
        real_munmap(address, length)

    monkeypatch.setattr(_libc, "munmap", spying_munmap)
    buf.close()
    assert len(seen) == 1
    assert seen[0] == bytes(len(seen[0]))  # data, canary and padding: every byte zero
    assert len(seen[0]) == PAGE_SIZE


def test_vmlck_shows_the_pages_locked_and_unlocked() -> None:
    before = locked_bytes()
    assert before is not None
    buf = ProtectedBuffer(3 * PAGE_SIZE)  # + canary: four locked pages
    try:
        assert buf.locked
        assert buf.locked_bytes == 4 * PAGE_SIZE
        assert locked_bytes() == before + 4 * PAGE_SIZE
    finally:
        buf.close()
    assert locked_bytes() == before


def test_unlocked_buffer_locks_nothing() -> None:
    before = locked_bytes()
    buf = ProtectedBuffer(64, lock=False)
    try:
        assert not buf.locked
        assert locked_bytes() == before
    finally:
        buf.close()


def test_kernel_reports_the_data_pages_locked_and_excluded_from_dumps() -> None:
    buf = ProtectedBuffer(32)
    try:
        flags = vm_flags(buf.address)
        assert {"lo", "dd"} <= flags  # VM_LOCKED, VM_DONTDUMP
        assert "rd" not in flags  # PROT_NONE while idle
        with buf.read():
            assert "rd" in vm_flags(buf.address)
        guard = vm_flags(buf.address + buf.size)
        assert "rd" not in guard
        assert "lo" not in guard
    finally:
        buf.close()


def test_from_buffer_copies_and_wipes_the_source() -> None:
    source = bytearray(b"0123456789abcdef" * 2)
    buf = ProtectedBuffer.from_buffer(source)
    try:
        assert source == bytearray(32)
        with buf.read() as view:
            assert view.readonly
            assert bytes(view) == b"0123456789abcdef" * 2
    finally:
        buf.close()


def test_views_die_with_their_window() -> None:
    buf = ProtectedBuffer(16)
    try:
        with buf.write() as view:
            view[:4] = b"abcd"
        with pytest.raises(ValueError, match="released"):
            _ = view[0]
    finally:
        buf.close()


def test_window_refuses_after_close_and_close_refuses_while_open() -> None:
    buf = ProtectedBuffer(16)
    with buf.read(), pytest.raises(SecureMemoryError, match="in use"):
        buf.close()
    buf.close()
    buf.close()  # idempotent
    with pytest.raises(SecureMemoryError, match="closed"), buf.read():
        pass  # pragma: no cover


def test_escaped_export_is_reported_and_the_window_still_closes() -> None:
    buf = ProtectedBuffer(16)
    kept: list[pickle.PickleBuffer] = []
    try:
        with pytest.raises(SecureMemoryError, match="exported"), buf.read() as view:
            kept.append(pickle.PickleBuffer(view))
        kept.pop().release()
        with buf.read() as view:  # counters were restored: a new window works
            assert len(view) == 16
    finally:
        buf.close()


def test_concurrent_readers_share_one_window() -> None:
    buf = ProtectedBuffer(32)
    with buf.write() as view:
        view[:] = bytes(range(32))
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def reader() -> None:
        try:
            barrier.wait()
            for _ in range(300):
                with buf.read() as view:
                    if view[31] != 31:
                        raise AssertionError("wrong byte")
        except BaseException as exc:  # collected and re-raised by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert buf.accesses == 1 + 4 * 300
        assert "rd" not in vm_flags(buf.address)  # closed again once every reader left
    finally:
        buf.close()


def test_invalid_size_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        ProtectedBuffer(0)


def test_repr_shows_no_content() -> None:
    buf = ProtectedBuffer.from_buffer(bytearray(b"k" * 32))
    try:
        assert repr(buf) == "ProtectedBuffer(size=32, locked)"
    finally:
        buf.close()
