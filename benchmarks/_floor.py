"""The floor: the least Python can do to produce and read a reference-format data row record.

Same cryptographic work as the engine (a fresh random 32-byte data-row key per encrypt,
AES-256-GCM of the data under it and of it under a cached intermediate key, sealed layout
``ciphertext || tag || nonce``), same record bytes (compact JSON, reference field order,
standard base64 via ``pybase64``; decrypt parses the small key part with ``orjson`` and slices
the payload), and nothing else: no config, no hooks, no limits, no error mapping, no key
wiping, no partition check. Each step uses the fastest way known here (one ``os.urandom``
call for the key and both nonces, ``encrypt_into`` for large payloads), so the floor is the
speed limit the engine is measured against. Written for the benchmark only.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING

import orjson
import pybase64
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if TYPE_CHECKING:
    from asherah._records import EnvelopeKeyRecord

_NONCE = 12
_TAG = 16
# Below this size ``encrypt(...) + nonce`` beats ``encrypt_into`` (a bytearray and a memoryview
# cost more than copying a small ciphertext); above it the copy of the ciphertext dominates.
_INTO_THRESHOLD = 16 * 1024
_DATA_FIELD = ',"Data":"'
_KEY_PREFIX = '{"Key":'


def _open(aead: AESGCM, sealed: bytes) -> bytes:
    view = memoryview(sealed)
    return aead.decrypt(view[-_NONCE:], view[:-_NONCE], None)


def _seal_large(aead: AESGCM, nonce: bytes, plaintext: bytes) -> bytearray:
    size = len(plaintext)
    out = bytearray(size + _TAG + _NONCE)
    aead.encrypt_into(nonce, plaintext, None, memoryview(out)[: size + _TAG])
    out[size + _TAG :] = nonce
    return out


class FloorEnvelope:
    """One partition with one cached intermediate key; records in the reference format."""

    def __init__(self, key_id: str, created: int, intermediate_key: bytes) -> None:
        self._created = created
        self._ik = AESGCM(intermediate_key)
        self._key_id_json = json.dumps(key_id, ensure_ascii=False)
        self._intermediates = {(key_id, created): self._ik}

    @classmethod
    def unwrap(
        cls, master_key: bytes, system_key: EnvelopeKeyRecord, key_id: str, row: EnvelopeKeyRecord
    ) -> FloorEnvelope:
        """Share an engine's intermediate key (static KMS), so records cross both ways."""
        sk = _open(AESGCM(master_key), system_key.encrypted_key)
        return cls(key_id, row.created, _open(AESGCM(sk), row.encrypted_key))

    def encrypt_bytes(self, data: bytes) -> str:
        # One read of the OS CSPRNG gives the data-row key and both nonces (a syscall each
        # costs more than the slicing).
        random = os.urandom(32 + 2 * _NONCE)
        drk = random[:32]
        nonce = random[32 : 32 + _NONCE]
        if len(data) < _INTO_THRESHOLD:
            sealed_data: bytes | bytearray = AESGCM(drk).encrypt(nonce, data, None) + nonce
        else:
            sealed_data = _seal_large(AESGCM(drk), nonce, data)
        nonce = random[32 + _NONCE :]
        sealed_key = self._ik.encrypt(nonce, drk, None) + nonce
        b64 = pybase64.b64encode_as_string
        return (
            f'{{"Key":{{"Created":{int(time.time())},"Key":"{b64(sealed_key)}",'
            f'"ParentKeyMeta":{{"KeyId":{self._key_id_json},"Created":{self._created}}}}},'
            f'"Data":"{b64(sealed_data)}"}}'
        )

    def decrypt_bytes(self, record: str) -> bytes:
        # Strict hand parse of ``{"Key":<json>,"Data":"<base64>"}``: base64 holds no quote or
        # backslash and ``validate=True`` rejects anything else, so if the Key part parses on
        # its own the whole record is exactly this JSON object. orjson never sees the payload.
        split = record.find(_DATA_FIELD)
        if split < 0 or not record.startswith(_KEY_PREFIX) or not record.endswith('"}'):
            raise ValueError("not a data row record")
        key = orjson.loads(record[len(_KEY_PREFIX) : split])
        meta = key["ParentKeyMeta"]
        ik = self._intermediates[(meta["KeyId"], meta["Created"])]
        b64decode = pybase64.b64decode
        sealed_key = memoryview(b64decode(key["Key"], validate=True))
        drk = ik.decrypt(sealed_key[-_NONCE:], sealed_key[:-_NONCE], None)
        sealed = memoryview(b64decode(record[split + len(_DATA_FIELD) : -2], validate=True))
        return AESGCM(drk).decrypt(sealed[-_NONCE:], sealed[:-_NONCE], None)
