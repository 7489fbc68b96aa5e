"""The HTTP layer under hvac: one requests session with TLS settings, retries and a hook that
turns every HTTP error answer into :class:`VaultHttpError` carrying the status and Vault's text.

hvac's own exceptions drop the status code for statuses it does not map and keep whole
bodies; the hook keeps the exact status and a short excerpt, before hvac sees the answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from asherah_kms_vault._options import Settings

#: Statuses worth another attempt: rate limited, sealed or standby, proxies and gateways.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
EXCERPT_CHARS = 200
_SPACE = re.compile(r"\s+")


class VaultHttpError(Exception):
    """Vault (or a proxy in front of it) answered with an HTTP error status."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text}")
        self.status = status
        self.text = text


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """One line of at most ``limit`` characters (an HTML error page stays readable)."""
    flat = _SPACE.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def error_text(response: requests.Response) -> str:
    """Vault's ``errors`` joined with ``; ``, else an excerpt of the body, else the reason."""
    body = response.text or ""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("errors"), list) and parsed["errors"]:
        return excerpt("; ".join(str(e) for e in parsed["errors"]))
    return excerpt(body) or response.reason or "no body"


def _raise_for_error_status(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    if response.status_code >= 400:
        raise VaultHttpError(response.status_code, error_text(response))


def build_session(settings: Settings) -> requests.Session:
    """A session for one driver: its TLS settings, retry policy and error hook."""
    session = requests.Session()
    session.verify = settings.verify
    session.cert = settings.client_cert
    retry = Retry(
        total=settings.retries,
        connect=settings.retries,
        read=settings.retries,
        status=settings.retries,
        other=0,
        # Transit encrypt/decrypt/rewrap and logins are safe to repeat.
        allowed_methods=None,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=0.1,
        backoff_max=2.0,
        raise_on_status=False,
        respect_retry_after_header=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.hooks["response"].append(_raise_for_error_status)
    return session
