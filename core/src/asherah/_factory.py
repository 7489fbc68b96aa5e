"""The session factory: builds the drivers once and hands out sessions per partition."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from asherah import _drift_guard
from asherah._config import Config, parse_config
from asherah._drivers import load_kms, load_metastore
from asherah._env_config import config_from_env
from asherah._errors import AsherahError, ConfigError
from asherah._instrumented import InstrumentedKms, InstrumentedMetastore
from asherah._key_ids import key_ids
from asherah._key_manager import KeyManager
from asherah._policy import CryptoPolicy
from asherah._session import Session
from asherah._settings import load_config
from asherah.hooks._manager import Hooks, create_plugin_manager
from asherah.kms._base import KeyManagementService
from asherah.metastore._base import Metastore

Clock = Callable[[], float]


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
        self.hooks = Hooks(create_plugin_manager(plugins))
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
        self.policy = CryptoPolicy.from_config(self.config)
        self._keys = KeyManager(
            InstrumentedMetastore(self.metastore, self.hooks),
            InstrumentedKms(self.kms, self.hooks),
            self.policy,
            self._clock,
            self.hooks,
        )
        self._lock = threading.Lock()
        self._closed = False
        try:
            _drift_guard.check(
                self._keys.metastore,
                self._keys.kms,
                self.config.service_name,
                self.config.product_id,
                self.region_suffix,
                force_run=self.config.config_drift_force_run,
                force_update=self.config.config_drift_force_update,
            )
        except BaseException:
            self._close_drivers()
            raise
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
        ids = key_ids(
            partition, self.config.service_name, self.config.product_id, self.region_suffix
        )
        return Session(partition, ids, self._keys, self._clock)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Wipe cached keys and close the drivers this factory built. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._keys.close()
        self._close_drivers()

    def _close_drivers(self) -> None:
        if self._owns_kms:
            self.kms.close()
        if self._owns_metastore:
            self.metastore.close()
