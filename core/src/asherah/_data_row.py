"""Reading a data row record on the decrypt path: a strict fast path for the exact shape every
Asherah writes, falling back to the general parser for anything else.

The fast path splits ``{"Key":{…},"Data":"<b64>"}`` at the first ``,"Data":"``, parses only the
small ``Key`` part as JSON and base64-decodes the data slice in place of a JSON string copy.
It gives the same result, or the same error, as the general path: base64 cannot contain ``"``
or ``\\``, so when the ``Key`` part parses as an object on its own the record is exactly that
object plus the ``Data`` string; anything unusual (whitespace, other field order, escapes,
duplicate fields, unexpected types) goes to the general parser.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from asherah import _b64
from asherah._errors import DecryptionError
from asherah._limits import (
    MAX_DATA_ROW_ENCRYPTED_KEY_BYTES,
    MAX_KEY_ID_BYTES,
    MAX_RECORD_CHARS,
)
from asherah._records import DataRowRecord, RecordFormatError

_I64 = (-(1 << 63), (1 << 63) - 1)
_DATA_MARK = ',"Data":"'


class DataRow(NamedTuple):
    """The parts of a record decrypt needs."""

    wrapped_key: bytes
    key_id: str
    key_created: int
    data: bytes


def parse_data_row(record: str | bytes | bytearray) -> DataRow:
    """Parse and check a record; every problem is a :class:`DecryptionError`."""
    if len(record) > MAX_RECORD_CHARS:
        raise DecryptionError(
            f"ciphertext/envelope length {len(record)} exceeds maximum {MAX_RECORD_CHARS} bytes"
        )
    row = _fast(record) if type(record) is str else None
    if row is None:
        row = _general(record)
    if len(row.wrapped_key) > MAX_DATA_ROW_ENCRYPTED_KEY_BYTES:
        raise DecryptionError("invalid data row record: Key.Key is too long")
    if len(row.key_id) > MAX_KEY_ID_BYTES // 4 and (
        len(row.key_id.encode("utf-8", "surrogatepass")) > MAX_KEY_ID_BYTES
    ):
        raise DecryptionError("invalid data row record: ParentKeyMeta.KeyId is too long")
    return row


def _fast(record: str) -> DataRow | None:
    if not (record.startswith('{"Key":{') and record.endswith('"}')):
        return None
    cut = record.find(_DATA_MARK)
    if cut < 0:
        return None
    try:
        head = orjson.loads(record[:cut] + "}")
    except orjson.JSONDecodeError:
        return None
    if len(head) != 1:
        return None
    key = head["Key"]
    if type(key) is not dict:
        return None
    parent = key.get("ParentKeyMeta")
    wrapped = key.get("Key")
    created = key.get("Created")
    revoked = key.get("Revoked")
    if (
        type(parent) is not dict
        or type(wrapped) is not str
        or type(created) is not int
        or not (revoked is None or type(revoked) is bool)
    ):
        return None
    key_id = parent.get("KeyId")
    key_created = parent.get("Created")
    if type(key_id) is not str or type(key_created) is not int:
        return None
    if not (_I64[0] <= created <= _I64[1] and _I64[0] <= key_created <= _I64[1]):
        return None
    try:
        return DataRow(_b64.decode(wrapped), key_id, key_created, _b64.decode(record[cut + 9 : -2]))
    except ValueError:
        return None


def _general(record: str | bytes | bytearray) -> DataRow:
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
    return DataRow(key.encrypted_key, meta.key_id, meta.created, row.data)
