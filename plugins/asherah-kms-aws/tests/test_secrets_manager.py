"""The ``secrets-manager`` driver against moto_server: formats, errors, refresh, and exact
interoperability with the ``static`` KMS holding the same key."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from awskms_testlib import MASTER_KEY_HEX, PREFERRED, raw_client

from asherah import KmsError, StaticKeyManagementService
from asherah.testing import KmsContract
from asherah_kms_aws import AwsKmsError, SecretsManagerKeyManagementService, decode_secret
from testsupport.moto import MotoServer, closed_port

TEST_KEY = bytes.fromhex(MASTER_KEY_HEX)


def secrets(moto: MotoServer) -> Any:
    """A plain Secrets Manager client, for changing secrets behind the driver's back."""
    return raw_client(moto.endpoint, "secretsmanager", PREFERRED)


def new_secret(moto: MotoServer, **value: Any) -> str:
    name = f"asherah/test/{uuid.uuid4().hex[:12]}"
    secrets(moto).create_secret(Name=name, **value)
    return name


def assert_seals_with(
    managed: SecretsManagerKeyManagementService, master_key: bytes, system_key: bytes
) -> None:
    """What ``managed`` seals, the static KMS holding ``master_key`` opens."""
    static = StaticKeyManagementService(master_key)
    assert bytes(static.decrypt_key(managed.encrypt_key(system_key))) == system_key


def build(moto: MotoServer, secret_id: str, **options: Any) -> SecretsManagerKeyManagementService:
    return SecretsManagerKeyManagementService.build(
        secret_id=secret_id, region=PREFERRED, endpoint=moto.endpoint, **options
    )


@pytest.fixture
def secret(moto: MotoServer) -> str:
    return new_secret(moto, SecretString=MASTER_KEY_HEX)


class TestSecretsManagerContract(KmsContract):
    """The kit's failure contract does not apply: the secret is read once, at construction,
    so a built driver makes no more calls (construction failures are tested below)."""

    @pytest.fixture
    def kms(self, moto: MotoServer, secret: str) -> Iterator[SecretsManagerKeyManagementService]:
        driver = build(moto, secret)
        yield driver
        driver.close()


def test_sealed_system_keys_interoperate_with_the_static_kms(moto: MotoServer, secret: str) -> None:
    static = StaticKeyManagementService(TEST_KEY)
    managed = build(moto, secret)
    try:
        for system_key in (os.urandom(32), bytes(32)):
            assert bytes(static.decrypt_key(managed.encrypt_key(system_key))) == system_key
            assert bytes(managed.decrypt_key(static.encrypt_key(system_key))) == system_key
    finally:
        managed.close()


@pytest.mark.parametrize(
    "value",
    [
        {"SecretString": MASTER_KEY_HEX.upper()},
        {"SecretString": "0x" + MASTER_KEY_HEX},
        {"SecretString": "0X" + MASTER_KEY_HEX},
        {"SecretString": f"  0x{MASTER_KEY_HEX[:30]}\r\n {MASTER_KEY_HEX[30:]}\t\n"},
        {"SecretBinary": TEST_KEY},
    ],
    ids=["upper", "0x", "0X", "whitespace", "binary"],
)
def test_accepted_secret_formats_give_the_same_key(moto: MotoServer, value: dict[str, Any]) -> None:
    managed = build(moto, new_secret(moto, **value))
    try:
        assert_seals_with(managed, TEST_KEY, b"\x05" * 32)
    finally:
        managed.close()


@pytest.mark.parametrize(
    ("response", "message"),
    [
        ({"SecretString": "22" * 16}, "decoded to 16 bytes, expected 32"),
        ({"SecretString": "22" * 33}, "decoded to 33 bytes, expected 32"),
        ({"SecretString": "2" * 63}, "has odd-length hex string (63 chars after trim)"),
        ({"SecretString": "22" * 10 + "zz" + "22" * 21}, "contains invalid hex at position 20"),
        ({"SecretString": "thisIsAStaticMasterKeyForTesting"}, "invalid hex at position 0"),
        ({"SecretString": ""}, "decoded to 0 bytes, expected 32"),
        ({"SecretBinary": b"\x01" * 31}, "SecretBinary is 31 bytes, expected 32"),
        ({}, "has neither SecretString nor SecretBinary"),
    ],
)
def test_bad_values_name_the_secret_and_never_the_value(
    response: dict[str, Any], message: str
) -> None:
    with pytest.raises(KmsError) as info:
        decode_secret("team/master-key", response)
    text = str(info.value)
    assert text.startswith("Secrets Manager secret 'team/master-key'")
    assert message in text
    assert "2222" not in text
    assert "thisIs" not in text


def test_a_wrong_length_secret_fails_construction(moto: MotoServer) -> None:
    name = new_secret(moto, SecretString="ab" * 16)
    with pytest.raises(KmsError, match=f"Secrets Manager secret '{name}' decoded to 16 bytes"):
        build(moto, name)


def test_a_missing_secret_is_a_kms_error_with_its_id_and_code(moto: MotoServer) -> None:
    with pytest.raises(AwsKmsError) as info:
        build(moto, "asherah/test/absent")
    assert "'asherah/test/absent'" in str(info.value)
    assert [(f.region, f.operation, f.code) for f in info.value.failures] == [
        (PREFERRED, "GetSecretValue", "ResourceNotFoundException")
    ]


def test_an_unreachable_service_is_a_kms_error(secret: str) -> None:
    with pytest.raises(AwsKmsError) as info:
        SecretsManagerKeyManagementService.build(
            secret_id=secret, region=PREFERRED, endpoint=closed_port(), max_attempts=1
        )
    assert info.value.failures[0].code == "EndpointConnectionError"


def test_region_from_an_arn_secret_id_and_endpoint_from_the_environment(
    moto: MotoServer, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = secrets(moto).describe_secret(SecretId=secret)["ARN"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    managed = SecretsManagerKeyManagementService.build(secret_id=arn)
    try:
        assert managed.drift_identity() == {
            "kind": "secrets-manager",
            "secret_id": arn,
            "region": None,
        }
        assert_seals_with(managed, TEST_KEY, b"\x01" * 32)
    finally:
        managed.close()


def test_refresh_picks_up_a_new_value_and_keeps_opening_old_keys(moto: MotoServer) -> None:
    name = new_secret(moto, SecretString=MASTER_KEY_HEX)
    managed = build(moto, name, refresh_interval=0.1)
    try:
        first_version = managed.version_id
        before = managed.encrypt_key(b"\x0a" * 32)
        new_key = os.urandom(32)
        secrets(moto).put_secret_value(SecretId=name, SecretString=new_key.hex())
        deadline = time.monotonic() + 10
        while managed.version_id == first_version and time.monotonic() < deadline:
            time.sleep(0.05)
        assert managed.version_id != first_version
        assert_seals_with(managed, new_key, b"\x0b" * 32)
        assert bytes(managed.decrypt_key(before)) == b"\x0a" * 32
        assert managed.refresh() is False  # nothing changed since
    finally:
        managed.close()
    assert "asherah-secrets-manager-refresh" not in [t.name for t in threading.enumerate()]


def test_a_failed_refresh_keeps_the_current_key(moto: MotoServer, secret: str) -> None:
    managed = build(moto, secret)
    try:
        secrets(moto).put_secret_value(SecretId=secret, SecretString="00" * 8)
        with pytest.raises(KmsError, match="decoded to 8 bytes"):
            managed.refresh()
        assert_seals_with(managed, TEST_KEY, b"\x0c" * 32)
    finally:
        managed.close()


def test_version_stage_reads_the_previous_value(moto: MotoServer) -> None:
    name = new_secret(moto, SecretString=MASTER_KEY_HEX)
    secrets(moto).put_secret_value(SecretId=name, SecretString=os.urandom(32).hex())
    previous = build(moto, name, version_stage="AWSPREVIOUS")
    try:
        assert_seals_with(previous, TEST_KEY, b"\x0d" * 32)
    finally:
        previous.close()


def test_closed_driver_refuses_work_and_repr_hides_the_key(moto: MotoServer, secret: str) -> None:
    managed = build(moto, secret)
    blob = managed.encrypt_key(b"\x0e" * 32)
    assert repr(managed) == (
        f"SecretsManagerKeyManagementService(secret_id={secret!r}, master_key=<hidden>)"
    )
    managed.close()
    managed.close()
    with pytest.raises(KmsError, match="closed"):
        managed.decrypt_key(blob)
