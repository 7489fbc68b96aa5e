"""AES-256-GCM in Asherah's sealed layout: ``ciphertext || tag(16) || nonce(12)``, empty AAD.

This is the layout every Asherah implementation writes (the nonce goes *last*), for data,
data-row keys, intermediate keys and static-KMS system keys alike.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
OVERHEAD = NONCE_SIZE + TAG_SIZE
#: Zeroes to wipe a key buffer with (``buffer[:] = ZERO_KEY``: a ``bytearray`` source is
#: copied directly, a ``bytes`` one first converted). Shared and never written to.
ZERO_KEY = bytearray(KEY_SIZE)
MAX_PLAINTEXT = ((1 << 32) - 2) * 16

Buffer = bytes | bytearray | memoryview


class AeadError(Exception):
    """Sealing or opening failed: wrong key size, short input, or a tag mismatch."""


def cipher(key: Buffer) -> AESGCM:
    """An AES-256-GCM cipher for a 32-byte key; any other size is refused."""
    if len(key) != KEY_SIZE:
        raise AeadError(f"invalid key size {len(key)}, must be {KEY_SIZE} bytes")
    return AESGCM(key)


def seal_with(aead: AESGCM, plaintext: Buffer, nonce: bytes | None = None) -> bytes:
    """Seal ``plaintext`` with a prepared cipher, appending ``nonce`` (12 fresh random bytes
    the caller drew; by default read here)."""
    if nonce is None:
        nonce = os.urandom(NONCE_SIZE)
    elif len(nonce) != NONCE_SIZE:
        raise AeadError(f"invalid nonce size {len(nonce)}, must be {NONCE_SIZE} bytes")
    return aead.encrypt(nonce, plaintext, None) + nonce


def open_with(aead: AESGCM, sealed: Buffer) -> bytes:
    """Open a sealed blob with a prepared cipher; every failure is one ``AeadError``."""
    if len(sealed) < OVERHEAD:
        raise AeadError("ciphertext too short")
    view = memoryview(sealed)
    try:
        return aead.decrypt(view[-NONCE_SIZE:], view[:-NONCE_SIZE], None)
    except InvalidTag:
        raise AeadError("authentication failed") from None


def seal(key: Buffer, plaintext: Buffer) -> bytes:
    """Seal ``plaintext`` under ``key`` in the Asherah layout."""
    return seal_with(cipher(key), plaintext)


def open_sealed(key: Buffer, sealed: Buffer) -> bytes:
    """Open a blob sealed by :func:`seal` (or any Asherah implementation)."""
    return open_with(cipher(key), sealed)
