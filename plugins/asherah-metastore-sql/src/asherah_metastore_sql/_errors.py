"""Turning driver exceptions into :class:`asherah.MetastoreError` without leaking secrets.

The message names the backend, the operation and the row, then the driver's own one-line
reason (``Connection refused``, ``relation ... does not exist``, ``Access denied``). Parameters
never appear (the engine hides them) and the password is scrubbed from every message in case a
driver echoes it.
"""

from __future__ import annotations

from asherah import MetastoreError

_MAX_DETAIL = 300

#: How messages name each backend.
LABELS = {"sqlite": "SQLite", "mysql": "MySQL", "postgres": "PostgreSQL"}


class ErrorWrapper:
    """Builds our errors for one metastore; knows the secret it must never repeat."""

    def __init__(self, label: str, secret: str | None) -> None:
        self.label = label
        self._secret = secret if secret and len(secret) >= 3 else None

    def scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def error(self, operation: str, where: str, exc: BaseException) -> MetastoreError:
        cause = getattr(exc, "orig", None) or exc
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        detail = self.scrub(" ".join(lines[:2]))[:_MAX_DETAIL] or "no detail"
        return MetastoreError(
            f"{self.label} {operation} failed for {where}: {type(cause).__name__}: {detail}"
        )


def where(table: str, key_id: str | None = None, created: int | None = None) -> str:
    parts = [f"table={table}"]
    if key_id is not None:
        parts.append(f"id={key_id}")
    if created is not None:
        parts.append(f"created={created}")
    return " ".join(parts)
