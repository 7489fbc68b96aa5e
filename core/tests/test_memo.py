"""Start-up memos: the same flat config (or driver options) validates to the same frozen
model once per process; anything unhashable, and every failure, is validated each time."""

from __future__ import annotations

from typing import Any

import pytest

from asherah import ConfigError
from asherah._config import parse_config
from asherah._drivers import driver_class, validate_options
from asherah._memo import Memo, items_key

BASE = {"ServiceName": "svc", "ProductID": "prod", "Metastore": "memory", "KMS": "static"}


def test_the_same_flat_config_gives_the_same_model() -> None:
    first = parse_config(dict(BASE))
    assert parse_config(dict(BASE)) is first
    assert parse_config({**BASE, "ProductID": "other"}) is not first


def test_a_config_with_a_nested_section_is_validated_each_time() -> None:
    nested: dict[str, Any] = {**BASE, "metastore_options": {"a": 1}}
    assert items_key(nested) is None
    assert parse_config(nested) is not parse_config(nested)


def test_equal_values_of_other_types_are_validated_apart() -> None:
    assert items_key({"a": 1}) != items_key({"a": True})
    assert items_key({"a": 1}) != items_key({"a": 1.0})


def test_a_bad_config_fails_every_time() -> None:
    for _ in range(2):
        with pytest.raises(ConfigError):
            parse_config({**BASE, "NoSuchKey": 1})


def test_driver_options_are_validated_once_per_value() -> None:
    config = parse_config({**BASE, "StaticMasterKeyHex": "22" * 32})
    cls = driver_class("asherah.kms", "static")
    first = validate_options(cls, "static", {}, config)
    assert validate_options(cls, "static", {}, config) is first
    assert validate_options(cls, "static", {"master_key_file": "/x"}, config) is not first


def test_the_memo_is_bounded_and_keeps_the_newest() -> None:
    memo = Memo(max_entries=2)
    for key in "abc":
        assert memo.get(key, lambda k=key: k.upper()) == key.upper()
    assert memo.get("c", lambda: "new") == "C"
    assert memo.get("a", lambda: "new") == "new"
    assert memo.get(None, lambda: "each time") == "each time"
