"""A protected buffer: locked, undumpable, guard-paged pages that are inaccessible while idle.

Layout of one mapping (``|`` = page boundary)::

    | guard (PROT_NONE) | canary ... canary DATA | guard (PROT_NONE) |

The data ends exactly at the trailing guard page, so writing even one byte past the end faults;
the canary fills the space before the data, so an underflow is caught when it is checked (on
every window opening and on close). Between uses the inner pages are ``PROT_NONE``: reading a
key needs an explicit access window, counted so that concurrent readers never fault each other.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from asherah.hazmat.memory import _libc
from asherah.hazmat.memory._errors import CanaryError, SecureMemoryError
from asherah.hazmat.memory._limits import memlock_error

CANARY_SIZE = 16
_RW = _libc.PROT_READ | _libc.PROT_WRITE


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def _canary_fill(canary: bytes, region: int) -> bytes:
    """The canary repeated over ``region`` bytes so that its last bytes touch the data."""
    return (canary * (region // CANARY_SIZE + 1))[-region:]


def release_view(view: memoryview) -> None:
    """Release a window's view; an export still alive means a caller kept the memory."""
    try:
        view.release()
    except BufferError:
        raise SecureMemoryError(
            "a view of protected memory was still exported after its window closed; use it "
            "only inside the call"
        ) from None


class ProtectedBuffer:
    """``size`` bytes of protected memory; read or write it only inside :meth:`read`/:meth:`write`.

    ``lock=False`` skips ``mlock`` (the pages may then be swapped) but keeps every other
    protection; the ``encrypted`` key-store mode uses it where ``RLIMIT_MEMLOCK`` is tiny.
    ``protect_idle=False`` leaves the pages read-only (not ``PROT_NONE``) between windows: a
    read then costs no system call, at the price of stray reads no longer faulting.
    """

    __slots__ = (
        "__weakref__",
        "_base",
        "_canary",
        "_canary_address",
        "_canary_ref",
        "_closed",
        "_data",
        "_idle",
        "_inner",
        "_inner_len",
        "_memcmp",
        "_mprotect",
        "_prot",
        "_readers",
        "_ro_view",
        "_rw_view",
        "_total",
        "_writers",
        "accesses",
        "lock",
        "locked",
        "size",
    )

    def __init__(
        self,
        size: int,
        *,
        lock: bool = True,
        canary: bool = True,
        protect_idle: bool = True,
        initialise: Callable[[ProtectedBuffer], None] | None = None,
    ) -> None:
        """``initialise(buffer)``, if given, runs once while the new pages are still writable
        (write at :attr:`address`), before they go idle: the same as a first :meth:`write`
        window without its two ``mprotect`` calls. If it raises, the buffer is wiped and
        released."""
        if size <= 0:
            raise ValueError("a protected buffer needs a positive size")
        page = _libc.PAGE_SIZE
        self.size = size
        self._closed = True  # until every step below has succeeded
        self._inner_len = _round_up(size + (CANARY_SIZE if canary else 0), page)
        self._total = self._inner_len + 2 * page
        # Mapped inaccessible, then only the inner pages opened: the guard pages never are
        # (one mprotect instead of one per guard page).
        self._base = _libc.mmap_anonymous(self._total, _libc.PROT_NONE)
        self._inner = self._base + page
        self._data = self._inner + self._inner_len - size
        self.locked = False
        try:
            _libc.mprotect(self._inner, self._inner_len, _RW)
            if lock:
                code = _libc.mlock(self._inner, self._inner_len)
                if code:
                    raise memlock_error(code, self._inner_len)
                self.locked = True
            _libc.madvise(self._inner, self._inner_len, _libc.MADV_DONTDUMP)
        except BaseException:
            if self.locked:
                _libc.munlock(self._inner, self._inner_len)
            _libc.munmap(self._base, self._total)
            raise
        self._canary: bytes | None = None
        self._canary_ref: ctypes.Array[ctypes.c_char] | None = None
        if canary:
            self._canary = os.urandom(CANARY_SIZE)
            self._canary_ref = ctypes.create_string_buffer(self._canary, CANARY_SIZE)
            self._canary_address = ctypes.addressof(self._canary_ref)
            region = self._data - self._inner
            ctypes.memmove(self._inner, _canary_fill(self._canary, region), region)
        array = (ctypes.c_char * size).from_address(self._data)
        self._rw_view = memoryview(array).cast("B")
        self._ro_view = self._rw_view.toreadonly()
        self.lock = threading.Lock()
        self._mprotect = _libc.libc().mprotect
        self._memcmp = _libc.libc().memcmp
        self._readers = 0
        self._writers = 0
        self.accesses = 0
        self._idle = _libc.PROT_NONE if protect_idle else _libc.PROT_READ
        self._prot = _RW
        self._closed = False
        if initialise is not None:
            try:
                initialise(self)
            except BaseException:
                self.close()
                raise
        self._set_protection()

    @classmethod
    def from_buffer(
        cls, source: bytearray | memoryview, *, lock: bool = True, canary: bool = True
    ) -> ProtectedBuffer:
        """Copy ``source`` into a new protected buffer, then zero ``source``."""
        address, length = _libc.buffer_address(source)
        buffer = cls(length, lock=lock, canary=canary)
        with buffer.write():
            ctypes.memmove(buffer._data, address, length)
        _libc.wipe(source)
        return buffer

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("locked" if self.locked else "unlocked")
        return f"ProtectedBuffer(size={self.size}, {state})"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def address(self) -> int:
        """Where the data starts (for ctypes callers and tests); valid only inside a window."""
        return self._data

    @property
    def mapped_bytes(self) -> int:
        """Inner pages plus the two guard pages: what this buffer costs in address space."""
        return self._total

    @property
    def locked_bytes(self) -> int:
        return self._inner_len if self.locked else 0

    def read(self) -> contextlib.AbstractContextManager[memoryview]:
        """A read-only view of the data, valid only inside the ``with`` block."""
        return self._window(write=False)

    def write(self) -> contextlib.AbstractContextManager[memoryview]:
        """A writable view of the data, valid only inside the ``with`` block."""
        return self._window(write=True)

    @contextmanager
    def _window(self, *, write: bool) -> Iterator[memoryview]:
        """One access window around a fresh view, released before the window closes."""
        with self.lock:
            self.enter(write=write)
        view = (self._rw_view if write else self._ro_view)[:]
        try:
            yield view
        finally:
            try:
                release_view(view)
            finally:
                with self.lock:
                    self.leave(write=write)

    # The methods below are the window itself; the caller holds ``self.lock``. The key store
    # calls them directly so a cached-key use costs one lock round trip, not two, and the read
    # pair is spelled out because it is the hot path (two ``mprotect`` calls dominate it).

    def enter(self, *, write: bool) -> None:
        """Open (or widen) the access window; caller holds ``self.lock``."""
        if write:
            self._enter_write()
        else:
            self.enter_read()

    def leave(self, *, write: bool) -> None:
        """Close (or narrow) the window; caller holds ``self.lock``."""
        if write:
            self._writers -= 1
            self._set_protection()
        else:
            self.leave_read()

    def enter_read(self) -> None:
        if self._closed:
            raise SecureMemoryError("protected buffer is closed")
        self.accesses += 1
        self._readers += 1
        if self._prot == _libc.PROT_NONE:
            try:
                self._set_protection()
            except BaseException:
                self._readers -= 1
                self._set_protection()
                raise

    def leave_read(self) -> None:
        self._readers -= 1
        if not self._readers and not self._writers:
            self._set_protection()

    def _enter_write(self) -> None:
        if self._closed:
            raise SecureMemoryError("protected buffer is closed")
        self.accesses += 1
        self._writers += 1
        try:
            self._set_protection()
        except BaseException:
            self._writers -= 1
            self._set_protection()
            raise

    def view(self, offset: int, length: int, *, write: bool) -> memoryview:
        """A fresh sub-view for one window; release it before leaving the window."""
        base = self._rw_view if write else self._ro_view
        return base[offset : offset + length]

    def _set_protection(self) -> None:
        want = _RW if self._writers else (_libc.PROT_READ if self._readers else self._idle)
        if want == self._prot:
            return
        opening = self._prot == self._idle
        if self._mprotect(self._inner, self._inner_len, want) != 0:
            _libc.raise_errno("mprotect")
        self._prot = want
        if opening and self._canary is not None and not self._edge_intact():
            raise CanaryError(
                "protected buffer canary overwritten: something wrote before the start of the "
                "buffer (memory corruption); refusing to use it"
            )

    def _edge_intact(self) -> bool:
        compared: int = self._memcmp(self._data - CANARY_SIZE, self._canary_address, CANARY_SIZE)
        return compared == 0

    def close(self) -> None:
        """Wipe with ``memset``, then ``munlock`` and ``munmap``; idempotent.

        A damaged canary is reported (``CanaryError``) only after the memory is wiped and
        unmapped, so a corruption never leaves key bytes behind.
        """
        with self.lock:
            self.close_locked()

    def close_locked(self) -> None:
        """:meth:`close` for a caller that already holds ``self.lock``."""
        if self._closed:
            return
        if self._readers or self._writers:
            raise SecureMemoryError("protected buffer is still in use")
        self._closed = True
        self._ro_view.release()
        self._rw_view.release()
        _libc.mprotect(self._inner, self._inner_len, _RW)
        self._prot = _RW
        intact = True
        if self._canary is not None:
            region = self._data - self._inner
            intact = ctypes.string_at(self._inner, region) == _canary_fill(self._canary, region)
        ctypes.memset(self._inner, 0, self._inner_len)
        if self.locked:
            _libc.munlock(self._inner, self._inner_len)
        _libc.munmap(self._base, self._total)
        if not intact:
            raise CanaryError(
                "protected buffer canary overwritten: something wrote before the start of the "
                "buffer (memory corruption); the buffer was wiped and released"
            )

    def __del__(self) -> None:
        # Last resort for a buffer nobody closed: wipe and unmap it anyway. Errors cannot be
        # raised from a finaliser, and the memory is released either way.
        if getattr(self, "_closed", True):
            return
        with contextlib.suppress(Exception):  # nothing can be raised from a finaliser
            self.close()
