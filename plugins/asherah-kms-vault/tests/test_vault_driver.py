"""Wire format, rotation, rewrap, identity and options of the Vault Transit driver."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import hvac
import pytest

from asherah import Config, ConfigError, EnvelopeKeyRecord, KeyMeta, KmsError
from asherah._drivers import KMS_GROUP, driver_class, load_kms
from asherah_kms_vault import VaultKmsOptions, VaultTransitKms, key_version, rewrap_system_keys
from testsupport.openbao import OpenBao

MakeKms = Any


def test_stored_key_is_the_utf8_vault_ciphertext(
    token_kms: VaultTransitKms, bao: OpenBao, transit_key: str
) -> None:
    """The blob is Vault's ``vault:v1:...`` string itself, which any Vault client (here plain
    hvac, as root) decrypts to the key: the format other implementations store."""
    key = os.urandom(32)
    blob = token_kms.encrypt_key(key)
    text = blob.decode("utf-8")
    assert text.startswith("vault:v1:")
    answer = bao.root_client().secrets.transit.decrypt_data(name=transit_key, ciphertext=text)
    assert base64.b64decode(answer["data"]["plaintext"]) == key


def test_decrypts_a_ciphertext_made_by_another_client(
    token_kms: VaultTransitKms, bao: OpenBao, transit_key: str
) -> None:
    """The reverse direction: what another implementation stored (Vault's ciphertext as UTF-8
    bytes) unwraps here. The spec's plaintext encoding vector is the payload."""
    assert base64.b64encode(b"0123456789abcdef").decode() == "MDEyMzQ1Njc4OWFiY2RlZg=="
    answer = bao.root_client().secrets.transit.encrypt_data(
        name=transit_key, plaintext="MDEyMzQ1Njc4OWFiY2RlZg=="
    )
    blob = answer["data"]["ciphertext"].encode("utf-8")
    assert token_kms.decrypt_key(blob) == bytearray(b"0123456789abcdef")


def test_rotation_old_keys_decrypt_new_keys_use_v2(
    approle_kms: VaultTransitKms, bao: OpenBao, transit_key: str
) -> None:
    old_key = os.urandom(32)
    old_blob = approle_kms.encrypt_key(old_key)
    assert old_blob.startswith(b"vault:v1:")
    bao.rotate_transit_key(transit_key)
    new_key = os.urandom(32)
    new_blob = approle_kms.encrypt_key(new_key)
    assert new_blob.startswith(b"vault:v2:")
    assert approle_kms.decrypt_key(old_blob) == old_key
    assert approle_kms.decrypt_key(new_blob) == new_key


def test_rewrap_moves_a_key_to_the_newest_version(
    approle_kms: VaultTransitKms, bao: OpenBao, transit_key: str
) -> None:
    key = os.urandom(32)
    blob = approle_kms.encrypt_key(key)
    bao.rotate_transit_key(transit_key)
    bao.rotate_transit_key(transit_key)
    rewrapped = approle_kms.rewrap_key(blob)
    assert rewrapped.startswith(b"vault:v3:")
    assert key_version(rewrapped) == 3
    assert key_version(blob) == 1
    assert approle_kms.decrypt_key(rewrapped) == key


def test_rewrap_system_keys_rewraps_only_old_system_key_rows(
    approle_kms: VaultTransitKms, bao: OpenBao, transit_key: str
) -> None:
    keys = [os.urandom(32) for _ in range(3)]
    old = [approle_kms.encrypt_key(k) for k in keys[:2]]
    bao.rotate_transit_key(transit_key)
    current = approle_kms.encrypt_key(keys[2])
    rows = [
        ("_SK_svc_prod", 1000, EnvelopeKeyRecord(1000, old[0])),
        ("_SK_svc_prod", 2000, EnvelopeKeyRecord(2000, old[1], None, True)),
        ("_SK_svc_prod", 3000, EnvelopeKeyRecord(3000, current)),
        # Not a system key: an intermediate key row is never sent to Vault.
        ("_IK_p_svc_prod", 1000, EnvelopeKeyRecord(1000, b"xx", KeyMeta("_SK_svc_prod", 1000))),
    ]
    out = rewrap_system_keys(approle_kms, rows)
    assert [(key_id, created) for key_id, created, _ in out] == [
        ("_SK_svc_prod", 1000),
        ("_SK_svc_prod", 2000),
    ]
    for (_, _, record), key, original in zip(out, keys, rows, strict=False):
        assert record.encrypted_key.startswith(b"vault:v2:")
        assert record.created == original[2].created
        assert record.revoked == original[2].revoked
        assert record.parent_key_meta is None
        assert approle_kms.decrypt_key(record.encrypted_key) == key
    everything = rewrap_system_keys(approle_kms, rows, include_current=True)
    assert len(everything) == 3


def test_rewrap_refuses_a_blob_that_is_not_a_vault_ciphertext(
    token_kms: VaultTransitKms,
) -> None:
    with pytest.raises(KmsError, match=r"rewrap .* does not start with 'vault:v'"):
        token_kms.rewrap_key(b"\x00" * 60)


@pytest.mark.parametrize(
    ("blob", "why"),
    [
        (b"\xff\xfe not utf-8", "not UTF-8"),
        (b"vault:x1:abc", "does not start with 'vault:v'"),
        (b"", "does not start with 'vault:v'"),
        (b"vault:v1:AAAA", "HTTP 400"),
        (b"vault:v1:" + base64.b64encode(os.urandom(60)), "HTTP 400"),
        (b"vault:v9:" + base64.b64encode(os.urandom(60)), "HTTP 400"),
    ],
)
def test_bad_ciphertext_is_a_kms_error_naming_the_cause(
    token_kms: VaultTransitKms, blob: bytes, why: str
) -> None:
    with pytest.raises(KmsError, match="Vault Transit decrypt") as info:
        token_kms.decrypt_key(blob)
    assert why in str(info.value)


def test_decrypt_with_a_wrong_key_name_names_vaults_error(
    make_kms: MakeKms, token_kms: VaultTransitKms, bao: OpenBao
) -> None:
    blob = token_kms.encrypt_key(os.urandom(32))
    other = make_kms(transit_key="no-such-key", token=bao.root_token)
    with pytest.raises(KmsError) as info:
        other.decrypt_key(blob)
    text = str(info.value)
    assert "decrypt" in text
    assert "'no-such-key'" in text
    assert "HTTP 400" in text
    assert "not found" in text


def test_a_wrong_mount_is_a_kms_error(make_kms: MakeKms, bao: OpenBao) -> None:
    kms = make_kms(transit_mount="/no-such-mount/", token=bao.root_token)
    assert kms.settings.transit_mount == "no-such-mount"
    with pytest.raises(KmsError, match=r"encrypt .*HTTP (403|404)"):
        kms.encrypt_key(os.urandom(32))


def test_drift_identity_is_the_references_vault_transit_object(
    make_kms: MakeKms, bao: OpenBao, transit_key: str
) -> None:
    kms = make_kms(token=bao.root_token)
    assert kms.drift_identity() == {
        "kind": "vault-transit",
        "addr": bao.addr,
        "transit_mount": "transit",
        "transit_key": transit_key,
    }
    # As configured (the reference compares the configured strings), no secrets.
    other = make_kms(addr=bao.addr + "/", transit_mount="transit/", token=bao.root_token)
    identity = other.drift_identity()
    assert identity["addr"] == bao.addr + "/"
    assert identity["transit_mount"] == "transit/"
    assert bao.root_token not in repr(identity)


def test_mount_of_another_name(make_kms: MakeKms, bao: OpenBao, unique: str) -> None:
    mount = f"transit-{unique}"
    bao.enable_transit(mount)
    bao.create_transit_key("k2", mount=mount)
    kms = make_kms(transit_mount=mount, transit_key="k2", token=bao.root_token)
    key = os.urandom(32)
    assert kms.decrypt_key(kms.encrypt_key(key)) == key
    assert kms.drift_identity()["transit_mount"] == mount


def test_accepts_any_buffer(token_kms: VaultTransitKms) -> None:
    key = bytearray(os.urandom(32))
    for buffer in (bytes(key), key, memoryview(key)):
        assert token_kms.decrypt_key(token_kms.encrypt_key(buffer)) == key


async def _round_trip_async(kms: VaultTransitKms, key: bytes) -> bytearray:
    return await kms.decrypt_key_async(await kms.encrypt_key_async(key))


def test_async_variants(token_kms: VaultTransitKms) -> None:
    import asyncio

    key = os.urandom(32)
    assert asyncio.run(_round_trip_async(token_kms, key)) == key


# Options, configuration and loading.


def _config(**extra: Any) -> Config:
    return Config.model_validate({"ServiceName": "svc", "ProductID": "prod", **extra})


def test_loader_selects_the_driver_by_vault_and_vault_transit(bao: OpenBao) -> None:
    assert driver_class(KMS_GROUP, "vault") is VaultTransitKms
    assert driver_class(KMS_GROUP, "vault-transit") is VaultTransitKms
    config = _config(
        KMS="vault-transit",
        VaultAddr=bao.addr,
        VaultTransitKey="k",
        VaultTransitMount="transit",
        VaultToken=bao.root_token,
    )
    kms = load_kms(config)
    try:
        assert isinstance(kms, VaultTransitKms)
        assert kms.settings.auth_method == "token"
        assert kms.drift_identity()["transit_key"] == "k"
    finally:
        kms.close()


def test_canonical_keys_map_to_options(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("y")
    config = _config(
        KMS="vault",
        VaultAddr="https://vault.example:8200",
        VaultTransitKey="asherah",
        VaultTransitMount="enc",
        VaultAuthMethod="approle",
        VaultAuthMount="ar",
        VaultApproleRoleId="role-id",
        VaultApproleSecretId="s3cret-id",
        VaultClientCert=str(cert),
        VaultClientKey=str(key),
        VaultK8sTokenPath="/jwt",
        VaultAuthRole="r",
    )
    options = VaultKmsOptions.model_validate(VaultTransitKms.options_from_config(config))
    assert options.addr == "https://vault.example:8200"
    assert options.transit_mount == "enc"
    assert options.auth_method == "approle"
    assert options.auth_mount == "ar"
    assert options.approle_secret_id is not None
    assert options.approle_secret_id.get_secret_value() == "s3cret-id"
    assert options.client_cert == cert
    assert options.kubernetes_jwt_file == Path("/jwt")
    kms = VaultTransitKms.from_options(options)
    try:
        assert kms.settings.client_cert == (str(cert), str(key))
        assert kms.settings.verify is True
        assert "s3cret-id" not in repr(kms) + repr(kms.settings) + repr(options)
    finally:
        kms.close()


def test_environment_fallbacks(monkeypatch: pytest.MonkeyPatch, bao: OpenBao) -> None:
    """Unset options come from the reference's environment variables."""
    monkeypatch.setenv("VAULT_ADDR", bao.addr)
    monkeypatch.setenv("VAULT_TRANSIT_KEY", "env-key")
    monkeypatch.setenv("VAULT_TOKEN", bao.root_token)
    monkeypatch.setenv("VAULT_NAMESPACE", "team-a")
    kms = VaultTransitKms.from_config({})
    try:
        assert kms.settings.addr == bao.addr
        assert kms.settings.transit_key == "env-key"
        assert kms.settings.transit_mount == "transit"
        assert kms.settings.auth_method == "token"
        assert kms.settings.namespace == "team-a"
    finally:
        kms.close()
    # Explicit options win over the environment.
    kms = VaultTransitKms.from_config({"transit_key": "mine", "namespace": "team-b"})
    try:
        assert kms.settings.transit_key == "mine"
        assert kms.settings.namespace == "team-b"
    finally:
        kms.close()


def test_environment_auth_method(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    jwt = tmp_path / "jwt"
    jwt.write_text("header.payload.sig")
    monkeypatch.setenv("VAULT_AUTH_METHOD", "k8s")
    monkeypatch.setenv("VAULT_AUTH_ROLE", "app")
    monkeypatch.setenv("VAULT_K8S_TOKEN_PATH", str(jwt))
    kms = VaultTransitKms.from_config({"addr": "http://127.0.0.1:1", "transit_key": "k"})
    try:
        assert kms.settings.auth_method == "kubernetes"
        assert kms.settings.auth_mount == "kubernetes"
        assert kms.settings.kubernetes_jwt_file == jwt
    finally:
        kms.close()
    # The reference's order: VAULT_TOKEN first, then VAULT_AUTH_METHOD.
    monkeypatch.setenv("VAULT_TOKEN", "t0ken-from-env")
    kms = VaultTransitKms.from_config({"addr": "http://127.0.0.1:1", "transit_key": "k"})
    try:
        assert kms.settings.auth_method == "token"
    finally:
        kms.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"transit_key": "k", "token": "t"}, "VaultAddr and VaultTransitKey are required"),
        ({"addr": "http://x", "token": "t"}, "VaultAddr and VaultTransitKey are required"),
        ({"addr": "http://x", "transit_key": "k"}, "Vault authentication required"),
        (
            {"addr": "http://x", "transit_key": "k", "auth_method": "token"},
            "Vault authentication required",
        ),
        (
            {"addr": "http://x", "transit_key": "k", "auth_method": "approle"},
            "needs a role id",
        ),
        (
            {"addr": "http://x", "transit_key": "k", "auth_method": "kubernetes"},
            "needs a role",
        ),
        ({"addr": "http://x", "transit_key": "k", "auth_method": "cert"}, "cert auth needs"),
        (
            {"addr": "http://x", "transit_key": "k", "token": "t", "client_cert": "/nope.pem"},
            "needs both",
        ),
        (
            {"addr": "http://x", "transit_key": "k", "token": "t", "ca_cert": "/nope.pem"},
            "does not exist",
        ),
    ],
)
def test_configuration_errors_fail_fast(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        VaultTransitKms.from_config(options)


def test_unknown_options_and_methods_are_refused() -> None:
    with pytest.raises(ValueError, match="extra"):
        VaultKmsOptions.model_validate({"adress": "x"})
    with pytest.raises(ValueError, match="must be one of"):
        VaultKmsOptions.model_validate({"auth_method": "ldap"})


def test_tls_verify_on_by_default_and_a_ca_bundle_is_used(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    base = {"addr": "https://vault.example", "transit_key": "k", "token": "t"}
    with_default = VaultTransitKms.from_config(base)
    with_ca = VaultTransitKms.from_config({**base, "ca_cert": str(ca)})
    without = VaultTransitKms.from_config({**base, "tls_verify": False})
    try:
        assert with_default.settings.verify is True
        assert with_ca.settings.verify == str(ca)
        assert without.settings.verify is False
    finally:
        for kms in (with_default, with_ca, without):
            kms.close()


def test_tls_to_a_plain_http_server_is_a_kms_error(make_kms: MakeKms, bao: OpenBao) -> None:
    kms = make_kms(addr=bao.addr.replace("http://", "https://"), token=bao.root_token)
    with pytest.raises(KmsError, match="TLS handshake failed"):
        kms.encrypt_key(os.urandom(32))


def test_namespace_is_sent(make_kms: MakeKms, bao: OpenBao, unique: str) -> None:
    """OpenBao namespaces: a key made inside a namespace is reachable only through it."""
    namespace = f"ns-{unique}"
    bao.root_client().sys.create_namespace(namespace)
    inside = hvac.Client(url=bao.addr, token=bao.root_token, namespace=namespace)
    inside.sys.enable_secrets_engine("transit", path="transit")
    inside.secrets.transit.create_key(name="nskey")
    kms = make_kms(transit_key="nskey", namespace=namespace, token=bao.root_token)
    key = os.urandom(32)
    assert kms.decrypt_key(kms.encrypt_key(key)) == key
    outside = make_kms(transit_key="nskey", token=bao.root_token)
    with pytest.raises(KmsError, match="HTTP 400"):
        outside.decrypt_key(kms.encrypt_key(key))
