"""Fresh randomness for the encrypt path, read from the OS in blocks.

Every encrypt needs 56 random bytes (a data-row key and two nonces). A system call per encrypt
costs more than the rest of a small encrypt's bookkeeping, so each thread reads a block of
:data:`SLOTS` such draws at once and hands them out in order. The bytes are the kernel's CSPRNG
output, unchanged: no userspace generator, no reuse.

- Per thread: no lock, and no two threads can ever be handed the same slot.
- Each draw is copied out and its slot zeroed at once: the pool holds only draws not yet
  handed out, never a key in use or a used one.
- Fork-safe: a forked child inherits the parent's memory, so the pool would otherwise repeat
  the parent's future keys and nonces there. ``os.register_at_fork`` bumps a generation
  counter in the child, and a pool from an older generation is refilled before use.
  (A fork made from C without Python's fork hooks is not covered; docs/security.md says so.)
"""

from __future__ import annotations

import os
import threading

from asherah import _keys

#: Bytes per draw: a 32-byte data-row key and two 12-byte nonces.
DRAW_SIZE = 56
#: Draws per system call (a 896-byte block).
SLOTS = 16
_BLOCK = DRAW_SIZE * SLOTS
#: Zeroes copied over a handed-out slot. A ``bytearray`` source is copied directly; a ``bytes``
#: one is first converted into a temporary ``bytearray`` (twice the cost). Never written to.
_ZERO_DRAW = bytearray(DRAW_SIZE)
_generation = 0


class _Pool:
    """One thread's block of unread randomness."""

    __slots__ = ("block", "generation", "position")

    def __init__(self) -> None:
        self.block = bytearray(_BLOCK)
        self.position = _BLOCK  # empty: the first draw fills it
        self.generation = -1


class _PerThread(threading.local):
    def __init__(self) -> None:
        self.pool = _Pool()


_local = _PerThread()


def draw() -> bytearray:
    """56 fresh random bytes in a new ``bytearray`` (the caller wipes what it keeps secret)."""
    pool = _local.pool
    position = pool.position
    block = pool.block
    if position == _BLOCK or pool.generation != _generation:
        if _keys.read_random_into(block) != _BLOCK:
            raise OSError("short read from the system random source")
        pool.generation = _generation
        position = 0
    end = position + DRAW_SIZE
    fresh = block[position:end]
    block[position:end] = _ZERO_DRAW
    pool.position = end
    return fresh


def _after_fork_in_child() -> None:
    global _generation
    _generation += 1
    # The forking thread is the child's only thread: wipe its copy of the parent's draws.
    pool = _local.pool
    pool.block[:] = bytes(_BLOCK)
    pool.position = _BLOCK


os.register_at_fork(after_in_child=_after_fork_in_child)
