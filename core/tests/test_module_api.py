"""The module-level drop-in for PyPI ``asherah`` 0.5.56 (setup / encrypt_* / decrypt_* /
shutdown, setenv, version, the log and metrics hooks) and ``SessionFactory.from_env()``."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import asherah
from asherah import AsherahError, ConfigError, SessionFactory, _module_api, _observe

from .conftest import KEY_HEX, static_config

CONFIG = static_config()


@pytest.fixture(autouse=True)
def clean_module_state() -> Iterator[None]:
    asherah.shutdown()
    yield
    asherah.shutdown()
    asherah.set_metrics_hook(None)
    asherah.set_log_hook(None)


def flush() -> None:
    _observe.DISPATCH.flush()


# -- setup / shutdown ------------------------------------------------------------------------


def test_calls_before_setup_fail_like_the_reference() -> None:
    assert asherah.get_setup_status() is False
    for call in (
        lambda: asherah.encrypt_bytes("p", b"x"),
        lambda: asherah.encrypt_string("p", "x"),
        lambda: asherah.decrypt_bytes("p", "{}"),
        lambda: asherah.decrypt_string("p", "{}"),
    ):
        with pytest.raises(RuntimeError, match=r"Asherah not configured; call setup\(\)"):
            call()


def test_setup_round_trip_and_lifecycle() -> None:
    asherah.setup(CONFIG)
    assert asherah.get_setup_status() is True
    with pytest.raises(AsherahError, match=r"Asherah already configured; call shutdown\(\) first"):
        asherah.setup(CONFIG)
    record = asherah.encrypt_bytes("p1", b"bytes")
    assert asherah.decrypt_bytes("p1", record) == b"bytes"
    text = asherah.encrypt_string("p1", "tëxt ✓")
    assert asherah.decrypt_string("p1", text) == "tëxt ✓"
    assert json.loads(record)["Key"]["ParentKeyMeta"]["KeyId"] == "_IK_p1_svc_prod"
    assert asherah.decrypt_bytes("p1", asherah.encrypt_bytes("p1", b"")) == b""
    asherah.shutdown()
    asherah.shutdown()  # idempotent
    assert asherah.get_setup_status() is False
    # A new setup has a new in-memory metastore: the old keys are gone, as in the reference.
    asherah.setup(CONFIG)
    with pytest.raises(AsherahError):
        asherah.decrypt_bytes("p1", record)


def test_module_api_argument_errors() -> None:
    asherah.setup(CONFIG)
    with pytest.raises(TypeError):
        asherah.encrypt_bytes("p", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        asherah.encrypt_string("p", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        asherah.decrypt_bytes("p", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        asherah.encrypt_bytes(None, b"x")  # type: ignore[arg-type]
    with pytest.raises(AsherahError, match="partition id cannot be empty"):
        asherah.encrypt_bytes("", b"x")
    with pytest.raises(AsherahError, match="Key"):
        asherah.decrypt_bytes("p", '{"Key":null,"Data":"AQID"}')


def test_bad_setup_config_leaves_it_unconfigured() -> None:
    with pytest.raises(ConfigError, match="Bogus"):
        asherah.setup({**CONFIG, "Bogus": 1})
    assert asherah.get_setup_status() is False
    asherah.setup(CONFIG)
    assert asherah.get_setup_status() is True


def test_session_cache_is_bounded_lru() -> None:
    asherah.setup({**CONFIG, "SessionCacheMaxSize": 2})
    records = {p: asherah.encrypt_bytes(p, p.encode()) for p in ("a", "b", "c", "d", "e")}
    cached = list(_module_api._STATE.sessions.values())
    assert list(_module_api._STATE.sessions) == ["d", "e"]
    assert not any(s.closed for s in cached)
    for partition, record in records.items():
        assert asherah.decrypt_bytes(partition, record) == partition.encode()
    assert len(_module_api._STATE.sessions) == 2


def test_session_caching_can_be_disabled() -> None:
    asherah.setup({**CONFIG, "EnableSessionCaching": False})
    record = asherah.encrypt_bytes("a", b"x")
    assert asherah.decrypt_bytes("a", record) == b"x"
    assert len(_module_api._STATE.sessions) == 0


# -- setenv and version -----------------------------------------------------------------------


def test_setenv_sets_deletes_and_json_encodes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ASHERAH_T_A", "ASHERAH_T_B", "ASHERAH_T_C", "ASHERAH_T_D"):
        monkeypatch.setenv(name, "before")  # registers the restore at teardown
    asherah.setenv({"ASHERAH_T_A": "one", "ASHERAH_T_B": None, "ASHERAH_T_C": 5})
    assert os.environ["ASHERAH_T_A"] == "one"
    assert "ASHERAH_T_B" not in os.environ
    assert os.environ["ASHERAH_T_C"] == "5"
    asherah.setenv(json.dumps({"ASHERAH_T_D": True, "ASHERAH_T_A": None}))
    assert os.environ["ASHERAH_T_D"] == "true"
    assert "ASHERAH_T_A" not in os.environ
    with pytest.raises(TypeError):
        asherah.setenv(["ASHERAH_T_A"])  # type: ignore[arg-type]


def test_version_is_the_installed_distribution_version() -> None:
    assert asherah.version() == importlib.metadata.version("asherah")
    assert isinstance(asherah.version(), str)


# -- hooks --------------------------------------------------------------------------------------


def test_metrics_hook_event_shapes() -> None:
    events: list[dict[str, Any]] = []
    asherah.set_metrics_hook(events.append)
    asherah.setup(CONFIG)
    record = asherah.encrypt_bytes("p", b"x")
    asherah.decrypt_bytes("p", record)
    asherah.encrypt_bytes("p", b"y")
    flush()
    assert events, "no metrics events delivered"
    kinds = set()
    for event in events:
        if "duration_ns" in event:
            assert set(event) == {"type", "duration_ns"}
            assert event["type"] in {"encrypt", "decrypt", "store", "load"}
            assert isinstance(event["duration_ns"], int)
            assert event["duration_ns"] >= 0
            kinds.add(event["type"])
        else:
            assert set(event) == {"type", "name"}
            assert event["type"] in {"cache_hit", "cache_miss", "cache_stale"}
            assert event["name"] in {"latest", "meta"}
            kinds.add(f"{event['type']}/{event['name']}")
    # The reference's sequence: miss on the first encrypt, hit on the exact key for decrypt,
    # hit on the latest key for the second encrypt.
    assert {
        "encrypt",
        "decrypt",
        "cache_miss/latest",
        "cache_hit/meta",
        "cache_hit/latest",
    } <= kinds
    assert [e["type"] for e in events if "duration_ns" in e] == ["encrypt", "decrypt", "encrypt"]


def test_metrics_hook_removal_and_failures() -> None:
    events: list[dict[str, Any]] = []
    asherah.set_metrics_hook(events.append)
    asherah.setup(CONFIG)
    asherah.encrypt_bytes("p", b"x")
    flush()
    assert events
    asherah.set_metrics_hook(None)
    seen = len(events)
    asherah.encrypt_bytes("p", b"x")
    flush()
    assert len(events) == seen

    def broken(event: dict[str, Any]) -> None:
        raise ValueError("hook bug")

    asherah.set_metrics_hook(broken)
    assert asherah.decrypt_bytes("p", asherah.encrypt_bytes("p", b"z")) == b"z"
    flush()
    with pytest.raises(TypeError):
        asherah.set_metrics_hook("not callable")  # type: ignore[arg-type]


def test_log_hook_gets_warnings_and_errors_only() -> None:
    logs: list[dict[str, Any]] = []
    asherah.set_log_hook(logs.append)  # installed before setup, as the reference allows
    asherah.setup(CONFIG)  # the in-memory metastore warns
    logger = logging.getLogger("asherah.tests")
    logger.info("not delivered")
    logger.debug("not delivered")
    logger.error("delivered %s", "error")
    flush()
    assert logs
    for event in logs:
        assert set(event) == {"level", "message", "target"}
        assert event["level"] in {"warn", "error"}
        assert all(isinstance(v, str) for v in event.values())
        assert "not delivered" not in event["message"]
    assert any(e["level"] == "warn" and "in-memory" in e["message"] for e in logs)
    assert {"level": "error", "message": "delivered error", "target": "asherah.tests"} in logs
    asherah.set_log_hook(None)
    count = len(logs)
    logger.error("after removal")
    flush()
    assert len(logs) == count
    with pytest.raises(TypeError):
        asherah.set_log_hook(42)  # type: ignore[arg-type]


# -- SessionFactory.from_env() ---------------------------------------------------------------

ENV_VARS = (
    "KMS",
    "STATIC_MASTER_KEY_HEX",
    "SERVICE_NAME",
    "PRODUCT_ID",
    "Metastore",
    "SQLITE_PATH",
    "DDB_TABLE",
    "POSTGRES_URL",
    "MYSQL_URL",
    "EXPIRE_AFTER_SECS",
    "REVOKE_CHECK_INTERVAL_SECS",
    "REGION_SUFFIX",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_from_env_builds_a_working_factory(env: pytest.MonkeyPatch) -> None:
    env.setenv("KMS", "static")
    env.setenv("STATIC_MASTER_KEY_HEX", KEY_HEX)
    env.setenv("SERVICE_NAME", "envsvc")
    env.setenv("PRODUCT_ID", "envprod")
    env.setenv("EXPIRE_AFTER_SECS", "7200")
    env.setenv("REVOKE_CHECK_INTERVAL_SECS", "not a number")  # ignored, as the reference does
    with SessionFactory.from_env() as factory:
        assert (factory.config.service_name, factory.config.product_id) == ("envsvc", "envprod")
        assert factory.config.metastore == "memory"
        assert factory.policy.expire_after_s == 7200
        assert factory.policy.check_interval_s == 3600
        session = factory.get_session("p")
        record = session.encrypt_bytes(b"env")
        assert session.decrypt_bytes(record) == b"env"
        assert json.loads(record)["Key"]["ParentKeyMeta"]["KeyId"] == "_IK_p_envsvc_envprod"
    with SessionFactory() as implicit:  # no config: the environment, like the reference
        assert implicit.config.service_name == "envsvc"


def test_from_env_defaults_and_region_suffix(env: pytest.MonkeyPatch) -> None:
    env.setenv("KMS", "static")
    env.setenv("STATIC_MASTER_KEY_HEX", KEY_HEX)
    env.setenv("REGION_SUFFIX", "us-west-2")
    env.setenv("Metastore", "no-such-thing")  # unknown values fall back to memory
    with SessionFactory.from_env() as factory:
        assert (factory.config.service_name, factory.config.product_id) == ("service", "product")
        record = factory.get_session("p").encrypt_bytes(b"x")
        key_id = json.loads(record)["Key"]["ParentKeyMeta"]["KeyId"]
        assert key_id == "_IK_p_service_product_us-west-2"


def test_from_env_requires_kms(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="KMS is required"):
        SessionFactory.from_env()
    env.setenv("KMS", "static")
    with pytest.raises(ConfigError, match="STATIC_MASTER_KEY_HEX"):
        SessionFactory.from_env()
    env.setenv("STATIC_MASTER_KEY_HEX", "abc")
    with pytest.raises(ConfigError, match="odd length"):
        SessionFactory.from_env()
    env.setenv("KMS", "nonsense")
    env.setenv("STATIC_MASTER_KEY_HEX", KEY_HEX)
    with pytest.raises(ConfigError, match="nonsense"):
        SessionFactory.from_env()


def test_threads_churning_a_small_session_cache() -> None:
    asherah.setup({**CONFIG, "SessionCacheMaxSize": 2})
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            for i in range(150):
                partition = f"p{(index + i) % 7}"
                record = asherah.encrypt_bytes(partition, b"%d" % i)
                assert asherah.decrypt_bytes(partition, record) == b"%d" % i
        except BaseException as exc:  # reported on the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so eviction races with use
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[:3]
    assert len(_module_api._STATE.sessions) <= 2


@pytest.mark.parametrize("value", ["²", "--5", "1_000", "12abc", " ", "٣"])
def test_from_env_ignores_unparseable_numbers(env: pytest.MonkeyPatch, value: str) -> None:
    env.setenv("KMS", "static")
    env.setenv("STATIC_MASTER_KEY_HEX", KEY_HEX)
    env.setenv("EXPIRE_AFTER_SECS", value)
    env.setenv("ASHERAH_POOL_MAX_OPEN", value)
    with SessionFactory.from_env() as factory:
        assert factory.policy.expire_after_s == 90 * 24 * 3600
        assert factory.config.pool_max_open is None
