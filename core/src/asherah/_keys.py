"""How the engine holds a plaintext key: one small type, so protection can change in one place.

A ``CryptoKey`` owns its material in a ``bytearray`` that :meth:`wipe` zeroes, and keeps the
prepared AES-GCM cipher so a cached key is not re-expanded on every use (the reference caches
key schedules the same way). Nothing here is ever printed.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from asherah.hazmat import aead


def new_key_material() -> bytearray:
    """32 fresh random bytes in a wipeable buffer."""
    material = bytearray(aead.KEY_SIZE)
    material[:] = os.urandom(aead.KEY_SIZE)
    return material


def wipe(buffer: bytearray) -> None:
    """Overwrite a key buffer with zeros in place."""
    buffer[:] = bytes(len(buffer))


class CryptoKey:
    """A system or intermediate key with its ``Created`` second and revocation flag."""

    __slots__ = ("_cipher", "_material", "created", "revoked")

    def __init__(self, material: bytearray, created: int, revoked: bool = False) -> None:
        self._material = material
        self._cipher: AESGCM | None = aead.cipher(material)
        self.created = created
        self.revoked = revoked

    def __repr__(self) -> str:
        return f"CryptoKey(created={self.created}, revoked={self.revoked}, material=<hidden>)"

    def seal(self, plaintext: aead.Buffer) -> bytes:
        """Seal ``plaintext`` (a child key or data) under this key."""
        if self._cipher is None:
            raise aead.AeadError("key has been wiped")
        return aead.seal_with(self._cipher, plaintext)

    def open(self, sealed: aead.Buffer) -> bytes:
        if self._cipher is None:
            raise aead.AeadError("key has been wiped")
        return aead.open_with(self._cipher, sealed)

    def open_key(self, sealed: aead.Buffer) -> bytearray:
        """Open a wrapped child key into a wipeable buffer."""
        return bytearray(self.open(sealed))

    def wipe(self) -> None:
        self._cipher = None
        wipe(self._material)
