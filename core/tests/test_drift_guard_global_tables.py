"""Regions of one DynamoDB global table share the drift guard row without tripping it
(a deliberate fix: the reference refuses the second region), while real drift still trips."""

from __future__ import annotations

from typing import Any

import pytest

from asherah import ConfigDriftError, InMemoryMetastore, SessionFactory

CONFIG = {
    "ServiceName": "svc",
    "ProductID": "prod",
    "KMS": "static",
    "StaticMasterKeyHex": "22" * 32,
}


class RegionalView(InMemoryMetastore):
    """One shared row store seen from a region, like a global table's regional replica."""

    def __init__(
        self,
        shared: InMemoryMetastore,
        region: str,
        suffix: bool = True,
        table: str = "EncryptionKey",
    ) -> None:
        super().__init__()
        self._rows, self._latest, self._lock = shared._rows, shared._latest, shared._lock
        self.region, self.suffix, self.table = region, suffix, table

    def region_suffix(self) -> str | None:
        return self.region if self.suffix else None

    def drift_identity(self) -> dict[str, Any]:
        return {
            "kind": "dynamo-db",
            "table": self.table,
            "region": self.region,
            "region_suffix_requested": self.suffix,
        }


def test_two_regions_of_one_table_start_and_read_each_other() -> None:
    shared = InMemoryMetastore()
    with SessionFactory(CONFIG, metastore=RegionalView(shared, "us-west-2")) as west:
        record = west.get_session("p").encrypt_bytes(b"from the west")
    with SessionFactory(CONFIG, metastore=RegionalView(shared, "us-east-1")) as east:
        assert east.get_session("p").decrypt_bytes(record) == b"from the west"
        assert "_us-east-1" in east.get_session("p").encrypt_bytes(b"x")


@pytest.mark.parametrize(
    "second",
    [
        {"region": "us-east-1", "suffix": False},
        {"region": "us-east-1", "table": "OtherTable"},
    ],
)
def test_real_drift_still_refuses_to_start(second: dict[str, Any]) -> None:
    shared = InMemoryMetastore()
    SessionFactory(CONFIG, metastore=RegionalView(shared, "us-west-2")).close()
    with pytest.raises(ConfigDriftError, match="config drift guard mismatch"):
        SessionFactory(CONFIG, metastore=RegionalView(shared, **second))
