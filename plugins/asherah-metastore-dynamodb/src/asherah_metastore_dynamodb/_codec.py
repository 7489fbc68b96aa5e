"""Items of the canonical table <-> ``EnvelopeKeyRecord``.

An item is ``Id`` (S), ``Created`` (N) and ``KeyRecord``, a Map (never a JSON string) of
``Revoked`` (BOOL, only when set), ``Created`` (N), ``Key`` (S, standard base64) and, for
intermediate keys, ``ParentKeyMeta`` (M of ``KeyId`` S and ``Created`` N): what the canonical
Go/Java metastores and the reference write. Decoding names the broken field, never its value.
"""

from __future__ import annotations

from typing import Any

from asherah import EnvelopeKeyRecord, KeyMeta, MetastoreError
from asherah._b64 import decode as b64decode
from asherah._b64 import encode as b64encode

_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1

Item = dict[str, dict[str, Any]]


def item_key(key_id: str, created: int) -> Item:
    return {"Id": {"S": key_id}, "Created": {"N": str(created)}}


def to_item(key_id: str, created: int, record: EnvelopeKeyRecord) -> Item:
    key_record: dict[str, Any] = {}
    if record.revoked is not None:
        key_record["Revoked"] = {"BOOL": record.revoked}
    key_record["Created"] = {"N": str(record.created)}
    key_record["Key"] = {"S": b64encode(record.encrypted_key)}
    if record.parent_key_meta is not None:
        key_record["ParentKeyMeta"] = {
            "M": {
                "KeyId": {"S": record.parent_key_meta.key_id},
                "Created": {"N": str(record.parent_key_meta.created)},
            }
        }
    return {**item_key(key_id, created), "KeyRecord": {"M": key_record}}


def from_item(item: Item, where: str) -> EnvelopeKeyRecord:
    """Decode an item; a missing or non-Map ``KeyRecord`` is corruption, not a miss."""
    raw = item.get("KeyRecord")
    if not isinstance(raw, dict) or not isinstance(raw.get("M"), dict):
        raise MetastoreError(
            f"DynamoDB item {where} has no KeyRecord map (schema corruption; expected the "
            "canonical Map attribute)"
        )
    fields: dict[str, Any] = raw["M"]
    created = _number(fields.get("Created"), where, "KeyRecord.Created")
    key = _string(fields.get("Key"), where, "KeyRecord.Key")
    try:
        encrypted_key = b64decode(key)
    except ValueError:
        raise MetastoreError(f"DynamoDB item {where}: KeyRecord.Key is not valid base64") from None
    return EnvelopeKeyRecord(
        created, encrypted_key, _parent(fields.get("ParentKeyMeta"), where), _revoked(fields, where)
    )


def _revoked(fields: dict[str, Any], where: str) -> bool | None:
    value = fields.get("Revoked")
    if value is None or (isinstance(value, dict) and value.get("NULL") is True):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("BOOL"), bool):
        raise MetastoreError(f"DynamoDB item {where}: KeyRecord.Revoked is not a BOOL")
    revoked: bool = value["BOOL"]
    return revoked


def _parent(value: Any, where: str) -> KeyMeta | None:
    if value is None or (isinstance(value, dict) and value.get("NULL") is True):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("M"), dict):
        raise MetastoreError(f"DynamoDB item {where}: KeyRecord.ParentKeyMeta is not a map")
    fields: dict[str, Any] = value["M"]
    key_id = _string(fields.get("KeyId"), where, "KeyRecord.ParentKeyMeta.KeyId")
    created = _number(fields.get("Created"), where, "KeyRecord.ParentKeyMeta.Created")
    return KeyMeta(key_id, created)


def _string(value: Any, where: str, name: str) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("S"), str):
        raise MetastoreError(f"DynamoDB item {where}: {name} is missing or not a string (S)")
    text: str = value["S"]
    return text


def _number(value: Any, where: str, name: str) -> int:
    if not isinstance(value, dict) or not isinstance(value.get("N"), str):
        raise MetastoreError(f"DynamoDB item {where}: {name} is missing or not a number (N)")
    try:
        number = int(value["N"])
    except ValueError:
        raise MetastoreError(
            f"DynamoDB item {where}: {name} is not a whole number of seconds"
        ) from None
    if not _I64_MIN <= number <= _I64_MAX:
        raise MetastoreError(f"DynamoDB item {where}: {name} is out of the 64-bit range")
    return number
