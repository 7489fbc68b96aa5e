"""Turning hvac, requests and HTTP failures into one readable line, with secrets removed."""

from __future__ import annotations

import re
from collections.abc import Iterable

import hvac.exceptions
import requests
import urllib3.exceptions

from asherah_kms_vault._http import VaultHttpError, excerpt

_ERRNO_REASON = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
REDACTED = "<redacted>"


def describe(exc: BaseException, timeout: float) -> str:
    """What went wrong, without a traceback: the HTTP status and Vault's text when there was
    an answer, else why there was none."""
    if isinstance(exc, VaultHttpError):
        return f"HTTP {exc.status}: {exc.text}"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS handshake failed: {_reason(exc)}"
    underlying = _underlying(exc)
    # urllib3's NewConnectionError derives from its TimeoutError, but is a refusal.
    timed_out = isinstance(underlying, urllib3.exceptions.TimeoutError) and not isinstance(
        underlying, urllib3.exceptions.NewConnectionError
    )
    if isinstance(exc, requests.exceptions.Timeout) or timed_out:
        # Retries exhausted on timeouts surface as a ConnectionError around a timeout.
        return f"no answer within the {timeout:g} s timeout"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"cannot connect: {_reason(exc)}"
    if isinstance(exc, hvac.exceptions.VaultError):
        text = "; ".join(str(e) for e in exc.errors) if exc.errors else str(exc.args[0] or "")
        return f"{type(exc).__name__}: {excerpt(text)}"
    if isinstance(exc, requests.exceptions.RequestException):
        return f"{type(exc).__name__}: {_reason(exc)}"
    return type(exc).__name__


def _underlying(exc: BaseException) -> object:
    """The urllib3 error behind a requests exception (through ``MaxRetryError``)."""
    inner = exc.args[0] if exc.args else None
    if isinstance(inner, urllib3.exceptions.MaxRetryError):
        return inner.reason
    return inner


def _reason(exc: BaseException) -> str:
    text = str(exc)
    match = _ERRNO_REASON.search(text)
    return match.group(1).strip() if match else excerpt(text, 160)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-trivial secret value replaced (defence in depth: a proxy error
    page may echo a request)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text
