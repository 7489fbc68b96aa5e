"""Per-process memos for factory start-up: validating the same config again gives the same
frozen model, so a re-created factory need not pay pydantic for it (~15 us per model here).

Only mappings whose values are all hashable are remembered (nested sections are not), keyed
by their items in order, and at most :data:`MAX_ENTRIES` of them: the oldest is dropped first.
Reads take no lock (one ``dict.get``); writes do.
Values, secrets included, stay referenced as long as an entry does, as they do in the caller's
own config object; Python cannot wipe a ``str`` either way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

MAX_ENTRIES = 32
T = TypeVar("T")


def items_key(mapping: Mapping[str, Any]) -> tuple[tuple[str, type, Any], ...] | None:
    """The mapping's items as a key, or ``None`` when a value is not hashable. Each value's
    type is part of it: ``True``, ``1`` and ``1.0`` are equal keys but may validate apart."""
    key = tuple((name, type(value), value) for name, value in mapping.items())
    try:
        hash(key)
    except TypeError:
        return None
    return key


class Memo:
    """A bounded, thread-safe ``key -> value`` memo; failures are never remembered."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max = max_entries
        self._entries: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable | None, build: Callable[[], T]) -> T:
        """The value remembered for ``key``, else ``build()`` (remembered unless ``key`` is
        ``None``)."""
        if key is None:
            return build()
        found: T | None = self._entries.get(key)
        if found is not None:
            return found
        value = build()
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self._max:
                del self._entries[next(iter(self._entries))]  # the oldest
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
