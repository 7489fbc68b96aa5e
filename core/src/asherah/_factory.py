"""The session factory: builds the drivers once and hands out sessions per partition."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from asherah import _drift_guard
from asherah._allocator import keep_top_pad
from asherah._config import (
    DEFAULT_KEY_CACHE_MAX_SIZE,
    DEFAULT_SESSION_CACHE_DURATION_S,
    DEFAULT_SESSION_CACHE_MAX_SIZE,
    Config,
    parse_config,
)
from asherah._drivers import load_kms, load_metastore
from asherah._env_config import config_from_env
from asherah._errors import AsherahError, ConfigError
from asherah._instrumented import InstrumentedKms, InstrumentedMetastore
from asherah._key_ids import KeyIdMaker
from asherah._key_manager import KeyManager
from asherah._policy import CryptoPolicy
from asherah._session import Session
from asherah._session_cache import SessionCache, SessionCore
from asherah._settings import load_config
from asherah.cache._policies import EvictionPolicy, create_policy
from asherah.hazmat.memory import DEFAULT_SLAB_SLOTS, KeyStore, default_mode
from asherah.hazmat.memory._hardening import apply_hardening
from asherah.hooks._manager import hooks_for
from asherah.kms._base import KeyManagementService
from asherah.metastore._base import Metastore

Clock = Callable[[], float]
_log = logging.getLogger("asherah.factory")


def _key_policy(name: str | None, size: int | None) -> EvictionPolicy:
    return create_policy(name or "lru", size or DEFAULT_KEY_CACHE_MAX_SIZE)


class SessionFactory:
    """One per application and key hierarchy: owns the drivers and the key caches.

    ``config`` is a :class:`Config`, a dict of snake_case or canonical PascalCase keys, or
    ``None`` to read the environment as PyPI ``asherah`` does. ``metastore`` and ``kms``
    instances, when given, replace the drivers named in config; ``clock`` (seconds since the
    epoch) is injectable so rotation can be tested without sleeping; ``plugins`` are hook
    implementations registered beside the entry-point ones (see :mod:`asherah.hooks`).
    """

    def __init__(
        self,
        config: Config | Mapping[str, Any] | None = None,
        *,
        metastore: Metastore | None = None,
        kms: KeyManagementService | None = None,
        clock: Clock | None = None,
        plugins: list[object] | None = None,
    ) -> None:
        if config is None:
            config = config_from_env()
        self.config = parse_config(config)
        self._clock: Clock = clock or time.time
        self.hooks = hooks_for(plugins)
        self._owns_metastore = metastore is None
        self._owns_kms = kms is None
        self.metastore = metastore if metastore is not None else load_metastore(self.config)
        try:
            self.kms = kms if kms is not None else load_kms(self.config)
        except BaseException:
            if self._owns_metastore:
                self.metastore.close()
            raise
        self.region_suffix = self.metastore.region_suffix() or self.config.region_suffix or None
        self._key_ids = KeyIdMaker(
            self.config.service_name, self.config.product_id, self.region_suffix
        )
        self.policy = CryptoPolicy.from_config(self.config)
        config = self.config
        keep_top_pad(config.malloc_top_pad)
        try:
            apply_hardening()
            self.key_store = KeyStore(
                config.secure_memory or default_mode(),
                slab_slots=config.secure_memory_slab_slots or DEFAULT_SLAB_SLOTS,
                hot_cache_size=config.secure_memory_hot_cache_size,
                allow_fallback=config.secure_memory_allow_fallback,
                protect_idle=config.secure_memory_protect_idle,
                on_event=self._on_memory_event,
                # With key schedules cached no key enters the store (each cached key lives in
                # its prepared cipher): its slab is only mapped and locked if someone puts one.
                defer=config.cache_key_schedules,
            )
        except BaseException:
            self._close_drivers()
            raise
        self._warn_on_fallback()
        self._keys = KeyManager(
            InstrumentedMetastore(self.metastore, self.hooks),
            InstrumentedKms(self.kms, self.hooks),
            self.policy,
            self._clock,
            self.hooks,
            self.key_store,
            cache_key_schedules=config.cache_key_schedules,
            system_key_policy=_key_policy(
                config.system_key_cache_eviction_policy, config.system_key_cache_max_size
            ),
            intermediate_key_policy=_key_policy(
                config.intermediate_key_cache_eviction_policy,
                config.intermediate_key_cache_max_size,
            ),
            ttl_jitter=config.cache_ttl_jitter,
            max_workers=config.async_max_workers,
        )
        self._shared_ik_cache = config.shared_intermediate_key_cache
        self._sessions = SessionCache(
            self._build_core,
            None
            if config.enable_session_caching is False
            else create_policy(
                config.session_cache_eviction_policy or "slru",
                config.session_cache_max_size or DEFAULT_SESSION_CACHE_MAX_SIZE,
            ),
            config.session_cache_duration or DEFAULT_SESSION_CACHE_DURATION_S,
            self._clock,
            functools.partial(self.hooks.cache_event, "session", "eviction", "exact"),
        )
        self._lock = threading.Lock()
        self._closed = False
        try:
            # The latest system key comes with the guard row when that costs no round trip:
            # the first encrypt or decrypt then reads one row, not two.
            started = self._clock()
            read_ahead = _drift_guard.check(
                self._keys.metastore,
                self._keys.kms,
                self.config.service_name,
                self.config.product_id,
                self.region_suffix,
                force_run=self.config.config_drift_force_run,
                force_update=self.config.config_drift_force_update,
                also_latest=(self._key_ids.system_key_id,),
            )
        except BaseException:
            self._close_drivers()
            raise
        self._keys.read_ahead(read_ahead, started)
        self.hooks.factory_started(
            service_name=self.config.service_name,
            product_id=self.config.product_id,
            metastore=type(self.metastore).__name__,
            kms=type(self.kms).__name__,
            region_suffix=self.region_suffix,
        )

    @classmethod
    def from_file(
        cls, config_file: str | os.PathLike[str] | None = None, **overrides: Any
    ) -> SessionFactory:
        """Build from a TOML/YAML file, ``ASHERAH_*`` variables and ``overrides`` (see
        :mod:`asherah._settings` for the precedence)."""
        return cls(load_config(config_file, **overrides))

    @classmethod
    def from_env(cls) -> SessionFactory:
        """Build from the environment variables PyPI ``asherah`` reads (``KMS``, ...)."""
        return cls(config_from_env())

    @classmethod
    def from_config(cls, config: Config | Mapping[str, Any]) -> SessionFactory:
        return cls(config)

    def __repr__(self) -> str:
        return (
            f"SessionFactory(service={self.config.service_name!r}, "
            f"product={self.config.product_id!r}, metastore={type(self.metastore).__name__}, "
            f"kms={type(self.kms).__name__}, closed={self._closed})"
        )

    def __enter__(self) -> SessionFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_session(self, partition: str) -> Session:
        """A session for ``partition`` (a non-empty string such as a user or tenant id)."""
        if not isinstance(partition, str):
            raise TypeError(f"partition must be str, not {type(partition).__name__}")
        if not partition:
            raise ConfigError("partition id cannot be empty")
        if self._closed:
            raise AsherahError("session factory is closed")
        core = self._sessions.acquire(partition)
        return Session(partition, core.ids, core.keys, self._clock, core.session_closed)

    def _build_core(self, partition: str) -> SessionCore:
        ids = self._key_ids(partition)
        if self._shared_ik_cache:  # the default: one per cache miss
            return SessionCore(partition, ids, self._keys)
        keys = self._keys.with_own_intermediate_cache(
            _key_policy(
                self.config.intermediate_key_cache_eviction_policy,
                self.config.intermediate_key_cache_max_size,
            )
        )
        return SessionCore(partition, ids, keys, owns_key_cache=True)

    def _on_memory_event(self, kind: str, label: object) -> None:
        if kind == "fallback" and "key_store" in self.__dict__:  # a deferred slab, built now
            self._warn_on_fallback()
        self.hooks.cache_event("secure-memory", kind, "exact", "" if label is None else str(label))

    def _warn_on_fallback(self) -> None:
        if self.key_store.fallback_reason is not None:
            _log.warning(
                "secure_memory fell back to %r: %s",
                self.key_store.mode,
                self.key_store.fallback_reason,
            )

    async def __aenter__(self) -> SessionFactory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Wipe cached keys and close the drivers this factory built. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._sessions.clear()
        self._keys.close()
        self.key_store.close()
        self._close_drivers()

    def _close_drivers(self) -> None:
        if self._owns_kms:
            self.kms.close()
        if self._owns_metastore:
            self.metastore.close()
