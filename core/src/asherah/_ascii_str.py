"""Long ASCII strings read and built in place, without a GIL-held copy (CPython only).

A large record's base64 is a slice of the record string on decrypt and most of the record on
encrypt: 1.4 MB for a 1 MiB payload. Copying it holds the GIL (two threads then wait on each
other) and a fresh allocation that size can fault every page in. CPython keeps the characters
of a compact ASCII string (PEP 393) in one block right after the object header, so:

- :func:`ascii_slice` gives a long slice as a read-only ``memoryview`` of that block; base64
  decoders read it as they read ``bytes``. The view does not keep the string alive: it is for
  one call that holds the string anyway (its own argument) and must not outlive it.
- :func:`join_ascii` allocates the result uninitialised (``PyUnicode_New``, as C code builds a
  string), writes the short parts through a writable view and copies the long middle with
  ``ctypes.memmove``, which releases the GIL for the call. The new string is not visible to any
  other code until it is returned.

The layout is checked per string (the size a compact ASCII string reports) and once at import
against real strings; where a check fails, or on another Python, both simply copy.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

#: Slices shorter than this are copied. A view costs about as much as copying 24 KiB, and a
#: copy leaves the characters warm in cache for the decoder: in the benchmark's rotation of 64
#: records a 64 KiB payload (87,400 characters) decrypted ~0.5 us faster copied, while 1 MiB
#: ones were 25-40 us faster through a view (and the copy holds the GIL).
VIEW_FROM = 128 * 1024
#: Payload size from which a large encrypt joins its record here: below it the copy is too
#: short to pay for the calls (256 KiB: 5% slower for one thread, no gain for two).
JOIN_FROM = 512 * 1024

_PyBUF_READ = 0x100
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
    # Read a string built at run time (not interned, compact), then build one in place.
    probe = f"ascii view probe {id(from_memory)}"
    if sys.getsizeof(probe) != _HEADER + len(probe) + 1:
        return None  # pragma: no cover - an unknown layout
    if bytes(from_memory(id(probe) + _HEADER, len(probe), _PyBUF_READ)) != probe.encode():
        return None  # pragma: no cover - an unknown layout
    built: str = new(8, _MAX_ASCII)
    if type(built) is not str or sys.getsizeof(built) != _HEADER + 9:
        return None  # pragma: no cover - an unknown layout
    from_memory(id(built) + _HEADER, 8, _PyBUF_WRITE)[:] = b"ascii ok"
    if built != "ascii ok":
        return None  # pragma: no cover - an unknown layout
    maker: _Maker = new
    viewer: _Viewer = from_memory
    return maker, viewer


_found = _functions()


def _compact_ascii(text: str) -> bool:
    return text.isascii() and sys.getsizeof(text) == _HEADER + len(text) + 1


def ascii_slice(text: str, start: int, stop: int) -> str | memoryview:
    """``text[start:stop]`` (``0 <= start <= stop <= len(text)``): for a long slice of a
    compact ASCII string, a read-only view of ``text``'s own characters (valid only while
    ``text`` is); otherwise a copy."""
    if stop - start >= VIEW_FROM and _found is not None and _compact_ascii(text):
        return _found[1](id(text) + _HEADER + start, stop - start, _PyBUF_READ)
    return text[start:stop]


def join_ascii(head: str, middle: str, tail: str) -> str:
    """``head + middle + tail`` for ASCII strings, the copy of ``middle`` made outside the GIL
    where possible."""
    if (
        _found is None
        or not middle  # (an empty result would be the shared empty string: never write to it)
        or not (head.isascii() and tail.isascii() and _compact_ascii(middle))
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
    """Whether long slices are views and long joins copy outside the GIL here (CPython with
    the expected string layout)."""
    return _found is not None
