"""AES-GCM decryption straight into a caller's buffer, so a key never becomes a ``bytes``.

``AESGCM.decrypt`` returns an immutable ``bytes`` that lingers in freed heap memory; a wrapped
key (an IK under its SK, a DRK under its IK, an enclave under the coffer key) must instead land
in a buffer that can be wiped, ideally a protected one.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from asherah.hazmat.memory import _libc

TAG_SIZE = 16

# ``AESGCM.decrypt_into`` is newer than our oldest supported ``cryptography``; the streaming
# ``Cipher`` API has ``update_into`` everywhere and also writes into our buffer.
HAS_DECRYPT_INTO = hasattr(AESGCM, "decrypt_into")

Buffer = bytes | bytearray | memoryview


def decrypt_into(key: Buffer, nonce: Buffer, data: Buffer, out: bytearray | memoryview) -> None:
    """Open ``data`` (ciphertext then 16-byte tag, no AAD) into ``out``.

    ``out`` must be exactly ``len(data) - 16`` bytes. On a tag mismatch ``out`` is zeroed and
    ``cryptography.exceptions.InvalidTag`` is raised, as ``AESGCM.decrypt`` would.
    """
    try:
        if HAS_DECRYPT_INTO:
            AESGCM(key).decrypt_into(nonce, data, None, out)
        else:
            decrypt_into_streaming(key, nonce, data, out)
    except InvalidTag:
        _libc.wipe(out)
        raise


def decrypt_into_with(
    cipher: AESGCM, nonce: Buffer, data: Buffer, out: bytearray | memoryview
) -> None:
    """:func:`decrypt_into` with an already prepared cipher (a cached key schedule).

    Without ``AESGCM.decrypt_into`` (older ``cryptography``) a prepared cipher can only return
    ``bytes``: the plaintext is copied into ``out`` and that fresh ``bytes`` is zeroed in place.
    """
    try:
        if HAS_DECRYPT_INTO:
            cipher.decrypt_into(nonce, data, None, out)
        else:
            plain = cipher.decrypt(nonce, data, None)
            try:
                memoryview(out)[:] = plain
            finally:
                _libc.wipe_bytes_object(plain)
    except InvalidTag:
        _libc.wipe(out)
        raise


def decrypt_into_streaming(
    key: Buffer, nonce: Buffer, data: Buffer, out: bytearray | memoryview
) -> None:
    """:func:`decrypt_into` through the ``Cipher`` API (``cryptography`` without ``*_into``)."""
    view = memoryview(data)
    if view.nbytes < TAG_SIZE or memoryview(out).nbytes != view.nbytes - TAG_SIZE:
        raise ValueError("the output buffer must be the ciphertext length minus the tag")
    tag = bytes(view[-TAG_SIZE:])
    decryptor = Cipher(algorithms.AES(key), modes.GCM(bytes(nonce), tag)).decryptor()
    decryptor.update_into(view[:-TAG_SIZE], out)
    try:
        decryptor.finalize()
    except InvalidTag:  # ``out`` holds unauthenticated plaintext: never leave it there
        _libc.wipe(out)
        raise
