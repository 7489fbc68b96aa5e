"""Factory-wide caches of unwrapped system and intermediate keys.

Two views over one store: exact ``(id, created)`` entries (decrypt never reloads these), and a
``latest`` pointer per id whose freshness is the revoke-check interval (encrypt reloads it once
stale, which is how revocation and rotation by other processes are noticed).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from asherah._keys import CryptoKey


@dataclass(slots=True)
class _Latest:
    key: CryptoKey
    checked_at: float


class KeyCache:
    """Unbounded key cache with a per-id load lock (single flight within the process)."""

    def __init__(self, name: str, ttl_s: float) -> None:
        self.name = name
        self.ttl_s = ttl_s
        self._exact: dict[tuple[str, int], CryptoKey] = {}
        self._latest: dict[str, _Latest] = {}
        # When each exact entry's row was last read (only consulted under
        # deny_revoked_on_decrypt, which re-reads revocation once per interval).
        self._checked: dict[tuple[str, int], float] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def exact(self, key_id: str, created: int) -> CryptoKey | None:
        return self._exact.get((key_id, created))

    def fresh_latest(self, key_id: str, now: float) -> CryptoKey | None:
        """The cached latest key if it was checked less than one interval ago."""
        entry = self._latest.get(key_id)
        if entry is None or now - entry.checked_at >= self.ttl_s:
            return None
        return entry.key

    def has_latest(self, key_id: str) -> bool:
        return key_id in self._latest

    def put(self, key_id: str, key: CryptoKey) -> CryptoKey:
        """Cache ``key``; if an equal entry exists keep it and wipe the newcomer."""
        with self._guard:
            existing = self._exact.get((key_id, key.created))
            if existing is not None and existing is not key:
                if key.revoked and not existing.revoked:
                    existing.revoked = True
                key.wipe()
                return existing
            self._exact[(key_id, key.created)] = key
            return key

    def set_latest(self, key_id: str, key: CryptoKey, now: float) -> CryptoKey:
        key = self.put(key_id, key)
        self._latest[key_id] = _Latest(key, now)
        return key

    def due_for_check(self, key_id: str, created: int, now: float) -> bool:
        """True when the row behind an exact entry was not read within one interval."""
        checked = self._checked.get((key_id, created))
        return checked is None or now - checked >= self.ttl_s

    def mark_checked(self, key_id: str, created: int, now: float) -> None:
        self._checked[(key_id, created)] = now

    def lock_for(self, key_id: str) -> threading.Lock:
        lock = self._locks.get(key_id)
        if lock is None:
            with self._guard:
                lock = self._locks.setdefault(key_id, threading.Lock())
        return lock

    def __len__(self) -> int:
        return len(self._exact)

    def clear(self) -> None:
        """Wipe and forget every cached key."""
        with self._guard:
            for key in self._exact.values():
                key.wipe()
            self._exact.clear()
            self._latest.clear()
            self._checked.clear()
