"""A session: encrypt and decrypt for one partition.

The hot path is deliberately flat: one cached intermediate key, one fresh data-row key, two
AES-GCM calls and a record string built by hand in the reference's exact field order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from asherah import _b64
from asherah._errors import AsherahError, DecryptionError, PayloadTooLargeError
from asherah._key_ids import KeyIds
from asherah._keys import new_key_material, wipe
from asherah._limits import (
    MAX_DATA_ROW_ENCRYPTED_KEY_BYTES,
    MAX_ENVELOPE_BYTES,
    MAX_KEY_ID_BYTES,
    MAX_PAYLOAD_BYTES,
)
from asherah._records import DataRowRecord, RecordFormatError, json_string
from asherah.hazmat import aead

if TYPE_CHECKING:
    from asherah._key_manager import KeyManager

_BINARY = (bytes, bytearray, memoryview)


class Session:
    """Encrypts and decrypts data rows for one partition. Thread-safe; a context manager."""

    __slots__ = ("_clock", "_closed", "_ids", "_key_id_json", "_keys", "_on_close", "partition")

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
        self._key_id_json = json_string(ids.intermediate_key_id)
        self._closed = False
        self._on_close = on_close

    def __repr__(self) -> str:
        return f"Session(partition={self.partition!r}, closed={self._closed})"

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
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

    def encrypt_bytes(self, data: bytes | bytearray | memoryview) -> str:
        """Encrypt ``data`` and return the data row record as compact JSON."""
        if not isinstance(data, _BINARY):
            raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
        if self._closed:
            raise AsherahError("session is closed")
        size = len(data) if not isinstance(data, memoryview) else data.nbytes
        if size > MAX_PAYLOAD_BYTES:
            raise PayloadTooLargeError(
                f"plaintext length {size} exceeds maximum {MAX_PAYLOAD_BYTES} bytes"
            )
        hooks = self._keys.hooks
        started = time.perf_counter_ns() if hooks.timing_enabled else 0
        intermediate = self._keys.latest_intermediate(self._ids)
        drk = new_key_material()
        try:
            sealed_data = aead.seal(drk, data)
            sealed_key = intermediate.seal(drk)
        except aead.AeadError:
            # Only a wiped key fails here: the factory was closed under this call.
            raise AsherahError("session factory is closed") from None
        finally:
            wipe(drk)
        record = (
            f'{{"Key":{{"Created":{int(self._clock())},"Key":"{_b64.encode(sealed_key)}",'
            f'"ParentKeyMeta":{{"KeyId":{self._key_id_json},"Created":{intermediate.created}}}}},'
            f'"Data":"{_b64.encode(sealed_data)}"}}'
        )
        if started:
            hooks.crypto_timing("encrypt", self.partition, size, time.perf_counter_ns() - started)
        return record

    def encrypt_text(self, text: str) -> str:
        """Encrypt the UTF-8 encoding of ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        return self.encrypt_bytes(text.encode("utf-8"))

    # -- decrypt -------------------------------------------------------------------------------

    def decrypt_bytes(self, record: str | bytes | bytearray) -> bytes:
        """Decrypt a data row record (JSON text or its UTF-8 bytes) written by any Asherah."""
        if not isinstance(record, str | bytes | bytearray):
            raise TypeError(f"record must be str or bytes, not {type(record).__name__}")
        if self._closed:
            raise AsherahError("session is closed")
        if len(record) > MAX_ENVELOPE_BYTES:
            raise DecryptionError(
                f"ciphertext/envelope length {len(record)} exceeds maximum "
                f"{MAX_ENVELOPE_BYTES} bytes"
            )
        hooks = self._keys.hooks
        started = time.perf_counter_ns() if hooks.timing_enabled else 0
        try:
            row = DataRowRecord.from_json(record)
        except RecordFormatError as exc:
            raise DecryptionError(f"invalid data row record: {exc}") from None
        key = row.key
        if key is None:
            raise DecryptionError("invalid data row record: Key is missing")
        meta = key.parent_key_meta
        if meta is None:
            raise DecryptionError("invalid data row record: Key.ParentKeyMeta is missing")
        if len(key.encrypted_key) > MAX_DATA_ROW_ENCRYPTED_KEY_BYTES:
            raise DecryptionError("invalid data row record: Key.Key is too long")
        if len(meta.key_id.encode("utf-8", "surrogatepass")) > MAX_KEY_ID_BYTES:
            raise DecryptionError("invalid data row record: ParentKeyMeta.KeyId is too long")
        if not self._ids.accepts_intermediate(meta.key_id):
            raise DecryptionError(
                f"data row record belongs to another partition: key id {meta.key_id!r} is not "
                f"{self._ids.intermediate_core_id!r} or a region-suffixed form of it"
            )
        intermediate = self._keys.intermediate_for_decrypt(meta)
        try:
            drk = intermediate.open_key(key.encrypted_key)
        except aead.AeadError:
            if self._keys.closed:  # the key was wiped by a concurrent close, not tampered with
                raise AsherahError("session factory is closed") from None
            raise DecryptionError(
                "data row key does not authenticate under its intermediate key"
            ) from None
        try:
            plaintext = aead.open_sealed(drk, row.data)
        except aead.AeadError:
            raise DecryptionError("data does not authenticate under its data row key") from None
        finally:
            wipe(drk)
        if started:
            hooks.crypto_timing(
                "decrypt", self.partition, len(plaintext), time.perf_counter_ns() - started
            )
        return plaintext

    def decrypt_text(self, record: str | bytes | bytearray) -> str:
        """Decrypt a record whose plaintext is UTF-8 text."""
        plaintext = self.decrypt_bytes(record)
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptionError("decrypted plaintext is not valid UTF-8") from None
