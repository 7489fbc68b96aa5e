"""The floor: the least Python can do to produce and read a reference-format data row record.

Same cryptographic work as the engine (a fresh random 32-byte data-row key per encrypt,
AES-256-GCM of the data under it and of it under a cached intermediate key, sealed layout
``ciphertext || tag || nonce``), same record bytes (compact JSON, reference field order,
standard base64; decrypt parses short records whole with ``orjson``, and of longer ones only
the small key part, slicing the payload out), and nothing else: no config, no hooks, no
limits, no error mapping, no key wiping, no partition check. Each step uses the fastest way
known here: one ``os.urandom`` read per 16 encrypts for their keys and nonces, cut by one
``struct`` unpack; ``pybase64``, or ``binascii`` for short input; large payloads
base64-encoded where the ciphertext lies, and decoded where they lie in the record (a view of
its characters); ``bytes`` slices below 16 KiB and memoryviews above; large ciphertexts written
into one buffer reused across calls. So the floor is the speed limit the engine is measured
against. Written for the benchmark only.
"""

from __future__ import annotations

import binascii
import json
import os
import struct
import time
from typing import TYPE_CHECKING

import orjson
import pybase64
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from asherah._ascii_str import ascii_slice

if TYPE_CHECKING:
    from asherah._records import EnvelopeKeyRecord

_NONCE = 12
_TAG = 16
# From this size on a copy of the payload costs more than a memoryview: large ciphertexts are
# base64-encoded in two parts rather than copied with the nonce, and sliced through views.
_LARGE = 16 * 1024
_DATA_FIELD = ',"Data":"'
_SMALL_BASE64 = 128
# Up to this many characters orjson parses a whole record faster than finding the Data field
# and parsing only the Key part; beyond it, copying the payload string costs more.
_PARSE_WHOLE_UP_TO = 1536
#: 16 draws of a data-row key and two nonces, cut from one block of randomness in C.
_DRAWS = struct.Struct(f"32s{_NONCE}s{_NONCE}s" * 16)
_KEY_PREFIX = '{"Key":'


def _open(aead: AESGCM, sealed: bytes) -> bytes:
    view = memoryview(sealed)
    return aead.decrypt(view[-_NONCE:], view[:-_NONCE], None)


class FloorEnvelope:
    """One partition with one cached intermediate key; records in the reference format."""

    def __init__(self, key_id: str, created: int, intermediate_key: bytes) -> None:
        self._ik = AESGCM(intermediate_key)
        # Everything between the wrapped key and the data is constant per intermediate key.
        self._middle = (
            f'","ParentKeyMeta":{{"KeyId":{json.dumps(key_id, ensure_ascii=False)},'
            f'"Created":{created}}}}},"Data":"'
        )
        self._intermediates = {(key_id, created): self._ik}
        self._draws: list[tuple[bytes, bytes, bytes]] = []
        self._buffer = bytearray()  # large ciphertexts (one floor per thread: no sharing)

    @classmethod
    def unwrap(
        cls, master_key: bytes, system_key: EnvelopeKeyRecord, key_id: str, row: EnvelopeKeyRecord
    ) -> FloorEnvelope:
        """Share an engine's intermediate key (static KMS), so records cross both ways."""
        sk = _open(AESGCM(master_key), system_key.encrypted_key)
        return cls(key_id, row.created, _open(AESGCM(sk), row.encrypted_key))

    def encrypt_bytes(self, data: bytes) -> str:
        # The OS CSPRNG is read in blocks of 16 draws (a syscall per encrypt costs more than
        # the slicing), cut by one ``struct`` unpack into (key, nonce, key nonce) draws.
        try:
            drk, nonce, key_nonce = self._draws.pop()
        except IndexError:
            pieces = iter(_DRAWS.unpack(os.urandom(_DRAWS.size)))
            self._draws.extend(zip(pieces, pieces, pieces, strict=True))
            drk, nonce, key_nonce = self._draws.pop()
        data_cipher = AESGCM(drk)
        sealed_key = self._ik.encrypt(key_nonce, drk, None) + key_nonce
        b64 = pybase64.b64encode_as_string
        if len(data) < _LARGE:
            head, tail = b64(data_cipher.encrypt(nonce, data, None) + nonce), ""
        else:
            # The ciphertext goes to a buffer reused across calls (mapped, often cached), and
            # base64 of a multiple of three bytes joins seamlessly with what follows: encode
            # the ciphertext where it lies and only its last 0-2 bytes with the nonce.
            size = len(data) + _TAG
            if len(self._buffer) < size:
                self._buffer = bytearray(size)
            cut = size - size % 3
            with memoryview(self._buffer) as whole, whole[:size] as body:
                data_cipher.encrypt_into(nonce, data, None, body)
                head, tail = b64(body[:cut]), b64(bytes(body[cut:]) + nonce)
        return (
            f'{{"Key":{{"Created":{int(time.time())},"Key":"{b64(sealed_key)}{self._middle}'
            f'{head}{tail}"}}'
        )

    def decrypt_bytes(self, record: str) -> bytes:
        if len(record) <= _PARSE_WHOLE_UP_TO:
            # A short record is cheapest parsed whole.
            row = orjson.loads(record)
            key = row["Key"]
            text = row["Data"]
        else:
            # Strict hand parse of ``{"Key":<json>,"Data":"<base64>"}``: base64 holds no quote
            # or backslash and ``validate=True`` rejects anything else, so if the Key part
            # parses on its own the whole record is exactly this JSON object. orjson never
            # sees (and never copies) the payload.
            split = record.find(_DATA_FIELD)
            if split < 0 or not record.startswith(_KEY_PREFIX) or not record.endswith('"}'):
                raise ValueError("not a data row record")
            key = orjson.loads(record[len(_KEY_PREFIX) : split])
            # A long Data field is read in place (a view of the record's characters).
            text = ascii_slice(record, split + len(_DATA_FIELD), len(record) - 2)
        meta = key["ParentKeyMeta"]
        ik = self._intermediates[(meta["KeyId"], meta["Created"])]
        b64decode = pybase64.b64decode
        a2b_base64 = binascii.a2b_base64
        # Slicing ``bytes`` copies, yet beats memoryview slices below ``_LARGE``.
        # The standard library's strict decoder beats pybase64 on short input.
        sealed_key = a2b_base64(key["Key"], strict_mode=True)
        drk = ik.decrypt(sealed_key[-_NONCE:], sealed_key[:-_NONCE], None)
        if len(text) <= _SMALL_BASE64:
            sealed = a2b_base64(text, strict_mode=True)
        else:
            sealed = b64decode(text, validate=True)
        view = sealed if len(sealed) < _LARGE else memoryview(sealed)
        return AESGCM(drk).decrypt(view[-_NONCE:], view[:-_NONCE], None)
