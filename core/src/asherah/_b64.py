"""Strict standard base64, as the reference decodes it.

The reference rejects missing padding, whitespace, the URL-safe alphabet and non-zero trailing
bits. ``pybase64`` (validate=True) handles the first three at several GB/s; the trailing-bit
check needs only the last data character, so it costs nothing on large records.
"""

from __future__ import annotations

import binascii

import pybase64

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# The last data character before "==" carries 4 unused bits, before "=" 2: they must be zero.
_BAD_BEFORE_TWO_PADS = frozenset(c for i, c in enumerate(_ALPHABET) if i & 0x0F)
_BAD_BEFORE_ONE_PAD = frozenset(c for i, c in enumerate(_ALPHABET) if i & 0x03)
#: Every last-three-characters of padded base64 that sets unused bits: one set lookup of
#: ``text[-3:]`` replaces the branches of :func:`nonzero_trailing_bits` on a hot path.
BAD_ENDINGS = frozenset(
    [c + "==" for c in _BAD_BEFORE_TWO_PADS]
    + [a + c + "=" for a in _ALPHABET for c in _BAD_BEFORE_ONE_PAD]
)


def encode(data: bytes | bytearray | memoryview) -> str:
    """Standard padded base64 of ``data``."""
    return pybase64.b64encode_as_string(data)


def decode(text: str) -> bytes:
    """Decode standard padded base64, raising ``ValueError`` on anything the reference rejects."""
    if len(text) & 3:
        raise ValueError("base64 length is not a multiple of 4")
    try:
        out: bytes = pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("invalid base64") from exc
    if text[-1:] == "=" and nonzero_trailing_bits(text):
        raise ValueError("base64 has non-zero trailing bits")
    return out


def nonzero_trailing_bits(text: str) -> bool:
    """Whether padded base64 ``text`` (ending in "=") sets bits its padding says are unused."""
    if text[-2] == "=":
        return text[-3] in _BAD_BEFORE_TWO_PADS
    return text[-2] in _BAD_BEFORE_ONE_PAD
