"""How the engine holds a system or intermediate key: one small type, so protection is
decided in one place.

A ``CryptoKey`` holds its material one of two ways. With ``cache_key_schedules`` on (the
default, as in the reference) it keeps a prepared AES-GCM cipher and nothing else: OpenSSL's
expanded key lives in that cipher's contexts until the key leaves the cache, and OpenSSL wipes
it when the contexts are freed. With it off, the material lives only in the factory's
:class:`~asherah.hazmat.memory.KeyStore` (mlock'd slab and encrypted enclaves, per the
``secure_memory`` mode) and every use opens the store. Data row keys never become a
``CryptoKey``: they live in a ``bytearray`` for one call.
"""

from __future__ import annotations

import atexit
import contextlib
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from asherah.hazmat import aead
from asherah.hazmat.memory import (
    KeyHandle,
    KeyStore,
    SecureMemoryError,
    decrypt_into_with,
    random_key,
    wipe,
)
from asherah.hazmat.memory._aead import HAS_DECRYPT_INTO

_WRAPPED_KEY_SIZE = aead.KEY_SIZE + aead.OVERHEAD
_ZERO_KEY = aead.ZERO_KEY


def _open_urandom() -> Callable[[], bytearray]:
    """32 random bytes read straight into a fresh ``bytearray`` (never an immutable ``bytes``).

    ``readinto`` on an unbuffered ``/dev/urandom`` costs about a microsecond, a third of a
    ctypes ``getrandom`` call; where the device is missing, fall back to that call.
    """
    try:
        device = open("/dev/urandom", "rb", buffering=0)  # noqa: SIM115 - lives with the process
    except OSError:
        return random_key
    atexit.register(device.close)

    def read_key() -> bytearray:
        key = bytearray(aead.KEY_SIZE)
        if device.readinto(key) != aead.KEY_SIZE:
            return random_key()
        return key

    return read_key


new_key_material = _open_urandom()


def _open_urandom_into() -> Callable[[bytearray], int | None]:
    try:
        device = open("/dev/urandom", "rb", buffering=0)  # noqa: SIM115 - lives with the process
    except OSError:
        from asherah.hazmat.memory import random_fill

        def fill(buffer: bytearray) -> int:
            random_fill(buffer)
            return len(buffer)

        return fill
    atexit.register(device.close)
    return device.readinto


#: Fill a buffer with fresh randomness in one read and return how many bytes were read (the
#: encrypt path's random pool reads its blocks with it and treats a short count as an error).
#: The device's own ``readinto``: no Python frame in between.
read_random_into = _open_urandom_into()


class CryptoKey:
    """An unwrapped SK or IK with its ``Created`` second and revocation flag."""

    __slots__ = (
        "__weakref__",
        "_handle",
        "created",
        "prepared",
        "record_middle",
        "revoked",
        "touched",
    )

    def __init__(
        self,
        store: KeyStore,
        material: bytearray,
        created: int,
        revoked: bool = False,
        *,
        cache_schedule: bool = True,
        label: object = None,
    ) -> None:
        """Move ``material`` into ``store`` (the buffer is wiped)."""
        if len(material) != aead.KEY_SIZE:
            size = len(material)
            wipe(material)
            raise aead.AeadError(f"invalid key size {size}, must be {aead.KEY_SIZE} bytes")
        #: The cached cipher (``None`` when schedules are not cached or the key was wiped); the
        #: session's hot path reads it directly.
        self.prepared: AESGCM | None
        self._handle: KeyHandle | None
        if cache_schedule:
            # The cipher's OpenSSL contexts hold the key for as long as it is cached, and every
            # use goes through them: a second copy in the store would protect nothing and cost
            # a store put (a sealed enclave, a slot, two mprotect calls) per new key.
            try:
                self.prepared = AESGCM(material)
            finally:
                material[:] = _ZERO_KEY
                # The cipher keeps a reference to the (now zeroed) buffer it was built from:
                # free the storage rather than keep 32 zero bytes per cached key (not possible
                # while someone holds a view of it; then the zeroes stay).
                with contextlib.suppress(BufferError):
                    material.clear()
            self._handle = None
        else:
            self.prepared = None
            self._handle = store.put(material, label=label)
        self.created = created
        self.revoked = revoked
        #: When the cache last told its eviction policy this key was used (sampled, so a hot
        #: key costs the policy's lock once a second, not once per call).
        self.touched = 0.0
        #: For an IK: the data row record text from the end of a wrapped key to the start of
        #: the data (``ParentKeyMeta`` naming this key), constant per key, so formatted on the
        #: first encrypt under it rather than per call or per session.
        self.record_middle: str | None = None

    def __repr__(self) -> str:
        return f"CryptoKey(created={self.created}, revoked={self.revoked}, material=<protected>)"

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)  # absent when __init__ refused the material
        if handle is not None and not handle.closed:
            # The store may already be closed (factory closed first, or interpreter exit):
            # then it has wiped everything, and there is nothing left to do here.
            with contextlib.suppress(SecureMemoryError):
                handle.close()

    @property
    def cipher(self) -> AESGCM:
        """A prepared cipher for this key (cached, or built from the store for this use)."""
        cipher = self.prepared
        if cipher is not None:
            return cipher
        handle = self._handle
        if handle is None or handle.closed:
            raise aead.AeadError("key has been wiped")
        return handle.use(AESGCM)

    def seal(self, plaintext: aead.Buffer, nonce: bytes | None = None) -> bytes:
        """Seal ``plaintext`` (a child key or data) under this key, with a fresh random
        ``nonce`` (drawn here when not given)."""
        return aead.seal_with(self.cipher, plaintext, nonce)

    def open_key(self, sealed: aead.Buffer) -> bytearray:
        """Open a wrapped 32-byte child key straight into a wipeable buffer."""
        if len(sealed) != _WRAPPED_KEY_SIZE:
            raise aead.AeadError("a wrapped key must be 60 bytes")
        view = memoryview(sealed)
        out = bytearray(aead.KEY_SIZE)
        try:
            if HAS_DECRYPT_INTO:
                self.cipher.decrypt_into(view[-12:], view[:-12], None, out)
            else:
                decrypt_into_with(self.cipher, view[-12:], view[:-12], out)
        except InvalidTag:
            raise aead.AeadError("authentication failed") from None
        return out

    def wipe(self) -> None:
        """Forget the prepared cipher and wipe the stored material."""
        self.prepared = None
        handle, self._handle = self._handle, None
        if handle is not None and not handle.closed:
            handle.close()
