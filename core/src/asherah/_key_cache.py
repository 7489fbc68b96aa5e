"""Factory-wide caches of unwrapped system and intermediate keys.

Two views over one bounded store:

- exact ``(id, created)`` entries, which decrypt uses and never reloads;
- a ``latest`` entry per id, which encrypt uses. It is *fresh* for one revoke-check interval
  (with a little jitter, so a fleet does not reload in step), then *stale*: still served while
  exactly one caller reloads it (stale-while-revalidate). It is *invalid* once the key is
  revoked or older than ``expire_after``; then every caller waits for the one reload.

Entries beyond the capacity are evicted by the configured policy. An evicted key is not wiped
under a caller still using it: the store's handle is closed when the last reference goes.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import cast

from asherah._keys import CryptoKey
from asherah.cache._policies import EvictionPolicy, NeverEvict

ExactKey = tuple[str, int]
_random = random.random  # jitter only, not crypto
#: A hot key tells its eviction policy it was used at most once per this many seconds.
TOUCH_EVERY_S = 1.0


class LatestEntry:
    """The newest key of one id, with when it must be re-checked and when it expires."""

    __slots__ = ("fresh_until", "key", "refreshing", "serve_until", "valid_until")

    def __init__(
        self, key: CryptoKey, fresh_until: float, valid_until: float, refreshing: bool = False
    ) -> None:
        self.key = key
        self.fresh_until = fresh_until
        self.valid_until = valid_until
        self.refreshing = refreshing
        #: ``min(fresh_until, valid_until)``: until when encrypt may use the key without a look
        #: at the metastore (one comparison on the hot path).
        self.serve_until = fresh_until if fresh_until < valid_until else valid_until

    def __repr__(self) -> str:
        return (
            f"LatestEntry(created={self.key.created}, fresh_until={self.fresh_until}, "
            f"valid_until={self.valid_until}, refreshing={self.refreshing})"
        )


class IdLock:
    """The load lock of one id, for one ``with`` block (single flight within the process).

    Counted, so the cache forgets it once nobody holds or waits on it: a lock per id ever
    loaded would otherwise stay for the cache's life (one per partition, never pruned).
    """

    __slots__ = ("_cache", "_key_id", "_lock", "users")

    def __init__(self, cache: KeyCache, key_id: str) -> None:
        self._cache = cache
        self._key_id = key_id
        self._lock = threading.Lock()
        self.users = 0

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
        cache = self._cache
        with cache._guard:
            self.users -= 1
            if not self.users and cache._locks.get(self._key_id) is self:
                del cache._locks[self._key_id]


class KeyCache:
    """Bounded key cache with a per-id load lock (single flight within the process)."""

    def __init__(
        self,
        name: str,
        ttl_s: float,
        expire_after_s: float,
        policy: EvictionPolicy | None = None,
        jitter: float = 0.1,
        on_evict: Callable[[ExactKey], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        #: Samples :meth:`touch` (the engine's clock, so a hot path can pass the time it read).
        self.clock = clock
        self.ttl_s = ttl_s
        self.expire_after_s = expire_after_s
        self.jitter = jitter
        self._policy = policy or NeverEvict()
        self.tracks_use = not isinstance(self._policy, NeverEvict)
        #: Whether the session hot paths tell the policy about uses: only once the cache is
        #: half full. Below that, half a capacity of new keys must arrive before anything is
        #: evicted; the insertion order the policy already holds stands in for use order until
        #: then, and every key in use is touched within a second of the switch. It spares a
        #: clock read on every cached decrypt while the cache is far from full (the usual
        #: case). The general paths and :meth:`touch` itself are unaffected.
        self.watching = False
        self._watch_from = max(1, self._policy.capacity // 2)
        self._on_evict = on_evict
        self._exact: dict[ExactKey, CryptoKey] = {}
        self._latest: dict[str, LatestEntry] = {}
        #: Read-only views for the session hot paths (a dict lookup, not a method call);
        #: the same objects for the cache's whole life (``clear`` empties them in place).
        self.exact_entries: Mapping[ExactKey, CryptoKey] = self._exact
        self.latest_entries: Mapping[str, LatestEntry] = self._latest
        # When each exact entry's row was last read (only consulted under
        # deny_revoked_on_decrypt, which re-reads revocation once per interval).
        self._checked: dict[ExactKey, float] = {}
        self._locks: dict[str, IdLock] = {}
        self._guard = threading.Lock()

    # -- reads ---------------------------------------------------------------------------------

    def exact(self, key_id: str, created: int) -> CryptoKey | None:
        key = self._exact.get((key_id, created))
        if key is not None and self.tracks_use:
            self.touch(key_id, key)
        return key

    def latest(self, key_id: str) -> LatestEntry | None:
        return self._latest.get(key_id)

    def touch(self, key_id: str, key: CryptoKey, now: float | None = None) -> None:
        """Tell the eviction policy ``key`` was used; sampled to once a second per key."""
        if self.tracks_use:
            if now is None:
                now = self.clock()
            if now - key.touched >= TOUCH_EVERY_S or now < key.touched:
                key.touched = now
                with self._guard:
                    self._policy.touch((key_id, key.created))

    # -- writes --------------------------------------------------------------------------------

    def put(self, key_id: str, key: CryptoKey, now: float | None = None) -> CryptoKey:
        """Cache ``key``; if an entry for the same row exists keep it and drop the newcomer."""
        evicted: list[ExactKey] = []
        exact = (key_id, key.created)  # one tuple for the cache and its policy
        with self._guard:
            existing = self._exact.get(exact)
            if existing is not None and existing is not key:
                if key.revoked and not existing.revoked:
                    existing.revoked = True
                key.wipe()
                return existing
            self._exact[exact] = key
            if self.tracks_use:
                # Inserting is a use: the policy need not hear of it again within a second.
                key.touched = self.clock() if now is None else now
                if len(self._exact) >= self._watch_from:
                    self.watching = True  # entries leave only by eviction (at capacity)
            for item in self._policy.insert(exact):
                victim = cast(ExactKey, item)
                if victim == exact:
                    continue
                evicted_key = self._exact.pop(victim, None)
                self._checked.pop(victim, None)
                entry = self._latest.get(victim[0])
                if entry is not None and entry.key is evicted_key:
                    del self._latest[victim[0]]
                evicted.append(victim)
        if self._on_evict is not None:
            for victim_key in evicted:
                self._on_evict(victim_key)
        return key

    def set_latest(self, key_id: str, key: CryptoKey, now: float) -> CryptoKey:
        """Cache ``key`` as the newest of ``key_id``, fresh from ``now``."""
        key = self.put(key_id, key, now)
        # Up to ``jitter`` earlier than the interval (never later): see ``_ttl``.
        fresh = now + self.ttl_s * (1.0 - self.jitter * _random())
        self._latest[key_id] = LatestEntry(key, fresh, key.created + self.expire_after_s)
        return key

    def recheck_later(self, entry: LatestEntry, now: float) -> None:
        """A reload failed: keep serving the stale key and try again after one interval."""
        entry.fresh_until = now + self._ttl()
        entry.serve_until = min(entry.fresh_until, entry.valid_until)
        entry.refreshing = False

    def claim_refresh(self, entry: LatestEntry) -> bool:
        """Elect exactly one reloader for a stale entry."""
        with self._guard:
            if entry.refreshing:
                return False
            entry.refreshing = True
            return True

    def _ttl(self) -> float:
        # Up to ``jitter`` earlier than the interval (never later), so a fleet spreads its
        # reloads and a revocation is never noticed later than one interval.
        return self.ttl_s * (1.0 - self.jitter * _random())

    def due_for_check(self, key_id: str, created: int, now: float) -> bool:
        """True when the row behind an exact entry was not read within one interval."""
        checked = self._checked.get((key_id, created))
        return checked is None or now - checked >= self.ttl_s

    def mark_checked(self, key_id: str, created: int, now: float) -> None:
        self._checked[(key_id, created)] = now

    def lock_for(self, key_id: str) -> IdLock:
        """The load lock of ``key_id``, counted as held or awaited until its ``with`` ends:
        use it only as ``with cache.lock_for(key_id):``."""
        with self._guard:
            lock = self._locks.get(key_id)
            if lock is None:
                lock = self._locks[key_id] = IdLock(self, key_id)
            lock.users += 1
        return lock

    @property
    def load_locks(self) -> int:
        """Ids with a load in flight or awaited (tests: the locks do not pile up)."""
        return len(self._locks)

    def __len__(self) -> int:
        return len(self._exact)

    def clear(self) -> None:
        """Wipe and forget every cached key."""
        with self._guard:
            for key in self._exact.values():
                key.wipe()
            self._exact.clear()
            self.watching = False
            self._latest.clear()
            self._checked.clear()
