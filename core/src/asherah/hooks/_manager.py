"""The per-factory hook manager and its typed facade (one method per hook)."""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import sys
from typing import Any

import pluggy

from asherah import _observe
from asherah._errors import DriverLoadError
from asherah.hooks import ENTRY_POINT_GROUP, NAME, spec
from asherah.hooks._builtin import BUILTIN_PLUGINS, EVENTS_LOG

_log = logging.getLogger("asherah.hooks")

DISABLE_AUTOLOAD_ENV = "ASHERAH_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_ENV = "ASHERAH_BLOCK_PLUGINS"
_TRUE = {"1", "true", "yes", "on"}


def blocked_plugin_names() -> set[str]:
    return {n.strip() for n in os.environ.get(BLOCK_ENV, "").split(",") if n.strip()}


def create_plugin_manager(extra_plugins: list[object] | None = None) -> pluggy.PluginManager:
    """A plugin manager with the specs, the built-ins, entry-point plugins and ``extra_plugins``.

    A plugin whose hook signature does not match its spec is rejected here with
    :class:`DriverLoadError` naming it. Without ``extra_plugins`` the manager is shared by
    every factory of the process with the same environment switches and ``sys.path`` (the
    built-ins are stateless, and registering plugins costs a large part of a cold factory);
    with them, each factory gets its own.
    """
    if extra_plugins:
        return _build(extra_plugins)
    autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in _TRUE
    return _shared(frozenset(blocked_plugin_names()), autoload, tuple(sys.path))


@functools.lru_cache(maxsize=8)
def _shared(blocked: frozenset[str], autoload: bool, path: tuple[str, ...]) -> pluggy.PluginManager:
    """One manager per (blocked names, autoload switch, ``sys.path``), built on first use."""
    del blocked, autoload, path  # the cache key: _build reads the same environment
    return _build(None)


def _build(extra_plugins: list[object] | None) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(NAME)
    pm.add_hookspecs(spec)
    blocked = blocked_plugin_names()
    for name in blocked:
        pm.set_blocked(name)
    try:
        for name, plugin_class in BUILTIN_PLUGINS.items():
            if name not in blocked:
                pm.register(plugin_class(), name=name)
        if os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in _TRUE:
            for entry_point in _hook_entry_points(tuple(sys.path)):
                if not pm.is_blocked(entry_point.name) and pm.get_plugin(entry_point.name) is None:
                    pm.register(entry_point.load(), name=entry_point.name)
        for plugin in extra_plugins or ():
            pm.register(plugin)
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise DriverLoadError(f"hook plugin {exc.plugin!r} is invalid: {exc}") from None
    return pm


def hooks_for(extra_plugins: list[object] | None = None) -> Hooks:
    """The :class:`Hooks` of a new factory: over the shared manager, one shared facade too (its
    flags are read off the manager once; a factory start otherwise pays for them each time)."""
    pm = create_plugin_manager(extra_plugins)
    if extra_plugins:
        return Hooks(pm)
    return _shared_hooks(pm)


@functools.lru_cache(maxsize=8)
def _shared_hooks(pm: pluggy.PluginManager) -> Hooks:
    return Hooks(pm)


@functools.lru_cache(maxsize=8)
def _hook_entry_points(path: tuple[str, ...]) -> tuple[importlib.metadata.EntryPoint, ...]:
    """The ``asherah.hooks`` entry points, scanned once per ``sys.path`` (the scan reads every
    installed distribution's metadata and costs milliseconds per factory otherwise)."""
    del path  # only the cache key
    return tuple(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


class Hooks:
    """Calls every implementation of a hook, logging (never raising) a failing one."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        #: Whether a non-built-in plugin listens to the two hot-path hooks (plain attributes,
        #: read on every encrypt and decrypt).
        self.external_timing = self._has_external(pm.hook.asherah_crypto_timing)
        self.external_cache = self._has_external(pm.hook.asherah_cache_event)
        # The cold-path hooks: when only the built-ins listen and they would do nothing (their
        # log level is off, no metrics hook is set, nothing failed), the call is skipped; a
        # new partition fires several of these.
        self._external_key = self._has_external(pm.hook.asherah_key_event)
        self.external_metastore = self._has_external(pm.hook.asherah_metastore_call)
        self.external_kms = self._has_external(pm.hook.asherah_kms_call)

    def _has_external(self, hook: pluggy.HookCaller) -> bool:
        builtin = tuple(BUILTIN_PLUGINS.values())
        return any(not isinstance(impl.plugin, builtin) for impl in hook.get_hookimpls())

    # The hot-path hooks are only called when someone listens; the compatibility metrics hook
    # can be set at any time.
    @property
    def cache_hits_enabled(self) -> bool:
        return self.external_cache or _observe.METRICS.on

    def _call(self, hook: pluggy.HookCaller, **kwargs: Any) -> None:
        for impl in hook.get_hookimpls():
            try:
                impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception as exc:  # observers must never break the caller
                _log.warning(
                    "hook %s of plugin %s raised %s",
                    hook.name,
                    self.pm.get_name(impl.plugin),
                    type(exc).__name__,
                )

    def factory_started(self, **kwargs: Any) -> None:
        self._call(self.pm.hook.asherah_factory_started, **kwargs)

    def key_event(
        self, event: str, key_type: str, key_id: str, created: int, partition: str | None = None
    ) -> None:
        if not self._external_key and not EVENTS_LOG.isEnabledFor(logging.INFO):
            return
        self._call(
            self.pm.hook.asherah_key_event,
            event=event,
            key_type=key_type,
            key_id=key_id,
            created=created,
            partition=partition,
        )

    def cache_event(self, cache: str, event: str, lookup: str, key_id: str) -> None:
        if (
            not self.external_cache
            and not _observe.METRICS.on
            and not EVENTS_LOG.isEnabledFor(logging.DEBUG)
        ):
            return
        self._call(
            self.pm.hook.asherah_cache_event,
            cache=cache,
            event=event,
            lookup=lookup,
            key_id=key_id,
        )

    def metastore_call(
        self, operation: str, key_id: str, duration_ns: int, error_type: str | None
    ) -> None:
        if not self.external_metastore and error_type is None:
            return  # the built-in logs failures only
        self._call(
            self.pm.hook.asherah_metastore_call,
            operation=operation,
            key_id=key_id,
            duration_ns=duration_ns,
            error_type=error_type,
        )

    def kms_call(self, operation: str, duration_ns: int, error_type: str | None) -> None:
        if not self.external_kms and error_type is None:
            return  # the built-in logs failures only
        self._call(
            self.pm.hook.asherah_kms_call,
            operation=operation,
            duration_ns=duration_ns,
            error_type=error_type,
        )

    def crypto_timing(self, operation: str, partition: str, size: int, duration_ns: int) -> None:
        self._call(
            self.pm.hook.asherah_crypto_timing,
            operation=operation,
            partition=partition,
            size=size,
            duration_ns=duration_ns,
        )
