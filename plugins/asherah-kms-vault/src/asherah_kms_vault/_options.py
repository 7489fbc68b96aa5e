"""Driver options, how the canonical flat config keys map onto them, and the environment
variables the reference reads when an option is not set."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from asherah import ConfigError

if TYPE_CHECKING:
    from asherah import Config

DEFAULT_MOUNT = "transit"
DEFAULT_K8S_JWT_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

AuthMethod = Literal["token", "approle", "kubernetes", "cert"]

#: Spellings of ``auth_method`` (and ``VAULT_AUTH_METHOD``) -> the method.
_METHOD_NAMES: dict[str, AuthMethod] = {
    "token": "token",
    "approle": "approle",
    "kubernetes": "kubernetes",
    "k8s": "kubernetes",
    "cert": "cert",
    "tls": "cert",
}

#: Canonical ``Config`` field -> option name.
_FROM_CONFIG = {
    "vault_addr": "addr",
    "vault_transit_key": "transit_key",
    "vault_transit_mount": "transit_mount",
    "vault_token": "token",
    "vault_auth_method": "auth_method",
    "vault_auth_role": "auth_role",
    "vault_auth_mount": "auth_mount",
    "vault_approle_role_id": "approle_role_id",
    "vault_approle_secret_id": "approle_secret_id",
    "vault_client_cert": "client_cert",
    "vault_client_key": "client_key",
    "vault_k8s_token_path": "kubernetes_jwt_file",
}

#: Option -> the environment variable read when the option is not set (the reference's
#: names; it reads every auth setting from the environment only).
_FROM_ENV = {
    "addr": "VAULT_ADDR",
    "transit_key": "VAULT_TRANSIT_KEY",
    "transit_mount": "VAULT_TRANSIT_MOUNT",
    "namespace": "VAULT_NAMESPACE",
    "auth_role": "VAULT_AUTH_ROLE",
    "auth_mount": "VAULT_AUTH_MOUNT",
    "approle_role_id": "VAULT_APPROLE_ROLE_ID",
    "approle_secret_id": "VAULT_APPROLE_SECRET_ID",
    "client_cert": "VAULT_CLIENT_CERT",
    "client_key": "VAULT_CLIENT_KEY",
    "kubernetes_jwt_file": "VAULT_K8S_TOKEN_PATH",
    "ca_cert": "VAULT_CACERT",
}

_PATH_OPTIONS = frozenset({"client_cert", "client_key", "kubernetes_jwt_file", "ca_cert"})
_SECRET_OPTIONS = frozenset({"approle_secret_id"})

_AUTH_REQUIRED = (
    "Vault authentication required: set VAULT_TOKEN, or VAULT_AUTH_METHOD "
    "(kubernetes, approle, cert) with the appropriate credentials"
)


class VaultKmsOptions(BaseModel):
    """Options of the ``vault`` KMS (config-file section ``[kms]``).

    Every option left unset falls back to the Vault environment variable of the same meaning
    (``VAULT_ADDR``, ``VAULT_TOKEN``, ``VAULT_AUTH_METHOD``, ``VAULT_APPROLE_ROLE_ID``, ...).
    A call fails after at most ``(retries + 1) x timeout`` plus a short back-off.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    addr: str | None = None
    transit_key: str | None = None
    #: Mount path of the Transit engine; empty means ``transit``.
    transit_mount: str | None = None
    #: Vault Enterprise / OpenBao namespace (``X-Vault-Namespace``).
    namespace: str | None = None

    #: ``token``, ``approle``, ``kubernetes`` (``k8s``) or ``cert`` (``tls``). Unset: a token
    #: when one is given, else AppRole when a role id is given, else ``VAULT_AUTH_METHOD``.
    auth_method: str | None = None
    #: Mount path of the auth method (default: the method's name).
    auth_mount: str | None = None
    #: Kubernetes auth role; for ``cert``, the optional certificate role name.
    auth_role: str | None = None
    token: SecretStr | None = None
    approle_role_id: str | None = None
    approle_secret_id: SecretStr | None = None
    #: A file holding the secret id (read at every login, so an agent may rotate it).
    approle_secret_id_file: Path | None = None
    #: The service-account JWT (read at every login; projected tokens rotate).
    kubernetes_jwt_file: Path | None = None

    #: CA bundle file (or a hashed certificate directory) that verifies the server.
    ca_cert: Path | None = None
    #: TLS client identity (PEM); also what ``cert`` auth logs in with.
    client_cert: Path | None = None
    client_key: Path | None = None
    #: Verify the server's certificate. Turn off only for a throw-away test server.
    tls_verify: bool = True

    #: Seconds to connect and, separately, to wait for an answer, per attempt.
    timeout: float = Field(default=10.0, gt=0, le=600)
    #: Extra attempts after a connection error, a timeout or HTTP 429/500/502/503/504.
    retries: int = Field(default=2, ge=0, le=10)

    @field_validator(
        "addr",
        "transit_key",
        "transit_mount",
        "namespace",
        "auth_method",
        "auth_mount",
        "auth_role",
        "approle_role_id",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
        return value or None

    @field_validator("auth_method")
    @classmethod
    def _known_method(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in _METHOD_NAMES:
            raise ValueError(f"must be one of {', '.join(sorted(_METHOD_NAMES))}")
        return value


def options_from_config(config: Config) -> dict[str, Any]:
    """The options named by the canonical keys that are set in ``config``."""
    out: dict[str, Any] = {}
    for field, option in _FROM_CONFIG.items():
        value = getattr(config, field, None)
        if value is not None:
            out[option] = value
    return out


@dataclass(frozen=True)
class Settings:
    """Options with the environment fallbacks applied and checked: what the driver runs on.

    ``repr`` hides every credential: only the auth method and where it logs in show.
    """

    addr: str
    #: ``addr`` and ``transit_mount`` as configured: the drift guard compares these.
    addr_as_configured: str
    transit_key: str
    transit_mount: str
    mount_as_configured: str
    namespace: str | None
    auth_method: AuthMethod
    auth_mount: str
    auth_role: str | None
    token: SecretStr | None
    approle_role_id: str | None
    approle_secret_id: SecretStr | None
    approle_secret_id_file: Path | None
    kubernetes_jwt_file: Path
    verify: bool | str
    client_cert: tuple[str, str] | None
    timeout: float
    retries: int

    def __repr__(self) -> str:
        return (
            f"Settings(addr={self.addr!r}, transit_mount={self.transit_mount!r}, "
            f"transit_key={self.transit_key!r}, namespace={self.namespace!r}, "
            f"auth_method={self.auth_method!r}, auth_mount={self.auth_mount!r})"
        )


def resolve(options: VaultKmsOptions, env: Mapping[str, str] | None = None) -> Settings:
    """Apply environment fallbacks and check that the chosen auth method has what it needs."""
    env = os.environ if env is None else env

    def pick(name: str) -> Any:
        return _pick(options, name, env)

    addr = pick("addr")
    key = pick("transit_key")
    if not addr or not key:
        raise ConfigError("VaultAddr and VaultTransitKey are required when KMS=vault")
    mount_as_configured = pick("transit_mount") or DEFAULT_MOUNT
    mount = mount_as_configured.strip("/") or DEFAULT_MOUNT

    method = _choose_method(options, env)
    token = options.token if options.token and options.token.get_secret_value() else None
    if method == "token" and token is None:
        env_token = env.get("VAULT_TOKEN", "").strip()
        if not env_token:
            raise ConfigError(f"{_AUTH_REQUIRED} (auth method 'token' has no token)")
        token = SecretStr(env_token)

    role_id = pick("approle_role_id")
    secret_id = pick("approle_secret_id")
    secret_id_file = options.approle_secret_id_file
    if method == "approle" and not role_id:
        raise ConfigError("Vault AppRole auth needs a role id (VaultApproleRoleId)")
    if method == "approle" and secret_id is not None and secret_id_file is not None:
        raise ConfigError("give the AppRole secret id or a secret id file, not both")
    role = pick("auth_role")
    if method == "kubernetes" and not role:
        raise ConfigError("Vault Kubernetes auth needs a role (VaultAuthRole)")

    cert, key_file = pick("client_cert"), pick("client_key")
    if (cert is None) != (key_file is None):
        raise ConfigError("a TLS client identity needs both VaultClientCert and VaultClientKey")
    if method == "cert" and cert is None:
        raise ConfigError("Vault cert auth needs VaultClientCert and VaultClientKey")
    jwt_file = pick("kubernetes_jwt_file") or DEFAULT_K8S_JWT_FILE
    must_exist = [cert, key_file, pick("ca_cert"), secret_id_file]
    if method == "kubernetes":
        must_exist.append(jwt_file)
    for path in must_exist:
        if path is not None and not Path(path).exists():
            raise ConfigError(f"Vault KMS: {str(path)!r} does not exist")

    ca_cert = pick("ca_cert")
    verify: bool | str = str(ca_cert) if ca_cert is not None else True
    if not options.tls_verify:
        verify = False
    return Settings(
        addr=addr.rstrip("/"),
        addr_as_configured=addr,
        transit_key=key,
        transit_mount=mount,
        mount_as_configured=mount_as_configured,
        namespace=pick("namespace"),
        auth_method=method,
        auth_mount=(pick("auth_mount") or method).strip("/"),
        auth_role=role,
        token=token,
        approle_role_id=role_id,
        approle_secret_id=secret_id,
        approle_secret_id_file=secret_id_file,
        kubernetes_jwt_file=jwt_file,
        verify=verify,
        client_cert=None if cert is None else (str(cert), str(key_file)),
        timeout=options.timeout,
        retries=options.retries,
    )


def _pick(options: VaultKmsOptions, name: str, env: Mapping[str, str]) -> Any:
    """The option's value, else its environment variable's (typed like the option)."""
    value = getattr(options, name)
    if isinstance(value, SecretStr) and not value.get_secret_value():
        value = None
    if value is not None or name not in _FROM_ENV:
        return value
    raw = env.get(_FROM_ENV[name], "").strip()
    if not raw:
        return None
    if name in _PATH_OPTIONS:
        return Path(raw)
    if name in _SECRET_OPTIONS:
        return SecretStr(raw)
    return raw


def _choose_method(options: VaultKmsOptions, env: Mapping[str, str]) -> AuthMethod:
    """Explicit options first, then the reference's environment order (token, then method)."""
    if options.auth_method:
        return _METHOD_NAMES[options.auth_method.lower()]
    if options.token is not None and options.token.get_secret_value():
        return "token"
    if options.approle_role_id:
        return "approle"
    if env.get("VAULT_TOKEN", "").strip():
        return "token"
    from_env = env.get("VAULT_AUTH_METHOD", "").strip().lower()
    if from_env:
        if from_env not in _METHOD_NAMES:
            raise ConfigError(
                f"VAULT_AUTH_METHOD must be one of {', '.join(sorted(_METHOD_NAMES))}"
            )
        return _METHOD_NAMES[from_env]
    raise ConfigError(_AUTH_REQUIRED)
