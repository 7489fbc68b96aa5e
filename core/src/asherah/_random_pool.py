"""Fresh randomness for the encrypt path, read from the OS in blocks.

Every encrypt needs a 32-byte data-row key and two 12-byte nonces. A system call per encrypt
costs more than the rest of a small encrypt's bookkeeping, so a refill reads :data:`SLOTS`
draws' worth at once and cuts it into ready ``(key, key nonce, data nonce)`` draws, handed out
one per encrypt. The bytes are the kernel's CSPRNG output, unchanged: no userspace generator,
no reuse.

- No lock: a draw is taken with ``list.pop``, one atomic step, so no two threads can ever be
  handed the same draw. Concurrent refills each read their own fresh block.
- The pool holds only draws not yet handed out: the refill block is zeroed once cut, and a
  draw's key is a ``bytearray`` the caller wipes. Nonces are not secret (they are written
  into the record), so they are plain ``bytes``.
- Fork-safe: a forked child inherits the parent's memory, so the pool would otherwise repeat
  the parent's future keys and nonces there. ``os.register_at_fork`` wipes and empties the
  child's pool before any Python code runs in it. (A fork made from C without Python's fork
  hooks is not covered; docs/security.md says so.)
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from asherah import _keys
from asherah.hazmat import aead

KEY_SIZE = 32
NONCE_SIZE = 12
#: Draws per system call.
SLOTS = 16
_KEYS_END = KEY_SIZE * SLOTS
_BLOCK = (KEY_SIZE + 2 * NONCE_SIZE) * SLOTS
#: Zeroes copied over a used block (a ``bytearray`` source is copied directly). Never written to.
_ZERO_BLOCK = bytearray(_BLOCK)
_ZERO_KEY = aead.ZERO_KEY
_KEY_SLICES = [slice(KEY_SIZE * slot, KEY_SIZE * (slot + 1)) for slot in range(SLOTS)]
_NONCES = struct.Struct(f"{NONCE_SIZE}s" * (2 * SLOTS))

Draw = tuple[bytearray, bytes, bytes]
_pending: list[Draw] = []
#: Take one ready draw, or raise ``IndexError`` when none is left (then call :func:`draw`).
#: The hot path calls this bound ``list.pop`` directly: no Python frame in between.
take: Callable[[], Draw] = _pending.pop


def draw() -> Draw:
    """A fresh ``(data-row key, key nonce, data nonce)``; the caller wipes the key."""
    while True:
        try:
            return _pending.pop()
        except IndexError:
            _refill()


def key_and_nonce() -> tuple[bytearray, bytes]:
    """A fresh 32-byte key (the caller wipes it) and a nonce to wrap it with: a new
    intermediate key costs no system call of its own."""
    key, nonce, _ = draw()
    return key, nonce


def _refill() -> None:
    block = bytearray(_BLOCK)  # this refill's own: a concurrent refill reads into another
    try:
        if _keys.read_random_into(block) != _BLOCK:
            raise OSError("short read from the system random source")
        # Cut in C, not in a Python loop (a loop of slices costs more than the read itself):
        # keys are ``bytearray`` slices, the nonces ``bytes`` from one ``struct`` unpack.
        nonces = iter(_NONCES.unpack_from(block, _KEYS_END))
        _pending.extend(zip(map(block.__getitem__, _KEY_SLICES), nonces, nonces, strict=True))
    finally:
        block[:] = _ZERO_BLOCK


def _after_fork_in_child() -> None:
    # The child's copy of the parent's unread draws must never be used: wipe and drop them.
    while _pending:
        key, _, _ = _pending.pop()
        key[:] = _ZERO_KEY


os.register_at_fork(after_in_child=_after_fork_in_child)
