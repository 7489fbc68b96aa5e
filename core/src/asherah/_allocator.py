"""Keep glibc from returning freed heap memory to the kernel after every large record.

An encrypt or decrypt of a record of a mebibyte or more allocates a few megabytes of
``bytes``/``str`` (ciphertext, base64, the record) and frees most of them before it returns.
With glibc's defaults the freed top of the heap is handed back to the kernel (trimmed) each
time, and the next call faults every page in again: measured here, a 1 MiB encrypt in a plain
loop takes 1.9 ms instead of 0.18 ms, and page faults serialise threads on the kernel's
memory-map lock. ``M_TOP_PAD`` tells glibc to keep that much free memory at the top of each
heap (and to grow it by as much when it must), so the pages stay mapped between calls; see
``_MMAP_THRESHOLD`` for the other half.

Process-wide and set once (raised, never lowered, by later factories), only on glibc, and never
when the operator tuned malloc through its environment variables or ``GLIBC_TUNABLES``. The cost is
up to that many bytes of freed memory kept resident per heap after a burst of large records.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import threading

_log = logging.getLogger("asherah")

# glibc's <malloc.h>
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
#: Setting any malloc parameter freezes glibc's adaptive mmap threshold at its current value,
#: which early in a process is 128 KiB: every large buffer would then be a fresh mmap, faulted
#: in and unmapped per call. So the threshold is fixed here too, at glibc's own adaptive
#: ceiling on 64-bit (32 MiB): buffers below it come from the heap the pad keeps mapped.
_MMAP_THRESHOLD = 32 * 1024 * 1024
_ENVIRONMENT = ("MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
_lock = threading.Lock()
_applied = 0


def _operator_tuned() -> bool:
    """Whether the environment already sets glibc's malloc parameters (then they stand)."""
    return any(name in os.environ for name in _ENVIRONMENT) or "glibc.malloc." in os.environ.get(
        "GLIBC_TUNABLES", ""
    )


def keep_top_pad(size: int) -> bool:
    """Ask glibc to keep ``size`` free bytes at the top of its heaps (and serve buffers below
    32 MiB from them); True when applied."""
    global _applied
    if 0 < size <= _applied:
        # Already in effect (so this is glibc, and the operator had not tuned malloc when it
        # was applied; glibc reads its environment only at start-up): no environment look-ups,
        # no libc or lock round trip, on every factory start after the first.
        return True
    if size <= 0 or _operator_tuned():
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    with _lock:
        if size <= _applied:
            return True
        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):
            return False
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt.restype = ctypes.c_int
        if (
            mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) != 1
            or mallopt(_M_TOP_PAD, min(size, 2**31 - 1)) != 1
        ):
            _log.debug("mallopt was refused; large records may fault their pages in per call")
            return False
        _applied = size
        return True
