"""Loading, creating and rotating system and intermediate keys (the rules of the reference).

Encrypt asks for the *latest* intermediate key: a cached one while it is fresh and valid,
otherwise the metastore's latest, otherwise a new one. A new key's ``Created`` is truncated to
the policy precision and strictly newer than the key it replaces. ``store`` returning ``False``
means another writer won: load its key and use it. Decrypt asks for an *exact* key and never
writes anything.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, TypeVar

from asherah import _keys, _observe, _random_pool
from asherah._errors import (
    AsherahError,
    DecryptionError,
    KeyCreationError,
    KmsError,
    MetastoreError,
)
from asherah._key_cache import KeyCache, LatestEntry
from asherah._key_ids import KeyIds
from asherah._keys import CryptoKey
from asherah._policy import CryptoPolicy
from asherah._records import EnvelopeKeyRecord, KeyMeta
from asherah.cache._policies import EvictionPolicy
from asherah.hazmat.aead import KEY_SIZE, AeadError
from asherah.hazmat.memory import KeyStore, wipe
from asherah.hazmat.memory._aead import HAS_DECRYPT_INTO
from asherah.hooks._manager import Hooks
from asherah.kms._base import KeyManagementService
from asherah.metastore._base import Metastore

_log = logging.getLogger("asherah.session")

_CREATE_ATTEMPTS = 5
A = TypeVar("A")


class SessionView(NamedTuple):
    """The IK cache as the session hot paths read it, and whether they may run at all."""

    cache: KeyCache
    latest: Mapping[str, LatestEntry]
    exact: Mapping[tuple[str, int], CryptoKey]
    #: No external hook listens to per-call events (the metrics flag is read per call).
    quiet: bool
    #: Quiet, ``decrypt_into`` available and no revocation check on decrypt.
    fast_decrypt: bool


class Workers:
    """The bounded thread pool behind the async API and background refreshes (lazy)."""

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def executor(self) -> ThreadPoolExecutor:
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        max_workers=self.max_workers, thread_name_prefix="asherah"
                    )
                pool = self._pool
        return pool

    def submit(self, task: Callable[[], None]) -> None:
        self.executor().submit(task)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class KeyManager:
    """Factory-wide key hierarchy: one SK cache and one shared IK cache."""

    def __init__(
        self,
        metastore: Metastore,
        kms: KeyManagementService,
        policy: CryptoPolicy,
        clock: Callable[[], float],
        hooks: Hooks,
        store: KeyStore,
        *,
        cache_key_schedules: bool = True,
        system_key_policy: EvictionPolicy | None = None,
        intermediate_key_policy: EvictionPolicy | None = None,
        ttl_jitter: float = 0.1,
        max_workers: int = 8,
    ) -> None:
        self.hooks = hooks
        self.workers = Workers(max_workers)
        self.metastore = metastore
        self.kms = kms
        self.policy = policy
        self.clock = clock
        self.store = store
        self.cache_key_schedules = cache_key_schedules
        self.ttl_jitter = ttl_jitter
        self.system_keys = KeyCache(
            "system",
            policy.check_interval_s,
            policy.expire_after_s,
            system_key_policy,
            ttl_jitter,
            self._evicted("system"),
            clock,
        )
        self.intermediate_keys = KeyCache(
            "intermediate",
            policy.check_interval_s,
            policy.expire_after_s,
            intermediate_key_policy,
            ttl_jitter,
            self._evicted("intermediate"),
            clock,
        )
        # The parent SK of each cached IK, so deny_revoked_on_decrypt can honour an SK
        # revocation without folding it into the IK's own flag (which encrypt relies on).
        # Kept only under that setting: nothing else reads it.
        self._parents: dict[tuple[str, int], KeyMeta] = {}
        self._track_parents = policy.deny_revoked_on_decrypt
        #: Latest system-key rows read ahead (with the drift-guard row), by id: (row, read at).
        self._read_ahead: dict[str, tuple[EnvelopeKeyRecord, float]] = {}
        self.closed = False
        #: Computed once: a new session (one per partition the session cache misses) copies it.
        self.session_view = self._session_view()

    def with_own_intermediate_cache(self, capacity_policy: EvictionPolicy | None) -> KeyManager:
        """A view sharing everything but the IK cache (``shared_intermediate_key_cache=False``)."""
        view = copy.copy(self)
        view.intermediate_keys = KeyCache(
            "intermediate",
            self.policy.check_interval_s,
            self.policy.expire_after_s,
            capacity_policy,
            self.ttl_jitter,
            view._evicted("intermediate"),
            self.clock,
        )
        view._parents = {}
        view.session_view = view._session_view()
        return view

    def _session_view(self) -> SessionView:
        """What every session of this manager copies into its hot-path attributes."""
        cache = self.intermediate_keys
        quiet = not (self.hooks.external_timing or self.hooks.external_cache)
        return SessionView(
            cache,
            cache.latest_entries,
            cache.exact_entries,
            quiet,
            quiet and HAS_DECRYPT_INTO and not self.policy.deny_revoked_on_decrypt,
        )

    def _evicted(self, cache: str) -> Callable[[tuple[str, int]], None]:
        def on_evict(victim: tuple[str, int]) -> None:
            if self._track_parents:
                self._parents.pop(victim, None)
            self.hooks.cache_event(cache, "eviction", "exact", victim[0])

        return on_evict

    def _new_key(self, material: bytearray, created: int, revoked: bool, label: str) -> CryptoKey:
        return CryptoKey(
            self.store,
            material,
            created,
            revoked,
            cache_schedule=self.cache_key_schedules,
            label=label,
        )

    def read_ahead(self, rows: Mapping[str, EnvelopeKeyRecord], at: float) -> None:
        """System-key rows read at ``at`` before anyone asked: the first load of the same row
        within one check interval takes it instead of reading it again."""
        for key_id, record in rows.items():
            self._read_ahead[key_id] = (record, at)

    def _take_read_ahead(
        self, key_id: str, created: int | None
    ) -> tuple[EnvelopeKeyRecord, float] | None:
        """The row read ahead for ``key_id`` (at ``created``, if given) and when it was read:
        once, and only within one check interval of the read."""
        found = self._read_ahead.get(key_id)
        if found is None or (created is not None and found[0].created != created):
            return None
        self._read_ahead.pop(key_id, None)
        if self.clock() - found[1] >= self.policy.check_interval_s:
            return None
        return found

    def close(self) -> None:
        self.closed = True
        self._read_ahead.clear()
        self.workers.close()
        self.system_keys.clear()
        self.intermediate_keys.clear()
        self._parents.clear()

    # -- encrypt path --------------------------------------------------------------------------

    def latest_intermediate(self, ids: KeyIds) -> CryptoKey:
        """The intermediate key new data-row keys are wrapped with (may block on a load)."""
        ik_id = ids.intermediate_key_id
        if ik_id in self.intermediate_keys.latest_entries:
            key = self.cached_intermediate(ids, None)
            if key is not None:
                return key
        elif self.closed:
            raise AsherahError("session factory is closed")
        # A new partition comes straight here: nothing cached to serve.
        return self._load_latest(
            self.intermediate_keys, ik_id, self._load_or_create_intermediate, ids
        )

    def cached_intermediate(
        self, ids: KeyIds, background: Callable[[Callable[[], None]], None] | None
    ) -> CryptoKey | None:
        """The latest IK if the cache can serve it now, else ``None`` (a load is needed).

        A stale but valid entry is served while one caller reloads it: the caller itself
        (``background is None``) or a task handed to ``background`` (the async API).
        """
        if self.closed:
            raise AsherahError("session factory is closed")
        cache = self.intermediate_keys
        ik_id = ids.intermediate_key_id
        entry = cache.latest(ik_id)
        if entry is None:
            return None
        key = entry.key
        now = self.clock()
        if now < entry.fresh_until and now < entry.valid_until and not key.revoked:
            if cache.tracks_use:
                cache.touch(ik_id, key, now)
            if self.hooks.external_cache or _observe.METRICS.on:
                self.hooks.cache_event("intermediate", "hit", "latest", ik_id)
            return key
        if key.revoked or now >= entry.valid_until:
            return None
        self.hooks.cache_event("intermediate", "stale", "latest", ik_id)
        if cache.claim_refresh(entry):

            def refresh() -> None:
                self._refresh(
                    cache, ik_id, entry, lambda t: self._load_or_create_intermediate(ids, t)
                )

            if background is None:
                refresh()
                fresh = cache.latest(ik_id)
                if fresh is not None and not fresh.key.revoked and now < fresh.valid_until:
                    return fresh.key
            else:
                background(refresh)
        return key

    def _refresh(
        self,
        cache: KeyCache,
        key_id: str,
        entry: LatestEntry,
        loader: Callable[[int], CryptoKey],
    ) -> None:
        """Reload a stale latest key; on failure keep serving it and retry next interval."""
        with cache.lock_for(key_id):
            now = self.clock()
            try:
                key = loader(int(now))
            except Exception as exc:
                cache.recheck_later(entry, now)
                _log.warning(
                    "reloading %s key %s failed (%s); serving the cached key until the next check",
                    cache.name,
                    key_id,
                    type(exc).__name__,
                )
                return
            cache.set_latest(key_id, key, now)
            self.hooks.cache_event(cache.name, "load", "latest", key_id)

    def _load_latest(
        self, cache: KeyCache, key_id: str, loader: Callable[[A, int], CryptoKey], arg: A
    ) -> CryptoKey:
        """Single flight: one caller runs ``loader(arg, now)`` while the others wait for its
        result."""
        with cache.lock_for(key_id):
            now = self.clock()
            entry = cache.latest_entries.get(key_id)
            if (
                entry is not None
                and not entry.key.revoked
                and now < entry.valid_until
                and now < entry.fresh_until
            ):
                return entry.key
            self.hooks.cache_event(
                cache.name, "miss" if entry is None else "stale", "latest", key_id
            )
            key = cache.set_latest(key_id, loader(arg, int(now)), now)
            self.hooks.cache_event(cache.name, "load", "latest", key_id)
            return key

    def _valid(self, key: CryptoKey, now: int) -> bool:
        return not key.revoked and not self.policy.is_expired(key.created, now)

    def _usable(self, record: EnvelopeKeyRecord, now: int) -> bool:
        return record.revoked is not True and not self.policy.is_expired(record.created, now)

    def _load_or_create_intermediate(self, ids: KeyIds, now: int) -> CryptoKey:
        ik_id = ids.intermediate_key_id
        record = self.metastore.load_latest(ik_id)
        for _ in range(_CREATE_ATTEMPTS):
            if record is not None and self._usable(record, now):
                cached = self.intermediate_keys.exact(ik_id, record.created)
                if cached is not None:
                    return cached
                key = self._unwrap_intermediate(ik_id, record, MetastoreError)
                self.hooks.key_event("loaded", "intermediate", ik_id, key.created, ids.partition)
                return key
            replacing = None if record is None else record.created
            if record is not None:
                self._report_unusable("intermediate", ik_id, record, ids.partition)
                self._mark_revoked(self.intermediate_keys, ik_id, record)
            system_key = self._latest_system(ids.system_key_id, now)
            created = self.policy.new_key_created(now, replacing)
            material, nonce = _random_pool.key_and_nonce()
            try:
                parent = KeyMeta(ids.system_key_id, system_key.created)
                try:
                    wrapped = system_key.seal(material, nonce)
                except AeadError:  # only a wiped key: closed under this call
                    raise AsherahError("session factory is closed") from None
                new_record = EnvelopeKeyRecord(created, wrapped, parent)
                if self.metastore.store(ik_id, created, new_record):
                    event = "created" if replacing is None else "rotated"
                    self.hooks.key_event(event, "intermediate", ik_id, created, ids.partition)
                    if self._track_parents:
                        self._parents[(ik_id, created)] = parent
                    return self._new_key(material, created, False, ik_id)
            except BaseException:
                wipe(material)
                raise
            wipe(material)
            record = self.metastore.load_latest(ik_id)
        raise KeyCreationError(f"failed to create or load intermediate key id={ik_id} after retry")

    def _latest_system(self, sk_id: str, now: int) -> CryptoKey:
        cache = self.system_keys
        entry = cache.latest(sk_id)
        if entry is not None and not entry.key.revoked and now < entry.valid_until:
            if now >= entry.fresh_until and cache.claim_refresh(entry):
                self._refresh(cache, sk_id, entry, lambda t: self._load_or_create_system(sk_id, t))
                entry = cache.latest(sk_id) or entry
            return entry.key
        return self._load_latest(cache, sk_id, self._load_or_create_system, sk_id)

    def _load_or_create_system(self, sk_id: str, now: int) -> CryptoKey:
        ahead = self._take_read_ahead(sk_id, None)
        record = ahead[0] if ahead else self.metastore.load_latest(sk_id)
        for _ in range(_CREATE_ATTEMPTS):
            if record is not None and self._usable(record, now):
                cached = self.system_keys.exact(sk_id, record.created)
                if cached is not None:
                    return cached
                key = self._unwrap_system(sk_id, record)
                self.hooks.key_event("loaded", "system", sk_id, key.created)
                return key
            replacing = None if record is None else record.created
            if record is not None:
                self._report_unusable("system", sk_id, record, None)
                self._mark_revoked(self.system_keys, sk_id, record)
            created = self.policy.new_key_created(now, replacing)
            material = _keys.new_key_material()
            try:
                wrapped = self.kms.encrypt_key(material)
                if self.metastore.store(sk_id, created, EnvelopeKeyRecord(created, wrapped)):
                    event = "created" if replacing is None else "rotated"
                    self.hooks.key_event(event, "system", sk_id, created)
                    return self._new_key(material, created, False, sk_id)
            except BaseException:
                wipe(material)
                raise
            wipe(material)
            record = self.metastore.load_latest(sk_id)
        raise KeyCreationError(f"failed to create or load system key id={sk_id} after retry")

    @staticmethod
    def _mark_revoked(cache: KeyCache, key_id: str, record: EnvelopeKeyRecord) -> None:
        if record.revoked:
            cached = cache.exact(key_id, record.created)
            if cached is not None:
                cached.revoked = True

    def _report_unusable(
        self, key_type: str, key_id: str, record: EnvelopeKeyRecord, partition: str | None
    ) -> None:
        if record.revoked:
            self.hooks.key_event("revoked_seen", key_type, key_id, record.created, partition)
        _log.info("%s key %s created=%d is revoked or expired", key_type, key_id, record.created)

    # -- decrypt path --------------------------------------------------------------------------

    def cached_for_decrypt(self, key_id: str, created: int) -> CryptoKey | None:
        """The exact IK from the cache when no metastore read is needed, else ``None``."""
        if self.closed:
            raise AsherahError("session factory is closed")
        if self.policy.deny_revoked_on_decrypt:
            return None
        key = self.intermediate_keys.exact(key_id, created)
        if key is not None and self.hooks.cache_hits_enabled:
            self.hooks.cache_event("intermediate", "hit", "exact", key_id)
        return key

    def intermediate_for_decrypt(self, key_id: str, created: int) -> CryptoKey:
        """The exact intermediate key a data row names. Never creates or writes anything."""
        if self.closed:
            raise AsherahError("session factory is closed")
        cache = self.intermediate_keys
        key = cache.exact(key_id, created)
        if key is None:
            self.hooks.cache_event("intermediate", "miss", "exact", key_id)
            with cache.lock_for(key_id):
                key = cache.exact(key_id, created)
                if key is None:
                    record = self.metastore.load(key_id, created)
                    if record is None:
                        raise DecryptionError(
                            f"intermediate key not found: id={key_id} created={created}"
                        )
                    key = cache.put(
                        key_id, self._unwrap_intermediate(key_id, record, DecryptionError)
                    )
                    cache.mark_checked(key_id, created, self.clock())
                    self.hooks.cache_event("intermediate", "load", "exact", key_id)
        elif self.hooks.cache_hits_enabled:
            self.hooks.cache_event("intermediate", "hit", "exact", key_id)
        if self.policy.deny_revoked_on_decrypt and self._revoked_for_decrypt(
            KeyMeta(key_id, created), key
        ):
            raise DecryptionError(
                f"intermediate key id={key_id} created={created} is revoked "
                "and deny_revoked_on_decrypt is set"
            )
        return key

    def _revoked_for_decrypt(self, meta: KeyMeta, key: CryptoKey) -> bool:
        """The IK is revoked, or the SK it was wrapped under is.

        Cached keys would otherwise never see a revocation made after they were loaded, so
        their rows are re-read once per check interval, the same freshness encrypt gives the
        latest key. Reads only; nothing is written.
        """
        now = self.clock()
        self._refresh_revoked(self.intermediate_keys, meta, key, now)
        if key.revoked:
            return True
        parent = self._parents.get((meta.key_id, meta.created))
        if parent is None:
            return False
        system_key = self.system_keys.exact(parent.key_id, parent.created)
        if system_key is None:
            return False
        self._refresh_revoked(self.system_keys, parent, system_key, now)
        return system_key.revoked

    def _refresh_revoked(self, cache: KeyCache, meta: KeyMeta, key: CryptoKey, now: float) -> None:
        if not cache.due_for_check(meta.key_id, meta.created, now):
            return
        record = self.metastore.load(meta.key_id, meta.created)
        if record is not None:
            key.revoked = bool(record.revoked)
        cache.mark_checked(meta.key_id, meta.created, now)

    # -- unwrapping ----------------------------------------------------------------------------

    def _unwrap_intermediate(
        self, ik_id: str, record: EnvelopeKeyRecord, error: type[AsherahError]
    ) -> CryptoKey:
        parent = record.parent_key_meta
        if parent is None:
            raise error(f"intermediate key id={ik_id} created={record.created} has no parent key")
        system_key = self._exact_system(parent, error)
        try:
            material = system_key.open_key(record.encrypted_key)
        except AeadError:
            if self.closed:  # the system key was wiped by a concurrent close
                raise AsherahError("session factory is closed") from None
            raise error(
                f"intermediate key id={ik_id} created={record.created} "
                f"does not open under its system key {parent.key_id}"
            ) from None
        # Only the IK's own flag: an SK revocation takes effect at the next IK (and on decrypt
        # under deny_revoked_on_decrypt), never by making a valid IK look unusable, which
        # would send every encrypt back to the metastore.
        if self._track_parents:
            self._parents[(ik_id, record.created)] = parent
        return self._new_key(material, record.created, bool(record.revoked), ik_id)

    def _exact_system(self, meta: KeyMeta, error: type[AsherahError]) -> CryptoKey:
        cache = self.system_keys
        key = cache.exact(meta.key_id, meta.created)
        if key is not None:
            return key
        with cache.lock_for(meta.key_id):
            key = cache.exact(meta.key_id, meta.created)
            if key is not None:
                return key
            ahead = self._take_read_ahead(meta.key_id, meta.created)
            if ahead is not None:
                return self._cache_read_ahead(meta.key_id, *ahead)
            record = self.metastore.load(meta.key_id, meta.created)
            if record is None:
                raise error(f"system key not found: id={meta.key_id} created={meta.created}")
            key = cache.put(meta.key_id, self._unwrap_system(meta.key_id, record))
            cache.mark_checked(meta.key_id, meta.created, self.clock())
            return key

    def _cache_read_ahead(self, sk_id: str, record: EnvelopeKeyRecord, read_at: float) -> CryptoKey:
        """Cache the system key read ahead, as checked when it was read; and, as it was read
        as the latest, as the latest too (the first new partition then reads no system key)."""
        cache = self.system_keys
        key = cache.put(sk_id, self._unwrap_system(sk_id, record))
        cache.mark_checked(sk_id, record.created, read_at)
        if sk_id not in cache.latest_entries and self._valid(key, int(read_at)):
            cache.set_latest(sk_id, key, read_at)
        return key

    def _unwrap_system(self, sk_id: str, record: EnvelopeKeyRecord) -> CryptoKey:
        material = self.kms.decrypt_key(record.encrypted_key)
        if len(material) != KEY_SIZE:
            size = len(material)
            wipe(material)
            raise KmsError(f"KMS returned a system key of {size} bytes, expected {KEY_SIZE}")
        return self._new_key(material, record.created, bool(record.revoked), sk_id)
