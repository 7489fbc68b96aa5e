"""Strict standard base64, as the reference decodes it.

The reference rejects missing padding, whitespace, the URL-safe alphabet and non-zero trailing
bits. ``pybase64`` (validate=True) handles the first three at several GB/s; the trailing-bit
check needs only the last data character, so it costs nothing on large records.
"""

from __future__ import annotations

import binascii

import pybase64

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_VALUE = {c: i for i, c in enumerate(_ALPHABET)}


def encode(data: bytes | bytearray | memoryview) -> str:
    """Standard padded base64 of ``data``."""
    return pybase64.b64encode_as_string(data)


def decode(text: str) -> bytes:
    """Decode standard padded base64, raising ``ValueError`` on anything the reference rejects."""
    if not text:
        return b""
    if len(text) % 4:
        raise ValueError("base64 length is not a multiple of 4")
    try:
        out: bytes = pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("invalid base64") from exc
    if text[-1] == "=":
        pad = 2 if text[-2] == "=" else 1
        last = _VALUE.get(text[-1 - pad], -1)
        mask = 0x0F if pad == 2 else 0x03
        if last < 0 or last & mask:
            raise ValueError("base64 has non-zero trailing bits")
    return out
