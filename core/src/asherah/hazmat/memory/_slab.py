"""Tier 1: one protected buffer cut into 32-byte slots.

Slot 0 and the last slot hold the two coffer halves, random from the moment the slab exists (as
far apart as the slab allows, so with two or more pages they never share a page), slot 1 is the
coffer's scratch slot, and the rest hold decrypted keys. The whole slab shares one access
window: opening it is one ``mprotect``.
"""

from __future__ import annotations

import ctypes

from asherah.hazmat.memory import _libc
from asherah.hazmat.memory._buffer import ProtectedBuffer

SLOT_SIZE = 32
_RESERVED = 3  # coffer left, coffer scratch, coffer right


class Slab:
    """Fixed-size slot allocator over a :class:`ProtectedBuffer`; the caller serialises access."""

    __slots__ = ("_free", "buffer", "coffer_left", "coffer_right", "coffer_scratch", "slots")

    def __init__(self, slots: int, *, lock: bool, protect_idle: bool = True) -> None:
        if slots < 1:
            raise ValueError("a slab needs at least one key slot")
        self.slots = slots
        self.coffer_left = 0
        self.coffer_scratch = SLOT_SIZE
        self.coffer_right = (slots + _RESERVED - 1) * SLOT_SIZE
        self.buffer = ProtectedBuffer(
            (slots + _RESERVED) * SLOT_SIZE,
            lock=lock,
            canary=True,
            protect_idle=protect_idle,
            initialise=self._fill_coffer_halves,
        )
        # Popped from the end: the lowest offsets are used first. (A range, not a comprehension:
        # the 256 default slots cost a cold factory 5 us that way.)
        self._free = list(range((slots + 1) * SLOT_SIZE, SLOT_SIZE, -SLOT_SIZE))

    def _fill_coffer_halves(self, buffer: ProtectedBuffer) -> None:
        """Both coffer halves from the kernel CSPRNG, written while the new pages are still
        writable (no window of their own), straight into the slab: no copy elsewhere."""
        for offset in (self.coffer_left, self.coffer_right):
            _libc.random_fill_at(buffer.address + offset, SLOT_SIZE)

    @property
    def free_slots(self) -> int:
        return len(self._free)

    def take(self) -> int | None:
        """A free slot's offset, or ``None`` when every slot is occupied."""
        return self._free.pop() if self._free else None

    def wipe(self, offset: int) -> None:
        """Zero one slot; the caller holds a write window."""
        ctypes.memset(self.buffer.address + offset, 0, SLOT_SIZE)

    def give_back(self, offset: int) -> None:
        """Zero a slot and return it to the free list; the caller holds a write window."""
        self.wipe(offset)
        self._free.append(offset)
