"""Tier 2: a key sealed with AES-256-GCM under the coffer key, held in ordinary memory.

An enclave is ``nonce(12) || ciphertext(32) || tag(16)`` in a plain ``bytes``: it is safe to
swap, dump or leak, because the coffer key that opens it lives only in the slab. Opening writes
the plaintext straight into a caller-supplied buffer (a slab slot), never into a new ``bytes``.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from asherah.hazmat.memory._aead import decrypt_into
from asherah.hazmat.memory._errors import SecureMemoryError

NONCE_SIZE = 12


def seal(coffer_key: memoryview, material: memoryview) -> bytes:
    """Encrypt ``material`` under the coffer key; returns the enclave bytes."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(coffer_key).encrypt(nonce, material, None)


def open_into(coffer_key: memoryview, enclave: bytes, out: memoryview) -> None:
    """Decrypt an enclave into ``out`` (exactly the key size); ``out`` is zeroed on failure."""
    view = memoryview(enclave)
    try:
        decrypt_into(coffer_key, view[:NONCE_SIZE], view[NONCE_SIZE:], out)
    except InvalidTag:
        raise SecureMemoryError(
            "enclave authentication failed: the sealed key or the coffer was corrupted"
        ) from None
