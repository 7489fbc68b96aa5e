"""Eviction order of each built-in policy, and policy lookup through entry points."""

from __future__ import annotations

import pytest

from asherah import DriverNotFoundError
from asherah.cache import (
    LeastFrequentlyUsed,
    LeastRecentlyUsed,
    NeverEvict,
    SegmentedLeastRecentlyUsed,
    create_policy,
)


def test_lru_evicts_the_least_recently_used() -> None:
    policy = LeastRecentlyUsed(3)
    assert [policy.insert(k) for k in "abc"] == [[], [], []]
    policy.touch("a")
    assert policy.insert("d") == ["b"]
    assert policy.insert("e") == ["c"]
    policy.remove("a")
    assert policy.insert("f") == []
    assert policy.insert("g") == ["d"]


def test_slru_protects_keys_read_twice_from_a_scan() -> None:
    policy = SegmentedLeastRecentlyUsed(4)
    for key in ("hot1", "hot2"):
        policy.insert(key)
        policy.touch(key)
    evicted = [victim for i in range(10) for victim in policy.insert(f"scan{i}")]
    assert "hot1" not in evicted
    assert "hot2" not in evicted
    assert evicted[:2] == ["scan0", "scan1"]
    assert len(evicted) == 8


def test_lfu_evicts_the_least_frequently_used_oldest_first() -> None:
    policy = LeastFrequentlyUsed(3)
    for key in "abc":
        policy.insert(key)
    policy.touch("a")
    policy.touch("a")
    policy.touch("c")
    assert policy.insert("d") == ["b"]
    assert policy.insert("e") == ["d"]
    policy.touch("e")
    policy.touch("e")
    assert policy.insert("f") == ["c"]


def test_simple_never_evicts() -> None:
    policy = NeverEvict(2)
    assert all(policy.insert(i) == [] for i in range(100))


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("lru", LeastRecentlyUsed),
        ("SLRU", SegmentedLeastRecentlyUsed),
        ("lfu", LeastFrequentlyUsed),
        ("simple", NeverEvict),
    ],
)
def test_policies_are_found_by_entry_point_name(name: str, cls: type) -> None:
    assert type(create_policy(name, 10)) is cls


def test_an_unknown_policy_is_a_clear_error() -> None:
    with pytest.raises(DriverNotFoundError, match=r"asherah\.cache_policy"):
        create_policy("mru", 10)
