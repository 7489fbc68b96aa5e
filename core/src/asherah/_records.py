"""The two JSON records every Asherah implementation reads and writes.

``EnvelopeKeyRecord`` is a wrapped key (SK and IK rows in the metastore, the DRK inside a data
row record); ``DataRowRecord`` is what ``encrypt`` returns. Field names, order, omission rules
and the strict base64 follow the reference byte for byte; parsing ignores unknown fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from asherah import _b64

_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_MISSING = object()


class RecordFormatError(ValueError):
    """A record is not the JSON shape Asherah writes. The message names the field, never data."""


@dataclass(frozen=True, slots=True)
class KeyMeta:
    """Coordinates of a key row: its id and ``Created`` second."""

    key_id: str
    created: int

    def to_json(self) -> str:
        return f'{{"KeyId":{json_string(self.key_id)},"Created":{self.created}}}'


@dataclass(frozen=True, slots=True)
class EnvelopeKeyRecord:
    """A wrapped key with its creation time, optional revocation flag and parent coordinates."""

    created: int
    encrypted_key: bytes
    parent_key_meta: KeyMeta | None = None
    revoked: bool | None = None

    def __repr__(self) -> str:
        return (
            f"EnvelopeKeyRecord(created={self.created}, parent_key_meta={self.parent_key_meta!r}, "
            f"revoked={self.revoked!r}, encrypted_key=<{len(self.encrypted_key)} bytes>)"
        )

    def to_json(self) -> str:
        """Compact JSON, reference field order: Revoked (if set), Created, Key, ParentKeyMeta."""
        parts = []
        if self.revoked is not None:
            parts.append(f'"Revoked":{"true" if self.revoked else "false"}')
        parts.append(f'"Created":{self.created}')
        parts.append(f'"Key":"{_b64.encode(self.encrypted_key)}"')
        if self.parent_key_meta is not None:
            parts.append(f'"ParentKeyMeta":{self.parent_key_meta.to_json()}')
        return "{" + ",".join(parts) + "}"

    @classmethod
    def from_json(cls, text: str | bytes) -> EnvelopeKeyRecord:
        """Parse a stored key record (TEXT, JSON or JSONB column alike)."""
        return envelope_from_mapping(_load_object(text, "EnvelopeKeyRecord"), "EnvelopeKeyRecord")

    def with_revoked(self, revoked: bool) -> EnvelopeKeyRecord:
        return EnvelopeKeyRecord(self.created, self.encrypted_key, self.parent_key_meta, revoked)


@dataclass(frozen=True, slots=True)
class DataRowRecord:
    """An encrypted payload plus its wrapped data-row key."""

    key: EnvelopeKeyRecord | None
    data: bytes

    def __repr__(self) -> str:
        return f"DataRowRecord(key={self.key!r}, data=<{len(self.data)} bytes>)"

    def to_json(self) -> str:
        key = "null" if self.key is None else self.key.to_json()
        return f'{{"Key":{key},"Data":"{_b64.encode(self.data)}"}}'

    @classmethod
    def from_json(cls, text: str | bytes | bytearray) -> DataRowRecord:
        obj = _load_object(text, "DataRowRecord")
        if "Data" not in obj:
            raise RecordFormatError("DataRowRecord is missing field Data")
        data = _b64_field(obj["Data"], "", "Data")
        raw_key = obj.get("Key")
        key = None if raw_key is None else envelope_from_mapping(raw_key, "Key")
        return cls(key, data)


def json_string(value: str) -> str:
    """A JSON string literal escaped as serde_json escapes it (raw UTF-8, lowercase ``\\u00xx``)."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'  # nothing to escape (the usual key id): skip the encoder
    return json.dumps(value, ensure_ascii=False)


def _load_object(text: str | bytes | bytearray, what: str) -> dict[str, Any]:
    try:
        obj = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise RecordFormatError(f"{what} is not valid JSON") from exc
    if not isinstance(obj, dict):
        raise RecordFormatError(f"{what} must be a JSON object")
    return obj


def envelope_from_mapping(obj: object, where: str) -> EnvelopeKeyRecord:
    """Build an ``EnvelopeKeyRecord`` from decoded JSON, checking every field's type.

    Each cold start and new partition parses a few of these: the checks are inline and an
    error's field path is only formatted when there is an error.
    """
    if not isinstance(obj, dict):
        raise RecordFormatError(f"{where} must be a JSON object")
    created = obj.get("Created", _MISSING)
    key = obj.get("Key", _MISSING)
    if created is _MISSING:
        raise RecordFormatError(f"{where} is missing field Created")
    if key is _MISSING:
        raise RecordFormatError(f"{where} is missing field Key")
    if type(created) is not int or not _I64_MIN <= created <= _I64_MAX:
        raise RecordFormatError(f"{where}.Created must be a 64-bit integer")
    data = _b64_field(key, where, ".Key")
    revoked = obj.get("Revoked")
    if revoked is not None and type(revoked) is not bool:
        raise RecordFormatError(f"{where}.Revoked must be a boolean")
    raw_parent = obj.get("ParentKeyMeta")
    parent = None if raw_parent is None else _key_meta(raw_parent, where)
    return EnvelopeKeyRecord(created, data, parent, revoked)


def _key_meta(obj: object, where: str) -> KeyMeta:
    if not isinstance(obj, dict):
        raise RecordFormatError(f"{where}.ParentKeyMeta must be a JSON object")
    key_id = obj.get("KeyId")
    if not isinstance(key_id, str):
        raise RecordFormatError(f"{where}.ParentKeyMeta.KeyId must be a string")
    created = obj.get("Created", _MISSING)
    if created is _MISSING:
        raise RecordFormatError(f"{where}.ParentKeyMeta is missing field Created")
    if type(created) is not int or not _I64_MIN <= created <= _I64_MAX:
        raise RecordFormatError(f"{where}.ParentKeyMeta.Created must be a 64-bit integer")
    return KeyMeta(key_id, created)


def _b64_field(value: object, where: str, name: str) -> bytes:
    if not isinstance(value, str):
        raise RecordFormatError(f"{where}{name} must be a base64 string")
    try:
        return _b64.decode(value)
    except ValueError as exc:
        raise RecordFormatError(f"{where}{name} is not valid standard base64: {exc}") from None
