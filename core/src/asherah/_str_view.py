"""Read a slice of a large ASCII ``str`` without copying it (CPython only).

Decrypting a large record base64-decodes its ``Data`` field, a slice of the record string.
Cutting that slice copies the whole payload's base64 (1.4 MB for a 1 MiB record) while holding
the GIL, and a fresh allocation that size can fault every page in. CPython keeps the characters
of a compact ASCII string (PEP 393) in one block right after the object header, so a read-only
``memoryview`` of that block is the slice without the copy, and base64 decoders read it as
they read ``bytes``.

The view does not keep the string alive: it is for one call that holds the string anyway
(the caller's own argument), and must not outlive it. The layout is checked per string (the
size a compact ASCII string reports) and once at import against a real string; where either
check fails, or on another Python, :func:`ascii_slice` simply copies.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

#: Slices shorter than this are copied: making a view costs about as much as copying ~24 KiB.
VIEW_FROM = 32 * 1024

_PyBUF_READ = 0x100
#: Where a compact ASCII string's characters start, from the object's address.
_HEADER = sys.getsizeof("") - 1


def _memory_view_maker() -> Callable[[int, int, int], memoryview] | None:
    if sys.implementation.name != "cpython":
        return None
    try:
        from_memory = ctypes.pythonapi.PyMemoryView_FromMemory
    except AttributeError:  # pragma: no cover - CPython always has it
        return None
    from_memory.restype = ctypes.py_object
    from_memory.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
    probe = f"ascii view probe {id(from_memory)}"  # built at run time: not interned, compact
    if sys.getsizeof(probe) != _HEADER + len(probe) + 1:
        return None  # pragma: no cover - an unknown layout
    view: memoryview = from_memory(id(probe) + _HEADER, len(probe), _PyBUF_READ)
    if bytes(view) != probe.encode("ascii"):
        return None  # pragma: no cover - an unknown layout
    maker: Callable[[int, int, int], memoryview] = from_memory
    return maker


_from_memory = _memory_view_maker()


def ascii_slice(text: str, start: int, stop: int) -> str | memoryview:
    """``text[start:stop]`` (``0 <= start <= stop <= len(text)``): for a long slice of a
    compact ASCII string, a read-only view of ``text``'s own characters (valid only while
    ``text`` is); otherwise a copy."""
    if (
        stop - start >= VIEW_FROM
        and _from_memory is not None
        and text.isascii()
        and sys.getsizeof(text) == _HEADER + len(text) + 1
    ):
        return _from_memory(id(text) + _HEADER + start, stop - start, _PyBUF_READ)
    return text[start:stop]


def available() -> bool:
    """Whether long slices are views here (CPython with the expected string layout)."""
    return _from_memory is not None
