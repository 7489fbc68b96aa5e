"""ctypes bindings to the few libc calls secure memory needs, loaded once and only on Linux.

Everything else in this package goes through these functions, so a platform that lacks them
fails in one place with one clear message instead of deep inside a ctypes call.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys
from typing import Any

from asherah.hazmat.memory._errors import SecureMemoryError, SecureMemoryUnavailableError

# Linux generic ABI values, identical on x86-64 and aarch64 (the two platforms we allow).
PROT_NONE = 0x0
PROT_READ = 0x1
PROT_WRITE = 0x2
MAP_PRIVATE = 0x02
MAP_ANONYMOUS = 0x20
MADV_DONTDUMP = 16
PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3

_MAP_FAILED = ctypes.c_void_p(-1).value
_SUPPORTED_MACHINES = frozenset({"x86_64", "amd64", "aarch64", "arm64"})

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def unsupported_reason() -> str | None:
    """Why protected memory cannot work on this platform, or ``None`` when it can."""
    machine = platform.machine().lower()
    if sys.platform != "linux":
        return f"protected memory needs Linux (this is {sys.platform})"
    if machine not in _SUPPORTED_MACHINES:
        return f"protected memory needs x86-64 or aarch64 Linux (this is {machine})"
    return None


class _Libc:
    """The bound functions; built lazily so importing the package never touches libc."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(None, use_errno=True)
        vp, sz, i = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
        self.mmap = _bind(lib, "mmap", vp, [vp, sz, i, i, i, ctypes.c_long])
        self.munmap = _bind(lib, "munmap", i, [vp, sz])
        self.mprotect = _bind(lib, "mprotect", i, [vp, sz, i])
        self.mlock = _bind(lib, "mlock", i, [vp, sz])
        self.munlock = _bind(lib, "munlock", i, [vp, sz])
        self.madvise = _bind(lib, "madvise", i, [vp, sz, i])
        self.memcmp = _bind(lib, "memcmp", i, [vp, vp, sz])
        ul = ctypes.c_ulong
        self.prctl = _bind(lib, "prctl", i, [i, ul, ul, ul, ul])
        self.getrandom = _bind(lib, "getrandom", ctypes.c_ssize_t, [vp, sz, ctypes.c_uint])


def _bind(lib: ctypes.CDLL, name: str, restype: Any, argtypes: list[Any]) -> Any:
    function = getattr(lib, name)
    function.restype = restype
    function.argtypes = argtypes
    return function


_LIBC: _Libc | None = None


def libc() -> _Libc:
    """The bound libc, or :class:`SecureMemoryUnavailableError` off Linux."""
    global _LIBC  # one immutable table of bindings per process
    if _LIBC is None:
        reason = unsupported_reason()
        if reason is not None:
            raise SecureMemoryUnavailableError(
                f"{reason}; use secure_memory = 'none' on this platform"
            )
        _LIBC = _Libc()
    return _LIBC


def raise_errno(call: str) -> None:
    code = ctypes.get_errno()
    raise SecureMemoryError(
        f"{call} failed: {errno.errorcode.get(code, code)} ({os.strerror(code)})"
    )


def mmap_anonymous(length: int, prot: int = PROT_READ | PROT_WRITE) -> int:
    """Map ``length`` bytes of private anonymous memory (read-write unless ``prot`` says
    otherwise); returns the address."""
    address = libc().mmap(None, length, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    if address is None or address == _MAP_FAILED:
        raise_errno("mmap")
    return int(address)


def munmap(address: int, length: int) -> None:
    if libc().munmap(address, length) != 0:
        raise_errno("munmap")


def mprotect(address: int, length: int, prot: int) -> None:
    if libc().mprotect(address, length, prot) != 0:
        raise_errno("mprotect")


def mlock(address: int, length: int) -> int:
    """Lock pages into RAM; returns 0 or the errno so the caller can explain a limit."""
    if libc().mlock(address, length) != 0:
        return ctypes.get_errno()
    return 0


def munlock(address: int, length: int) -> None:
    if libc().munlock(address, length) != 0:
        raise_errno("munlock")


def madvise(address: int, length: int, advice: int) -> None:
    if libc().madvise(address, length, advice) != 0:
        raise_errno("madvise")


def memcmp(a: int, b: int, length: int) -> int:
    return int(libc().memcmp(a, b, length))


def prctl(option: int, arg2: int = 0) -> int:
    result = int(libc().prctl(option, arg2, 0, 0, 0))
    if result < 0:
        raise_errno("prctl")
    return result


def buffer_address(buffer: bytearray | memoryview) -> tuple[int, int]:
    """Address and length of a writable buffer, without copying it."""
    view = memoryview(buffer)
    try:
        length = view.nbytes
        if length == 0:
            return 0, 0
        array = (ctypes.c_char * length).from_buffer(view)
        try:
            return ctypes.addressof(array), length
        finally:
            del array
    finally:
        view.release()


def wipe(buffer: bytearray | memoryview) -> None:
    """Zero a writable buffer in place with ``memset`` (a ctypes call is never optimised away)."""
    address, length = buffer_address(buffer)
    if length:
        ctypes.memset(address, 0, length)


def random_fill(buffer: bytearray | memoryview) -> None:
    """Fill a writable buffer from the kernel CSPRNG directly, with no intermediate ``bytes``.

    ``os.urandom`` returns an immutable ``bytes`` object that lingers in the heap after it is
    freed; ``getrandom(2)`` writes straight into the caller's buffer.
    """
    view = memoryview(buffer)
    try:
        if view.readonly:
            raise TypeError("random_fill needs a writable buffer")
        length = view.nbytes
        if length == 0:
            return
        if unsupported_reason() is not None:
            _random_fill_portable(view)
            return
        array = (ctypes.c_char * length).from_buffer(view)
        try:
            random_fill_at(ctypes.addressof(array), length)
        finally:
            del array
    finally:
        view.release()


def random_fill_at(address: int, length: int) -> None:
    """:func:`random_fill` for memory the caller owns and addresses directly (a protected
    buffer's data inside its write window); Linux only."""
    getrandom = libc().getrandom
    filled = 0
    while filled < length:
        got = getrandom(address + filled, length - filled, 0)
        if got < 0:
            if ctypes.get_errno() == errno.EINTR:
                continue
            raise_errno("getrandom")
        filled += got


def _random_fill_portable(view: memoryview) -> None:
    """``random_fill`` where ``getrandom`` is not bound: ``/dev/urandom``, else ``os.urandom``."""
    try:
        source = open("/dev/urandom", "rb", buffering=0)  # noqa: SIM115 - closed below
    except OSError:  # Windows: only os.urandom exists, and it returns a ``bytes`` copy
        view[:] = os.urandom(view.nbytes)
        return
    with source:
        filled = 0
        while filled < view.nbytes:
            filled += source.readinto(view[filled:]) or 0


def wipe_bytes_object(value: bytes) -> None:
    """Zero the storage of a ``bytes`` object this package created and alone references.

    Used only for fresh results (a ``hashlib`` digest, an ``AESGCM.decrypt`` plaintext) that must
    not outlive their use. ``bytes`` are immutable to Python code; overwriting a private,
    never-shared instance in place is the one way to stop it lingering in freed heap memory.
    """
    if len(value) < 2:  # lengths 0 and 1 are interned singletons: never touch
        return
    # ctypes passes a ``bytes`` argument as the address of its storage.
    ctypes.memset(value, 0, len(value))  # type: ignore[arg-type]
