"""Authentication: AppRole re-login after revocation, renewal before expiry, fixed tokens,
secret-id files, TLS certificate auth, Kubernetes auth, and secrets kept out of reprs, errors
and logs."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from asherah import KmsError
from asherah_kms_vault import VaultTransitKms
from testsupport.openbao import AppRoleCredentials, OpenBao, transit_policy

MakeKms = Any
LOGGER = "asherah.kms.vault"


def _count(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records if r.name == LOGGER)


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


def _options(creds: AppRoleCredentials) -> dict[str, Any]:
    return {
        "auth_mount": creds.mount,
        "approle_role_id": creds.role_id,
        "approle_secret_id": creds.secret_id,
    }


@pytest.fixture
def short_lived_kms(
    make_kms: MakeKms, bao: OpenBao, transit_key: str, unique: str
) -> Callable[..., VaultTransitKms]:
    """``short_lived_kms(**role_options)``: a driver that logs in through an AppRole of its own
    whose tokens live as ``role_options`` say (``token_ttl``, ``token_max_ttl``, ...)."""

    def build(**role_options: Any) -> VaultTransitKms:
        creds = bao.create_approle(
            f"short-{unique}",
            policy=transit_policy(transit_key),
            mount=f"approle-short-{unique}",
            **role_options,
        )
        driver: VaultTransitKms = make_kms(**_options(creds))
        return driver

    return build


def _policy_token(bao: OpenBao, transit_key: str, unique: str, **token_options: Any) -> str:
    """A token whose policy allows ``transit_key`` only."""
    bao.root_client().sys.create_or_update_policy(f"p-{unique}", transit_policy(transit_key))
    return bao.create_token([f"p-{unique}"], **token_options)


def test_approle_round_trip_logs_in_once(
    approle_kms: VaultTransitKms, debug_log: pytest.LogCaptureFixture
) -> None:
    for _ in range(3):
        key = os.urandom(32)
        assert approle_kms.decrypt_key(approle_kms.encrypt_key(key)) == key
    assert _count(debug_log, "Vault login (approle") == 1


def test_revoked_token_logs_in_again_and_the_call_succeeds(
    approle_kms: VaultTransitKms,
    approle: AppRoleCredentials,
    bao: OpenBao,
    debug_log: pytest.LogCaptureFixture,
) -> None:
    blob = approle_kms.encrypt_key(os.urandom(32))
    bao.revoke_logins(approle.mount)  # the operator revokes every token of this mount
    # The next encrypt meets a 403, logs in again and succeeds: nothing fails in flight.
    key = os.urandom(32)
    new_blob = approle_kms.encrypt_key(key)
    assert approle_kms.decrypt_key(new_blob) == key
    assert len(approle_kms.decrypt_key(blob)) == 32
    assert _count(debug_log, "answered 403; logging in again") == 1
    assert _count(debug_log, "Vault login (approle") == 2


def test_threads_share_one_relogin_after_revocation(
    approle_kms: VaultTransitKms,
    approle: AppRoleCredentials,
    bao: OpenBao,
    debug_log: pytest.LogCaptureFixture,
) -> None:
    blob = approle_kms.encrypt_key(b"k" * 32)
    bao.revoke_logins(approle.mount)
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def work() -> None:
        start.wait()
        try:
            for _ in range(5):
                assert approle_kms.decrypt_key(blob) == b"k" * 32
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    # Threads that met the 403 together share one login (one per revocation, not per thread).
    assert _count(debug_log, "Vault login (approle") == 2


def test_token_is_renewed_before_it_expires(
    short_lived_kms: Callable[..., VaultTransitKms], debug_log: pytest.LogCaptureFixture
) -> None:
    kms = short_lived_kms(token_ttl=2, token_max_ttl=60)
    kms.encrypt_key(os.urandom(32))
    time.sleep(1.5)  # past two thirds of the TTL: the next call renews first
    kms.encrypt_key(os.urandom(32))
    assert _count(debug_log, "Vault token renewed") == 1
    time.sleep(1.0)  # past the original TTL: only a renewed token still works
    kms.encrypt_key(os.urandom(32))
    assert _count(debug_log, "Vault login (approle") == 1
    assert _count(debug_log, "answered 403") == 0


def test_token_at_its_max_ttl_is_replaced_by_a_new_login(
    short_lived_kms: Callable[..., VaultTransitKms], debug_log: pytest.LogCaptureFixture
) -> None:
    kms = short_lived_kms(token_ttl=2, token_max_ttl=2)
    kms.encrypt_key(os.urandom(32))
    time.sleep(1.5)
    kms.encrypt_key(os.urandom(32))
    assert _count(debug_log, "Vault login (approle") == 2
    assert _count(debug_log, "answered 403") == 0


def test_non_renewable_token_is_replaced_when_it_expires(
    short_lived_kms: Callable[..., VaultTransitKms], debug_log: pytest.LogCaptureFixture
) -> None:
    """Batch tokens cannot renew: the keeper logs in again instead."""
    kms = short_lived_kms(token_ttl=1, token_max_ttl=1, token_type="batch")
    blob = kms.encrypt_key(b"b" * 32)
    time.sleep(1.2)
    assert kms.decrypt_key(blob) == b"b" * 32
    assert _count(debug_log, "Vault login (approle") == 2


def test_fixed_token_is_renewed(
    make_kms: MakeKms,
    bao: OpenBao,
    transit_key: str,
    unique: str,
    debug_log: pytest.LogCaptureFixture,
) -> None:
    token = _policy_token(bao, transit_key, unique, ttl="2s", renewable=True)
    kms = make_kms(token=token)
    kms.encrypt_key(os.urandom(32))
    time.sleep(1.5)
    kms.encrypt_key(os.urandom(32))
    time.sleep(1.0)  # past the token's original TTL
    kms.encrypt_key(os.urandom(32))
    assert _count(debug_log, "Vault token renewed") >= 1


def test_token_without_permission_is_a_403_kms_error(
    make_kms: MakeKms, bao: OpenBao, unique: str
) -> None:
    token = bao.create_token(["default"], id=f"no-permission-token-{unique}")
    kms = make_kms(token=token)
    with pytest.raises(KmsError) as info:
        kms.encrypt_key(os.urandom(32))
    text = str(info.value)
    assert "Vault Transit encrypt" in text
    assert "HTTP 403" in text
    assert "permission denied" in text
    assert token not in text + repr(info.value.__cause__)


def test_revoked_fixed_token_is_final(
    make_kms: MakeKms, bao: OpenBao, transit_key: str, unique: str
) -> None:
    token = _policy_token(bao, transit_key, unique)
    kms = make_kms(token=token)
    blob = kms.encrypt_key(os.urandom(32))
    bao.root_client().auth.token.revoke(token)
    with pytest.raises(KmsError, match=r"decrypt .*HTTP 403"):
        kms.decrypt_key(blob)


def test_approle_wrong_key_name_is_a_403(
    make_kms: MakeKms, approle_options: dict[str, Any]
) -> None:
    kms = make_kms(transit_key="someone-elses-key", **approle_options)
    with pytest.raises(KmsError, match=r"encrypt with key 'someone-elses-key'.*HTTP 403"):
        kms.encrypt_key(os.urandom(32))


def test_secret_id_file_is_read_at_every_login(
    make_kms: MakeKms, bao: OpenBao, approle: AppRoleCredentials, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(approle.secret_id + "\n")
    kms = make_kms(
        auth_method="approle",
        auth_mount=approle.mount,
        approle_role_id=approle.role_id,
        approle_secret_id_file=str(secret_file),
    )
    blob = kms.encrypt_key(b"s" * 32)
    # An agent rotates the secret id: the old one is destroyed, the file holds the new one.
    root = bao.root_client()
    fresh = root.auth.approle.generate_secret_id(approle.role, mount_point=approle.mount)
    root.auth.approle.destroy_secret_id(approle.role, approle.secret_id, mount_point=approle.mount)
    secret_file.write_text(fresh["data"]["secret_id"])
    bao.revoke_logins(approle.mount)
    assert kms.decrypt_key(blob) == b"s" * 32


def test_failed_login_names_the_method_and_hides_the_secret_id(
    make_kms: MakeKms, approle: AppRoleCredentials
) -> None:
    wrong = "0f0f0f0f-wrong-secret-id-0f0f0f0f"
    kms = make_kms(
        auth_mount=approle.mount, approle_role_id=approle.role_id, approle_secret_id=wrong
    )
    with pytest.raises(KmsError) as info:
        kms.encrypt_key(os.urandom(32))
    text = str(info.value)
    assert "Vault Transit encrypt" in text
    assert f"Vault login (approle at auth/{approle.mount}) failed: HTTP 400" in text
    assert wrong not in text
    assert approle.role_id not in text
    assert info.value.__cause__ is None or wrong not in repr(info.value.__cause__)


def test_secrets_never_in_repr_errors_or_logs(
    make_kms: MakeKms,
    bao: OpenBao,
    approle: AppRoleCredentials,
    caplog: pytest.LogCaptureFixture,
    unique: str,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, urllib3 included
    token = bao.create_token(["default"], id=f"fixed-token-{unique}")
    fixed = make_kms(token=token)
    role = make_kms(**_options(approle))
    texts = [repr(fixed), repr(role), repr(fixed.settings), repr(role.settings)]
    key = os.urandom(32)
    role.decrypt_key(role.encrypt_key(key))
    bao.revoke_logins(approle.mount)
    role.encrypt_key(key)
    actions: list[Callable[[], object]] = [
        lambda: fixed.encrypt_key(key),
        lambda: role.decrypt_key(b"vault:v1:AAAA"),
        lambda: role.rewrap_key(b"vault:v1:AAAA"),
    ]
    for action in actions:
        with pytest.raises(KmsError) as info:
            action()
        texts += [str(info.value), repr(info.value), repr(info.value.__cause__)]
    texts.append(caplog.text)
    everything = "\n".join(texts)
    for secret in (token, approle.secret_id, key.hex(), key.hex().upper()):
        assert secret not in everything
    assert base64.b64encode(key).decode() not in everything


# TLS certificate auth against a TLS dev server.


def _client_identity(directory: Path) -> tuple[Path, Path]:
    """A self-signed client certificate (its own CA) and key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "asherah-test-client")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "client.pem", directory / "client-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_bao() -> Iterator[OpenBao]:
    with OpenBao(tls=True) as server:
        server.enable_transit()
        server.create_transit_key("tls-key")
        yield server


def test_tls_with_ca_bundle_and_cert_auth(tls_bao: OpenBao, tmp_path: Path) -> None:
    cert, key = _client_identity(tmp_path)
    root = tls_bao.root_client()
    root.sys.create_or_update_policy("tls-policy", transit_policy("tls-key"))
    root.sys.enable_auth_method("cert")
    root.write(
        "auth/cert/certs/app",
        certificate=cert.read_text(),
        token_policies=["tls-policy"],
        token_ttl=600,
    )
    kms = VaultTransitKms.from_config(
        {
            "addr": tls_bao.addr,
            "transit_key": "tls-key",
            "auth_method": "tls",
            "auth_role": "app",
            "ca_cert": str(tls_bao.ca_cert),
            "client_cert": str(cert),
            "client_key": str(key),
        }
    )
    try:
        secret = os.urandom(32)
        blob = kms.encrypt_key(secret)
        assert blob.startswith(b"vault:v1:")
        assert kms.decrypt_key(blob) == secret
    finally:
        kms.close()


def test_tls_verification_is_on_by_default(tls_bao: OpenBao) -> None:
    """The dev server's certificate is signed by its own CA: without that CA it is refused."""
    kms = VaultTransitKms.from_config(
        {"addr": tls_bao.addr, "transit_key": "tls-key", "token": tls_bao.root_token}
    )
    try:
        with pytest.raises(KmsError, match="TLS handshake failed"):
            kms.encrypt_key(os.urandom(32))
    finally:
        kms.close()
    trusting = VaultTransitKms.from_config(
        {
            "addr": tls_bao.addr,
            "transit_key": "tls-key",
            "token": tls_bao.root_token,
            "ca_cert": str(tls_bao.ca_cert),
        }
    )
    try:
        assert len(trusting.decrypt_key(trusting.encrypt_key(os.urandom(32)))) == 32
    finally:
        trusting.close()


# Kubernetes auth: OpenBao asks a Kubernetes TokenReview API about the service-account JWT; a
# loopback stand-in for that API answers for one service account.


class TokenReviewApi:
    """``POST /apis/authentication.k8s.io/v1/tokenreviews`` that authenticates every token as
    service account ``apps/asherah`` and records the tokens it was asked about."""

    UID = "5f0c7a52-asherah-test-uid"

    def __init__(self) -> None:
        self.tokens: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.tokens.append(body["spec"]["token"])
                answer = {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenReview",
                    "status": {
                        "authenticated": True,
                        "user": {
                            "username": "system:serviceaccount:apps:asherah",
                            "uid": api.UID,
                            "groups": ["system:serviceaccounts"],
                        },
                    },
                }
                data = json.dumps(answer).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @classmethod
    def jwt(cls) -> str:
        """An unsigned-looking service-account JWT with the claims Vault reads."""

        def part(value: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        claims = {
            "iss": "kubernetes/serviceaccount",
            "sub": "system:serviceaccount:apps:asherah",
            "kubernetes.io/serviceaccount/namespace": "apps",
            "kubernetes.io/serviceaccount/service-account.name": "asherah",
            "kubernetes.io/serviceaccount/service-account.uid": cls.UID,
            "jti": uuid.uuid4().hex,
        }
        signature = base64.urlsafe_b64encode(os.urandom(64)).rstrip(b"=").decode()
        return f"{part({'alg': 'RS256', 'kid': 'test'})}.{part(claims)}.{signature}"


@pytest.fixture
def token_review_api() -> Iterator[TokenReviewApi]:
    api = TokenReviewApi()
    yield api
    api.close()


def test_kubernetes_auth_reads_the_jwt_file_at_every_login(
    bao: OpenBao,
    transit_key: str,
    unique: str,
    token_review_api: TokenReviewApi,
    tmp_path: Path,
) -> None:
    ca_cert, _ = _client_identity(tmp_path)  # any CA: the stand-in API is plain HTTP
    mount = f"k8s-{unique}"
    root = bao.root_client()
    root.sys.create_or_update_policy(f"k8s-{unique}", transit_policy(transit_key))
    root.sys.enable_auth_method("kubernetes", path=mount)
    root.write(
        f"auth/{mount}/config",
        kubernetes_host=token_review_api.url,
        kubernetes_ca_cert=ca_cert.read_text(),
        token_reviewer_jwt="reviewer-jwt",
        disable_local_ca_jwt=True,
    )
    root.write(
        f"auth/{mount}/role/asherah",
        bound_service_account_names="asherah",
        bound_service_account_namespaces="apps",
        token_policies=f"k8s-{unique}",
        token_ttl=600,
    )
    jwt_file = tmp_path / "token"
    first = TokenReviewApi.jwt()
    jwt_file.write_text(first)
    kms = VaultTransitKms.from_config(
        {
            "addr": bao.addr,
            "transit_key": transit_key,
            "auth_method": "k8s",
            "auth_mount": mount,
            "auth_role": "asherah",
            "kubernetes_jwt_file": str(jwt_file),
        }
    )
    try:
        secret = os.urandom(32)
        blob = kms.encrypt_key(secret)
        assert token_review_api.tokens == [first]
        # The kubelet rotates the projected token; the next login sends the new one.
        second = TokenReviewApi.jwt()
        jwt_file.write_text(second)
        bao.revoke_logins(mount)
        assert kms.decrypt_key(blob) == secret
        assert token_review_api.tokens == [first, second]
    finally:
        kms.close()
