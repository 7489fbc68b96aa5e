"""Eviction policies for the bounded caches (entry-point group ``asherah.cache_policy``).

A policy decides *which* entry leaves a full cache; the caches own the entries, their
freshness and their locking. Built in: ``lru``, ``slru``, ``lfu`` and ``simple`` (never
evicts: the reference's default for key caches).
"""

from asherah.cache._policies import (
    EvictionPolicy,
    LeastFrequentlyUsed,
    LeastRecentlyUsed,
    NeverEvict,
    SegmentedLeastRecentlyUsed,
    create_policy,
)

__all__ = [
    "EvictionPolicy",
    "LeastFrequentlyUsed",
    "LeastRecentlyUsed",
    "NeverEvict",
    "SegmentedLeastRecentlyUsed",
    "create_policy",
]
