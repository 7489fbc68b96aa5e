"""The canonical multi-region KMS envelope: what an AWS-KMS system key row's ``Key`` holds.

The stored bytes are the UTF-8 JSON
``{"encryptedKey":<b64>,"kmsKeks":[{"region":..,"arn":..,"encryptedKek":<b64>},...]}``, compact,
fields in this order, standard padded base64: byte-for-byte what the reference writes, and what
Go and Java write and read (they match ``kmsKeks`` entries by ``region``, in any order).
``encryptedKey`` is the system key sealed with AES-256-GCM (``ct || tag || nonce``) under a KMS
data key; each ``encryptedKek`` is that data key encrypted by one region's KMS key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from asherah import _b64


class EnvelopeFormatError(ValueError):
    """The bytes are not a KMS envelope (bad JSON, a missing field, a wrong type, bad base64)."""


@dataclass(frozen=True, slots=True)
class RegionalKek:
    """One region's copy of the data key. ``arn`` is informational: readers decrypt with their
    own configured key for ``region``."""

    region: str
    arn: str
    encrypted_kek: bytes

    def __repr__(self) -> str:
        size = len(self.encrypted_kek)
        return f"RegionalKek(region={self.region!r}, arn={self.arn!r}, <{size} bytes>)"


@dataclass(frozen=True, slots=True)
class KmsEnvelope:
    encrypted_key: bytes
    keks: tuple[RegionalKek, ...]

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(kek.region for kek in self.keks)

    def kek_for(self, region: str) -> RegionalKek | None:
        """The entry for ``region`` (the last one, if an envelope repeats a region, as the
        reference's map does)."""
        found = None
        for kek in self.keks:
            if kek.region == region:
                found = kek
        return found

    def to_json(self) -> bytes:
        """The reference's exact bytes: compact JSON, this field order, non-ASCII kept raw."""
        document = {
            "encryptedKey": _b64.encode(self.encrypted_key),
            "kmsKeks": [
                {
                    "region": kek.region,
                    "arn": kek.arn,
                    "encryptedKek": _b64.encode(kek.encrypted_kek),
                }
                for kek in self.keks
            ],
        }
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, blob: bytes | bytearray | memoryview | str) -> KmsEnvelope:
        """Parse an envelope written by any Asherah implementation; unknown fields are
        ignored, every listed field is required (as the reference's parser requires them)."""
        try:
            document = json.loads(blob if isinstance(blob, str) else bytes(blob).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise EnvelopeFormatError("not UTF-8 JSON") from None
        if not isinstance(document, dict):
            raise EnvelopeFormatError("not a JSON object")
        encrypted_key = _bytes_field(document, "encryptedKey")
        keks = document.get("kmsKeks")
        if not isinstance(keks, list):
            raise EnvelopeFormatError("kmsKeks must be a list")
        parsed = []
        for entry in keks:
            if not isinstance(entry, dict):
                raise EnvelopeFormatError("a kmsKeks entry is not an object")
            parsed.append(
                RegionalKek(
                    region=_text_field(entry, "region"),
                    arn=_text_field(entry, "arn"),
                    encrypted_kek=_bytes_field(entry, "encryptedKek"),
                )
            )
        return cls(encrypted_key, tuple(parsed))

    def __repr__(self) -> str:
        return f"KmsEnvelope(regions={list(self.regions)!r}, <{len(self.encrypted_key)} bytes>)"


def _text_field(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str):
        raise EnvelopeFormatError(f"{name} must be a string")
    return value


def _bytes_field(document: dict[str, Any], name: str) -> bytes:
    text = _text_field(document, name)
    try:
        return _b64.decode(text)
    except ValueError:
        raise EnvelopeFormatError(f"{name} is not standard base64") from None
