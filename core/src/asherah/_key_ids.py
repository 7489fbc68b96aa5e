"""Key ids and the partition gate.

Ids are ``_SK_{service}_{product}`` and ``_IK_{partition}_{service}_{product}``, each with an
optional ``_{region}`` suffix. The gate is exact: a session accepts its own unsuffixed id, or
that id followed by ``_`` and a region made of ``[a-z0-9-]``. The reference's prefix match let
partition ``a`` read partition ``a_svc_prod_zz``; this one does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from asherah._errors import ConfigError

_REGION = re.compile(r"[a-z0-9-]+")


@dataclass(slots=True)
class KeyIds:
    """The ids one session uses, derived once at ``get_session``.

    Not frozen, though nothing changes it: one is built per partition the session cache
    misses, and a frozen dataclass takes four times as long to build (0.64 vs 0.14 us here).
    """

    partition: str
    system_key_id: str
    intermediate_key_id: str
    intermediate_core_id: str

    def accepts_intermediate(self, key_id: str) -> bool:
        """True when ``key_id`` is this partition's IK id, bare or with a region suffix."""
        core = self.intermediate_core_id
        if key_id == core or key_id == self.intermediate_key_id:
            return True
        return (
            len(key_id) > len(core) + 1
            and key_id.startswith(core)
            and key_id[len(core)] == "_"
            and _REGION.fullmatch(key_id, len(core) + 1) is not None
        )


def system_key_id(service: str, product: str, region_suffix: str | None = None) -> str:
    base = f"_SK_{service}_{product}"
    return f"{base}_{region_suffix}" if region_suffix else base


def intermediate_key_id(
    partition: str, service: str, product: str, region_suffix: str | None = None
) -> str:
    base = f"_IK_{partition}_{service}_{product}"
    return f"{base}_{region_suffix}" if region_suffix else base


def key_ids(partition: str, service: str, product: str, region_suffix: str | None) -> KeyIds:
    """The ids of one session. Every part must be encodable as UTF-8: a lone surrogate would
    be written into the record as a ``\\udXXX`` escape that no JSON parser reads back, so the
    record could never be decrypted (the reference refuses such a partition too)."""
    for what, value in (
        ("partition id", partition),
        ("service name", service),
        ("product id", product),
        ("region suffix", region_suffix or ""),
    ):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(f"{what} is not valid Unicode text (lone surrogate)") from None
    return KeyIds(
        partition,
        system_key_id(service, product, region_suffix),
        intermediate_key_id(partition, service, product, region_suffix),
        intermediate_key_id(partition, service, product),
    )


class KeyIdMaker:
    """:func:`key_ids` for one factory: service, product and region are checked once, and each
    new partition costs two string joins (a session is built per partition the session
    cache does not hold). A bad fixed part is reported at ``get_session``, as before."""

    __slots__ = ("_core_suffix", "_error", "_region", "_system_key_id")

    def __init__(self, service: str, product: str, region_suffix: str | None) -> None:
        self._error: ConfigError | None = None
        try:
            key_ids("p", service, product, region_suffix)
        except ConfigError as exc:
            self._error = exc
        self._system_key_id = system_key_id(service, product, region_suffix)
        self._core_suffix = f"_{service}_{product}"
        self._region = f"_{region_suffix}" if region_suffix else ""

    @property
    def system_key_id(self) -> str:
        return self._system_key_id

    def __call__(self, partition: str) -> KeyIds:
        if not partition.isascii():
            try:
                partition.encode("utf-8")
            except UnicodeEncodeError:
                raise ConfigError(
                    "partition id is not valid Unicode text (lone surrogate)"
                ) from None
        if self._error is not None:
            raise ConfigError(str(self._error))
        core = f"_IK_{partition}{self._core_suffix}"
        return KeyIds(partition, self._system_key_id, core + self._region, core)
