"""A session: encrypt and decrypt for one partition, sync and async.

The hot path is deliberately flat: one cached intermediate key, one fresh data-row key, two
AES-GCM calls and a record string built by hand in the reference's exact field order. The
data-row key lives in a ``bytearray`` that is wiped as soon as ``cryptography`` has copied it
into its own (self-wiping) cipher context.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from asherah import _b64, _keys, _observe
from asherah._data_row import DataRow, parse_data_row
from asherah._errors import AsherahError, DecryptionError, PayloadTooLargeError
from asherah._key_ids import KeyIds
from asherah._keys import CryptoKey
from asherah._limits import MAX_PAYLOAD_BYTES
from asherah._records import json_string
from asherah.hazmat import aead

if TYPE_CHECKING:
    from asherah._key_manager import KeyManager

A = TypeVar("A")
R = TypeVar("R")
_BINARY = (bytes, bytearray, memoryview)
_ZERO_KEY = bytes(aead.KEY_SIZE)
_FRESH_SIZE = aead.KEY_SIZE + 2 * aead.NONCE_SIZE
#: From this size on the data is sealed into one preallocated buffer (one less large copy).
_SEAL_INTO_FROM = 16 * 1024
#: Payloads at least this large are encrypted and decrypted on a worker thread by the async
#: API even when keys are cached: AES over them takes long enough to stall an event loop, and
#: ``cryptography`` releases the GIL while it works.
ASYNC_INLINE_LIMIT = 256 * 1024


class Session:
    """Encrypts and decrypts data rows for one partition. Thread-safe; a context manager
    (sync and async). Closing a session never affects other sessions of the partition."""

    __slots__ = (
        "_clock",
        "_closed",
        "_ids",
        "_key_id_json",
        "_keys",
        "_on_close",
        "partition",
    )

    def __init__(
        self,
        partition: str,
        ids: KeyIds,
        keys: KeyManager,
        clock: Callable[[], float],
        on_close: Callable[[Session], None] | None = None,
        key_id_json: str | None = None,
    ) -> None:
        self.partition = partition
        self._ids = ids
        self._keys = keys
        self._clock = clock
        self._key_id_json = key_id_json or json_string(ids.intermediate_key_id)
        self._closed = False
        self._on_close = on_close

    def __repr__(self) -> str:
        return f"Session(partition={self.partition!r}, closed={self._closed})"

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End this session. Cached keys belong to the factory and stay until it closes."""
        if not self._closed:
            self._closed = True
            if self._on_close is not None:
                self._on_close(self)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- encrypt -------------------------------------------------------------------------------

    def _check_plaintext(self, data: object) -> int:
        if not isinstance(data, _BINARY):
            raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
        if self._closed:
            raise AsherahError("session is closed")
        size = data.nbytes if isinstance(data, memoryview) else len(data)
        if size > MAX_PAYLOAD_BYTES:
            raise PayloadTooLargeError(
                f"plaintext length {size} exceeds maximum {MAX_PAYLOAD_BYTES} bytes"
            )
        return size

    def encrypt_bytes(self, data: bytes | bytearray | memoryview) -> str:
        """Encrypt ``data`` and return the data row record as compact JSON."""
        size = self._check_plaintext(data)
        hooks = self._keys.hooks
        started = time.perf_counter_ns() if hooks.external_timing or _observe.METRICS.on else 0
        return self._seal(self._keys.latest_intermediate(self._ids), data, size, started)

    def _seal(
        self,
        intermediate: CryptoKey,
        data: bytes | bytearray | memoryview,
        size: int,
        started: int,
    ) -> str:
        # One read gives the data-row key and both nonces; the key bytes are wiped as soon as
        # cryptography holds them in its own cipher context.
        fresh = bytearray(_FRESH_SIZE)
        _keys.fill_random(fresh)
        view = memoryview(fresh)
        try:
            data_cipher = AESGCM(view[:32])
            key_nonce = bytes(view[32:44])
            sealed_key = intermediate.cipher.encrypt(key_nonce, view[:32], None) + key_nonce
        except aead.AeadError:
            # Only a wiped key fails here: the factory was closed under this call.
            raise AsherahError("session factory is closed") from None
        finally:
            fresh[:32] = _ZERO_KEY
        data_nonce = bytes(view[44:])
        view.release()
        if size < _SEAL_INTO_FROM:
            sealed_data: bytes | bytearray = (
                data_cipher.encrypt(data_nonce, data, None) + data_nonce
            )
        else:
            sealed_data = bytearray(size + aead.OVERHEAD)
            out = memoryview(sealed_data)
            data_cipher.encrypt_into(data_nonce, data, None, out[: size + aead.TAG_SIZE])
            out[size + aead.TAG_SIZE :] = data_nonce
            out.release()
        record = (
            f'{{"Key":{{"Created":{int(self._clock())},"Key":"{_b64.encode(sealed_key)}",'
            f'"ParentKeyMeta":{{"KeyId":{self._key_id_json},"Created":{intermediate.created}}}}},'
            f'"Data":"{_b64.encode(sealed_data)}"}}'
        )
        if started:
            self._keys.hooks.crypto_timing(
                "encrypt", self.partition, size, time.perf_counter_ns() - started
            )
        return record

    def encrypt_text(self, text: str) -> str:
        """Encrypt the UTF-8 encoding of ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        return self.encrypt_bytes(text.encode("utf-8"))

    async def encrypt_bytes_async(self, data: bytes | bytearray | memoryview) -> str:
        """:meth:`encrypt_bytes` for asyncio: inline while the key is cached (microseconds),
        otherwise on the factory's worker threads so metastore and KMS I/O never block the
        loop."""
        size = self._check_plaintext(data)
        if size < ASYNC_INLINE_LIMIT:
            keys = self._keys
            intermediate = keys.cached_intermediate(self._ids, keys.workers.submit)
            if intermediate is not None:
                started = (
                    time.perf_counter_ns()
                    if keys.hooks.external_timing or (_observe.METRICS.on)
                    else 0
                )
                return self._seal(intermediate, data, size, started)
        return await self._in_worker(self.encrypt_bytes, data)

    async def encrypt_text_async(self, text: str) -> str:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        return await self.encrypt_bytes_async(text.encode("utf-8"))

    # -- decrypt -------------------------------------------------------------------------------

    def _parse(self, record: object) -> DataRow:
        if not isinstance(record, str | bytes | bytearray):
            raise TypeError(f"record must be str or bytes, not {type(record).__name__}")
        if self._closed:
            raise AsherahError("session is closed")
        row = parse_data_row(record)
        key_id = row.key_id
        if key_id != self._ids.intermediate_key_id and not self._ids.accepts_intermediate(key_id):
            raise DecryptionError(
                f"data row record belongs to another partition: key id {key_id!r} is not "
                f"{self._ids.intermediate_core_id!r} or a region-suffixed form of it"
            )
        return row

    def decrypt_bytes(self, record: str | bytes | bytearray) -> bytes:
        """Decrypt a data row record (JSON text or its UTF-8 bytes) written by any Asherah."""
        hooks = self._keys.hooks
        started = time.perf_counter_ns() if hooks.external_timing or _observe.METRICS.on else 0
        row = self._parse(record)
        intermediate = self._keys.intermediate_for_decrypt(row.key_id, row.key_created)
        return self._open(intermediate, row, started)

    def _open(self, intermediate: CryptoKey, row: DataRow, started: int) -> bytes:
        try:
            drk = intermediate.open_key(row.wrapped_key)
        except aead.AeadError:
            if self._keys.closed:  # the key was wiped by a concurrent close, not tampered with
                raise AsherahError("session factory is closed") from None
            raise DecryptionError(
                "data row key does not authenticate under its intermediate key"
            ) from None
        try:
            data_cipher = AESGCM(drk)
        finally:
            drk[:] = _ZERO_KEY
        try:
            plaintext = aead.open_with(data_cipher, row.data)
        except aead.AeadError:
            raise DecryptionError("data does not authenticate under its data row key") from None
        if started:
            self._keys.hooks.crypto_timing(
                "decrypt", self.partition, len(plaintext), time.perf_counter_ns() - started
            )
        return plaintext

    def decrypt_text(self, record: str | bytes | bytearray) -> str:
        """Decrypt a record whose plaintext is UTF-8 text."""
        return _utf8(self.decrypt_bytes(record))

    async def decrypt_bytes_async(self, record: str | bytes | bytearray) -> bytes:
        """:meth:`decrypt_bytes` for asyncio: inline while the key is cached, otherwise on
        the factory's worker threads."""
        if isinstance(record, str | bytes | bytearray) and len(record) < ASYNC_INLINE_LIMIT:
            keys = self._keys
            started = (
                time.perf_counter_ns() if keys.hooks.external_timing or (_observe.METRICS.on) else 0
            )
            row = self._parse(record)
            intermediate = keys.cached_for_decrypt(row.key_id, row.key_created)
            if intermediate is not None:
                return self._open(intermediate, row, started)
        return await self._in_worker(self.decrypt_bytes, record)

    async def decrypt_text_async(self, record: str | bytes | bytearray) -> str:
        return _utf8(await self.decrypt_bytes_async(record))

    async def _in_worker(self, call: Callable[[A], R], arg: A) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._keys.workers.executor(), call, arg)


def _utf8(plaintext: bytes) -> str:
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionError("decrypted plaintext is not valid UTF-8") from None
