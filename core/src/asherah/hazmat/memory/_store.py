"""The tiered key store: where the engine keeps every unwrapped system and intermediate key.

* Tier 1, the slab: mlock'd slots holding the coffer halves and an LRU "hot cache" of decrypted
  keys. A key in the hot cache is used in place, through the slab's access window.
* Tier 2, enclaves: every key is also sealed under the coffer key in ordinary memory. A key that
  is not hot is opened into a free slot on use (a "promotion"); the least recently used unpinned
  key is wiped from its slot when the hot cache is full (an "eviction").
* Tier 3 is the metastore, outside this module.

Modes: ``mlock`` (the slab is locked in RAM), ``encrypted`` (nothing is locked and nothing is
kept decrypted: the hot cache is off and every use opens the enclave), ``none`` (plain wiped
``bytearray``s, for tests and platforms without protected memory).
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from asherah._errors import ConfigError
from asherah.hazmat.aead import ZERO_KEY as _ZERO_KEY
from asherah.hazmat.memory import _enclave, _libc
from asherah.hazmat.memory._buffer import release_view
from asherah.hazmat.memory._coffer import Coffer
from asherah.hazmat.memory._errors import MemlockLimitError, SecureMemoryError
from asherah.hazmat.memory._slab import SLOT_SIZE, Slab

Mode = Literal["mlock", "encrypted", "none"]
MODES: tuple[Mode, ...] = ("mlock", "encrypted", "none")
KEY_SIZE = SLOT_SIZE

EventCallback = Callable[[str, object], None]
"""``(kind, label)``: kind is ``hit``, ``miss``, ``promotion``, ``eviction``, ``overflow`` or
``fallback``; label is whatever metadata the caller passed to :meth:`KeyStore.put` (never key
bytes)."""

Events = list[tuple[str, object]]
T = TypeVar("T")

DEFAULT_SLAB_SLOTS = 256


def default_hot_cache_size(slab_slots: int) -> int:
    """Seven eighths of the slab: the rest stays free for keys opened by uses in flight."""
    return max(1, slab_slots * 7 // 8)


def default_mode() -> Mode:
    """``mlock`` where protected memory works (Linux x86-64/aarch64), else ``none``."""
    return "mlock" if _libc.unsupported_reason() is None else "none"


@dataclass(frozen=True, slots=True)
class KeyStoreStats:
    """Counters since the store was created (a snapshot)."""

    mode: Mode
    hits: int
    misses: int
    promotions: int
    evictions: int
    overflows: int
    keys: int
    resident: int
    locked_bytes: int
    window_opens: int


class _Entry:
    __slots__ = ("closed", "ident", "label", "pins", "plain", "sealed", "slot")

    def __init__(self, ident: int, label: object) -> None:
        self.ident = ident
        self.label = label
        self.sealed: bytes | None = None  # the enclave (sealed modes)
        self.plain: bytearray | None = None  # the key itself (mode "none")
        self.slot = -1
        self.pins = 0
        self.closed = False


class _Backend:
    """What a handle needs from a store; the two implementations below hold the keys."""

    def __init__(self, on_event: EventCallback | None) -> None:
        self.on_event = on_event
        self.entries: dict[int, _Entry] = {}
        self.pending: deque[_Entry] = deque()
        self.closed = False
        self.hits = self.misses = self.promotions = self.evictions = self.overflows = 0

    def acquire(self, entry: _Entry) -> tuple[memoryview, bytearray | None]:
        raise NotImplementedError

    def release(self, entry: _Entry, view: memoryview, spill: bytearray | None) -> None:
        raise NotImplementedError

    def put(self, entry: _Entry, source: memoryview, events: Events) -> None:
        raise NotImplementedError

    def close_entry(self, entry: _Entry) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def resident(self) -> int:
        return 0

    def locked_bytes(self) -> int:
        return 0

    def window_opens(self) -> int:
        return 0

    def check_usable(self, entry: _Entry) -> None:
        if self.closed:
            raise SecureMemoryError("key store is closed")
        if entry.closed:
            raise SecureMemoryError("key handle is closed")

    def emit(self, events: Events) -> None:
        callback = self.on_event
        if callback is not None:
            for kind, label in events:
                callback(kind, label)


class _PlainBackend(_Backend):
    """Mode ``none``: each key in its own ``bytearray``, zeroed on close. No protection."""

    def acquire(self, entry: _Entry) -> tuple[memoryview, bytearray | None]:
        self.check_usable(entry)
        plain = entry.plain
        if plain is None:
            raise SecureMemoryError("key handle is closed")
        self.hits += 1
        if self.on_event is not None:
            self.on_event("hit", entry.label)
        return memoryview(plain).toreadonly(), None

    def release(self, entry: _Entry, view: memoryview, spill: bytearray | None) -> None:
        release_view(view)

    def put(self, entry: _Entry, source: memoryview, events: Events) -> None:
        if self.closed:
            raise SecureMemoryError("key store is closed")
        self.drain_pending()
        entry.plain = bytearray(source)
        self.entries[entry.ident] = entry

    def close_entry(self, entry: _Entry) -> None:
        if entry.closed:
            return
        entry.closed = True
        self.entries.pop(entry.ident, None)
        if entry.plain is not None:
            _libc.wipe(entry.plain)
            entry.plain = None

    def drain_pending(self) -> None:
        while self.pending:
            self.close_entry(self.pending.popleft())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for entry in list(self.entries.values()):
            self.close_entry(entry)
        self.pending.clear()


class _DeferredBackend(_Backend):
    """A sealed-mode store before its first key: no slab yet, so nothing mapped or locked."""

    def close(self) -> None:
        self.closed = True


class _SealedBackend(_Backend):
    """Modes ``mlock`` and ``encrypted``: enclaves plus the slab (see the module docstring).

    Every structure is guarded by the slab buffer's lock, which is also the lock of its access
    window, so a cached-key use takes one lock round trip.
    """

    def __init__(self, slab: Slab, hot: int, on_event: EventCallback | None) -> None:
        super().__init__(on_event)
        self.slab = slab
        self.buffer = slab.buffer
        self.coffer = Coffer(slab)
        self.hot = hot
        self.lru: OrderedDict[int, _Entry] = OrderedDict()
        self.active = 0
        self.released = False

    def resident(self) -> int:
        return len(self.lru)

    def locked_bytes(self) -> int:
        return 0 if self.released else self.buffer.locked_bytes

    def window_opens(self) -> int:
        return self.buffer.accesses

    # -- put ---------------------------------------------------------------------------------

    def put(self, entry: _Entry, source: memoryview, events: Events) -> None:
        buffer, coffer = self.buffer, self.coffer
        with buffer.lock:
            if self.closed:
                raise SecureMemoryError("key store is closed")
            self.drain_pending()
            buffer.enter(write=True)
            try:
                with buffer.view(0, buffer.size, write=True) as view:
                    try:
                        with coffer.derive(view) as key:
                            entry.sealed = _enclave.seal(key, source)
                    finally:
                        coffer.clear()
                    if self.hot:
                        offset = self.free_slot(events)
                        if offset is not None:
                            view[offset : offset + KEY_SIZE] = source
                            entry.slot = offset
                            self.lru[entry.ident] = entry
                            self.trim(events)
            finally:
                buffer.leave(write=True)
            self.entries[entry.ident] = entry

    # -- use ---------------------------------------------------------------------------------

    def acquire(self, entry: _Entry) -> tuple[memoryview, bytearray | None]:
        buffer = self.buffer
        with buffer.lock:
            if self.closed or entry.closed:
                self.check_usable(entry)
            offset = entry.slot
            if offset < 0:
                events: Events = [("miss", entry.label)]
                view, spill = self.promote(entry, events)
            else:  # the hot path: a cached key
                buffer.enter_read()
                self.lru.move_to_end(entry.ident)
                self.hits += 1
                entry.pins += 1
                self.active += 1
                view = buffer.view(offset, KEY_SIZE, write=False)
                if self.on_event is None:
                    return view, None
                events = [("hit", entry.label)]
                spill = None
        self.emit(events)
        return view, spill

    def promote(self, entry: _Entry, events: Events) -> tuple[memoryview, bytearray | None]:
        """Open ``entry``'s enclave into a slot (or a spill buffer); caller holds the lock."""
        sealed = entry.sealed
        if sealed is None:
            raise SecureMemoryError("key handle is closed")
        buffer, coffer, slab = self.buffer, self.coffer, self.slab
        self.misses += 1
        buffer.enter(write=True)
        try:
            self.drain_pending()
            offset = self.free_slot(events)
            with buffer.view(0, buffer.size, write=True) as view:
                if offset is None:
                    # Every slot is pinned by a use in flight: decrypt into ordinary memory for
                    # this one call (wiped after) rather than block or fail.
                    spill = bytearray(KEY_SIZE)
                    self.overflows += 1
                    events.append(("overflow", entry.label))
                    try:
                        with coffer.derive(view) as key, memoryview(spill) as out:
                            _enclave.open_into(key, sealed, out)
                    finally:
                        coffer.clear()
                    return memoryview(spill).toreadonly(), spill
                try:
                    with coffer.derive(view) as key, view[offset : offset + KEY_SIZE] as out:
                        _enclave.open_into(key, sealed, out)
                except BaseException:
                    slab.give_back(offset)
                    raise
                finally:
                    coffer.clear()
            entry.slot = offset
            self.lru[entry.ident] = entry
            self.promotions += 1
            events.append(("promotion", entry.label))
            buffer.enter_read()  # already readable: no mprotect, cannot fail
            entry.pins += 1
            self.active += 1
            self.trim(events)
        finally:
            buffer.leave(write=True)
        return buffer.view(offset, KEY_SIZE, write=False), None

    def release(self, entry: _Entry, view: memoryview, spill: bytearray | None) -> None:
        try:
            release_view(view)
        finally:
            if spill is not None:
                _libc.wipe(spill)
            else:
                self.unpin(entry)

    def unpin(self, entry: _Entry) -> None:
        buffer = self.buffer
        events: Events | None = None
        with buffer.lock:
            entry.pins -= 1
            self.active -= 1
            if entry.pins or not (entry.closed or len(self.lru) > self.hot):
                buffer.leave_read()
            else:
                # Widen to read-write while still counted as a reader: one mprotect now and
                # one when the write window closes, instead of four.
                events = []
                buffer.enter(write=True)
                buffer.leave_read()
                try:
                    if entry.closed and entry.slot >= 0:
                        self.lru.pop(entry.ident, None)
                        self.slab.give_back(entry.slot)
                        entry.slot = -1
                    self.trim(events)
                finally:
                    buffer.leave(write=True)
            if self.closed and not self.active:
                self.release_memory()
        if events:
            self.emit(events)

    # -- slots and eviction (caller holds the lock and a write window) ----------------------

    def free_slot(self, events: Events) -> int | None:
        """A free slot, evicting the least recently used unpinned key if needed."""
        offset = self.slab.take()
        if offset is not None:
            return offset
        for ident, victim in self.lru.items():
            if victim.pins == 0:
                del self.lru[ident]
                offset, victim.slot = victim.slot, -1
                self.slab.wipe(offset)
                self.evictions += 1
                events.append(("eviction", victim.label))
                return offset
        return None

    def trim(self, events: Events) -> None:
        """Evict unpinned keys, least recently used first, until the hot cache fits."""
        excess = len(self.lru) - self.hot
        if excess <= 0:
            return
        # Usually one key over, and the oldest is unpinned: stop at the first victims found
        # rather than copying the whole LRU order on every put.
        victims = []
        for ident, victim in self.lru.items():
            if victim.pins == 0:
                victims.append((ident, victim))
                if len(victims) == excess:
                    break
        for ident, victim in victims:
            del self.lru[ident]
            self.slab.give_back(victim.slot)
            victim.slot = -1
            self.evictions += 1
            events.append(("eviction", victim.label))

    # -- closing ------------------------------------------------------------------------------

    def close_entry(self, entry: _Entry) -> None:
        with self.buffer.lock:
            self.close_entry_locked(entry)

    def close_entry_locked(self, entry: _Entry) -> None:
        if entry.closed:
            return
        entry.closed = True
        entry.sealed = None
        self.entries.pop(entry.ident, None)
        if self.released or entry.slot < 0 or entry.pins:
            return  # a pinned slot is freed when its last use ends
        self.lru.pop(entry.ident, None)
        self.buffer.enter(write=True)
        try:
            self.slab.give_back(entry.slot)
        finally:
            self.buffer.leave(write=True)
        entry.slot = -1

    def drain_pending(self) -> None:
        """Close the entries of handles that were garbage-collected without ``close()``."""
        while self.pending:
            self.close_entry_locked(self.pending.popleft())

    def close(self) -> None:
        with self.buffer.lock:
            if self.closed:
                return
            self.closed = True
            for entry in self.entries.values():
                entry.closed = True
                entry.sealed = None
            self.entries.clear()
            self.pending.clear()
            if not self.active:
                self.release_memory()

    def release_memory(self) -> None:
        """Zero, unlock and unmap the slab: every key slot and both coffer halves (lock held)."""
        if self.released:
            return
        self.released = True
        for entry in self.lru.values():
            entry.slot = -1
        self.lru.clear()
        self.buffer.close_locked()


class KeyHandle:
    """One stored key. Use it with :meth:`use` or :meth:`borrow`; :meth:`close` wipes it.

    The view handed out is a read-only, 32-byte ``memoryview`` (``AESGCM(view)`` accepts it),
    valid only during the call: afterwards the slab pages are ``PROT_NONE`` again.
    """

    __slots__ = ("__weakref__", "_backend", "_entry")

    def __init__(self, backend: _Backend, entry: _Entry) -> None:
        self._backend = backend
        self._entry = entry

    def __repr__(self) -> str:
        return f"KeyHandle(#{self._entry.ident}, {'closed' if self.closed else 'open'})"

    @property
    def closed(self) -> bool:
        return self._entry.closed or self._backend.closed

    def use(self, fn: Callable[[memoryview], T]) -> T:
        """Call ``fn(key_view)`` and return its result; the view dies when ``fn`` returns."""
        backend, entry = self._backend, self._entry
        view, spill = backend.acquire(entry)
        try:
            return fn(view)
        finally:
            backend.release(entry, view, spill)

    def borrow(self) -> _Borrow:
        """``with handle.borrow() as key:``; the same window as :meth:`use`."""
        return _Borrow(self._backend, self._entry)

    def close(self) -> None:
        """Wipe this key from the slab (now, or when its last use ends) and drop its enclave."""
        self._backend.close_entry(self._entry)

    def __del__(self) -> None:
        # A finaliser may run inside a locked section of the store: only queue the entry.
        entry = getattr(self, "_entry", None)
        if entry is not None and not entry.closed:
            self._backend.pending.append(entry)


class _Borrow:
    __slots__ = ("_backend", "_entry", "_spill", "_view")

    def __init__(self, backend: _Backend, entry: _Entry) -> None:
        self._backend = backend
        self._entry = entry
        self._view: memoryview | None = None
        self._spill: bytearray | None = None

    def __enter__(self) -> memoryview:
        self._view, self._spill = self._backend.acquire(self._entry)
        return self._view

    def __exit__(self, *exc: object) -> None:
        view, spill = self._view, self._spill
        self._view = self._spill = None
        if view is not None:
            self._backend.release(self._entry, view, spill)


class KeyStore:
    """Per-factory store of 32-byte keys; see the module docstring for the tiers and modes.

    ``slab_slots`` key slots are allocated (and, in ``mlock`` mode, locked) up front, about
    ``32 * (slab_slots + 3)`` bytes rounded up to pages; ``hot_cache_size`` of them (default
    seven eighths) may keep a decrypted key between uses. With ``allow_fallback`` an ``mlock``
    refused by ``RLIMIT_MEMLOCK`` switches the store to ``encrypted`` (see
    :attr:`fallback_reason`).
    ``protect_idle=False`` keeps the slab read-only instead of ``PROT_NONE`` between uses, which
    takes the two ``mprotect`` calls off every cached-key use (see ``docs/security.md``).
    ``defer=True`` allocates the slab with the first :meth:`put` instead (for an owner that may
    never store a key: nothing is mapped or locked until then, and an ``RLIMIT_MEMLOCK`` refusal
    or fallback happens at that put); every property of the slab is the same once it exists.
    """

    def __init__(
        self,
        mode: Mode = "mlock",
        *,
        slab_slots: int = DEFAULT_SLAB_SLOTS,
        hot_cache_size: int | None = None,
        allow_fallback: bool = False,
        protect_idle: bool = True,
        on_event: EventCallback | None = None,
        defer: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"secure_memory must be one of {', '.join(MODES)}, not {mode!r}")
        if slab_slots < 1:
            raise ConfigError("secure memory slab_slots must be at least 1")
        if hot_cache_size is None:
            hot_cache_size = default_hot_cache_size(slab_slots)
        if not 0 <= hot_cache_size <= slab_slots:
            raise ConfigError("secure memory hot_cache_size must be between 0 and slab_slots")
        self.requested_mode: Mode = mode
        self.fallback_reason: str | None = None
        self._ids = itertools.count(1)
        self.mode: Mode = mode
        self._backend: _Backend
        self._slab_settings = (slab_slots, hot_cache_size, allow_fallback, protect_idle)
        self._build_lock = threading.Lock()
        if mode == "none":
            self._backend = _PlainBackend(on_event)
        elif defer:
            self._backend = _DeferredBackend(on_event)
        else:
            self._backend = self._build_slab(on_event)

    @property
    def deferred(self) -> bool:
        """No slab yet: built with ``defer=True`` and no key put since (nothing is mapped)."""
        return isinstance(self._backend, _DeferredBackend)

    def _build_slab(self, on_event: EventCallback | None) -> _Backend:
        slab_slots, hot_cache_size, allow_fallback, protect_idle = self._slab_settings
        try:
            slab = Slab(slab_slots, lock=self.mode == "mlock", protect_idle=protect_idle)
        except MemlockLimitError as exc:
            if not allow_fallback:
                raise
            slab = Slab(slab_slots, lock=False, protect_idle=protect_idle)
            self.mode = "encrypted"
            self.fallback_reason = str(exc)
        hot = hot_cache_size if self.mode == "mlock" else 0
        backend = _SealedBackend(slab, hot, on_event)
        if self.fallback_reason is not None and on_event is not None:
            on_event("fallback", None)
        return backend

    def _built_backend(self) -> _Backend:
        """The backend, building a deferred store's slab now (its first key)."""
        backend = self._backend
        if not isinstance(backend, _DeferredBackend):
            return backend
        with self._build_lock:
            backend = self._backend
            if isinstance(backend, _DeferredBackend):
                if backend.closed:
                    raise SecureMemoryError("key store is closed")
                backend = self._backend = self._build_slab(backend.on_event)
        return backend

    def __repr__(self) -> str:
        return (
            f"KeyStore(mode={self.mode!r}, keys={len(self._backend.entries)}, closed={self.closed})"
        )

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._backend.closed

    @property
    def hot_cache_size(self) -> int:
        """Keys kept decrypted between uses (0 in ``encrypted`` and ``none`` modes)."""
        backend = self._backend
        if isinstance(backend, _DeferredBackend):
            return self._slab_settings[1] if self.mode == "mlock" else 0
        return backend.hot if isinstance(backend, _SealedBackend) else 0

    @property
    def on_event(self) -> EventCallback | None:
        return self._backend.on_event

    @on_event.setter
    def on_event(self, callback: EventCallback | None) -> None:
        self._backend.on_event = callback

    def stats(self) -> KeyStoreStats:
        backend = self._backend
        return KeyStoreStats(
            mode=self.mode,
            hits=backend.hits,
            misses=backend.misses,
            promotions=backend.promotions,
            evictions=backend.evictions,
            overflows=backend.overflows,
            keys=len(backend.entries),
            resident=backend.resident(),
            locked_bytes=backend.locked_bytes(),
            window_opens=backend.window_opens(),
        )

    def put(self, material: bytearray | memoryview, label: object = None) -> KeyHandle:
        """Take a 32-byte key into the store and zero ``material``; returns its handle.

        ``label`` is metadata passed back with every event about this key (never key bytes).
        Once the size is validated, ``material`` is zeroed even if the store refuses the key.
        """
        source = memoryview(material)
        if source.readonly or source.nbytes != KEY_SIZE:
            source.release()
            raise ValueError(f"put needs a writable buffer of exactly {KEY_SIZE} bytes")
        entry = _Entry(next(self._ids), label)
        events: Events = []
        flat = source.cast("B")
        try:
            backend = self._built_backend()
            backend.put(entry, flat, events)
        finally:
            # A slice copy from a zeroed bytearray: the same writes as memset, without the
            # ctypes address lookup (Python never elides the assignment).
            flat[:] = _ZERO_KEY
            flat.release()
            source.release()
        backend.emit(events)
        return KeyHandle(backend, entry)

    def close(self) -> None:
        """Wipe every key and the coffer, unlock and unmap the slab; idempotent.

        Uses still in flight finish first: the memory is released when the last one ends.
        """
        with self._build_lock:  # a deferred store closes here or builds first, never both
            backend = self._backend
            if isinstance(backend, _DeferredBackend):
                backend.close()
                return
        backend.close()
