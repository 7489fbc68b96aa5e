"""Built-in plugins, registered like any other: standard ``logging`` output and the
``set_metrics_hook`` compatibility bridge of PyPI ``asherah``."""

from __future__ import annotations

import logging

from asherah import _observe
from asherah.hooks import hookimpl

#: Where the built-in logging plugin writes (the hook facade checks its level to skip calls).
EVENTS_LOG = logging.getLogger("asherah.events")


class LoggingPlugin:
    """Key lifecycle at INFO, backend failures at WARNING, cache traffic at DEBUG."""

    @hookimpl
    def asherah_key_event(
        self, event: str, key_type: str, key_id: str, created: int, partition: str | None
    ) -> None:
        EVENTS_LOG.info("%s key %s id=%s created=%d", key_type, event, key_id, created)

    @hookimpl
    def asherah_cache_event(self, cache: str, event: str, lookup: str, key_id: str) -> None:
        if EVENTS_LOG.isEnabledFor(logging.DEBUG):
            EVENTS_LOG.debug("%s key cache %s (%s) id=%s", cache, event, lookup, key_id)

    @hookimpl
    def asherah_metastore_call(
        self, operation: str, key_id: str, duration_ns: int, error_type: str | None
    ) -> None:
        if error_type is not None:
            EVENTS_LOG.warning("metastore %s failed for id=%s: %s", operation, key_id, error_type)

    @hookimpl
    def asherah_kms_call(self, operation: str, duration_ns: int, error_type: str | None) -> None:
        if error_type is not None:
            EVENTS_LOG.warning("KMS %s failed: %s", operation, error_type)


class MetricsHookPlugin:
    """Feeds ``set_metrics_hook`` with the reference's event shapes."""

    @hookimpl
    def asherah_crypto_timing(
        self, operation: str, partition: str, size: int, duration_ns: int
    ) -> None:
        _observe.timing(operation, duration_ns)

    @hookimpl
    def asherah_cache_event(self, cache: str, event: str, lookup: str, key_id: str) -> None:
        if cache == "intermediate" and event in ("hit", "miss", "stale"):
            _observe.cache_event(f"cache_{event}", "latest" if lookup == "latest" else "meta")


BUILTIN_PLUGINS = {"asherah-logging": LoggingPlugin, "asherah-metrics-hook": MetricsHookPlugin}
