"""Loading, creating and rotating system and intermediate keys (the rules of the reference).

Encrypt asks for the *latest* intermediate key: a cached one while it is fresh and valid,
otherwise the metastore's latest, otherwise a new one. A new key's ``Created`` is truncated to
the policy precision and strictly newer than the key it replaces. ``store`` returning ``False``
means another writer won: load its key and use it. Decrypt asks for an *exact* key and never
writes anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from asherah._errors import (
    AsherahError,
    DecryptionError,
    KeyCreationError,
    KmsError,
    MetastoreError,
)
from asherah._key_cache import KeyCache
from asherah._key_ids import KeyIds
from asherah._keys import CryptoKey, new_key_material, wipe
from asherah._policy import CryptoPolicy
from asherah._records import EnvelopeKeyRecord, KeyMeta
from asherah.hazmat.aead import KEY_SIZE, AeadError
from asherah.hooks._manager import Hooks
from asherah.kms._base import KeyManagementService
from asherah.metastore._base import Metastore

_log = logging.getLogger("asherah.session")

_CREATE_ATTEMPTS = 5


class KeyManager:
    """Factory-wide key hierarchy: one SK cache and one shared IK cache."""

    def __init__(
        self,
        metastore: Metastore,
        kms: KeyManagementService,
        policy: CryptoPolicy,
        clock: Callable[[], float],
        hooks: Hooks,
    ) -> None:
        self.hooks = hooks
        self.metastore = metastore
        self.kms = kms
        self.policy = policy
        self.clock = clock
        self.system_keys = KeyCache("system", policy.check_interval_s)
        self.intermediate_keys = KeyCache("intermediate", policy.check_interval_s)
        # The parent SK of each cached IK, so deny_revoked_on_decrypt can honour an SK
        # revocation without folding it into the IK's own flag (which encrypt relies on).
        self._parents: dict[tuple[str, int], KeyMeta] = {}
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self.system_keys.clear()
        self.intermediate_keys.clear()
        self._parents.clear()

    # -- encrypt path --------------------------------------------------------------------------

    def latest_intermediate(self, ids: KeyIds) -> CryptoKey:
        """The intermediate key new data-row keys are wrapped with."""
        if self.closed:
            raise AsherahError("session factory is closed")
        now = self.clock()
        cache = self.intermediate_keys
        ik_id = ids.intermediate_key_id
        key = cache.fresh_latest(ik_id, now)
        if key is not None and self._valid(key, int(now)):
            if self.hooks.cache_hits_enabled:
                self.hooks.cache_event("intermediate", "hit", "latest", ik_id)
            return key
        with cache.lock_for(ik_id):
            now = self.clock()
            key = cache.fresh_latest(ik_id, now)
            if key is not None and self._valid(key, int(now)):
                return key
            stale = cache.has_latest(ik_id)
            self.hooks.cache_event("intermediate", "stale" if stale else "miss", "latest", ik_id)
            key = self._load_or_create_intermediate(ids, int(now))
            return cache.set_latest(ik_id, key, now)

    def _valid(self, key: CryptoKey, now: int) -> bool:
        return not key.revoked and not self.policy.is_expired(key.created, now)

    def _usable(self, record: EnvelopeKeyRecord, now: int) -> bool:
        return record.revoked is not True and not self.policy.is_expired(record.created, now)

    def _load_or_create_intermediate(self, ids: KeyIds, now: int) -> CryptoKey:
        ik_id = ids.intermediate_key_id
        record = self.metastore.load_latest(ik_id)
        for _ in range(_CREATE_ATTEMPTS):
            if record is not None and self._usable(record, now):
                key = self._unwrap_intermediate(ik_id, record, MetastoreError)
                self.hooks.key_event("loaded", "intermediate", ik_id, key.created, ids.partition)
                return key
            replacing = None if record is None else record.created
            if record is not None:
                self._report_unusable("intermediate", ik_id, record, ids.partition)
            system_key = self._latest_system(ids.system_key_id, now)
            created = self.policy.new_key_created(now, replacing)
            material = new_key_material()
            try:
                parent = KeyMeta(ids.system_key_id, system_key.created)
                try:
                    wrapped = system_key.seal(material)
                except AeadError:  # only a wiped key: closed under this call
                    raise AsherahError("session factory is closed") from None
                new_record = EnvelopeKeyRecord(created, wrapped, parent)
                if self.metastore.store(ik_id, created, new_record):
                    event = "created" if replacing is None else "rotated"
                    self.hooks.key_event(event, "intermediate", ik_id, created, ids.partition)
                    self._parents[(ik_id, created)] = parent
                    return CryptoKey(material, created)
            except BaseException:
                wipe(material)
                raise
            wipe(material)
            record = self.metastore.load_latest(ik_id)
        raise KeyCreationError(f"failed to create or load intermediate key id={ik_id} after retry")

    def _latest_system(self, sk_id: str, now: int) -> CryptoKey:
        cache = self.system_keys
        key = cache.fresh_latest(sk_id, now)
        if key is not None and self._valid(key, now):
            return key
        with cache.lock_for(sk_id):
            key = cache.fresh_latest(sk_id, now)
            if key is not None and self._valid(key, now):
                return key
            key = self._load_or_create_system(sk_id, now)
            return cache.set_latest(sk_id, key, float(now))

    def _load_or_create_system(self, sk_id: str, now: int) -> CryptoKey:
        record = self.metastore.load_latest(sk_id)
        for _ in range(_CREATE_ATTEMPTS):
            if record is not None and self._usable(record, now):
                key = self._unwrap_system(record)
                self.hooks.key_event("loaded", "system", sk_id, key.created)
                return key
            replacing = None if record is None else record.created
            if record is not None:
                self._report_unusable("system", sk_id, record, None)
            created = self.policy.new_key_created(now, replacing)
            material = new_key_material()
            try:
                wrapped = self.kms.encrypt_key(material)
                if self.metastore.store(sk_id, created, EnvelopeKeyRecord(created, wrapped)):
                    event = "created" if replacing is None else "rotated"
                    self.hooks.key_event(event, "system", sk_id, created)
                    return CryptoKey(material, created)
            except BaseException:
                wipe(material)
                raise
            wipe(material)
            record = self.metastore.load_latest(sk_id)
        raise KeyCreationError(f"failed to create or load system key id={sk_id} after retry")

    def _report_unusable(
        self, key_type: str, key_id: str, record: EnvelopeKeyRecord, partition: str | None
    ) -> None:
        if record.revoked:
            self.hooks.key_event("revoked_seen", key_type, key_id, record.created, partition)
        _log.info("%s key %s created=%d is revoked or expired", key_type, key_id, record.created)

    # -- decrypt path --------------------------------------------------------------------------

    def intermediate_for_decrypt(self, meta: KeyMeta) -> CryptoKey:
        """The exact intermediate key a data row names. Never creates or writes anything."""
        if self.closed:
            raise AsherahError("session factory is closed")
        cache = self.intermediate_keys
        key = cache.exact(meta.key_id, meta.created)
        if key is None:
            self.hooks.cache_event("intermediate", "miss", "exact", meta.key_id)
            with cache.lock_for(meta.key_id):
                key = cache.exact(meta.key_id, meta.created)
                if key is None:
                    record = self.metastore.load(meta.key_id, meta.created)
                    if record is None:
                        raise DecryptionError(
                            f"intermediate key not found: id={meta.key_id} created={meta.created}"
                        )
                    key = cache.put(
                        meta.key_id, self._unwrap_intermediate(meta.key_id, record, DecryptionError)
                    )
                    cache.mark_checked(meta.key_id, meta.created, self.clock())
        elif self.hooks.cache_hits_enabled:
            self.hooks.cache_event("intermediate", "hit", "exact", meta.key_id)
        if self.policy.deny_revoked_on_decrypt and self._revoked_for_decrypt(meta, key):
            raise DecryptionError(
                f"intermediate key id={meta.key_id} created={meta.created} is revoked "
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
        self._parents[(ik_id, record.created)] = parent
        return CryptoKey(material, record.created, bool(record.revoked))

    def _exact_system(self, meta: KeyMeta, error: type[AsherahError]) -> CryptoKey:
        cache = self.system_keys
        key = cache.exact(meta.key_id, meta.created)
        if key is not None:
            return key
        with cache.lock_for(meta.key_id):
            key = cache.exact(meta.key_id, meta.created)
            if key is not None:
                return key
            record = self.metastore.load(meta.key_id, meta.created)
            if record is None:
                raise error(f"system key not found: id={meta.key_id} created={meta.created}")
            key = cache.put(meta.key_id, self._unwrap_system(record))
            cache.mark_checked(meta.key_id, meta.created, self.clock())
            return key

    def _unwrap_system(self, record: EnvelopeKeyRecord) -> CryptoKey:
        material = self.kms.decrypt_key(record.encrypted_key)
        if len(material) != KEY_SIZE:
            size = len(material)
            wipe(material)
            raise KmsError(f"KMS returned a system key of {size} bytes, expected {KEY_SIZE}")
        return CryptoKey(material, record.created, bool(record.revoked))
