"""The public Session API: config spellings, argument checking, limits, context managers,
threads, and secrets kept out of every repr and message."""

from __future__ import annotations

import base64
import json
import logging
import sys
import threading
from typing import Any

import pytest

import asherah
from asherah import (
    AsherahError,
    Config,
    ConfigError,
    DecryptionError,
    DriverNotFoundError,
    InMemoryMetastore,
    KmsError,
    MetastoreError,
    PayloadTooLargeError,
    SessionFactory,
    StaticKeyManagementService,
)
from asherah._limits import MAX_ENVELOPE_BYTES, MAX_PAYLOAD_BYTES, MAX_RECORD_CHARS

from .conftest import KEY_HEX, static_config


def pascal() -> dict[str, Any]:
    return static_config(ExpireAfter=7200, CheckInterval=300)


def snake() -> dict[str, Any]:
    return {
        "service_name": "svc",
        "product_id": "prod",
        "metastore": "memory",
        "kms": "static",
        "static_master_key_hex": KEY_HEX,
        "expire_after": 7200,
        "check_interval": 300,
    }


@pytest.mark.parametrize(
    "make_config",
    [pascal, snake, lambda: Config(**snake()), lambda: Config.model_validate(pascal())],
    ids=["pascal-dict", "snake-dict", "Config-snake", "Config-pascal"],
)
def test_every_config_spelling_builds_the_same_factory(make_config: Any) -> None:
    metastore = InMemoryMetastore()
    with SessionFactory(pascal(), metastore=metastore) as reference:
        record = reference.get_session("p1").encrypt_bytes(b"shared")
    with SessionFactory(make_config(), metastore=metastore) as factory:
        assert factory.config.service_name == "svc"
        assert factory.policy.expire_after_s == 7200
        assert factory.policy.check_interval_s == 300
        session = factory.get_session("p1")
        assert session.decrypt_bytes(record) == b"shared"
        assert session.decrypt_bytes(session.encrypt_bytes(b"own")) == b"own"


#: Every key of the reference's ConfigOptions (PyPI asherah 0.5.56), with a value of its type.
CANONICAL_KEYS: dict[str, Any] = {
    "ServiceName": "svc",
    "ProductID": "prod",
    "ExpireAfter": 60,
    "CheckInterval": 60,
    "Metastore": "memory",
    "ConnectionString": "sqlite:///tmp/x.db",
    "ReplicaReadConsistency": "eventual",
    "DynamoDBEndpoint": "http://127.0.0.1:8000",
    "DynamoDBRegion": "us-west-2",
    "DynamoDBSigningRegion": "us-west-2",
    "DynamoDBTableName": "EncryptionKey",
    "SessionCacheMaxSize": 10,
    "SessionCacheDuration": 60,
    "KMS": "static",
    "KmsKeyId": "arn:aws:kms:us-west-2:111122223333:key/x",
    "RegionMap": {"us-west-2": "arn:aws:kms:us-west-2:111122223333:key/x"},
    "PreferredRegion": "us-west-2",
    "AwsProfileName": "default",
    "EnableRegionSuffix": False,
    "RecoveryRegionSuffixes": ["us-east-1"],
    "SelfHealRecoveredKeys": False,
    "ConfigDriftForceRun": False,
    "ConfigDriftForceUpdate": False,
    "EnableSessionCaching": True,
    "Verbose": False,
    "SQLMetastoreDBType": "mysql",
    "DisableZeroCopy": False,
    "NullDataCheck": False,
    "EnableCanaries": False,
    "PoolMaxOpen": 0,
    "PoolMaxIdle": 2,
    "PoolMaxLifetime": 0,
    "PoolMaxIdleTime": 0,
    "StaticMasterKeyHex": KEY_HEX,
    "SecretsManagerSecretId": "secret",
    "VaultAddr": "http://127.0.0.1:8200",
    "VaultToken": "s3cr3t-vault-token",
    "VaultAuthMethod": "approle",
    "VaultAuthRole": "role",
    "VaultAuthMount": "approle",
    "VaultApproleRoleId": "role-id",
    "VaultApproleSecretId": "s3cr3t-approle",
    "VaultClientCert": "/tmp/cert.pem",
    "VaultClientKey": "/tmp/key.pem",
    "VaultK8sTokenPath": "/tmp/token",
    "VaultTransitKey": "key",
    "VaultTransitMount": "transit",
}


def test_every_canonical_key_is_accepted() -> None:
    config = Config.model_validate(CANONICAL_KEYS)
    assert config.service_name == "svc"
    assert config.region_map == CANONICAL_KEYS["RegionMap"]
    assert config.vault_token is not None
    assert config.vault_token.get_secret_value() == "s3cr3t-vault-token"
    assert "s3cr3t" not in repr(config)
    assert KEY_HEX not in repr(config)
    aliases = {"ForceRunWithConfigDrift": True, "ForceUpdateConfigDriftGuard": True}
    base = {k: v for k, v in CANONICAL_KEYS.items() if not k.startswith("ConfigDrift")}
    aliased = Config.model_validate({**base, **aliases})
    assert aliased.config_drift_force_run is True
    assert aliased.config_drift_force_update is True


@pytest.mark.parametrize("unknown", ["ServiceNam", "expire_afte", "KmsKeyID", "Region"])
def test_unknown_config_key_is_a_config_error_naming_it(unknown: str) -> None:
    config = {**pascal(), unknown: "x"}
    with pytest.raises(ConfigError, match=unknown):
        SessionFactory(config)


def test_config_errors_name_the_problem_and_hide_values() -> None:
    config = {k: v for k, v in pascal().items() if k != "ServiceName"}
    with pytest.raises(ConfigError, match="service_name"):
        SessionFactory(config)
    with pytest.raises(ConfigError, match="ExpireAfter"):
        SessionFactory({**pascal(), "ExpireAfter": "soon"})
    with pytest.raises(ConfigError) as caught:
        SessionFactory({**pascal(), "StaticMasterKeyHex": 12345, "Bogus": KEY_HEX})
    assert KEY_HEX not in str(caught.value)
    assert "12345" not in str(caught.value)


def test_config_must_be_a_mapping_or_config() -> None:
    with pytest.raises(TypeError):
        SessionFactory(["ServiceName", "svc"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SessionFactory(json.dumps(pascal()))  # type: ignore[arg-type]


def test_unknown_drivers_and_missing_drivers_are_config_errors() -> None:
    with pytest.raises(DriverNotFoundError, match="nosuchkms"):
        SessionFactory({**pascal(), "KMS": "nosuchkms"})
    with pytest.raises(ConfigError, match="Metastore"):
        SessionFactory({k: v for k, v in pascal().items() if k != "Metastore"})


def test_driver_instances_replace_the_configured_drivers() -> None:
    config = {"ServiceName": "svc", "ProductID": "prod"}
    kms = StaticKeyManagementService(bytes.fromhex(KEY_HEX))
    with SessionFactory(config, metastore=InMemoryMetastore(), kms=kms) as factory:
        session = factory.get_session("p")
        assert session.decrypt_bytes(session.encrypt_bytes(b"x")) == b"x"


@pytest.fixture
def factory() -> Any:
    with SessionFactory(pascal()) as built:
        yield built


@pytest.fixture
def session(factory: SessionFactory) -> Any:
    return factory.get_session("p1")


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.encrypt_bytes(None),
        lambda s: s.encrypt_bytes("text"),
        lambda s: s.encrypt_bytes(12),
        lambda s: s.encrypt_text(None),
        lambda s: s.encrypt_text(b"bytes"),
        lambda s: s.decrypt_bytes(None),
        lambda s: s.decrypt_bytes(12),
        lambda s: s.decrypt_text(None),
    ],
)
def test_none_and_wrong_types_are_type_errors(session: Any, call: Any) -> None:
    with pytest.raises(TypeError):
        call(session)


def test_partition_is_checked_at_get_session(factory: SessionFactory) -> None:
    with pytest.raises(ConfigError, match="partition id cannot be empty"):
        factory.get_session("")
    with pytest.raises(TypeError):
        factory.get_session(None)  # type: ignore[arg-type]


def test_partition_must_be_encodable_text(factory: SessionFactory) -> None:
    # A lone surrogate would make a record nothing can parse back: refused up front.
    with pytest.raises(ConfigError, match="partition id"):
        factory.get_session("a\ud800")
    for partition in ("nul\x00part", "tab\tand\u2028", "日本"):
        session = factory.get_session(partition)
        assert session.decrypt_bytes(session.encrypt_bytes(b"x")) == b"x"


def test_empty_plaintext_is_valid(session: Any) -> None:
    record = session.encrypt_bytes(b"")
    assert len(base64.b64decode(json.loads(record)["Data"])) == 28
    assert session.decrypt_bytes(record) == b""
    assert session.decrypt_text(session.encrypt_text("")) == ""


def test_binary_text_and_buffer_inputs_round_trip(session: Any) -> None:
    every_byte = bytes(range(256))
    assert session.decrypt_bytes(session.encrypt_bytes(every_byte)) == every_byte
    assert session.decrypt_bytes(session.encrypt_bytes(bytearray(b"ba"))) == b"ba"
    assert session.decrypt_bytes(session.encrypt_bytes(memoryview(b"xmvx")[1:3])) == b"mv"
    text = "héllo wörld ✓ 日本 🎉"
    record = session.encrypt_text(text)
    assert session.decrypt_text(record) == text
    assert session.decrypt_text(record.encode()) == text
    assert session.decrypt_bytes(bytearray(record.encode())) == text.encode()
    big = bytes(range(256)) * 4096  # 1 MiB
    assert session.decrypt_bytes(session.encrypt_bytes(big)) == big


def test_plaintext_limit_is_64_mib_and_the_largest_record_decrypts(session: Any) -> None:
    session.encrypt_bytes(b"warm")  # the intermediate key is cached: the inline path checks too
    with pytest.raises(PayloadTooLargeError, match="67108865 exceeds maximum 67108864"):
        session.encrypt_bytes(bytes(MAX_PAYLOAD_BYTES + 1))
    record = session.encrypt_bytes(bytes(MAX_PAYLOAD_BYTES))
    assert len(base64.b64decode(json.loads(record)["Data"])) == MAX_PAYLOAD_BYTES + 28
    # Deliberately unlike the reference, whose 68,157,440-character record limit refuses the
    # records of plaintexts above ~48.7 MiB that it encrypts: every record we write decrypts.
    assert len(record) > MAX_ENVELOPE_BYTES
    assert session.decrypt_bytes(record) == bytes(MAX_PAYLOAD_BYTES)


def test_record_limits(session: Any) -> None:
    with pytest.raises(DecryptionError, match=f"exceeds maximum {MAX_RECORD_CHARS}"):
        session.decrypt_bytes(" " * (MAX_RECORD_CHARS + 1))
    assert issubclass(PayloadTooLargeError, AsherahError)


def test_context_managers_and_close(factory: SessionFactory) -> None:
    with factory.get_session("p1") as session:
        record = session.encrypt_bytes(b"x")
    assert session.closed
    with pytest.raises(AsherahError, match="closed"):
        session.encrypt_bytes(b"x")
    session.close()  # idempotent
    other = factory.get_session("p1")
    assert other.decrypt_bytes(record) == b"x"  # closing a session keeps the factory's keys
    factory.close()
    factory.close()
    assert factory.closed
    with pytest.raises(AsherahError, match="closed"):
        factory.get_session("p1")
    with pytest.raises(AsherahError, match="closed"):
        other.decrypt_bytes(record)
    with pytest.raises(AsherahError, match="closed"):
        other.encrypt_bytes(b"x")


def test_factory_context_manager_closes() -> None:
    with SessionFactory(pascal()) as factory:
        pass
    assert factory.closed


def test_threads_share_one_factory(factory: SessionFactory) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            for i in range(25):
                partition = f"p{(index + i) % 4}"
                session = factory.get_session(partition)
                data = f"{index}:{i}".encode()
                assert session.decrypt_bytes(session.encrypt_bytes(data)) == data
        except BaseException as exc:  # reported on the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    rows = sorted(k for k, _, _ in factory.metastore.list_rows("_IK_"))
    assert rows == [f"_IK_p{i}_svc_prod" for i in range(4)]
    assert [k for k, _, _ in factory.metastore.list_rows("_SK_")] == ["_SK_svc_prod"]


def test_secrets_stay_out_of_reprs(factory: SessionFactory, session: Any) -> None:
    texts = [repr(factory), repr(factory.config), str(factory.config), repr(session)]
    texts += [repr(factory.kms), repr(Config(**snake()))]
    for text in texts:
        assert KEY_HEX not in text
        assert "2222" not in text


def test_errors_are_runtime_errors_like_the_reference() -> None:
    for error in (AsherahError, ConfigError, DecryptionError, KmsError, MetastoreError):
        assert issubclass(error, RuntimeError)
        assert issubclass(error, AsherahError)


def test_public_names() -> None:
    for name in ("SessionFactory", "Session", "Config", "setup", "encrypt_bytes", "version"):
        assert name in asherah.__all__


def test_closing_under_concurrent_use_raises_only_closed_errors() -> None:
    failures: list[BaseException] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch often so close lands inside encrypt and decrypt
    try:
        for _ in range(8):
            factory = SessionFactory(pascal())
            session = factory.get_session("p")
            session.encrypt_bytes(b"warm")

            def work(session: Any = session) -> None:
                while True:
                    try:
                        session.decrypt_bytes(session.encrypt_bytes(b"y"))
                    except Exception as exc:  # collected and checked below
                        failures.append(exc)
                        return

            threads = [threading.Thread(target=work) for _ in range(3)]
            for thread in threads:
                thread.start()
            factory.close()
            for thread in threads:
                thread.join(timeout=30)
    finally:
        sys.setswitchinterval(interval)
    assert len(failures) == 24
    # Not an AeadError from a wiped key, not a "does not authenticate" DecryptionError.
    assert {(type(e), str(e)) for e in failures} == {(AsherahError, "session factory is closed")}


def test_static_kms_warns_once_and_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from asherah.kms import _static

    monkeypatch.setattr(_static, "_warned", threading.Event())
    monkeypatch.setenv("STATIC_MASTER_KEY_HEX", KEY_HEX)
    without_key = {k: v for k, v in pascal().items() if k != "StaticMasterKeyHex"}
    metastore = InMemoryMetastore()
    with caplog.at_level(logging.WARNING, logger="asherah"):
        with SessionFactory(without_key, metastore=metastore) as from_env:
            record = from_env.get_session("p").encrypt_bytes(b"x")
        with SessionFactory(pascal(), metastore=metastore) as from_config:
            # The same master key either way: the second factory opens the first one's SK.
            assert from_config.get_session("p").decrypt_bytes(record) == b"x"
    warnings = [r for r in caplog.records if "static master key" in r.getMessage()]
    assert len(warnings) == 1
    assert "testing only" in warnings[0].getMessage()
