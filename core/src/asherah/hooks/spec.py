"""The hook specifications. Every argument is metadata: never plaintext, key bytes or handles.

Implementations may accept any subset of a hook's arguments (pluggy passes them by name).
A hook that raises is logged and skipped; it never breaks an encrypt or decrypt.
"""

from __future__ import annotations

import pluggy

from asherah.hooks import NAME

_spec = pluggy.HookspecMarker(NAME)


@_spec
def asherah_factory_started(
    service_name: str, product_id: str, metastore: str, kms: str, region_suffix: str | None
) -> None:
    """A session factory finished building its drivers (``metastore``/``kms`` are class names)."""


@_spec
def asherah_key_event(
    event: str, key_type: str, key_id: str, created: int, partition: str | None
) -> None:
    """A system or intermediate key changed state.

    ``event`` is ``created`` (this process wrote a new key), ``loaded`` (read and unwrapped from
    the metastore), ``rotated`` (a new key replaced an expired or revoked latest key) or
    ``revoked_seen`` (a reload found ``Revoked: true``). ``key_type`` is ``system`` or
    ``intermediate``; ``partition`` is set for intermediate keys on the encrypt path.
    """


@_spec
def asherah_cache_event(cache: str, event: str, lookup: str, key_id: str) -> None:
    """A key cache lookup or change.

    ``cache`` is ``system``, ``intermediate``, ``session`` or ``secure-memory`` (the key store's
    tiers); ``event`` is ``hit``, ``miss``, ``stale``, ``load`` or ``eviction``, and for
    ``secure-memory`` also ``promotion``, ``overflow`` and ``fallback``; ``lookup`` is ``latest``
    (encrypt) or ``exact`` (decrypt).
    """


@_spec
def asherah_metastore_call(
    operation: str, key_id: str, duration_ns: int, error_type: str | None
) -> None:
    """A metastore call finished: ``load``, ``load_latest``, ``load_many`` (``key_id`` then
    lists the ids read, comma-separated), ``store`` or ``upsert``. ``error_type`` is the
    exception class name when it failed."""


@_spec
def asherah_kms_call(operation: str, duration_ns: int, error_type: str | None) -> None:
    """A KMS call finished: ``encrypt_key`` or ``decrypt_key``."""


@_spec
def asherah_crypto_timing(operation: str, partition: str, size: int, duration_ns: int) -> None:
    """An ``encrypt`` or ``decrypt`` finished; ``size`` is the plaintext length in bytes."""
