"""The Vault Transit KMS: a system key is wrapped by ``transit/encrypt/<key>`` and the stored
blob is the UTF-8 bytes of Vault's ``vault:vN:...`` ciphertext, as every Asherah
implementation with a Vault backend stores it."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any, Self, TypeVar

import hvac
import hvac.exceptions
import requests

from asherah import ConfigError, KeyManagementService, KmsError
from asherah._driver_context import DriverContext
from asherah.kms._base import Buffer
from asherah_kms_vault._auth import TokenKeeper
from asherah_kms_vault._errors import describe, redact
from asherah_kms_vault._http import VaultHttpError, build_session
from asherah_kms_vault._options import Settings, VaultKmsOptions, options_from_config, resolve

CIPHERTEXT_PREFIX = "vault:v"

T = TypeVar("T")


class VaultTransitKms(KeyManagementService):
    """Wraps system keys with a named key of Vault's (or OpenBao's) Transit engine.

    Old system keys keep decrypting after the Transit key rotates; new ones are wrapped by
    the newest version, and :meth:`rewrap_key` moves an old blob to it without the key ever
    leaving Vault. Tokens and secret ids never appear in ``repr``, logs or errors.
    """

    Options = VaultKmsOptions

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        session = build_session(settings)
        common: dict[str, Any] = {
            "url": settings.addr,
            "cert": settings.client_cert,
            "verify": settings.verify,
            "timeout": settings.timeout,
            "session": session,
            "namespace": settings.namespace,
            "allow_redirects": True,
        }
        # token="" always: hvac would otherwise pick up VAULT_TOKEN or ~/.vault-token.
        self._client = hvac.Client(token="", **common)
        self._login_client = hvac.Client(token="", **common)
        self._session = session
        self._tokens = TokenKeeper(settings, self._client, self._login_client)

    @classmethod
    def options_from_config(cls, config: Any) -> dict[str, Any]:
        return options_from_config(config)

    @classmethod
    def from_options(cls, options: Any, context: DriverContext | None = None) -> Self:
        if not isinstance(options, VaultKmsOptions):
            raise ConfigError("the vault KMS needs VaultKmsOptions")
        return cls(resolve(options))

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | VaultKmsOptions) -> Self:
        """Build the driver from a dict of options (the ``[kms]`` section's keys)."""
        if not isinstance(options, VaultKmsOptions):
            options = VaultKmsOptions.model_validate(dict(options))
        return cls(resolve(options))

    def __repr__(self) -> str:
        s = self._settings
        return (
            f"VaultTransitKms(addr={s.addr!r}, transit_mount={s.transit_mount!r}, "
            f"transit_key={s.transit_key!r}, namespace={s.namespace!r}, "
            f"auth={s.auth_method!r})"
        )

    @property
    def settings(self) -> Settings:
        return self._settings

    def drift_identity(self) -> dict[str, Any]:
        s = self._settings
        return {
            "kind": "vault-transit",
            "addr": s.addr_as_configured,
            "transit_mount": s.mount_as_configured,
            "transit_key": s.transit_key,
        }

    def close(self) -> None:
        self._session.close()

    # KMS operations.

    def encrypt_key(self, key: Buffer) -> bytes:
        plaintext = base64.b64encode(key).decode("ascii")
        data = self._call(
            "encrypt",
            lambda c: c.secrets.transit.encrypt_data(
                name=self._settings.transit_key,
                plaintext=plaintext,
                mount_point=self._settings.transit_mount,
            ),
            extra_secrets=(plaintext,),
        )
        return self._ciphertext_of(data, "encrypt")

    def decrypt_key(self, blob: bytes) -> bytearray:
        ciphertext = self._check_blob(blob, "decrypt")
        data = self._call(
            "decrypt",
            lambda c: c.secrets.transit.decrypt_data(
                name=self._settings.transit_key,
                ciphertext=ciphertext,
                mount_point=self._settings.transit_mount,
            ),
        )
        encoded = data.get("plaintext") if isinstance(data, dict) else None
        if not isinstance(encoded, str):
            raise self._error("decrypt", "the answer has no data.plaintext")
        try:
            return bytearray(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            raise self._error("decrypt", "data.plaintext is not base64") from None

    def rewrap_key(self, blob: bytes) -> bytes:
        """Re-wrap ``blob`` under the Transit key's newest version (``transit/rewrap``); the
        plaintext never leaves Vault. A blob already on the newest version comes back re-
        encrypted under that same version."""
        ciphertext = self._check_blob(blob, "rewrap")
        data = self._call(
            "rewrap",
            lambda c: c.secrets.transit.rewrap_data(
                name=self._settings.transit_key,
                ciphertext=ciphertext,
                mount_point=self._settings.transit_mount,
            ),
        )
        return self._ciphertext_of(data, "rewrap")

    # Internals.

    def _call(
        self,
        op: str,
        request: Callable[[hvac.Client], Any],
        extra_secrets: tuple[str, ...] = (),
    ) -> Mapping[str, Any]:
        """Run one Transit request with a fresh token; after a 403 log in again (when the
        auth method can) and try once more. Returns the answer's ``data``."""
        for attempt in range(2):
            try:
                generation = self._tokens.prepare()
            except KmsError as login_error:
                raise self._error(op, str(login_error)) from None
            secrets = (*self._tokens.redaction_values(), *extra_secrets)
            try:
                answer = request(self._client)
            except VaultHttpError as exc:
                _scrub(exc, secrets)
                if exc.status == 403 and attempt == 0:
                    try:
                        retry = self._tokens.after_forbidden(generation)
                    except KmsError as login_error:
                        raise self._error(op, f"{describe(exc, 0)}; {login_error}") from exc
                    if retry:
                        continue
                raise self._failure(op, exc, secrets) from exc
            except (requests.RequestException, hvac.exceptions.VaultError) as exc:
                raise self._failure(op, exc, secrets) from exc
            if not isinstance(answer, dict) or not isinstance(answer.get("data"), dict):
                status = getattr(answer, "status_code", "?")
                raise self._error(op, f"HTTP {status}: the answer is not Vault JSON with data")
            data: Mapping[str, Any] = answer["data"]
            return data
        raise AssertionError("unreachable")  # pragma: no cover

    def _ciphertext_of(self, data: Mapping[str, Any], op: str) -> bytes:
        ciphertext = data.get("ciphertext")
        if not isinstance(ciphertext, str) or not ciphertext.startswith(CIPHERTEXT_PREFIX):
            raise self._error(op, "the answer has no vault:v ciphertext")
        return ciphertext.encode("utf-8")

    def _check_blob(self, blob: bytes, op: str) -> str:
        try:
            text = bytes(blob).decode("utf-8")
        except UnicodeDecodeError:
            raise self._error(op, "the stored key is not UTF-8 (not a Vault ciphertext)") from None
        if not text.startswith(CIPHERTEXT_PREFIX):
            raise self._error(op, "the stored key does not start with 'vault:v'")
        return text

    def _failure(self, op: str, exc: BaseException, secrets: tuple[str | None, ...]) -> KmsError:
        return self._error(op, redact(describe(exc, self._settings.timeout), secrets))

    def _error(self, op: str, detail: str) -> KmsError:
        s = self._settings
        return KmsError(
            f"Vault Transit {op} with key {s.transit_key!r} (mount {s.transit_mount!r} at "
            f"{s.addr}) failed: {detail}"
        )


def _scrub(exc: VaultHttpError, secrets: tuple[str | None, ...]) -> None:
    """Redact the cause too: it is chained to our error and shows in tracebacks."""
    exc.text = redact(exc.text, secrets)
    exc.args = (f"HTTP {exc.status}: {exc.text}",)
