"""Long records joined outside the GIL: the same text as an f-string, for every input."""

from __future__ import annotations

import base64
import json
import os
import sys

import pytest

from asherah import SessionFactory, _ascii_str
from asherah._ascii_str import JOIN_FROM, join_ascii

from .test_hot_paths import CONFIG


def test_joins_are_available_on_cpython() -> None:
    assert sys.implementation.name == "cpython"
    assert _ascii_str.available()


@pytest.mark.parametrize(
    ("head", "middle", "tail"),
    [
        ('{"Key":"', base64.b64encode(os.urandom(3 * 1000)).decode(), 'AA=="}'),
        ("", "A" * 5000, ""),
        ("h", "", "t"),
        ("", "", ""),
        ("é", "A" * 100, "t"),  # not ASCII: concatenated
        ("h", "A" * 100 + "€", "t"),
        ("h", type("Sub", (str,), {})("A" * 100), "t"),  # a subclass: another layout
    ],
)
def test_a_join_is_the_concatenation(head: str, middle: str, tail: str) -> None:
    joined = join_ascii(head, middle, tail)
    assert type(joined) is str
    assert joined == head + middle + tail
    assert hash(joined) == hash(head + middle + tail)
    assert len(joined) == len(head) + len(middle) + len(tail)


@pytest.mark.parametrize("size", [JOIN_FROM - 1, JOIN_FROM, JOIN_FROM + 1, JOIN_FROM + 2])
@pytest.mark.parametrize("partition", ["a", "é"])
def test_a_large_record_round_trips_and_parses(size: int, partition: str) -> None:
    payload = os.urandom(size)
    with SessionFactory(CONFIG) as factory, factory.get_session(partition) as session:
        record = session.encrypt_bytes(payload)
        row = json.loads(record)
        assert list(row) == ["Key", "Data"]
        assert len(base64.b64decode(row["Data"], validate=True)) == size + 28
        assert session.decrypt_bytes(record) == payload
