"""The factory's session cache: one shared core per partition, handed out as cheap sessions.

Bounded by an eviction policy (``slru`` by default) and an idle expiry. A core some session
still uses is never evicted: it moves to the back of the line and the cache may run over its
size until a user lets go. Closing one session never touches another session of the same
partition.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from asherah._key_ids import KeyIds
from asherah._key_manager import KeyManager
from asherah.cache._policies import EvictionPolicy


@dataclass(slots=True)
class SessionCore:
    """What every session of one partition shares."""

    partition: str
    ids: KeyIds
    key_id_json: str
    keys: KeyManager
    users: int = 0
    last_used: float = 0.0
    cached: bool = True
    owns_key_cache: bool = False

    def finish(self) -> None:
        if self.owns_key_cache:
            self.keys.intermediate_keys.clear()


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
        self._clock = clock
        self._on_evict = on_evict
        self._cores: dict[str, SessionCore] = {}
        self._lock = threading.Lock()
        self._last_sweep = 0.0

    def __len__(self) -> int:
        return len(self._cores)

    def acquire(self, partition: str) -> SessionCore:
        now = self._clock()
        if self._policy is None:
            core = self._build(partition)
            core.cached = False
            core.users = 1
            return core
        evicted: list[str] = []
        with self._lock:
            self._sweep(now, evicted)
            found = self._cores.get(partition)
            if found is not None and found.users == 0 and now - found.last_used >= self._idle_s:
                self._drop(partition, evicted)
                found = None
            if found is None:
                core = self._build(partition)
                self._cores[partition] = core
                self._admit(partition, evicted)
            else:
                core = found
                self._policy.touch(partition)
            core.users += 1
            core.last_used = now
        self._report(evicted)
        return core

    def release(self, core: SessionCore) -> None:
        with self._lock:
            core.users -= 1
            core.last_used = self._clock()
            done = core.users == 0 and not core.cached
        if done:
            core.finish()

    def clear(self) -> None:
        with self._lock:
            cores = list(self._cores.values())
            self._cores.clear()
        for core in cores:
            core.cached = False
            core.finish()

    def _admit(self, partition: str, evicted: list[str]) -> None:
        assert self._policy is not None  # noqa: S101 - callers check
        victims = list(self._policy.insert(partition))
        for _ in range(len(self._cores) + 1):
            if not victims:
                return
            victim = str(victims.pop(0))
            core = self._cores.get(victim)
            if core is None:
                continue
            if core.users > 0:
                # In use: never closed under its user. Re-admit it as recently used and let
                # the policy pick again among the others.
                victims.extend(str(v) for v in self._policy.insert(victim) if v != victim)
                continue
            self._drop(victim, evicted)

    def _drop(self, partition: str, evicted: list[str]) -> None:
        core = self._cores.pop(partition)
        if self._policy is not None:
            self._policy.remove(partition)
        core.cached = False
        if core.users == 0:
            core.finish()
        evicted.append(partition)

    def _sweep(self, now: float, evicted: list[str]) -> None:
        if now - self._last_sweep < self._idle_s / 10:
            return
        self._last_sweep = now
        for partition, core in list(self._cores.items()):
            if core.users == 0 and now - core.last_used >= self._idle_s:
                self._drop(partition, evicted)

    def _report(self, evicted: list[str]) -> None:
        if self._on_evict is not None:
            for partition in evicted:
                self._on_evict(partition)
