"""Tier 2: a key sealed with AES-256-GCM under the coffer key, held in ordinary memory.

An enclave is ``nonce(12) || ciphertext(32) || tag(16)`` in a plain ``bytes``: it is safe to
swap, dump or leak, because the coffer key that opens it lives only in the slab. Opening writes
the plaintext straight into a caller-supplied buffer (a slab slot), never into a new ``bytes``.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from asherah.hazmat.memory import _libc
from asherah.hazmat.memory._errors import SecureMemoryError

NONCE_SIZE = 12
TAG_SIZE = 16

# ``AESGCM.decrypt_into`` is newer than our oldest supported ``cryptography``; the streaming
# ``Cipher`` API has ``update_into`` everywhere and also writes into our buffer.
_HAS_DECRYPT_INTO = hasattr(AESGCM, "decrypt_into")


def seal(coffer_key: memoryview, material: memoryview) -> bytes:
    """Encrypt ``material`` under the coffer key; returns the enclave bytes."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(coffer_key).encrypt(nonce, material, None)


def open_into(coffer_key: memoryview, enclave: bytes, out: memoryview) -> None:
    """Decrypt an enclave into ``out`` (exactly the plaintext size); wipes ``out`` on failure."""
    try:
        if _HAS_DECRYPT_INTO:
            view = memoryview(enclave)
            AESGCM(coffer_key).decrypt_into(view[:NONCE_SIZE], view[NONCE_SIZE:], None, out)
        else:
            open_into_streaming(coffer_key, enclave, out)
    except InvalidTag:
        _libc.wipe(out)
        raise SecureMemoryError(
            "enclave authentication failed: the sealed key or the coffer was corrupted"
        ) from None


def open_into_streaming(coffer_key: memoryview, enclave: bytes, out: memoryview) -> None:
    """:func:`open_into` through the ``Cipher`` API, for ``cryptography`` < ``decrypt_into``."""
    view = memoryview(enclave)
    nonce, body, tag = view[:NONCE_SIZE], view[NONCE_SIZE:-TAG_SIZE], enclave[-TAG_SIZE:]
    decryptor = Cipher(algorithms.AES(coffer_key), modes.GCM(nonce, tag)).decryptor()
    decryptor.update_into(body, out)
    decryptor.finalize()
