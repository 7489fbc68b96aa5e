"""Protected memory for keys, through ctypes over libc. **Hazardous materials.**

What lives here: :class:`ProtectedBuffer` (mmap'd, mlock'd, ``MADV_DONTDUMP``, guard pages,
canaries, ``PROT_NONE`` while idle, wiped on free), :func:`harden_process` (no core dumps, not
dumpable), the tiered :class:`KeyStore` the engine keeps its system and intermediate keys in, and
:class:`MemoryScanner`, which counts copies of a byte pattern in this process's memory.

A view handed out by a buffer or a key handle is valid only inside its ``with`` block or
callback: touching it afterwards reads ``PROT_NONE`` memory and kills the process with SIGSEGV.
What Python cannot protect (immutable ``bytes`` copies, ``cryptography``'s own key schedules,
buffers the caller keeps) is written down in ``docs/security.md``.
"""

from __future__ import annotations

from asherah.hazmat.memory._aead import decrypt_into, decrypt_into_with
from asherah.hazmat.memory._buffer import CANARY_SIZE, ProtectedBuffer
from asherah.hazmat.memory._errors import (
    CanaryError,
    MemlockLimitError,
    SecureMemoryError,
    SecureMemoryUnavailableError,
)
from asherah.hazmat.memory._hardening import HardeningStatus, harden_process, hardening_status
from asherah.hazmat.memory._libc import PAGE_SIZE, random_fill, unsupported_reason, wipe
from asherah.hazmat.memory._limits import locked_bytes, memlock_limit
from asherah.hazmat.memory._scan import MemoryScanner, count_in_memory
from asherah.hazmat.memory._store import (
    DEFAULT_SLAB_SLOTS,
    KEY_SIZE,
    MODES,
    EventCallback,
    KeyHandle,
    KeyStore,
    KeyStoreStats,
    Mode,
    default_hot_cache_size,
    default_mode,
)


def random_key() -> bytearray:
    """A fresh 32-byte key in a wipeable ``bytearray``, never passing through ``bytes``."""
    key = bytearray(KEY_SIZE)
    random_fill(key)
    return key


__all__ = [
    "CANARY_SIZE",
    "DEFAULT_SLAB_SLOTS",
    "KEY_SIZE",
    "MODES",
    "PAGE_SIZE",
    "CanaryError",
    "EventCallback",
    "HardeningStatus",
    "KeyHandle",
    "KeyStore",
    "KeyStoreStats",
    "MemlockLimitError",
    "MemoryScanner",
    "Mode",
    "ProtectedBuffer",
    "SecureMemoryError",
    "SecureMemoryUnavailableError",
    "count_in_memory",
    "decrypt_into",
    "decrypt_into_with",
    "default_hot_cache_size",
    "default_mode",
    "harden_process",
    "hardening_status",
    "locked_bytes",
    "memlock_limit",
    "random_fill",
    "random_key",
    "unsupported_reason",
    "wipe",
]
