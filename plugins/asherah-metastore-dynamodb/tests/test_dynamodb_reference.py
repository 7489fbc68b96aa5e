"""Interop with the reference implementation (PyPI ``asherah`` 0.5.56) on one DynamoDB table.

The reference runs in its own interpreter (``PYTHONPATH=.reference``, where its ``asherah``
shadows ours) with the canonical config keys. Each side decrypts the other's records, accepts
the other's drift-guard row, and writes items of the same shape.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from dynamodb_testlib import REGION, TABLE, session_config

from asherah import SessionFactory
from asherah._drift_guard import GUARD_CREATED, guard_id
from testsupport.dynamodb_local import DynamoDBLocal
from testsupport.reference_runner import b64, installed_reference, run_reference
from testsupport.reference_runner import decrypt_op as decrypt
from testsupport.reference_runner import encrypt_op as encrypt

pytestmark = pytest.mark.reference


@pytest.fixture(scope="module")
def reference() -> Path:
    return installed_reference()


def shape(value: Any) -> Any:
    """An item with every value replaced by its DynamoDB type (maps kept as nested shapes)."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("S", "N", "BOOL"):
        return next(iter(value))
    if isinstance(value, dict) and set(value) == {"M"}:
        return {"M": shape(value["M"])}
    return {name: shape(attr) for name, attr in sorted(value.items())}


def raw_item(raw_client: Any, key_id: str, created: int | None = None) -> dict[str, Any]:
    if created is not None:
        key = {"Id": {"S": key_id}, "Created": {"N": str(created)}}
        item: dict[str, Any] = raw_client.get_item(TableName=TABLE, Key=key)["Item"]
        return item
    items = raw_client.query(
        TableName=TABLE,
        KeyConditionExpression="Id = :id",
        ExpressionAttributeValues={":id": {"S": key_id}},
        ConsistentRead=True,
    )["Items"]
    assert len(items) == 1, items
    found: dict[str, Any] = items[0]
    return found


@pytest.mark.parametrize("region_suffix", [False, True], ids=["no-suffix", "region-suffix"])
def test_each_side_reads_the_other_and_writes_the_same_items(
    ddb: DynamoDBLocal,
    table: str,
    raw_client: Any,
    reference: Path,
    region_suffix: bool,
    service: str,
) -> None:
    suffix = f"_{REGION}" if region_suffix else ""
    extra = {"EnableRegionSuffix": True} if region_suffix else {}
    ref_first, ours_first = f"{service}r", f"{service}o"
    ref_config = session_config(ddb.endpoint, ref_first, **extra)
    our_config = session_config(ddb.endpoint, ours_first, **extra)

    # The reference starts the first hierarchy; ours joins it. Ours starts the second one.
    from_ref = run_reference(reference, ref_config, [encrypt("alice", b"from the reference")])
    with SessionFactory(ref_config) as joined:  # accepts the reference's drift-guard row
        assert joined.get_session("alice").decrypt_bytes(from_ref[0]) == b"from the reference"
        ours_in_ref = [
            joined.get_session("alice").encrypt_bytes(b"ours, reference's IK"),
            joined.get_session("bob").encrypt_bytes(b"ours, our IK"),
        ]
    with SessionFactory(our_config) as ours:
        ours_alone = ours.get_session("alice").encrypt_bytes(b"ours first")

    # The reference reads everything we wrote, and joins the hierarchy we started.
    assert run_reference(
        reference,
        ref_config,
        [decrypt("alice", ours_in_ref[0]), decrypt("bob", ours_in_ref[1])],
    ) == [
        b64(b"ours, reference's IK"),
        b64(b"ours, our IK"),
    ]
    after = run_reference(
        reference,
        our_config,
        [decrypt("alice", ours_alone), encrypt("carol", b"reference in ours")],
    )
    assert after[0] == b64(b"ours first")
    with SessionFactory(our_config) as ours:
        assert ours.get_session("carol").decrypt_bytes(after[1]) == b"reference in ours"

    # Same item shapes, whoever wrote them (system keys, intermediate keys, guard rows).
    pairs = {
        "system key": (f"_SK_{ref_first}_prod{suffix}", f"_SK_{ours_first}_prod{suffix}"),
        "intermediate key": (
            f"_IK_alice_{ref_first}_prod{suffix}",  # the reference wrote this one
            f"_IK_bob_{ref_first}_prod{suffix}",  # and we wrote this one
        ),
    }
    for what, (theirs, mine) in pairs.items():
        ref_item, our_item = raw_item(raw_client, theirs), raw_item(raw_client, mine)
        assert shape(ref_item) == shape(our_item), what
        assert "Revoked" not in our_item["KeyRecord"]["M"]
    ref_guard = raw_item(raw_client, guard_id(ref_first, "prod"), GUARD_CREATED)
    our_guard = raw_item(raw_client, guard_id(ours_first, "prod"), GUARD_CREATED)
    assert shape(ref_guard) == shape(our_guard)
    ref_snapshot = base64.b64decode(ref_guard["KeyRecord"]["M"]["Key"]["S"]).decode()
    our_snapshot = base64.b64decode(our_guard["KeyRecord"]["M"]["Key"]["S"]).decode()
    assert our_snapshot == ref_snapshot.replace(f'"{ref_first}"', f'"{ours_first}"')
    assert json.loads(our_snapshot)["metastore_identity"] == {
        "kind": "dynamo-db",
        "table": TABLE,
        "region": REGION,
        "region_suffix_requested": region_suffix,
    }
