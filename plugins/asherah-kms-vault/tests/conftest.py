"""Fixtures: one OpenBao dev server for the run (transit enabled), a fresh Transit key and
AppRole per test, drivers pointed at them, and servers of their own for fault tests.

Tests share the server through unique key, role and mount names, so rotating or revoking in
one test never touches another's.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from asherah_kms_vault import VaultTransitKms
from testsupport.openbao import AppRoleCredentials, OpenBao, transit_policy

MakeKms = Callable[..., VaultTransitKms]


@pytest.fixture(autouse=True)
def vault_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ambient Vault settings: every test says what it uses."""
    import os

    for name in list(os.environ):
        if name.startswith(("VAULT_", "BAO_", "ASHERAH_CONFIG_DRIFT_")):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def bao() -> Iterator[OpenBao]:
    with OpenBao() as server:
        server.enable_transit()
        yield server


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def transit_key(bao: OpenBao, unique: str) -> str:
    name = f"key-{unique}"
    bao.create_transit_key(name)
    return name


@pytest.fixture
def approle(bao: OpenBao, transit_key: str, unique: str) -> AppRoleCredentials:
    """An AppRole on a mount of its own whose policy allows only encrypt, decrypt and rewrap
    with ``transit_key``."""
    return bao.create_approle(
        f"role-{unique}",
        policy=transit_policy(transit_key, rewrap=True),
        mount=f"approle-{unique}",
    )


@pytest.fixture
def make_kms(bao: OpenBao, transit_key: str) -> Iterator[MakeKms]:
    """Build drivers for this test's key (options override the defaults); all closed after."""
    made: list[VaultTransitKms] = []

    def make(**options: Any) -> VaultTransitKms:
        driver = VaultTransitKms.from_config(
            {"addr": bao.addr, "transit_key": transit_key, "timeout": 5, **options}
        )
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.close()


@pytest.fixture
def approle_options(approle: AppRoleCredentials) -> dict[str, Any]:
    """Driver options that log in with ``approle``."""
    return {
        "auth_method": "approle",
        "auth_mount": approle.mount,
        "approle_role_id": approle.role_id,
        "approle_secret_id": approle.secret_id,
    }


@pytest.fixture
def token_kms(make_kms: MakeKms, bao: OpenBao) -> VaultTransitKms:
    return make_kms(token=bao.root_token)


@pytest.fixture
def approle_kms(make_kms: MakeKms, approle_options: dict[str, Any]) -> VaultTransitKms:
    return make_kms(**approle_options)


@pytest.fixture
def own_bao() -> Iterator[OpenBao]:
    """A server of this test's own (to seal, stop or freeze), with ``test-key``."""
    with OpenBao() as server:
        server.enable_transit()
        server.create_transit_key("test-key")
        yield server


class FakeGateway:
    """A loopback HTTP server that answers every request with one fixed status and body, as a
    proxy in front of a broken Vault does; it records the paths it saw."""

    def __init__(self, status: int, body: str, content_type: str = "text/html") -> None:
        self.paths: list[str] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                gateway.paths.append(self.path)
                # A careless proxy that echoes the request's token into its error page.
                text = body.replace("{token}", self.headers.get("X-Vault-Token", ""))
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.addr = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGateway:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


BAD_GATEWAY_HTML = (
    """<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx/1.25.3</center>
<!-- request token {token} -->
</body>
</html>
"""
    + "<!-- padding -->\n" * 100
)


@pytest.fixture
def bad_gateway() -> Iterator[FakeGateway]:
    with FakeGateway(502, BAD_GATEWAY_HTML) as gateway:
        yield gateway
