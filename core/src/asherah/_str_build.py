"""Build a long ASCII ``str`` with its long middle copied outside the GIL (CPython only).

A large encrypt ends by joining the record's short head, the payload's base64 (1.4 MB for a
1 MiB record) and a short tail into one ``str``. An f-string makes that copy holding the GIL,
about 85 us for 1 MiB here: with two threads encrypting large records, the other thread
waits for it, and two threads came out at 1.2 times one thread's throughput. Here the result
is allocated uninitialised (``PyUnicode_New``, as C code builds a string), the short parts are
written through a writable view of its characters, and the long part is copied by ``memmove``
through ``ctypes``, which releases the GIL for the call (1 MiB encrypt, 2 threads: 1.2 -> 1.6
times one thread). The new string is not visible to any other code until it is returned.

The layout is that of :mod:`asherah._str_view` (a compact ASCII string's characters right after
its header), checked once at import against a string built this way; where that fails, or on
another Python, :func:`join_ascii` simply concatenates. It costs ~5 us more than an f-string
for one thread (the ``ctypes`` calls), so only records of :data:`JOIN_FROM` and up use it.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

#: Payload size from which a large encrypt joins its record here: below it the copy is too
#: short to pay for the calls (256 KiB: 5% slower for one thread, no gain for two).
JOIN_FROM = 512 * 1024

_PyBUF_WRITE = 0x200
_MAX_ASCII = 127
#: Where a compact ASCII string's characters start, from the object's address.
_HEADER = sys.getsizeof("") - 1

_Maker = Callable[[int, int], str]
_Viewer = Callable[[int, int, int], memoryview]


def _functions() -> tuple[_Maker, _Viewer] | None:
    if sys.implementation.name != "cpython":
        return None  # pragma: no cover - CPython only
    try:
        new = ctypes.pythonapi.PyUnicode_New
        from_memory = ctypes.pythonapi.PyMemoryView_FromMemory
    except AttributeError:  # pragma: no cover - CPython always has them
        return None
    new.restype = ctypes.py_object
    new.argtypes = (ctypes.c_ssize_t, ctypes.c_uint32)
    from_memory.restype = ctypes.py_object
    from_memory.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
    probe: str = new(8, _MAX_ASCII)
    if type(probe) is not str or sys.getsizeof(probe) != _HEADER + 9:
        return None  # pragma: no cover - an unknown layout
    view: memoryview = from_memory(id(probe) + _HEADER, 8, _PyBUF_WRITE)
    view[:] = b"ascii ok"
    if probe != "ascii ok":
        return None  # pragma: no cover - an unknown layout
    maker: _Maker = new
    viewer: _Viewer = from_memory
    return maker, viewer


_found = _functions()


def join_ascii(head: str, middle: str, tail: str) -> str:
    """``head + middle + tail`` for ASCII strings, the copy of ``middle`` made outside the GIL
    where possible (see the module docstring)."""
    if (
        _found is None
        or not middle  # (an empty result would be the shared empty string: never write to it)
        or not (head.isascii() and middle.isascii() and tail.isascii())
        or sys.getsizeof(middle) != _HEADER + len(middle) + 1
    ):
        return f"{head}{middle}{tail}"
    new, from_memory = _found
    start, stop = len(head), len(head) + len(middle)
    size = stop + len(tail)
    joined = new(size, _MAX_ASCII)
    base = id(joined) + _HEADER
    with from_memory(base, size, _PyBUF_WRITE) as view:
        view[:start] = head.encode("ascii")
        view[stop:] = tail.encode("ascii")
    ctypes.memmove(base + start, id(middle) + _HEADER, len(middle))  # releases the GIL
    return joined


def available() -> bool:
    """Whether joins copy outside the GIL here (CPython with the expected string layout)."""
    return _found is not None
