"""pluggy hooks: events reach plugins, carry metadata only, and can never break a call."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

import asherah
from asherah import DriverLoadError, InMemoryMetastore, SessionFactory
from asherah._observe import DISPATCH
from asherah.hooks import hookimpl
from testsupport.fake_dists import on_sys_path, write_distribution

from .conftest import KEY_HEX, static_config

CONFIG = static_config()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def _add(self, hook: str, **kwargs: Any) -> None:
        with self.lock:
            self.events.append((hook, kwargs))

    @hookimpl
    def asherah_key_event(
        self, event: str, key_type: str, key_id: str, created: int, partition: str | None
    ) -> None:
        self._add(
            "key",
            event=event,
            key_type=key_type,
            key_id=key_id,
            created=created,
            partition=partition,
        )

    @hookimpl
    def asherah_cache_event(self, cache: str, event: str, lookup: str, key_id: str) -> None:
        self._add("cache", cache=cache, event=event, lookup=lookup, key_id=key_id)

    @hookimpl
    def asherah_metastore_call(
        self, operation: str, key_id: str, duration_ns: int, error_type: str | None
    ) -> None:
        self._add(
            "metastore",
            operation=operation,
            key_id=key_id,
            duration_ns=duration_ns,
            error_type=error_type,
        )

    @hookimpl
    def asherah_kms_call(self, operation: str, duration_ns: int, error_type: str | None) -> None:
        self._add("kms", operation=operation, duration_ns=duration_ns, error_type=error_type)

    @hookimpl
    def asherah_crypto_timing(
        self, operation: str, partition: str, size: int, duration_ns: int
    ) -> None:
        self._add(
            "crypto", operation=operation, partition=partition, size=size, duration_ns=duration_ns
        )

    def of(self, hook: str) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.events if name == hook]


def test_lifecycle_cache_backend_and_timing_events_reach_a_plugin() -> None:
    recorder = Recorder()
    with SessionFactory(CONFIG, plugins=[recorder]) as factory:
        session = factory.get_session("alice")
        record = session.encrypt_bytes(b"secret payload")
        session.encrypt_bytes(b"again")
        assert session.decrypt_bytes(record) == b"secret payload"
    keys = {(e["event"], e["key_type"], e["key_id"]) for e in recorder.of("key")}
    assert ("created", "system", "_SK_svc_prod") in keys
    assert ("created", "intermediate", "_IK_alice_svc_prod") in keys
    assert [e["partition"] for e in recorder.of("key") if e["key_type"] == "intermediate"] == [
        "alice"
    ]
    caches = [(e["event"], e["lookup"]) for e in recorder.of("cache")]
    assert ("miss", "latest") in caches
    assert ("hit", "latest") in caches
    assert ("hit", "exact") in caches
    operations = {e["operation"] for e in recorder.of("metastore")}
    assert {"load_latest", "store", "load"} <= operations
    assert [e["operation"] for e in recorder.of("kms")] == ["encrypt_key"]
    timings = recorder.of("crypto")
    assert [(t["operation"], t["size"]) for t in timings] == [
        ("encrypt", 14),
        ("encrypt", 5),
        ("decrypt", 14),
    ]
    assert all(t["duration_ns"] > 0 for t in timings)


def test_payloads_carry_metadata_only() -> None:
    recorder = Recorder()
    with SessionFactory(CONFIG, plugins=[recorder]) as factory:
        session = factory.get_session("bob")
        session.decrypt_bytes(session.encrypt_bytes(b"plaintext-marker"))
    for _, kwargs in recorder.events:
        for value in kwargs.values():
            assert value is None or type(value) in (str, int)
            assert "plaintext-marker" not in str(value)
            assert KEY_HEX not in str(value)


def test_failing_hook_is_logged_and_never_breaks_encrypt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        @hookimpl
        def asherah_crypto_timing(self, operation: str) -> None:
            raise RuntimeError("observer bug")

        @hookimpl
        def asherah_key_event(self, event: str) -> None:
            raise ValueError("observer bug")

    recorder = Recorder()
    with (
        caplog.at_level(logging.WARNING, logger="asherah.hooks"),
        SessionFactory(CONFIG, plugins=[Broken(), recorder]) as factory,
    ):
        session = factory.get_session("carol")
        assert session.decrypt_bytes(session.encrypt_bytes(b"ok")) == b"ok"
    assert any("raised RuntimeError" in m for m in caplog.messages)
    assert any("raised ValueError" in m for m in caplog.messages)
    assert recorder.of("crypto"), "a failing plugin must not stop the others"


def test_a_plugin_with_a_wrong_signature_is_rejected_at_load() -> None:
    class Wrong:
        @hookimpl
        def asherah_key_event(self, event: str, plaintext: bytes) -> None:
            pass

    with pytest.raises(DriverLoadError, match="invalid"):
        SessionFactory(CONFIG, plugins=[Wrong()])


def test_an_unknown_asherah_hook_is_rejected() -> None:
    class Unknown:
        @hookimpl
        def asherah_key_evnt(self, event: str) -> None:
            pass

    with pytest.raises(DriverLoadError, match="asherah_key_evnt"):
        SessionFactory(CONFIG, plugins=[Unknown()])


PLUGIN_MODULE = """
from asherah.hooks import hookimpl

SEEN = []


@hookimpl
def asherah_factory_started(service_name, product_id):
    SEEN.append((service_name, product_id))
"""


def test_entry_point_plugins_load_and_env_switches_block_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_distribution(
        tmp_path,
        "asherah-observer",
        {"asherah.hooks": {"observer": "observer_plugin"}},
        {"observer_plugin": PLUGIN_MODULE},
    )
    with on_sys_path(tmp_path):
        import observer_plugin  # type: ignore[import-not-found]

        SessionFactory(CONFIG).close()
        assert observer_plugin.SEEN == [("svc", "prod")]
        monkeypatch.setenv("ASHERAH_BLOCK_PLUGINS", "other, observer")
        SessionFactory(CONFIG).close()
        assert observer_plugin.SEEN == [("svc", "prod")]
        monkeypatch.delenv("ASHERAH_BLOCK_PLUGINS")
        monkeypatch.setenv("ASHERAH_DISABLE_PLUGIN_AUTOLOAD", "1")
        SessionFactory(CONFIG).close()
        assert observer_plugin.SEEN == [("svc", "prod")]
        monkeypatch.delenv("ASHERAH_DISABLE_PLUGIN_AUTOLOAD")
        SessionFactory(CONFIG).close()
        assert len(observer_plugin.SEEN) == 2


def test_factories_share_one_plugin_manager_unless_they_bring_plugins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Extra:
        @hookimpl
        def asherah_factory_started(self, service_name: str, product_id: str) -> None:
            pass

    with SessionFactory(CONFIG) as first, SessionFactory(CONFIG) as second:
        assert first.hooks.pm is second.hooks.pm  # registration paid once per process
        assert first.hooks is second.hooks  # and the facade's flags read off it once
        with SessionFactory(CONFIG, plugins=[Extra()]) as own:
            assert own.hooks.pm is not first.hooks.pm
            assert own.hooks is not first.hooks
            assert own.hooks._has_external(own.hooks.pm.hook.asherah_factory_started)
            assert first.hooks.pm.get_plugin("asherah-logging") is not None
        monkeypatch.setenv("ASHERAH_BLOCK_PLUGINS", "asherah-metrics-hook")
        with SessionFactory(CONFIG) as blocked:
            assert blocked.hooks.pm is not first.hooks.pm
            assert blocked.hooks is not first.hooks
            assert blocked.hooks.pm.get_plugin("asherah-metrics-hook") is None
        monkeypatch.delenv("ASHERAH_BLOCK_PLUGINS")
        with SessionFactory(CONFIG) as again:
            assert again.hooks.pm is first.hooks.pm
            assert again.hooks is first.hooks


def test_compat_metrics_and_log_hooks_use_the_reference_shapes() -> None:
    metrics: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []
    asherah.set_metrics_hook(metrics.append)
    asherah.set_log_hook(logs.append)
    try:
        with SessionFactory(CONFIG, metastore=InMemoryMetastore()) as factory:
            session = factory.get_session("dave")
            session.decrypt_bytes(session.encrypt_bytes(b"m"))
            logging.getLogger("asherah.test").warning("a warning for the hook")
        DISPATCH.flush()
    finally:
        asherah.set_metrics_hook(None)
        asherah.set_log_hook(None)
    types = [m["type"] for m in metrics]
    assert "encrypt" in types
    assert "decrypt" in types
    assert {"type": "cache_miss", "name": "latest"} in metrics
    timing = next(m for m in metrics if m["type"] == "encrypt")
    assert set(timing) == {"type", "duration_ns"}
    assert isinstance(timing["duration_ns"], int)
    assert {"level": "warn", "message": "a warning for the hook", "target": "asherah.test"} in logs
    assert all(set(entry) == {"level", "message", "target"} for entry in logs)


def test_cold_path_hooks_are_skipped_when_only_builtins_would_ignore_them(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from asherah.hooks._manager import Hooks

    called: list[str] = []
    original = Hooks._call

    def counting(self: Hooks, hook: Any, **kwargs: Any) -> None:
        called.append(hook.name)
        original(self, hook, **kwargs)

    monkeypatch.setattr(Hooks, "_call", counting)
    caplog.set_level(logging.WARNING, logger="asherah.events")
    with SessionFactory(CONFIG) as factory:
        factory.get_session("quiet").encrypt_bytes(b"x")
    assert not {"asherah_cache_event", "asherah_key_event", "asherah_metastore_call"} & set(called)
    caplog.set_level(logging.DEBUG, logger="asherah.events")
    with SessionFactory(CONFIG) as factory:
        factory.get_session("loud").encrypt_bytes(b"x")
    assert {"asherah_cache_event", "asherah_key_event"} <= set(called)
    events = [r.getMessage() for r in caplog.records if r.name == "asherah.events"]
    assert any("key cache" in m for m in events)
    assert any("_IK_loud_" in m for m in events)


def test_backend_failures_are_logged_without_an_external_listener(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from asherah import MetastoreError

    class Broken(InMemoryMetastore):
        def load_latest(self, key_id: str) -> Any:
            raise MetastoreError("server gone")

    caplog.set_level(logging.WARNING, logger="asherah.events")
    with SessionFactory(CONFIG, metastore=Broken()) as factory:
        assert not factory.hooks.external_metastore
        with pytest.raises(MetastoreError):
            factory.get_session("p").encrypt_bytes(b"x")
    assert any(
        r.name == "asherah.events" and "metastore load_latest failed" in r.getMessage()
        for r in caplog.records
    )
