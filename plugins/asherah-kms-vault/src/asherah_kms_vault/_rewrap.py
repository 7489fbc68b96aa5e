"""Re-wrapping stored system keys under the Transit key's newest version (for the
``asherah keys rewrap-system-keys`` command)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

from asherah import EnvelopeKeyRecord

_VERSION = re.compile(rb"^vault:v(\d+):")
SYSTEM_KEY_PREFIX = "_SK_"


class Rewrapper(Protocol):
    def rewrap_key(self, blob: bytes) -> bytes: ...


def key_version(blob: bytes) -> int | None:
    """The Transit key version a stored ``vault:vN:...`` blob was wrapped with."""
    match = _VERSION.match(blob)
    return None if match is None else int(match.group(1))


def rewrap_system_keys(
    kms: Rewrapper,
    rows: Iterable[tuple[str, int, EnvelopeKeyRecord]],
    *,
    include_current: bool = False,
) -> list[tuple[str, int, EnvelopeKeyRecord]]:
    """Re-wrap each system key row under the newest Transit key version.

    ``rows`` are ``(key_id, created, record)`` as ``Metastore.list_rows`` yields them; rows
    whose id is not a system key (``_SK_...``) are skipped. Returns the rows to write back
    (``Metastore.upsert``), with ``created``, ``revoked`` and the parent untouched and only
    ``Key`` replaced. Rows that were already on the newest version are left out unless
    ``include_current``. Raises :class:`asherah.KmsError` on the first row Vault refuses,
    before anything is written, so a failed run changes nothing.
    """
    out = []
    for key_id, created, record in rows:
        if not key_id.startswith(SYSTEM_KEY_PREFIX):
            continue
        new_blob = kms.rewrap_key(record.encrypted_key)
        if not include_current and key_version(new_blob) == key_version(record.encrypted_key):
            continue
        out.append(
            (
                key_id,
                created,
                EnvelopeKeyRecord(record.created, new_blob, record.parent_key_meta, record.revoked),
            )
        )
    return out
