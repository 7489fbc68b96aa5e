"""The factory's session cache: one shared core per partition, handed out as cheap sessions.

Bounded by an eviction policy (``slru`` by default) and an idle expiry. A core some session
still uses is never evicted: the policy's choice is parked outside the policy (the cache runs
over its size by the parked cores) and goes back into it when its last user lets go, which may
evict another. So a miss costs the same however many sessions are held open. Closing one
session never touches another session of the same partition.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from asherah._key_ids import KeyIds
from asherah._key_manager import KeyManager
from asherah.cache._policies import EvictionPolicy


@dataclass(slots=True)
class SessionCore:
    """What every session of one partition shares."""

    partition: str
    ids: KeyIds
    keys: KeyManager
    users: int = 0
    last_used: float = 0.0
    cached: bool = True
    #: Chosen by the eviction policy while in use: out of the policy until released.
    parked: bool = False
    owns_key_cache: bool = False
    #: Set by the cache that hands the core out. No cycle once the core is evicted: the
    #: cache no longer holds it.
    cache: SessionCache | None = None

    def finish(self) -> None:
        if self.owns_key_cache:
            self.keys.intermediate_keys.clear()

    def session_closed(self, session: object) -> None:
        """A session's ``on_close``: a bound method, not a closure per ``get_session``."""
        if self.cache is not None:
            self.cache.release(self)


class SessionCache:
    """Partition -> :class:`SessionCore`, bounded and idle-expiring."""

    def __init__(
        self,
        build: Callable[[str], SessionCore],
        policy: EvictionPolicy | None,
        idle_s: float,
        clock: Callable[[], float],
        on_evict: Callable[[str], None] | None = None,
    ) -> None:
        self._build = build
        self._policy = policy
        self._idle_s = idle_s
        self._sweep_every = idle_s / 10
        self._clock = clock
        self._on_evict = on_evict
        self._cores: dict[str, SessionCore] = {}
        self._lock = threading.Lock()
        self._last_sweep = 0.0

    def __len__(self) -> int:
        return len(self._cores)

    def acquire(self, partition: str) -> SessionCore:
        now = self._clock()
        policy = self._policy
        if policy is None:
            core = self._build(partition)
            core.cache = self
            core.cached = False
            core.users = 1
            return core
        # Built only when something is evicted: a hit, and most misses, allocate no list.
        evicted: list[str] | None = None
        cores = self._cores
        with self._lock:
            if now - self._last_sweep >= self._sweep_every:
                evicted = self._sweep(now)
            found = cores.get(partition)
            if found is None or (not found.users and now - found.last_used >= self._idle_s):
                if found is not None:  # idle too long: replaced by a new one
                    evicted = self._drop(partition, evicted)
                core = self._build(partition)
                core.cache = self
                cores[partition] = core
                victims = policy.insert(partition)
                if victims:
                    evicted = self._evict(victims, evicted)
            else:
                core = found
                if not core.parked:
                    policy.touch(partition)
            core.users += 1
            core.last_used = now
        if evicted is not None and self._on_evict is not None:
            for victim in evicted:
                self._on_evict(victim)
        return core

    def release(self, core: SessionCore) -> None:
        now = self._clock()
        evicted: list[str] | None = None
        with self._lock:
            core.users -= 1
            core.last_used = now
            done = core.users == 0 and not core.cached
            if core.parked and not core.users:
                # Its last user let go: back into the policy, which may pick victims now.
                core.parked = False
                if core.cached and self._policy is not None:
                    victims = self._policy.insert(core.partition)
                    if victims:
                        evicted = self._evict(victims, evicted)
        if done:
            core.finish()
        if evicted is not None and self._on_evict is not None:
            for victim in evicted:
                self._on_evict(victim)

    def clear(self) -> None:
        with self._lock:
            cores = list(self._cores.values())
            self._cores.clear()
        for core in cores:
            core.cached = False
            core.finish()

    def _evict(self, victims: list[Hashable], evicted: list[str] | None) -> list[str] | None:
        """Drop the policy's victims (already out of the policy); caller holds the lock.
        One in use is never closed under its user: it is parked until released."""
        for victim in victims:
            core = self._cores.get(str(victim))
            if core is None:
                continue
            if core.users:
                core.parked = True
            else:
                evicted = self._drop(core.partition, evicted, in_policy=False)
        return evicted

    def _drop(
        self, partition: str, evicted: list[str] | None, *, in_policy: bool = True
    ) -> list[str]:
        core = self._cores.pop(partition)
        if in_policy and not core.parked and self._policy is not None:
            self._policy.remove(partition)
        core.parked = False
        core.cached = False
        if core.users == 0:
            core.finish()
        if evicted is None:
            evicted = []
        evicted.append(partition)
        return evicted

    def _sweep(self, now: float) -> list[str] | None:
        self._last_sweep = now
        evicted: list[str] | None = None
        for partition, core in list(self._cores.items()):
            if core.users == 0 and now - core.last_used >= self._idle_s:
                evicted = self._drop(partition, evicted)
        return evicted
