"""Getting a Vault token and keeping it valid: login, renewal before expiry, re-login.

A :class:`TokenKeeper` holds the one token a driver uses. Before each call it renews the
token once two thirds of its TTL have passed (or logs in again when renewal cannot extend
it); when Vault answers 403 it logs in again and the call is retried, so an expired or
revoked token never fails the call in flight. A fixed token (``token`` auth) cannot be
replaced: it is renewed when renewable, and a 403 is final.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import requests

from asherah import KmsError
from asherah_kms_vault._errors import describe, redact
from asherah_kms_vault._http import VaultHttpError
from asherah_kms_vault._options import Settings

_log = logging.getLogger("asherah.kms.vault")

#: Renew once this share of the TTL has passed.
RENEW_AFTER = 2 / 3
#: After a failed renewal, wait this long before trying again (the token may still be fine).
RETRY_RENEW_S = 5.0
#: After a lookup of a fixed token's TTL got no answer, wait this long before the next one.
RETRY_LOOKUP_S = 30.0


@dataclass
class Lease:
    """When the current token was obtained, how long it lives, and whether it renews."""

    ttl: float
    renewable: bool
    obtained: float

    @classmethod
    def from_auth(cls, auth: Mapping[str, Any], now: float) -> Lease:
        return cls(float(auth.get("lease_duration") or 0), bool(auth.get("renewable")), now)

    @property
    def expires_at(self) -> float:
        return self.obtained + self.ttl if self.ttl > 0 else math.inf

    @property
    def renew_at(self) -> float:
        return self.obtained + self.ttl * RENEW_AFTER if self.ttl > 0 else math.inf


class Login(ABC):
    """One auth method: the body it posts to ``auth/<mount>/login``."""

    method: str

    def __init__(self, settings: Settings) -> None:
        self.mount = settings.auth_mount
        self.settings = settings

    @property
    def path(self) -> str:
        return f"/v1/auth/{self.mount}/login"

    @abstractmethod
    def body(self) -> dict[str, Any]:
        """The login request body, read fresh each time (credential files may rotate)."""

    def describe(self) -> str:
        return f"{self.method} at auth/{self.mount}"


class AppRoleLogin(Login):
    method = "approle"

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"role_id": self.settings.approle_role_id}
        if self.settings.approle_secret_id is not None:
            body["secret_id"] = self.settings.approle_secret_id.get_secret_value()
        elif self.settings.approle_secret_id_file is not None:
            body["secret_id"] = _read_secret(self.settings.approle_secret_id_file, "secret id")
        return body


class KubernetesLogin(Login):
    method = "kubernetes"

    def body(self) -> dict[str, Any]:
        jwt = _read_secret(self.settings.kubernetes_jwt_file, "service-account token")
        return {"role": self.settings.auth_role, "jwt": jwt}


class CertLogin(Login):
    """TLS certificate auth: the session's client identity is the credential."""

    method = "cert"

    def body(self) -> dict[str, Any]:
        return {"name": self.settings.auth_role} if self.settings.auth_role else {}


_LOGINS: dict[str, type[Login]] = {
    "approle": AppRoleLogin,
    "kubernetes": KubernetesLogin,
    "cert": CertLogin,
}


def _read_secret(path: Path, what: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KmsError(
            f"Vault login: cannot read the {what} file {str(path)!r}: {type(exc).__name__}"
        ) from None
    if not value:
        raise KmsError(f"Vault login: the {what} file {str(path)!r} is empty")
    return value


class TokenKeeper:
    """The driver's token: obtained lazily, renewed before expiry, replaced after a 403."""

    def __init__(self, settings: Settings, client: hvac.Client, login_client: hvac.Client):
        self._settings = settings
        self._client = client
        self._login_client = login_client
        login_class = _LOGINS.get(settings.auth_method)
        self._login = None if login_class is None else login_class(settings)
        self._lock = threading.Lock()
        self._lease: Lease | None = None
        self._login_ttl = 0.0
        self._generation = 0
        self._retry_renew_at = 0.0
        # A fixed token's TTL is unknown until looked up (best effort; when to try next).
        self._lookup_at = 0.0 if self._login is None else math.inf

    @property
    def can_login(self) -> bool:
        return self._login is not None

    def redaction_values(self) -> tuple[str | None, ...]:
        """Secret strings that must never appear in an error message."""
        secret_id = self._settings.approle_secret_id
        return (
            self._client.token,
            None if self._settings.token is None else self._settings.token.get_secret_value(),
            None if secret_id is None else secret_id.get_secret_value(),
        )

    def prepare(self) -> int:
        """Make sure a usable token is set; return its generation for :meth:`after_forbidden`.

        Raises :class:`KmsError` only when there is no token to try at all (the first login
        failed, or the token expired and a new login failed)."""
        now = time.monotonic()
        lease = self._lease
        if (
            lease is not None
            and now < self._lookup_at
            and now < max(lease.renew_at, self._retry_renew_at)
        ):
            return self._generation
        with self._lock:
            if self._lease is None:
                if self._login is not None:
                    self._do_login()
                else:
                    self._client.token = self._fixed_token()
                    self._lease = Lease(0.0, False, now)
            if now >= self._lookup_at:
                self._lookup_fixed_token(now)
            lease = self._lease
            assert lease is not None  # noqa: S101 - set just above
            now = time.monotonic()
            if now >= lease.renew_at and now >= self._retry_renew_at:
                self._refresh(lease, now)
            return self._generation

    def after_forbidden(self, generation: int) -> bool:
        """Vault answered 403: log in again (unless another thread already did). ``True``
        means the call is worth one more try; raises :class:`KmsError` if the login fails."""
        if self._login is None:
            return False
        with self._lock:
            if self._generation == generation:
                _log.info("Vault answered 403; logging in again (%s)", self._login.describe())
                self._do_login()
        return True

    def _fixed_token(self) -> str:
        token = self._settings.token
        return "" if token is None else token.get_secret_value()

    def _do_login(self) -> None:
        assert self._login is not None  # noqa: S101 - only called when a login method exists
        body = self._login.body()
        try:
            answer = self._login_client.adapter.post(self._login.path, json=body)
            auth = answer["auth"]
            token = auth["client_token"]
        except (VaultHttpError, requests.RequestException, hvac.exceptions.VaultError) as exc:
            text = redact(describe(exc, self._settings.timeout), body.values())
            raise KmsError(f"Vault login ({self._login.describe()}) failed: {text}") from None
        except (KeyError, TypeError) as exc:
            raise KmsError(
                f"Vault login ({self._login.describe()}) failed: the answer has no "
                f"auth.client_token ({type(exc).__name__})"
            ) from None
        now = time.monotonic()
        self._client.token = str(token)
        self._lease = Lease.from_auth(auth, now)
        self._login_ttl = self._lease.ttl
        self._retry_renew_at = 0.0
        self._generation += 1
        _log.debug(
            "Vault login (%s): token ttl %s s, renewable %s",
            self._login.describe(),
            f"{self._lease.ttl:g}",
            self._lease.renewable,
        )

    def _lookup_fixed_token(self, now: float) -> None:
        """Learn a fixed token's TTL so it can be renewed; a failure is not fatal."""
        try:
            data = self._client.auth.token.lookup_self()["data"]
        except VaultHttpError as exc:
            # Vault answered: the token may not see its own lookup; use it as it is.
            self._lookup_at = math.inf
            _log.debug("Vault token lookup-self failed: HTTP %s", exc.status)
            return
        except (requests.RequestException, hvac.exceptions.VaultError, KeyError, TypeError):
            self._lookup_at = now + RETRY_LOOKUP_S  # no usable answer: try again later
            return
        self._lookup_at = math.inf
        ttl = float(data.get("ttl") or 0)
        self._lease = Lease(ttl, bool(data.get("renewable")), time.monotonic())
        self._login_ttl = float(data.get("creation_ttl") or ttl)

    def _refresh(self, lease: Lease, now: float) -> None:
        """Renew, or log in again when renewal is impossible or no longer extends the
        token. Failures leave the current token in place while it is still valid."""
        if lease.renewable:
            try:
                auth = self._client.auth.token.renew_self()["auth"]
                renewed = Lease.from_auth(auth, time.monotonic())
            except (VaultHttpError, requests.RequestException, hvac.exceptions.VaultError) as exc:
                _log.warning(
                    "Vault token renewal failed: %s",
                    redact(describe(exc, self._settings.timeout), self.redaction_values()),
                )
            except (KeyError, TypeError):
                _log.warning("Vault token renewal failed: the answer has no auth section")
            else:
                self._lease = renewed
                if self._login is None or renewed.ttl >= self._login_ttl * RENEW_AFTER:
                    _log.debug("Vault token renewed: ttl %s s", f"{renewed.ttl:g}")
                    return
                # Near its max TTL: renewal no longer extends it, so log in afresh.
        if self._login is None:
            # A fixed token that cannot renew is used until Vault refuses it.
            self._retry_renew_at = now + RETRY_RENEW_S if lease.renewable else math.inf
            return
        try:
            self._do_login()
        except KmsError as exc:
            if time.monotonic() >= lease.expires_at:
                raise
            self._retry_renew_at = now + RETRY_RENEW_S
            _log.warning("Vault re-login before expiry failed, keeping the current token: %s", exc)
