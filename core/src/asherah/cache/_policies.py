"""The eviction policies. Each tracks keys only (never values) and is not thread-safe by
itself: the cache calls it under its own lock."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict, defaultdict
from collections.abc import Hashable
from typing import Any

from asherah._errors import ConfigError, DriverLoadError

POLICY_GROUP = "asherah.cache_policy"


class EvictionPolicy(ABC):
    """Chooses victims once a cache holds more than ``capacity`` keys."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ConfigError(f"cache capacity must be at least 1, got {capacity}")
        self.capacity = capacity

    @abstractmethod
    def touch(self, key: Hashable) -> None:
        """``key`` was read (a hit)."""

    @abstractmethod
    def insert(self, key: Hashable) -> list[Hashable]:
        """``key`` was added; return the keys to evict, oldest decision first."""

    @abstractmethod
    def remove(self, key: Hashable) -> None:
        """``key`` left the cache for another reason (closed, replaced)."""

    def pinned(self, key: Hashable) -> bool:
        return False


class NeverEvict(EvictionPolicy):
    """``simple``: unbounded, as the reference's default key caches."""

    def __init__(self, capacity: int = 1) -> None:
        super().__init__(max(capacity, 1))

    def touch(self, key: Hashable) -> None:
        pass

    def insert(self, key: Hashable) -> list[Hashable]:
        return []

    def remove(self, key: Hashable) -> None:
        pass


class LeastRecentlyUsed(EvictionPolicy):
    """``lru``: evicts the key read or written longest ago."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self._order: OrderedDict[Hashable, None] = OrderedDict()

    def touch(self, key: Hashable) -> None:
        if key in self._order:
            self._order.move_to_end(key)

    def insert(self, key: Hashable) -> list[Hashable]:
        self._order[key] = None
        self._order.move_to_end(key)
        evicted = []
        while len(self._order) > self.capacity:
            victim, _ = self._order.popitem(last=False)
            evicted.append(victim)
        return evicted

    def remove(self, key: Hashable) -> None:
        self._order.pop(key, None)


class SegmentedLeastRecentlyUsed(EvictionPolicy):
    """``slru``: new keys enter a probation segment; a second hit promotes them to a protected
    segment (half the capacity). One-off keys (a scan of partitions) evict each other, not the
    keys in steady use."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.protected_capacity = max(1, capacity // 2)
        self._probation: OrderedDict[Hashable, None] = OrderedDict()
        self._protected: OrderedDict[Hashable, None] = OrderedDict()

    def touch(self, key: Hashable) -> None:
        if key in self._protected:
            self._protected.move_to_end(key)
        elif key in self._probation:
            del self._probation[key]
            self._protected[key] = None
            if len(self._protected) > self.protected_capacity:
                demoted, _ = self._protected.popitem(last=False)
                self._probation[demoted] = None

    def insert(self, key: Hashable) -> list[Hashable]:
        probation = self._probation
        if key in probation or key in self._protected:
            self.touch(key)
            return []
        probation[key] = None
        excess = len(probation) + len(self._protected) - self.capacity
        if excess <= 0:
            return []
        if excess == 1:  # the usual eviction: the oldest key on probation (there is one: this)
            return [probation.popitem(last=False)[0]]
        evicted = []
        while len(self._probation) + len(self._protected) > self.capacity:
            source = self._probation if self._probation else self._protected
            victim, _ = source.popitem(last=False)
            evicted.append(victim)
        return evicted

    def remove(self, key: Hashable) -> None:
        self._probation.pop(key, None)
        self._protected.pop(key, None)


class LeastFrequentlyUsed(EvictionPolicy):
    """``lfu``: evicts the least-read key (oldest first among equals), O(1) per operation."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self._count: dict[Hashable, int] = {}
        self._buckets: defaultdict[int, OrderedDict[Hashable, None]] = defaultdict(OrderedDict)
        self._min = 0

    def _bump(self, key: Hashable) -> None:
        count = self._count[key]
        bucket = self._buckets[count]
        del bucket[key]
        if not bucket:
            del self._buckets[count]
            if self._min == count:
                self._min = count + 1
        self._count[key] = count + 1
        self._buckets[count + 1][key] = None

    def touch(self, key: Hashable) -> None:
        if key in self._count:
            self._bump(key)

    def insert(self, key: Hashable) -> list[Hashable]:
        if key in self._count:
            self._bump(key)
            return []
        evicted = []
        while len(self._count) >= self.capacity:
            bucket = self._buckets[self._min]
            victim, _ = bucket.popitem(last=False)
            if not bucket:
                del self._buckets[self._min]
            del self._count[victim]
            evicted.append(victim)
            if self._count:
                self._min = min(self._buckets)
        self._count[key] = 1
        self._buckets[1][key] = None
        self._min = 1
        return evicted

    def remove(self, key: Hashable) -> None:
        count = self._count.pop(key, None)
        if count is None:
            return
        bucket = self._buckets[count]
        del bucket[key]
        if not bucket:
            del self._buckets[count]
            if self._count and self._min == count:
                self._min = min(self._buckets)


def create_policy(name: str, capacity: int) -> EvictionPolicy:
    """A policy by name: a built-in, or one another distribution publishes under
    ``asherah.cache_policy``."""
    from asherah._drivers import driver_class

    lowered = name.strip().lower()
    cls: Any = driver_class(POLICY_GROUP, lowered)
    if not (isinstance(cls, type) and issubclass(cls, EvictionPolicy)):
        raise DriverLoadError(f"cache policy {lowered!r} is not an EvictionPolicy")
    policy: EvictionPolicy = cls(capacity)
    return policy
