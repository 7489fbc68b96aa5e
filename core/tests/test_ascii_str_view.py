"""Long slices of ASCII strings read in place: same bytes as the copy, never for anything else."""

from __future__ import annotations

import base64
import os
import sys

import pytest

from asherah import DecryptionError, SessionFactory, _ascii_str
from asherah._ascii_str import VIEW_FROM, ascii_slice

from .test_hot_paths import CONFIG, _inline_only


def test_views_are_available_on_cpython() -> None:
    assert sys.implementation.name == "cpython"
    assert _ascii_str.available()


def test_a_long_ascii_slice_is_a_read_only_view_of_the_same_bytes() -> None:
    text = base64.b64encode(os.urandom(VIEW_FROM)).decode()
    piece = ascii_slice(text, 7, len(text) - 5)
    assert isinstance(piece, memoryview)
    assert piece.readonly
    assert bytes(piece) == text[7:-5].encode("ascii")


@pytest.mark.parametrize(
    "text",
    [
        "A" * (VIEW_FROM - 1),  # short: a copy is cheaper
        "é" + "A" * VIEW_FROM,  # not ASCII: another layout
        type("Sub", (str,), {})("A" * (VIEW_FROM + 10)),  # a subclass: another layout
    ],
)
def test_anything_else_is_copied(text: str) -> None:
    piece = ascii_slice(text, 0, len(text))
    assert type(piece) is str
    assert piece == str(text)


def test_a_large_record_decrypts_inline_and_refuses_trailing_bits() -> None:
    payload = os.urandom(VIEW_FROM + 2)  # sealed length 3n + 2: the Data ends in one "="
    with SessionFactory(CONFIG) as factory, factory.get_session("a") as session:
        record = session.encrypt_bytes(payload)
        assert _inline_only(session, record) == payload
        assert record.endswith('="}')
        last = record[-4]
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        spoiled = record[:-4] + alphabet[alphabet.index(last) | 1] + record[-3:]
        with pytest.raises(AssertionError, match="general path"):
            _inline_only(session, spoiled)
        with pytest.raises(DecryptionError):
            session.decrypt_bytes(spoiled)


def test_a_large_record_with_a_non_ascii_partition_decrypts() -> None:
    payload = os.urandom(VIEW_FROM)
    with SessionFactory(CONFIG) as factory, factory.get_session("ünïcode") as session:
        record = session.encrypt_bytes(payload)
        assert not record.isascii()
        assert _inline_only(session, record) == payload
