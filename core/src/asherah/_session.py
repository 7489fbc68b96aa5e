"""A session: encrypt and decrypt for one partition, sync and async.

The hot path is deliberately flat: one cached intermediate key, one fresh data-row key, two
AES-GCM calls and a record string built by hand in the reference's exact field order. The
data-row key lives in a ``bytearray`` that is wiped as soon as ``cryptography`` has copied it
into its own (self-wiping) cipher context.
"""

from __future__ import annotations

import asyncio
import binascii
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, TypeVar

import orjson
import pybase64
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from orjson import JSONDecodeError

from asherah import _observe, _random_pool, _scratch
from asherah._ascii_str import JOIN_FROM, VIEW_FROM, ascii_slice, join_ascii
from asherah._data_row import (
    BAD_ENDINGS,
    I64_MAX,
    SMALL_BASE64,
    DataRow,
    find_data_mark,
    parse_data_row,
)
from asherah._errors import AsherahError, DecryptionError, PayloadTooLargeError
from asherah._key_cache import TOUCH_EVERY_S as _TOUCH_EVERY_S
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
_ZERO_KEY = aead.ZERO_KEY
#: From this size on the sealed data is base64-encoded in two parts (one less large copy), and
#: decrypt slices through a memoryview rather than copying.
_SPLIT_FROM = 16 * 1024
#: Records up to this many characters are parsed whole by orjson on the cached decrypt path;
#: longer ones are split at the Data field so orjson never copies a long payload string.
#: (Measured on two machines: a whole parse grows 0.2-0.4 ns a character, splitting costs
#: about the same at any size; they cross between 1,450 and 1,650 characters.)
PARSE_WHOLE_UP_TO = 1536
#: Payloads at least this large are encrypted and decrypted on a worker thread by the async
#: API even when keys are cached: AES over them takes long enough to stall an event loop, and
#: ``cryptography`` releases the GIL while it works.
ASYNC_INLINE_LIMIT = 256 * 1024
_METRICS = _observe.METRICS
#: Set by the async API around a call of the sync one: the call must not wait for metastore or
#: KMS I/O. Where the general path would, it raises :class:`_NeedsWorker` instead (before any
#: side effect) and the async caller hands the call to a worker thread. Worker threads never
#: see it set: executors do not copy the caller's context.
_INLINE_ONLY: ContextVar[bool] = ContextVar("asherah_inline_only", default=False)


class _NeedsWorker(Exception):
    """The call needs metastore or KMS I/O, which the event loop must not wait for."""


class _Declined(Exception):
    """The inline decrypt path does not take this record; the general path will."""


#: Everything the inline decrypt path may raise on a record it should not take.
_DECLINED = (_Declined, JSONDecodeError, KeyError, TypeError, ValueError, InvalidTag)
_b64encode = pybase64.b64encode_as_string
_b64decode = pybase64.b64decode
_a2b_base64 = binascii.a2b_base64
_loads = orjson.loads


class Session:
    """Encrypts and decrypts data rows for one partition. Thread-safe; a context manager
    (sync and async). Closing a session never affects other sessions of the partition."""

    __slots__ = (
        "_clock",
        "_closed",
        "_exact",
        "_fast",
        "_fast_decrypt",
        "_ids",
        "_ik_cache",
        "_ik_id",
        "_keys",
        "_latest",
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
    ) -> None:
        self.partition = partition
        self._ids = ids
        self._keys = keys
        self._clock = clock
        self._closed = False
        self._on_close = on_close
        # The hot paths read the factory's IK cache directly (see ``encrypt_bytes``); the
        # flags are cleared by ``close``.
        self._ik_id = ids.intermediate_key_id
        (
            self._ik_cache,
            self._latest,
            self._exact,
            self._fast,
            self._fast_decrypt,
        ) = keys.session_view

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
            self._fast = self._fast_decrypt = False
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
        # The usual case, inline: ``bytes``, an open session nobody observes per call, and the
        # latest IK cached, prepared and fresh. Anything else (a load, a stale entry, a closed
        # factory, whose close empties the cache, hooks or metrics) goes the general way.
        entry = self._latest.get(self._ik_id)
        if entry is not None and type(data) is bytes and self._fast and not _METRICS.on:
            key = entry.key
            now = self._clock()
            if (
                now < entry.serve_until
                and len(data) <= MAX_PAYLOAD_BYTES
                and not key.revoked
                and (cipher := key.prepared) is not None
            ):
                if self._ik_cache.watching and not 0.0 <= now - key.touched < _TOUCH_EVERY_S:
                    self._ik_cache.touch(self._ik_id, key, now)
                return self._seal(cipher, key, data, len(data), now)
        return self._encrypt_general(data)

    def _encrypt_general(self, data: bytes | bytearray | memoryview) -> str:
        """The general path: check everything, take the latest IK from the key manager
        (which may load, create or rotate), and time the call for observers."""
        size = self._check_plaintext(data)
        keys = self._keys
        hooks = keys.hooks
        started = time.perf_counter_ns() if hooks.external_timing or _METRICS.on else 0
        if _INLINE_ONLY.get():
            intermediate = keys.cached_intermediate(self._ids, keys.workers.submit)
            if intermediate is None:
                raise _NeedsWorker
        else:
            intermediate = keys.latest_intermediate(self._ids)
        try:
            cipher = intermediate.cipher
        except aead.AeadError:
            # Only a wiped key fails here: the factory was closed under this call.
            raise AsherahError("session factory is closed") from None
        record = self._seal(cipher, intermediate, data, size, self._clock())
        if started:
            hooks.crypto_timing("encrypt", self.partition, size, time.perf_counter_ns() - started)
        return record

    def _seal(
        self,
        cipher: AESGCM,
        key: CryptoKey,
        data: bytes | bytearray | memoryview,
        size: int,
        now: float,
    ) -> str:
        # A fresh data-row key and both nonces; the key is wiped once cryptography holds it
        # in its own (self-wiping) cipher context.
        try:
            drk, key_nonce, data_nonce = _random_pool.take()
        except IndexError:
            drk, key_nonce, data_nonce = _random_pool.draw()
        try:
            data_cipher = AESGCM(drk)
            sealed_key = cipher.encrypt(key_nonce, drk, None) + key_nonce
        finally:
            drk[:] = _ZERO_KEY
        middle = key.record_middle
        if middle is None:
            middle = self._middle_text(key)
        if size < _SPLIT_FROM:
            sealed_data = data_cipher.encrypt(data_nonce, data, None) + data_nonce
            return (
                f'{{"Key":{{"Created":{int(now)},"Key":"{_b64encode(sealed_key)}{middle}'
                f'{_b64encode(sealed_data)}"}}'
            )
        # Large payloads: never build ``ciphertext || tag || nonce``. Base64 of a multiple of
        # three bytes joins seamlessly with the base64 of what follows, so the ciphertext is
        # encoded where cryptography wrote it (a reused buffer, see ``_scratch``) and only its
        # last 0-2 bytes go with the nonce. That saves a full copy of the payload made while
        # holding the GIL.
        sealed_size = size + 16
        cut = sealed_size - sealed_size % 3
        buffer = _scratch.take(sealed_size)
        try:
            with memoryview(buffer) as view, view[:sealed_size] as body:
                data_cipher.encrypt_into(data_nonce, data, None, body)
                encoded = _b64encode(body[:cut])
                rest = bytes(body[cut:]) + data_nonce
        finally:
            _scratch.give(buffer)
        head = f'{{"Key":{{"Created":{int(now)},"Key":"{_b64encode(sealed_key)}{middle}'
        tail = f'{_b64encode(rest)}"}}'
        if size >= JOIN_FROM:
            # The final copy of the payload's base64 is made without the GIL, so a second
            # thread can work meanwhile (see ``_ascii_str``).
            return join_ascii(head, encoded, tail)
        return f"{head}{encoded}{tail}"

    def _middle_text(self, key: CryptoKey) -> str:
        """Format (once per IK) the record text between the wrapped key and the data."""
        middle = (
            f'","ParentKeyMeta":{{"KeyId":{json_string(self._ik_id)},"Created":{key.created}}}}},'
            '"Data":"'
        )
        key.record_middle = middle
        return middle

    def encrypt_text(self, text: str) -> str:
        """Encrypt the UTF-8 encoding of ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        return self.encrypt_bytes(text.encode("utf-8"))

    async def encrypt_bytes_async(self, data: bytes | bytearray | memoryview) -> str:
        """:meth:`encrypt_bytes` for asyncio: inline while the key is cached (microseconds),
        otherwise on the factory's worker threads so metastore and KMS I/O never block the
        loop."""
        if (
            self._check_plaintext(data) < ASYNC_INLINE_LIMIT
            and (record := _without_io(self.encrypt_bytes, data)) is not None
        ):
            return record
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
        if type(record) is str and self._fast_decrypt and not _METRICS.on:
            # The usual case, inline: a record of the shape every Asherah writes, for this
            # partition, whose IK is cached and prepared. Anything else, every error included,
            # is declined (``_Declined`` or the error itself) and the general path decides, and
            # names the problem. ``test_hot_paths`` holds both paths to the same answers.
            #
            # Short records are parsed whole, exactly as the general parser starts; longer
            # ones as :func:`~asherah._data_row.parse_fast` does. The checks a cache hit makes
            # redundant are left out: only a ``str`` key id equal to a cached one can hit, and
            # cached ids and ``Created`` values passed every limit when they were loaded. Only
            # a 60-byte wrapped key fits ``decrypt_into``'s 32-byte buffer, and its strict
            # decode implies the 80 unpadded characters the general parser checks. What
            # no hit can vouch for (the record's own ``Created`` and ``Revoked``, the data's
            # base64) is checked as the general parser would.
            try:
                if len(record) <= PARSE_WHOLE_UP_TO:
                    # The general parser's own first step: any JSON it reads is read the same.
                    # (A ``Data`` that is not a string fails ``text[-3:] in BAD_ENDINGS``.)
                    row = _loads(record)
                    key = row["Key"]
                    text = row["Data"]
                else:
                    cut = find_data_mark(record)
                    if cut < 0:
                        raise _Declined
                    key = _loads(record[7:cut])
                    if len(record) - cut - 11 < VIEW_FROM:
                        text = record[cut + 9 : -2]
                    else:
                        # A long Data field is decoded where it lies in the record, not copied;
                        # its trailing bits are checked here, as a view is not a ``str``.
                        if record[-5:-2] in BAD_ENDINGS:
                            raise _Declined
                        text = ascii_slice(record, cut + 9, len(record) - 2)
                parent = key["ParentKeyMeta"]
                key_id = parent["KeyId"]
                key_created = parent["Created"]
                row_created = key["Created"]
                cached = self._exact.get((key_id, key_created))
                if (
                    cached is None
                    or type(key_created) is not int
                    or type(row_created) is not int
                    or row_created > I64_MAX
                    or ("Revoked" in key and type(key["Revoked"]) is not bool)
                    or (cipher := cached.prepared) is None
                    or (key_id != self._ik_id and not self._ids.accepts_intermediate(key_id))
                    # (Both decoders refuse a length not 4n. For a view of a long Data field
                    # this finds nothing: its bytes never equal a str; checked above.)
                    or text[-3:] in BAD_ENDINGS
                ):
                    raise _Declined
                # A wrapped key of any length but 60 bytes fails ``decrypt_into``, which
                # wants the 32-byte buffer exactly: declined, like every other error.
                wrapped = _a2b_base64(key["Key"], strict_mode=True)
                if len(text) <= SMALL_BASE64:
                    sealed = _a2b_base64(text, strict_mode=True)
                else:
                    sealed = _b64decode(text, validate=True)
                if self._ik_cache.watching:
                    # The key cache samples use on the engine's clock: read the same one.
                    now = self._clock()
                    if not 0.0 <= now - cached.touched < _TOUCH_EVERY_S:
                        self._ik_cache.touch(key_id, cached, now)
                drk = _ZERO_KEY[:]  # a copy of zeroes: cheaper than bytearray(32)
                try:
                    cipher.decrypt_into(wrapped[-12:], wrapped[:-12], None, drk)
                    data_cipher = AESGCM(drk)
                    # Slices copy: cheaper than memoryviews for small payloads only.
                    view = sealed if len(sealed) < _SPLIT_FROM else memoryview(sealed)
                    return data_cipher.decrypt(view[-12:], view[:-12], None)
                finally:
                    drk[:] = _ZERO_KEY
            except _DECLINED:
                pass
        return self._decrypt_general(record)

    def _decrypt_general(self, record: str | bytes | bytearray) -> bytes:
        hooks = self._keys.hooks
        started = time.perf_counter_ns() if hooks.external_timing or _METRICS.on else 0
        row = self._parse(record)
        keys = self._keys
        if _INLINE_ONLY.get():
            intermediate = keys.cached_for_decrypt(row.key_id, row.key_created)
            if intermediate is None:
                raise _NeedsWorker
        else:
            intermediate = keys.intermediate_for_decrypt(row.key_id, row.key_created)
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
        if (
            isinstance(record, str | bytes | bytearray)
            and len(record) < ASYNC_INLINE_LIMIT
            and (plaintext := _without_io(self.decrypt_bytes, record)) is not None
        ):
            return plaintext
        return await self._in_worker(self.decrypt_bytes, record)

    async def decrypt_text_async(self, record: str | bytes | bytearray) -> str:
        return _utf8(await self.decrypt_bytes_async(record))

    async def _in_worker(self, call: Callable[[A], R], arg: A) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._keys.workers.executor(), call, arg)


def _without_io(call: Callable[[A], R], arg: A) -> R | None:
    """``call(arg)`` with metastore and KMS I/O forbidden (see ``_INLINE_ONLY``); ``None``
    when it needed some, and the caller should run it on a worker thread instead."""
    inline = _INLINE_ONLY.set(True)
    try:
        return call(arg)
    except _NeedsWorker:
        return None
    finally:
        _INLINE_ONLY.reset(inline)


def _utf8(plaintext: bytes) -> str:
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionError("decrypted plaintext is not valid UTF-8") from None
