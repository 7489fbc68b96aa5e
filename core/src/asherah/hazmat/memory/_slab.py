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

    __slots__ = (
        "_end",
        "_freed",
        "_next",
        "buffer",
        "coffer_left",
        "coffer_right",
        "coffer_scratch",
        "slots",
    )

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
        # Slots given back are reused first (last in, first out), then the never-used ones from
        # the lowest offset up: the order a list of every free offset would give, without
        # building one per slab (256 int objects, ~3 us of every factory's start).
        self._freed: list[int] = []
        self._next = 2 * SLOT_SIZE  # the lowest never-used key slot
        self._end = (slots + 2) * SLOT_SIZE

    def _fill_coffer_halves(self, buffer: ProtectedBuffer) -> None:
        """Both coffer halves from the kernel CSPRNG, written while the new pages are still
        writable (no window of their own), straight into the slab: no copy elsewhere."""
        for offset in (self.coffer_left, self.coffer_right):
            _libc.random_fill_at(buffer.address + offset, SLOT_SIZE)

    @property
    def free_slots(self) -> int:
        return len(self._freed) + (self._end - self._next) // SLOT_SIZE

    def take(self) -> int | None:
        """A free slot's offset, or ``None`` when every slot is occupied."""
        if self._freed:
            return self._freed.pop()
        offset = self._next
        if offset >= self._end:
            return None
        self._next = offset + SLOT_SIZE
        return offset

    def wipe(self, offset: int) -> None:
        """Zero one slot; the caller holds a write window."""
        ctypes.memset(self.buffer.address + offset, 0, SLOT_SIZE)

    def give_back(self, offset: int) -> None:
        """Zero a slot and return it to the free list; the caller holds a write window."""
        self.wipe(offset)
        self._freed.append(offset)
