"""Interop with the reference (PyPI ``asherah`` 0.5.56) over one moto_server and one SQLite
metastore file: the same canonical config drives both implementations.

The reference runs in its own interpreter (``PYTHONPATH=.reference``, where its ``asherah``
shadows ours) with ``AWS_ENDPOINT_URL`` pointing at moto; ours reads the same variable through
botocore. Each side decrypts the other's records, joins the other's system key, accepts the
other's drift-guard row, and writes the same envelope layout.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from awskms_testlib import ALIAS, OTHER, PREFERRED

from asherah import SessionFactory
from asherah._drift_guard import GUARD_CREATED, guard_id
from asherah_kms_aws import KmsEnvelope
from testsupport.moto import MotoServer, closed_port
from testsupport.reference_runner import b64, installed_reference, run_reference
from testsupport.reference_runner import decrypt_op as dec
from testsupport.reference_runner import encrypt_op as enc

pytestmark = pytest.mark.reference


@pytest.fixture(scope="module")
def reference() -> Path:
    return installed_reference()


@pytest.fixture
def shared_env(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """One environment for both sides: moto as the endpoint of every AWS client."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    return dict(os.environ)


def stored(path: Path, key_id: str) -> dict[str, Any]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT key_record FROM encryption_key WHERE id = ? ORDER BY created DESC", (key_id,)
        ).fetchall()
    assert len(rows) == 1, (key_id, rows)
    record: dict[str, Any] = json.loads(rows[0][0])
    return record


def envelope_document(path: Path, service: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        base64.b64decode(stored(path, f"_SK_{service}_prod")["Key"])
    )
    return document


def config_for(service: str, db: Path, **kms: Any) -> dict[str, Any]:
    return {
        "ServiceName": service,
        "ProductID": "prod",
        "Metastore": "sqlite",
        "ConnectionString": str(db),
        "KMS": "aws",
        **kms,
    }


def test_multi_region_both_directions(
    reference: Path,
    shared_env: dict[str, str],
    region_map: dict[str, str],
    tmp_path: Path,
) -> None:
    db = tmp_path / "metastore.db"
    svc = f"svc{uuid.uuid4().hex[:8]}"
    theirs_first, ours_first = f"{svc}r", f"{svc}o"
    multi = {"RegionMap": region_map, "PreferredRegion": PREFERRED}
    ref_config, our_config = (
        config_for(theirs_first, db, **multi),
        config_for(ours_first, db, **multi),
    )

    # The reference makes the first hierarchy; ours reads it and adds an IK under its SK.
    from_ref = run_reference(
        reference, ref_config, [enc("alice", b"from the reference")], shared_env
    )
    with SessionFactory(ref_config) as joined:
        assert joined.get_session("alice").decrypt_bytes(from_ref[0]) == b"from the reference"
        ours_in_ref = joined.get_session("bob").encrypt_bytes(b"ours, reference's SK")
    # Ours makes the second hierarchy.
    with SessionFactory(our_config) as ours:
        ours_alone = ours.get_session("alice").encrypt_bytes(b"ours first")

    assert run_reference(reference, ref_config, [dec("bob", ours_in_ref)], shared_env) == [
        b64(b"ours, reference's SK")
    ]
    after = run_reference(
        reference,
        our_config,
        [dec("alice", ours_alone), enc("carol", b"reference under our SK")],
        shared_env,
    )
    assert after[0] == b64(b"ours first")
    with SessionFactory(our_config) as ours:
        assert ours.get_session("carol").decrypt_bytes(after[1]) == b"reference under our SK"

    # Same envelope layout: field order, regions by name, the generating region's key ARN.
    ref_doc, our_doc = envelope_document(db, theirs_first), envelope_document(db, ours_first)
    for document in (ref_doc, our_doc):
        assert list(document) == ["encryptedKey", "kmsKeks"]
        assert [list(kek) for kek in document["kmsKeks"]] == [["region", "arn", "encryptedKek"]] * 2
        assert [(k["region"], k["arn"]) for k in document["kmsKeks"]] == sorted(region_map.items())
    # Same drift-guard snapshot, apart from the service name.
    ref_guard = base64.b64decode(stored(db, guard_id(theirs_first, "prod"))["Key"]).decode()
    our_guard = base64.b64decode(stored(db, guard_id(ours_first, "prod"))["Key"]).decode()
    assert our_guard == ref_guard.replace(f'"{theirs_first}"', f'"{ours_first}"')
    assert json.loads(our_guard)["kms_identity"] == {
        "kind": "aws-kms-envelope",
        "preferred_region": PREFERRED,
        "regions": dict(sorted(region_map.items())),
    }
    assert stored(db, guard_id(ours_first, "prod"))["Created"] == GUARD_CREATED


def test_partial_envelopes_and_region_fallback_across_implementations(
    reference: Path,
    shared_env: dict[str, str],
    region_map: dict[str, str],
    tmp_path: Path,
) -> None:
    db = tmp_path / "metastore.db"
    svc = f"svc{uuid.uuid4().hex[:8]}"
    multi = {"RegionMap": region_map, "PreferredRegion": PREFERRED}
    # Ours creates the SK while us-east-1 is down: the envelope holds us-west-2 only...
    ours_partial = config_for(f"{svc}p", db, **multi)
    degraded = {
        **ours_partial,
        "kms_options": {"endpoints": {OTHER: closed_port()}, "max_attempts": 1},
    }
    with SessionFactory(degraded) as ours:
        partial_record = ours.get_session("dave").encrypt_bytes(b"one region only")
    assert [k["region"] for k in envelope_document(db, f"{svc}p")["kmsKeks"]] == [PREFERRED]
    # ...and the reference (every region up) still opens it.
    assert run_reference(reference, ours_partial, [dec("dave", partial_record)], shared_env) == [
        b64(b"one region only")
    ]
    # The reference's SK, read by ours with the preferred region down: us-east-1 decrypts.
    ref_full = config_for(f"{svc}f", db, **multi)
    record = run_reference(reference, ref_full, [enc("erin", b"preferred down")], shared_env)[0]
    down = {**ref_full, "kms_options": {"endpoints": {PREFERRED: closed_port()}, "max_attempts": 1}}
    with SessionFactory(down) as ours:
        assert ours.get_session("erin").decrypt_bytes(record) == b"preferred down"


@pytest.mark.parametrize("region_from", ["AWS_REGION", "DynamoDBRegion"])
def test_single_key_both_directions(
    reference: Path,
    shared_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    region_from: str,
) -> None:
    db = tmp_path / "metastore.db"
    svc = f"svc{uuid.uuid4().hex[:8]}"
    single: dict[str, Any] = {"KmsKeyId": ALIAS}
    env = dict(shared_env)
    if region_from == "AWS_REGION":
        monkeypatch.setenv("AWS_REGION", OTHER)
        env["AWS_REGION"] = OTHER
    else:
        single["DynamoDBRegion"] = OTHER
    config = config_for(svc, db, **single)
    from_ref = run_reference(reference, config, [enc("frank", b"single from reference")], env)
    with SessionFactory(config) as ours:
        assert ours.get_session("frank").decrypt_bytes(from_ref[0]) == b"single from reference"
        mine = ours.get_session("grace").encrypt_bytes(b"single from ours")
    assert run_reference(reference, config, [dec("grace", mine)], env) == [b64(b"single from ours")]
    envelope = KmsEnvelope.from_json(base64.b64decode(stored(db, f"_SK_{svc}_prod")["Key"]))
    assert envelope.regions == (OTHER,)
    guard = json.loads(base64.b64decode(stored(db, guard_id(svc, "prod"))["Key"]))
    assert guard["kms_identity"] == {
        "kind": "aws-kms-single",
        "key_id": ALIAS,
        "region": OTHER if region_from == "DynamoDBRegion" else None,
    }
