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

import binascii
from typing import NamedTuple

import orjson
import pybase64

from asherah import _b64
from asherah._errors import DecryptionError
from asherah._limits import (
    MAX_DATA_ROW_ENCRYPTED_KEY_BYTES,
    MAX_KEY_ID_BYTES,
    MAX_RECORD_CHARS,
)
from asherah._records import DataRowRecord, RecordFormatError

I64_MAX = (1 << 63) - 1  # orjson itself refuses integers below -2**63
DATA_MARK = ',"Data":"'
WRAPPED_KEY_BYTES = 60
_WRAPPED_KEY_CHARS = 80
_FAST_KEY_ID_CHARS = MAX_KEY_ID_BYTES // 4
_loads = orjson.loads
_b64decode = pybase64.b64decode
_a2b_base64 = binascii.a2b_base64
#: Up to this many characters the standard library's strict decoder is faster than pybase64's
#: (whose per-call cost dominates short input); both accept exactly the standard alphabet with
#: padding only at the end, and the length and trailing bits are checked here before either.
SMALL_BASE64 = 128
BAD_ENDINGS = _b64.BAD_ENDINGS


class DataRow(NamedTuple):
    """The parts of a record decrypt needs."""

    wrapped_key: bytes
    key_id: str
    key_created: int
    data: bytes


#: What the fast parser returns: wrapped data-row key (60 bytes), IK id, IK created, sealed data.
FastRow = tuple[bytes, str, int, bytes]


def parse_data_row(record: str | bytes | bytearray) -> DataRow:
    """Parse and check a record; every problem is a :class:`DecryptionError`."""
    if len(record) > MAX_RECORD_CHARS:
        raise DecryptionError(
            f"ciphertext/envelope length {len(record)} exceeds maximum {MAX_RECORD_CHARS} bytes"
        )
    fast = parse_fast(record) if type(record) is str else None
    row = DataRow(*fast) if fast is not None else _general(record)
    if len(row.wrapped_key) > MAX_DATA_ROW_ENCRYPTED_KEY_BYTES:
        raise DecryptionError("invalid data row record: Key.Key is too long")
    if len(row.key_id) > MAX_KEY_ID_BYTES // 4 and (
        len(row.key_id.encode("utf-8", "surrogatepass")) > MAX_KEY_ID_BYTES
    ):
        raise DecryptionError("invalid data row record: ParentKeyMeta.KeyId is too long")
    return row


def find_data_mark(record: str) -> int:
    """Where :data:`DATA_MARK` starts in a record of the shape every Asherah writes,
    ``{"Key":{...},"Data":"..."}`` within the size limit, else -1.

    ``record[7]`` is then "{", so a successful parse of ``record[7:cut]`` is a dict, and since
    base64 holds no quote or backslash the record is exactly ``{"Key":<it>,"Data":"<text>"}``
    with ``text = record[cut + 9 : -2]``.
    """
    cut = record.find(DATA_MARK)
    if (
        cut < 8
        or len(record) > MAX_RECORD_CHARS
        or not record.startswith('{"Key":{')
        or not record.endswith('"}')
    ):
        return -1
    return cut


def parse_fast(record: str) -> FastRow | None:
    """The record's parts if it has the exact shape every Asherah writes and passes every
    check, else ``None`` (then :func:`parse_data_row` decides, and names the problem).

    Everything the general path would refuse is refused here too: the record size, the
    ``Key`` part's JSON, field types, 64-bit ``Created`` values, the ``Revoked`` type, strict
    base64 with zero trailing bits. The wrapped key must be exactly 80 base64 characters (a
    60-byte sealed 32-byte key), which also rules out padding there; a key id longer than a
    quarter of its byte limit goes the slow way to be measured in UTF-8.
    """
    cut = find_data_mark(record)
    if cut < 0:
        return None
    try:
        key = _loads(record[7:cut])
        parent = key["ParentKeyMeta"]
        key_id = parent["KeyId"]
        key_created = parent["Created"]
        wrapped = key["Key"]
        created = key["Created"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if (
        type(key_id) is not str
        or type(key_created) is not int
        or type(created) is not int
        or type(wrapped) is not str
        or len(wrapped) != _WRAPPED_KEY_CHARS
        or key_created > I64_MAX
        or created > I64_MAX
        or len(key_id) > _FAST_KEY_ID_CHARS
        or ("Revoked" in key and type(key["Revoked"]) is not bool)
    ):
        return None
    text = record[cut + 9 : -2]
    if len(text) & 3 or text[-3:] in BAD_ENDINGS:
        return None
    try:
        wrapped_key = _a2b_base64(wrapped, strict_mode=True)
        if len(text) <= SMALL_BASE64:
            data = _a2b_base64(text, strict_mode=True)
        else:
            data = _b64decode(text, validate=True)
    except ValueError:  # binascii.Error is a ValueError
        return None
    if len(wrapped_key) != WRAPPED_KEY_BYTES:
        return None
    return wrapped_key, key_id, key_created, data


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
