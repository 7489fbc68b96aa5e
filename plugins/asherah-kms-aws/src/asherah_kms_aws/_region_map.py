"""Validating and ordering ``RegionMap`` / ``PreferredRegion`` as the reference does."""

from __future__ import annotations

import json
from collections.abc import Mapping

from asherah import ConfigError


def order_region_map(
    region_map: Mapping[str, str], preferred_region: str | None
) -> tuple[list[tuple[str, str]], str]:
    """``(entries sorted by region name, preferred region)``, or a :class:`ConfigError` with
    the reference's message. One entry needs no preferred region; more than one does."""
    if not region_map:
        raise ConfigError("REGION_MAP must contain at least one region → key-ARN entry")
    entries = sorted(region_map.items())
    for region, key_arn in entries:
        if not isinstance(region, str) or not region.strip():
            raise ConfigError("REGION_MAP contains an empty region name")
        if not isinstance(key_arn, str) or not key_arn.strip():
            raise ConfigError(f"REGION_MAP entry for region '{region}' has an empty key ARN")
    if preferred_region is not None:
        if preferred_region not in region_map:
            known = json.dumps([region for region, _ in entries], ensure_ascii=False)
            raise ConfigError(
                f"PREFERRED_REGION '{preferred_region}' is not present in REGION_MAP; "
                f"known: {known}"
            )
        return entries, preferred_region
    if len(entries) == 1:
        return entries, entries[0][0]
    raise ConfigError(
        "PREFERRED_REGION must be set when REGION_MAP contains multiple entries; "
        f"got {len(entries)} regions"
    )
