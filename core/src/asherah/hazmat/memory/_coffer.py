"""The coffer key: the AES-256 key that seals every enclave, stored as two slab slots.

``key = SHA-256(left) XOR right``. Both halves are random, so either one alone is uniformly
random and says nothing about the key; reading the key back needs all of ``left`` (any bit
changes the whole hash) and all of ``right``. The key itself exists only in the scratch slot,
for the length of one seal or open, and is zeroed right after.
"""

from __future__ import annotations

import hashlib

from asherah.hazmat.memory import _libc
from asherah.hazmat.memory._slab import SLOT_SIZE, Slab


class Coffer:
    """Derives the coffer key into the scratch slot; every method needs an open write window."""

    __slots__ = ("_slab",)

    def __init__(self, slab: Slab) -> None:
        """The slab filled both halves with fresh randomness when it was created (so the key
        is random too); the coffer only derives and clears."""
        self._slab = slab

    def derive(self, view: memoryview) -> memoryview:
        """Write the key into the scratch slot and return a view of it; call :meth:`clear` after.

        ``view`` is the slab's writable window view.
        """
        slab = self._slab
        left, right, scratch = slab.coffer_left, slab.coffer_right, slab.coffer_scratch
        with view[left : left + SLOT_SIZE] as left_view:
            digest = hashlib.sha256(left_view).digest()
        try:
            for i in range(SLOT_SIZE):  # small ints are shared objects: no key bytes escape
                view[scratch + i] = digest[i] ^ view[right + i]
        finally:
            _libc.wipe_bytes_object(digest)
        return view[scratch : scratch + SLOT_SIZE]

    def clear(self) -> None:
        """Zero the scratch slot; the caller still holds the write window."""
        self._slab.wipe(self._slab.coffer_scratch)
