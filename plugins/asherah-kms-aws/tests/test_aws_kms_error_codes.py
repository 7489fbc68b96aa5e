"""``DisabledException`` and ``ThrottlingException`` from KMS reach callers as ``KmsError``
naming the region and the code, after botocore's retries, and never carrying key material.

moto 5.2.5 does not produce either code: ``DisableKey`` marks a key ``Disabled`` but
``Encrypt``, ``GenerateDataKey`` and ``Decrypt`` keep working with it, and it never throttles
(checked against a running moto_server). So each region under test goes through
:class:`FaultProxy`, a small HTTP server on loopback in front of the real moto_server: it
answers scripted operations with the KMS JSON protocol's error shape (HTTP 400,
``x-amzn-ErrorType`` and a ``{"__type", "message"}`` body, which is what botocore's JSON
error parser reads) and forwards every other request to moto unchanged.
"""

from __future__ import annotations

import base64
import http.server
import json
import logging
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from awskms_testlib import (
    ACCESS_KEY_ID,
    OTHER,
    PREFERRED,
    SECRET_ACCESS_KEY,
    build,
    encrypt_once,
)

from asherah import KmsError
from asherah_kms_aws import AwsKeyManagementService, AwsKmsError, KmsEnvelope
from testsupport.moto import MotoServer

DISABLED = "DisabledException"
THROTTLED = "ThrottlingException"
MESSAGES = {
    DISABLED: "arn:aws:kms:{region}:123456789012:key/test is disabled.",
    THROTTLED: "Rate exceeded",
}
#: Forwarded response headers botocore uses.
_RELAYED = ("Content-Type", "x-amzn-RequestId")


@dataclass
class Fault:
    """Answer ``code`` to an operation, ``times`` times (``None``: every time)."""

    code: str
    times: int | None = None


@dataclass
class FaultProxy:
    """A loopback HTTP server standing in for one region's KMS endpoint."""

    upstream: str
    region: str
    faults: dict[str, Fault] = field(default_factory=dict)
    #: Operation of each request received, in order (answered or forwarded).
    operations: list[str] = field(default_factory=list)
    #: ``Plaintext`` of each ``Encrypt`` request: the data key the driver sent.
    plaintexts: list[bytes] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, operation: str, code: str, times: int | None = None) -> None:
        self.faults[operation] = Fault(code, times)

    def count(self, operation: str) -> int:
        with self._lock:
            return self.operations.count(operation)

    def handle(self, target: str, body: bytes) -> tuple[int, dict[str, str], bytes] | None:
        """The error answer for this request, or ``None`` to forward it."""
        operation = target.rpartition(".")[2]
        with self._lock:
            self.operations.append(operation)
            if operation == "Encrypt":
                self.plaintexts.append(base64.b64decode(json.loads(body)["Plaintext"]))
            fault = self.faults.get(operation)
            if fault is None or fault.times == 0:
                return None
            if fault.times is not None:
                fault.times -= 1
        payload = json.dumps(
            {"__type": fault.code, "message": MESSAGES[fault.code].format(region=self.region)}
        ).encode()
        headers = {
            "Content-Type": "application/x-amz-json-1.1",
            "x-amzn-ErrorType": f"{fault.code}:",
            "x-amzn-RequestId": "00000000-0000-0000-0000-000000000000",
        }
        return 400, headers, payload

    def forward(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, bytes]:
        request = urllib.request.Request(  # noqa: S310 - the upstream is moto on loopback
            self.upstream + path, data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read()


def _handler(proxy: FaultProxy) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = proxy.handle(self.headers.get("X-Amz-Target", ""), body)
            if answer is None:
                forwarded = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                status, upstream_headers, payload = proxy.forward(self.path, forwarded, body)
                headers = {k: upstream_headers[k] for k in _RELAYED if upstream_headers[k]}
            else:
                status, headers, payload = answer
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test asserts on what the proxy recorded instead."""

    return Handler


@pytest.fixture
def proxy_for(moto: MotoServer) -> Iterator[Callable[[str], tuple[FaultProxy, str]]]:
    """Start a :class:`FaultProxy` for a region; returns it and its endpoint. Stopped after."""
    servers: list[tuple[http.server.ThreadingHTTPServer, threading.Thread]] = []

    def start(region: str) -> tuple[FaultProxy, str]:
        proxy = FaultProxy(moto.endpoint, region)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, name=f"fault-proxy-{region}")
        thread.start()
        servers.append((server, thread))
        return proxy, f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def assert_secret_free(text: str, *secrets: bytes) -> None:
    """No secret shows up in ``text`` in any of the usual spellings, nor the credentials."""
    for secret in secrets:
        assert secret, "nothing to look for"
        for spelling in (
            secret.hex(),
            secret.hex().upper(),
            base64.b64encode(secret).decode(),
            base64.urlsafe_b64encode(secret).decode(),
            repr(secret)[2:-1],
        ):
            assert spelling not in text
    assert SECRET_ACCESS_KEY not in text
    assert ACCESS_KEY_ID not in text


def failure_text(error: AwsKmsError) -> str:
    return " | ".join([str(error), repr(error), *(repr(f) for f in error.failures)])


def single_region(
    region_map: dict[str, str], endpoint: str, **options: Any
) -> AwsKeyManagementService:
    """A driver on :data:`OTHER`'s key alone, talking to ``endpoint``."""
    return AwsKeyManagementService.build(
        key_id=region_map[OTHER], region=OTHER, endpoint=endpoint, **options
    )


# Single region ---------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "max_attempts", "requests"), [
    (DISABLED, 3, 1),  # not retryable: one request however many attempts are allowed
    (THROTTLED, 1, 1),
    (THROTTLED, 3, 3),  # botocore retried it up to max_attempts
])  # fmt: skip
def test_generate_data_key_error_names_region_and_code(
    moto: MotoServer,
    region_map: dict[str, str],
    proxy_for: Callable[[str], tuple[FaultProxy, str]],
    code: str,
    max_attempts: int,
    requests: int,
) -> None:
    proxy, endpoint = proxy_for(OTHER)
    proxy.fail("GenerateDataKey", code)
    kms = single_region(region_map, endpoint, max_attempts=max_attempts)
    system_key = os.urandom(32)
    try:
        with pytest.raises(KmsError) as info:
            kms.encrypt_key(system_key)
    finally:
        kms.close()
    error = info.value
    assert isinstance(error, AwsKmsError)
    assert [(f.region, f.operation, f.code) for f in error.failures] == [
        (OTHER, "GenerateDataKey", code)
    ]
    assert f"{OTHER}: GenerateDataKey {code}" in str(error)
    assert proxy.count("GenerateDataKey") == requests
    assert proxy.operations == ["GenerateDataKey"] * requests
    assert_secret_free(failure_text(error), system_key)


@pytest.mark.parametrize(("code", "requests"), [(DISABLED, 1), (THROTTLED, 2)])
def test_decrypt_error_names_region_and_code(
    moto: MotoServer,
    region_map: dict[str, str],
    proxy_for: Callable[[str], tuple[FaultProxy, str]],
    code: str,
    requests: int,
) -> None:
    writer = single_region(region_map, moto.endpoint)
    system_key = os.urandom(32)
    try:
        blob = writer.encrypt_key(system_key)
    finally:
        writer.close()
    proxy, endpoint = proxy_for(OTHER)
    proxy.fail("Decrypt", code)
    reader = single_region(region_map, endpoint, max_attempts=2)
    try:
        with pytest.raises(KmsError) as info:
            reader.decrypt_key(blob)
    finally:
        reader.close()
    error = info.value
    assert isinstance(error, AwsKmsError)
    assert [(f.region, f.operation, f.code) for f in error.failures] == [(OTHER, "Decrypt", code)]
    assert f"{OTHER}: Decrypt {code}" in str(error)
    assert proxy.count("Decrypt") == requests
    assert_secret_free(failure_text(error), system_key)


def test_throttling_that_clears_within_the_retries_succeeds(
    moto: MotoServer,
    region_map: dict[str, str],
    proxy_for: Callable[[str], tuple[FaultProxy, str]],
) -> None:
    """Throttled answers, then moto's: botocore's later attempts get through."""
    proxy, endpoint = proxy_for(OTHER)
    proxy.fail("GenerateDataKey", THROTTLED, times=2)
    proxy.fail("Decrypt", THROTTLED, times=1)
    kms = single_region(region_map, endpoint, max_attempts=3)
    system_key = os.urandom(32)
    try:
        blob = kms.encrypt_key(system_key)
        assert bytes(kms.decrypt_key(blob)) == system_key
    finally:
        kms.close()
    assert proxy.operations == ["GenerateDataKey"] * 3 + ["Decrypt"] * 2


# Several regions -------------------------------------------------------------------------


def test_preferred_region_throttled_at_decrypt_the_other_region_decrypts(
    moto: MotoServer,
    region_map: dict[str, str],
    kms: AwsKeyManagementService,
    proxy_for: Callable[[str], tuple[FaultProxy, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    system_key = os.urandom(32)
    blob = kms.encrypt_key(system_key)
    assert KmsEnvelope.from_json(blob).regions == (OTHER, PREFERRED)
    proxy, endpoint = proxy_for(PREFERRED)
    proxy.fail("Decrypt", THROTTLED)
    reader = build(moto, region_map, endpoints={PREFERRED: endpoint}, max_attempts=2)
    try:
        with caplog.at_level(logging.WARNING, logger="asherah.kms.aws"):
            assert bytes(reader.decrypt_key(blob)) == system_key
    finally:
        reader.close()
    assert proxy.operations == ["Decrypt", "Decrypt"]
    messages = [r.getMessage() for r in caplog.records if r.name == "asherah.kms.aws"]
    assert len(messages) == 1
    assert f"opened in {OTHER} after ['{PREFERRED}'] failed" in messages[0]
    assert f"{PREFERRED}: Decrypt {THROTTLED}" in messages[0]
    assert_secret_free(messages[0], system_key)


def test_every_region_refusing_decrypt_lists_each_region_and_code(
    moto: MotoServer,
    region_map: dict[str, str],
    kms: AwsKeyManagementService,
    proxy_for: Callable[[str], tuple[FaultProxy, str]],
) -> None:
    system_key = os.urandom(32)
    blob = kms.encrypt_key(system_key)
    preferred, preferred_endpoint = proxy_for(PREFERRED)
    other, other_endpoint = proxy_for(OTHER)
    preferred.fail("Decrypt", THROTTLED)
    other.fail("Decrypt", DISABLED)
    reader = build(
        moto,
        region_map,
        endpoints={PREFERRED: preferred_endpoint, OTHER: other_endpoint},
        max_attempts=2,
    )
    try:
        with pytest.raises(AwsKmsError) as info:
            reader.decrypt_key(blob)
    finally:
        reader.close()
    error = info.value
    assert [(f.region, f.operation, f.code) for f in error.failures] == [
        (PREFERRED, "Decrypt", THROTTLED),
        (OTHER, "Decrypt", DISABLED),
    ]
    assert f"{PREFERRED}: Decrypt {THROTTLED}: Rate exceeded" in str(error)
    assert f"{OTHER}: Decrypt {DISABLED}" in str(error)
    assert (preferred.count("Decrypt"), other.count("Decrypt")) == (2, 1)
    assert_secret_free(failure_text(error), system_key)


@pytest.mark.parametrize(("code", "requests"), [(DISABLED, 1), (THROTTLED, 2)])
def test_strict_regions_names_the_refusing_region_without_the_data_key(
    moto: MotoServer,
    region_map: dict[str, str],
    proxy_for: Callable[[str], tuple[FaultProxy, str]],
    caplog: pytest.LogCaptureFixture,
    code: str,
    requests: int,
) -> None:
    """The refusing region received the data key in its ``Encrypt`` requests; neither the
    error nor the log may show it."""
    proxy, endpoint = proxy_for(OTHER)
    proxy.fail("Encrypt", code)
    system_key = os.urandom(32)
    strict = build(
        moto, region_map, endpoints={OTHER: endpoint}, max_attempts=2, strict_regions=True
    )
    try:
        with (
            caplog.at_level(logging.DEBUG, logger="asherah.kms.aws"),
            pytest.raises(AwsKmsError) as info,
        ):
            strict.encrypt_key(system_key)
    finally:
        strict.close()
    error = info.value
    assert [(f.region, f.operation, f.code) for f in error.failures] == [(OTHER, "Encrypt", code)]
    assert "strict_regions" in str(error)
    assert f"{OTHER}: Encrypt {code}" in str(error)
    assert proxy.operations == ["Encrypt"] * requests
    data_keys = set(proxy.plaintexts)
    assert len(data_keys) == 1
    (data_key,) = data_keys
    assert len(data_key) == 32
    # caplog.text: every record at DEBUG and up, formatted, tracebacks included.
    assert_secret_free(failure_text(error) + caplog.text, system_key, data_key)


def test_disabled_preferred_region_at_creation_leaves_it_out_by_default(
    moto: MotoServer,
    region_map: dict[str, str],
    kms: AwsKeyManagementService,
    proxy_for: Callable[[str], tuple[FaultProxy, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The preferred region's key is disabled for every call: the data key comes from the
    other region, the envelope leaves the preferred region out, and the warnings say why."""
    proxy, endpoint = proxy_for(PREFERRED)
    for operation in ("GenerateDataKey", "Encrypt", "Decrypt"):
        proxy.fail(operation, DISABLED)
    system_key = os.urandom(32)
    blob = encrypt_once(
        build(moto, region_map, endpoints={PREFERRED: endpoint}), system_key, caplog
    )
    assert KmsEnvelope.from_json(blob).regions == (OTHER,)
    assert proxy.operations == ["GenerateDataKey", "Encrypt"]
    messages = "\n".join(r.getMessage() for r in caplog.records if r.name == "asherah.kms.aws")
    assert f"{PREFERRED}: GenerateDataKey {DISABLED}" in messages
    assert f"{PREFERRED}: Encrypt {DISABLED}" in messages
    (data_key,) = proxy.plaintexts
    assert_secret_free(messages, system_key, data_key)
    assert bytes(kms.decrypt_key(blob)) == system_key
