"""Sessions through the real engine on DynamoDB Local: round trips, global tables, isolation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dynamodb_testlib import OTHER_REGION, REGION, TABLE, session_config

from asherah import ConfigDriftError, DataRowRecord, DecryptionError, SessionFactory
from asherah._drift_guard import GUARD_CREATED, guard_id
from asherah_metastore_dynamodb import DynamoDBMetastore
from testsupport.dynamodb_local import DynamoDBLocal


def key_ids_in_table(raw_client: Any, service: str) -> set[str]:
    """Every ``Id`` of the service's key rows (``_SK_svc…``, ``_IK_…_svc…``)."""
    ids: set[str] = set()
    pages = raw_client.get_paginator("scan").paginate(
        TableName=TABLE, ConsistentRead=True, ProjectionExpression="Id"
    )
    for page in pages:
        ids.update(item["Id"]["S"] for item in page["Items"])
    return {i for i in ids if f"_{service}_" in i or i.endswith(f"_{service}")}


def parent_key_id(record: str) -> str:
    key = DataRowRecord.from_json(record).key
    assert key is not None
    assert key.parent_key_meta is not None
    return key.parent_key_meta.key_id


def test_round_trip_across_factories_and_rows_written(
    ddb: DynamoDBLocal, table: str, raw_client: Any, service: str
) -> None:
    config = session_config(ddb.endpoint, service)
    with SessionFactory(config) as factory:
        assert isinstance(factory.metastore, DynamoDBMetastore)
        session = factory.get_session("alice")
        record = session.encrypt_bytes(b"hello dynamodb")
        assert session.decrypt_bytes(record) == b"hello dynamodb"
    with SessionFactory(config) as fresh:  # no cached keys: everything comes from the table
        assert fresh.get_session("alice").decrypt_bytes(record) == b"hello dynamodb"
        second = fresh.get_session("alice").encrypt_bytes(b"again")
    assert parent_key_id(record) == parent_key_id(second) == f"_IK_alice_{service}_prod"
    assert key_ids_in_table(raw_client, service) == {
        f"_SK_{service}_prod",
        f"_IK_alice_{service}_prod",
    }


def test_drift_guard_row_is_a_map_the_driver_reads_back(
    ddb: DynamoDBLocal, table: str, raw_client: Any, service: str
) -> None:
    SessionFactory(session_config(ddb.endpoint, service)).close()
    row_id = guard_id(service, "prod")
    item = raw_client.get_item(
        TableName=TABLE, Key={"Id": {"S": row_id}, "Created": {"N": str(GUARD_CREATED)}}
    )["Item"]
    assert sorted(item["KeyRecord"]["M"]) == ["Created", "Key"]
    metastore = DynamoDBMetastore(raw_client)
    stored = metastore.load(row_id, GUARD_CREATED)
    assert stored is not None
    assert json.loads(stored.encrypted_key)["metastore_identity"] == {
        "kind": "dynamo-db",
        "table": TABLE,
        "region": REGION,
        "region_suffix_requested": False,
    }
    # Turning the suffix on later would fork the key ids: the guard refuses it.
    with pytest.raises(ConfigDriftError):
        SessionFactory(session_config(ddb.endpoint, service, EnableRegionSuffix=True))


def test_global_table_in_miniature(
    ddb: DynamoDBLocal, table: str, raw_client: Any, service: str
) -> None:
    """Two regions on one table (the server shares tables across regions, as a global table
    replicates them): each region writes its own suffixed ids and reads the other's records."""
    west = SessionFactory(session_config(ddb.endpoint, service, EnableRegionSuffix=True))
    # The drift guard row is shared by the table's regions and its snapshot names the region;
    # the reference refuses the second region here, ours accepts regions of one global table.
    east = SessionFactory(
        session_config(ddb.endpoint, service, DynamoDBRegion=OTHER_REGION, EnableRegionSuffix=True)
    )
    try:
        assert (west.region_suffix, east.region_suffix) == (REGION, OTHER_REGION)
        from_west = west.get_session("alice").encrypt_bytes(b"written in the west")
        from_east = east.get_session("alice").encrypt_bytes(b"written in the east")
        assert parent_key_id(from_west) == f"_IK_alice_{service}_prod_{REGION}"
        assert parent_key_id(from_east) == f"_IK_alice_{service}_prod_{OTHER_REGION}"
        assert east.get_session("alice").decrypt_bytes(from_west) == b"written in the west"
        assert west.get_session("alice").decrypt_bytes(from_east) == b"written in the east"
        assert key_ids_in_table(raw_client, service) == {
            f"_SK_{service}_prod_{REGION}",
            f"_SK_{service}_prod_{OTHER_REGION}",
            f"_IK_alice_{service}_prod_{REGION}",
            f"_IK_alice_{service}_prod_{OTHER_REGION}",
        }
    finally:
        west.close()
        east.close()


def test_partition_named_like_a_suffixed_id_cannot_read_it(
    ddb: DynamoDBLocal, table: str, service: str
) -> None:
    """Partition ``a_{service}_prod_x`` has IK id ``_IK_a_{service}_prod_x_{service}_prod_…``,
    which starts with partition ``a``'s IK id plus ``_``: the reference's prefix gate let ``a``
    read it. Ours accepts only ``a``'s own id, bare or followed by a region."""
    config = session_config(ddb.endpoint, service, EnableRegionSuffix=True)
    lookalike = f"a_{service}_prod_x"
    with SessionFactory(config) as factory:
        theirs = factory.get_session(lookalike).encrypt_bytes(b"not for a")
        mine = factory.get_session("a").encrypt_bytes(b"for a only")
        assert parent_key_id(theirs).startswith(parent_key_id(mine).removesuffix(REGION))
        with pytest.raises(DecryptionError):
            factory.get_session("a").decrypt_bytes(theirs)
        with pytest.raises(DecryptionError):
            factory.get_session(lookalike).decrypt_bytes(mine)
        assert factory.get_session("a").decrypt_bytes(mine) == b"for a only"
    # Nor through a metastore lookup by a factory with nothing cached.
    with SessionFactory(config) as cold, pytest.raises(DecryptionError):
        cold.get_session("a").decrypt_bytes(theirs)


def test_list_rows_for_operator_tools(ddb: DynamoDBLocal, table: str, service: str) -> None:
    """``asherah keys list`` scans by id prefix; rows come back decoded and ordered."""
    with SessionFactory(session_config(ddb.endpoint, service)) as factory:
        for partition in ("alice", "bob"):
            factory.get_session(partition).encrypt_bytes(b"x")
        metastore = factory.metastore
        ids = [key_id for key_id, _, _ in metastore.list_rows(f"_IK_alice_{service}")]
        assert ids == [f"_IK_alice_{service}_prod"]
        system = list(metastore.list_rows(f"_SK_{service}_prod"))
        assert len(system) == 1
        assert system[0][2].parent_key_meta is None
        # The table is shared with tests that plant corrupt items: scan this service's ids only.
        ours = {
            key_id
            for partition in ("alice", "bob")
            for key_id, _, _ in metastore.list_rows(f"_IK_{partition}_{service}")
        }
        assert ours == {f"_IK_alice_{service}_prod", f"_IK_bob_{service}_prod"}
