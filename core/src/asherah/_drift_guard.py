"""The config drift guard, compatible with the reference (§1.7, §4.6 of the spec).

Every factory stores a snapshot of the settings that decide key ids and wire formats in a
reserved metastore row, and refuses to start when a later factory on the same metastore
disagrees: a changed region suffix or KMS key would otherwise silently fork the key hierarchy.
The row id, ``created``, JSON field order and message are the reference's, so mixed fleets
check each other.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

from asherah._errors import ConfigDriftError, MetastoreError
from asherah._records import EnvelopeKeyRecord, RecordFormatError
from asherah.kms._base import KeyManagementService
from asherah.metastore._base import Metastore

_log = logging.getLogger("asherah.drift_guard")

GUARD_PREFIX = "__asherah_internal_config_drift_guard_v1__:"
GUARD_CREATED = 946_684_800
MAX_SNAPSHOT_BYTES = 8 * 1024

MISMATCH_MESSAGE = (
    "config drift guard mismatch detected; startup refused before key writes. "
    "Set ASHERAH_CONFIG_DRIFT_FORCE_RUN=true to run without changing the guard, or "
    "ASHERAH_CONFIG_DRIFT_FORCE_UPDATE=true to replace the guard after validating this "
    "configuration is correct."
)

_FIELDS = (
    "schema_version",
    "service_name",
    "product_id",
    "region_suffix_enabled",
    "effective_region_suffix",
    "key_id_format_version",
    "aead_algorithm",
    "data_row_record_format",
    "metastore_identity",
    "kms_identity",
)

_TRUE = {"1", "true", "yes", "on"}


@functools.lru_cache(maxsize=64)
def guard_id(service: str, product: str) -> str:
    """The guard row's id (a pure function of the two names: computed once per pair)."""
    digest = hashlib.blake2b(service.encode() + b"\x00" + product.encode(), digest_size=64)
    tail = base64.urlsafe_b64encode(digest.digest()[:32]).rstrip(b"=").decode()
    return GUARD_PREFIX + tail


def snapshot(
    service: str,
    product: str,
    region_suffix: str | None,
    metastore_identity: dict[str, Any],
    kms_identity: dict[str, Any],
) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "service_name": service,
        "product_id": product,
        "region_suffix_enabled": bool(region_suffix),
        "effective_region_suffix": region_suffix or None,
        "key_id_format_version": 1,
        "aead_algorithm": "AES-256-GCM",
        "data_row_record_format": "asherah-json-v1",
        "metastore_identity": metastore_identity,
        "kms_identity": kms_identity,
    }


def encode_snapshot(snap: dict[str, Any]) -> bytes:
    return json.dumps(snap, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def check(
    metastore: Metastore,
    kms: KeyManagementService,
    service: str,
    product: str,
    region_suffix: str | None,
    *,
    force_run: bool = False,
    force_update: bool = False,
    also_latest: Sequence[str] = (),
) -> dict[str, EnvelopeKeyRecord]:
    """Verify (or first write) the guard row; raise :class:`ConfigDriftError` on a mismatch.

    Backends without a reference identity (third-party drivers) are not guarded. When the
    metastore answers several reads in one round trip, the latest rows of ``also_latest`` are
    read with the guard row and returned (those found); otherwise nothing more is read.
    """
    force_run = _env_flag("ASHERAH_CONFIG_DRIFT_FORCE_RUN", force_run)
    force_update = _env_flag("ASHERAH_CONFIG_DRIFT_FORCE_UPDATE", force_update)
    ms_identity, kms_identity = metastore.drift_identity(), kms.drift_identity()
    if ms_identity is None or kms_identity is None:
        return {}
    row_id = guard_id(service, product)
    current = snapshot(service, product, region_suffix, ms_identity, kms_identity)
    if force_update:
        metastore.upsert(row_id, GUARD_CREATED, _record(current))
        _log.warning("config drift guard replaced with the current configuration")
        return {}
    read_along: dict[str, EnvelopeKeyRecord] = {}
    try:
        stored, read_along = _read_guard(metastore, row_id, also_latest)
    except (MetastoreError, ValueError) as exc:
        if force_run:
            _log.warning(
                "config drift guard unreadable (%s); running because force-run is set", exc
            )
            return {}
        raise ConfigDriftError(f"load config drift guard: {exc}") from exc
    if stored is None:
        if metastore.store(row_id, GUARD_CREATED, _record(current)):
            return read_along
        stored = _load_snapshot(metastore, row_id)
    if stored is not None and _same(stored, current):
        return read_along
    if force_run:
        _log.warning("config drift guard mismatch; running because force-run is set")
        return read_along
    raise ConfigDriftError(MISMATCH_MESSAGE)


def _record(snap: dict[str, Any]) -> EnvelopeKeyRecord:
    """The guard row for ``snap``: only built to write it (a started factory only reads)."""
    return EnvelopeKeyRecord(GUARD_CREATED, encode_snapshot(snap))


def _read_guard(
    metastore: Metastore, row_id: str, also_latest: Sequence[str]
) -> tuple[dict[str, Any] | None, dict[str, EnvelopeKeyRecord]]:
    """The stored snapshot, and the latest rows of ``also_latest`` when they came in the same
    round trip."""
    if also_latest and metastore.batches_loads:
        try:
            records = metastore.load_many(
                [(row_id, GUARD_CREATED), *((key_id, None) for key_id in also_latest)]
            )
        except MetastoreError:
            pass  # the guard row alone below: its own error, if it has one, is the one raised
        else:
            found = {k: r for k, r in zip(also_latest, records[1:], strict=True) if r is not None}
            return _parse_snapshot(records[0]), found
    return _load_snapshot(metastore, row_id), {}


def _load_snapshot(metastore: Metastore, row_id: str) -> dict[str, Any] | None:
    return _parse_snapshot(metastore.load(row_id, GUARD_CREATED))


def _parse_snapshot(record: EnvelopeKeyRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    if len(record.encrypted_key) > MAX_SNAPSHOT_BYTES:
        raise ValueError("config drift guard snapshot is too large")
    try:
        parsed = json.loads(record.encrypted_key)
    except ValueError as exc:
        raise RecordFormatError("config drift guard snapshot is not JSON") from exc
    if not isinstance(parsed, dict) or any(field not in parsed for field in _FIELDS):
        raise RecordFormatError("config drift guard snapshot is missing fields")
    return parsed


def _same(stored: dict[str, Any], current: dict[str, Any]) -> bool:
    if _regions_of_one_global_table(stored, current):
        # Each region of a DynamoDB global table suffixes its keys with its own region: the
        # suffix and the client region legitimately differ between the table's regions. The
        # reference refuses the second region here; everything else must still match.
        stored = {
            **stored,
            "effective_region_suffix": None,
            "metastore_identity": _without_region(stored["metastore_identity"]),
        }
        current = {
            **current,
            "effective_region_suffix": None,
            "metastore_identity": _without_region(current["metastore_identity"]),
        }
    return all(stored[field] == current[field] for field in _FIELDS)


def _regions_of_one_global_table(stored: dict[str, Any], current: dict[str, Any]) -> bool:
    def global_table(snap: dict[str, Any]) -> bool:
        identity = snap["metastore_identity"]
        return (
            snap["region_suffix_enabled"] is True
            and isinstance(identity, dict)
            and identity.get("kind") == "dynamo-db"
            and identity.get("region_suffix_requested") is True
        )

    return global_table(stored) and global_table(current)


def _without_region(identity: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in identity.items() if key != "region"}


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() in _TRUE


__all__ = ["MISMATCH_MESSAGE", "check", "guard_id", "snapshot"]
