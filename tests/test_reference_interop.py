"""Interop with the real reference (PyPI asherah 0.5.56, installed in .reference by tasks.py),
both directions, over one shared key set in a SQLite metastore file in the reference's format.

The reference runs in a subprocess (same import name as ours). We read its SQLite rows with the
standard library into our in-memory metastore; for the other direction we write our rows in its
exact format: ``encryption_key(id TEXT, created TIMESTAMP, key_record TEXT)`` with ``created``
as ``YYYY-MM-DD HH:MM:SS`` UTC text, plus our drift-guard row, which its guard must accept.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import asherah
from asherah import EnvelopeKeyRecord, InMemoryMetastore, SessionFactory, _observe
from asherah._records import DataRowRecord, json_string
from asherah.testing import CountingMetastore

pytestmark = pytest.mark.reference

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / ".reference"
KEY_HEX = "22" * 32

DDL = (
    "CREATE TABLE IF NOT EXISTS encryption_key (id TEXT NOT NULL, created TIMESTAMP NOT NULL, "
    "key_record TEXT NOT NULL, PRIMARY KEY (id, created))"
)

PARTITIONS = ["p1", "tenant_with_underscores", "ünïcode", 'q"uote\\back\nline\x01', "x" * 300]
PAYLOADS = [b"", b"hello interop", bytes(range(256)), os.urandom(64 * 1024)]

REFERENCE_SCRIPT = r"""
import base64, json, sys
import asherah
request = json.load(sys.stdin)
out = {"version": asherah.version(), "module": asherah.__file__, "records": [], "plaintexts": []}
try:
    with asherah.SessionFactory(request["config"]) as factory:
        for item in request.get("encrypt", []):
            session = factory.get_session(item["partition"])
            out["records"].append(session.encrypt_bytes(base64.b64decode(item["data"])))
        for item in request.get("decrypt", []):
            session = factory.get_session(item["partition"])
            plain = session.decrypt_bytes(item["record"])
            out["plaintexts"].append(base64.b64encode(plain).decode())
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""

METRICS_SCRIPT = r"""
import json, sys, time
import asherah
config = json.loads(sys.argv[1])
events = []
asherah.set_metrics_hook(events.append)
asherah.setup(config)
record = asherah.encrypt_bytes("p", b"x")
asherah.decrypt_bytes("p", record)
asherah.encrypt_bytes("p", b"y")
asherah.shutdown()
time.sleep(0.5)
print(json.dumps(events))
"""


def reference_python(script: str, *args: str, stdin: str = "", cwd: Path) -> str:
    if not (REFERENCE / "asherah" / "_asherah.abi3.so").is_file():
        pytest.fail(
            f"the reference implementation is not installed in {REFERENCE}: "
            "run `python3 tasks.py setup`"
        )
    env = {**os.environ, "PYTHONPATH": str(REFERENCE)}
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"reference subprocess failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout.strip().splitlines()[-1]


def run_reference(request: dict[str, Any], cwd: Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(
        reference_python(REFERENCE_SCRIPT, stdin=json.dumps(request), cwd=cwd)
    )
    assert out["version"] == "0.5.56", out
    assert out["module"].startswith(str(REFERENCE)), out
    return out


def sqlite_config(path: Path, master_hex: str = KEY_HEX) -> dict[str, Any]:
    return {
        "ServiceName": "svc",
        "ProductID": "prod",
        "Metastore": "sqlite",
        "ConnectionString": str(path),
        "KMS": "static",
        "StaticMasterKeyHex": master_hex,
    }


def our_config(master_hex: str = KEY_HEX) -> dict[str, Any]:
    return {
        "ServiceName": "svc",
        "ProductID": "prod",
        "Metastore": "memory",
        "KMS": "static",
        "StaticMasterKeyHex": master_hex,
    }


class SqliteIdentityMetastore(InMemoryMetastore):
    """Our in-memory rows, identifying as the reference's SQLite metastore at ``path`` in the
    drift guard: the snapshot either side writes must then satisfy the other side's check."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = str(path)

    def drift_identity(self) -> dict[str, Any]:
        return {"kind": "sqlite", "path": self.path}


def sqlite_text(created: int) -> str:
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%d %H:%M:%S")


def read_sqlite(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT id, created, key_record FROM encryption_key ORDER BY id, created"
        ).fetchall()
    conn.close()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def write_sqlite(path: Path, metastore: InMemoryMetastore) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(DDL)
        conn.executemany(
            "INSERT INTO encryption_key (id, created, key_record) VALUES (?, ?, ?)",
            [(k, sqlite_text(c), r.to_json()) for k, c, r in metastore.rows()],
        )
    conn.close()


def load_sqlite(path: Path, metastore: InMemoryMetastore) -> None:
    for key_id, created_text, key_record in read_sqlite(path):
        record = EnvelopeKeyRecord.from_json(key_record)
        assert sqlite_text(record.created) == created_text, (key_id, created_text)
        assert record.to_json() == key_record  # the reference's JSON, byte for byte
        assert metastore.store(key_id, record.created, record)


def encrypt_items() -> list[dict[str, str]]:
    return [
        {"partition": p, "data": base64.b64encode(d).decode()} for p in PARTITIONS for d in PAYLOADS
    ]


def test_reference_records_decrypt_here(tmp_path: Path) -> None:
    db = tmp_path / "reference.db"
    out = run_reference({"config": sqlite_config(db), "encrypt": encrypt_items()}, tmp_path)
    assert "error" not in out, out["error"]
    metastore = SqliteIdentityMetastore(db)
    load_sqlite(db, metastore)
    counting = CountingMetastore(metastore)
    with SessionFactory(our_config(), metastore=counting) as factory:  # accepts their guard row
        for item, record in zip(encrypt_items(), out["records"], strict=True):
            assert DataRowRecord.from_json(record).to_json() == record
            session = factory.get_session(item["partition"])
            assert session.decrypt_bytes(record) == base64.b64decode(item["data"])
            ik_id = f"_IK_{item['partition']}_svc_prod"
            assert f'"KeyId":{json_string(ik_id)},' in record  # same escaping as serde_json
    assert counting.writes == 0


def test_our_records_decrypt_in_the_reference_and_it_reuses_our_keys(tmp_path: Path) -> None:
    db = tmp_path / "ours.db"
    metastore = SqliteIdentityMetastore(db)
    now = time.time()
    with SessionFactory(our_config(), metastore=metastore, clock=lambda: now) as factory:
        items = encrypt_items()
        records = [
            factory.get_session(i["partition"]).encrypt_bytes(base64.b64decode(i["data"]))
            for i in items
        ]
    # Revoke p1's key and replace it inside the same minute (Created = old + 1): the reference
    # must read a "Revoked":true row and a key row that is not minute-aligned.
    old = metastore.load_latest("_IK_p1_svc_prod")
    assert old is not None
    metastore.replace("_IK_p1_svc_prod", old.created, old.with_revoked(True))
    with SessionFactory(our_config(), metastore=metastore, clock=lambda: now) as factory:
        rotated = factory.get_session("p1").encrypt_bytes(b"after revocation")
    assert json.loads(rotated)["Key"]["ParentKeyMeta"]["Created"] == old.created + 1
    items.append({"partition": "p1", "data": base64.b64encode(b"after revocation").decode()})
    records.append(rotated)
    write_sqlite(db, metastore)
    before = read_sqlite(db)

    fresh = [
        {"partition": p, "data": base64.b64encode(b"from the reference").decode()}
        for p in PARTITIONS
    ]
    request = {
        "config": sqlite_config(db),
        "decrypt": [
            {"partition": i["partition"], "record": r} for i, r in zip(items, records, strict=True)
        ],
        "encrypt": fresh,
    }
    out = run_reference(request, tmp_path)
    assert "error" not in out, out["error"]
    assert out["plaintexts"] == [i["data"] for i in items]
    # The reference accepted our guard row and used our keys: it wrote nothing at all.
    assert read_sqlite(db) == before
    with SessionFactory(our_config(), metastore=metastore) as factory:
        for partition, record in zip(PARTITIONS, out["records"], strict=True):
            meta = json.loads(record)["Key"]["ParentKeyMeta"]
            ours = metastore.load_latest(meta["KeyId"])
            assert ours is not None
            assert meta["Created"] == ours.created
            assert factory.get_session(partition).decrypt_bytes(record) == b"from the reference"


def test_reference_refuses_a_guard_row_for_another_metastore(tmp_path: Path) -> None:
    # Negative control for the test above: the reference's guard really compares snapshots.
    db = tmp_path / "mismatch.db"
    metastore = InMemoryMetastore()  # identifies as {"kind": "memory"}
    with SessionFactory(our_config(), metastore=metastore) as factory:
        record = factory.get_session("p1").encrypt_bytes(b"x")
    write_sqlite(db, metastore)
    out = run_reference(
        {"config": sqlite_config(db), "decrypt": [{"partition": "p1", "record": record}]}, tmp_path
    )
    assert "config drift guard mismatch" in out.get("error", ""), out


V16_MASTER = "746869734973415374617469634d61737465724b6579466f7254657374696e67"
V16_ROWS = {
    "_SK_svc_prod": (
        '{"Created":1699999980,"Key":"NW62NaQPTaber6YSmAVS4jpI4jRAwe9XOius2b4XTqChRq2kzwjd+p7yEQh9'
        'SRJIAQEBAQEBAQEBAQEB"}'
    ),
    "_IK_p1_svc_prod": (
        '{"Created":1699999980,"Key":"YBIsDMRjFXiN6W096apl2zoxHDHIN76Ank+TKB0fJd9n4Yudx7dYMTd7692q'
        'wjDBAgICAgICAgICAgIC","ParentKeyMeta":{"KeyId":"_SK_svc_prod","Created":1699999980}}'
    ),
}
V16_DRR = (
    '{"Key":{"Created":1700000000,"Key":"aNKH4ZAqnJxtfa8pZ5iEqwsFkdbVgQv351jn9B6k4/LmMZVg0jVlNByFSx4r'
    '9lRFAwMDAwMDAwMDAwMD","ParentKeyMeta":{"KeyId":"_IK_p1_svc_prod","Created":1699999980}},'
    '"Data":"/FbqklrVI8c9dSBir+n7W4aik4CP2yFsZq86+0nEhtRGFRs26gQEBAQEBAQEBAQEBA=="}'
)


def test_v16_vector_rows_decrypt_in_the_reference(tmp_path: Path) -> None:
    db = tmp_path / "v16.db"
    metastore = InMemoryMetastore()
    for key_id, text in V16_ROWS.items():
        record = EnvelopeKeyRecord.from_json(text)
        metastore.store(key_id, record.created, record)
    write_sqlite(db, metastore)
    assert [r[1] for r in read_sqlite(db)] == ["2023-11-14 22:13:00"] * 2
    out = run_reference(
        {
            "config": sqlite_config(db, V16_MASTER),
            "decrypt": [{"partition": "p1", "record": V16_DRR}],
        },
        tmp_path,
    )
    assert "error" not in out, out["error"]
    assert base64.b64decode(out["plaintexts"][0]) == b"hello asherah interop"


def event_kinds(events: list[dict[str, Any]]) -> set[tuple[str, ...]]:
    return {(e["type"], e.get("name", ""), *sorted(e)) for e in events}


def test_metrics_hook_event_kinds_match_the_reference(tmp_path: Path) -> None:
    config = our_config()
    theirs = json.loads(reference_python(METRICS_SCRIPT, json.dumps(config), cwd=tmp_path))
    ours: list[dict[str, Any]] = []
    asherah.shutdown()
    asherah.set_metrics_hook(ours.append)
    try:
        asherah.setup(config)
        record = asherah.encrypt_bytes("p", b"x")
        asherah.decrypt_bytes("p", record)
        asherah.encrypt_bytes("p", b"y")
        asherah.shutdown()
        _observe.DISPATCH.flush()
    finally:
        asherah.set_metrics_hook(None)
        asherah.shutdown()
    assert event_kinds(ours) == event_kinds(theirs)
    timings = [e["type"] for e in theirs if "duration_ns" in e]
    assert [e["type"] for e in ours if "duration_ns" in e] == timings


def test_rotation_parity_across_implementations(tmp_path: Path) -> None:
    """The reference writes under one key; we find it expired (our clock two hours on) and
    rotate; the reference then decrypts our record and encrypts under our new key."""
    db = tmp_path / "rotation.db"
    config = {**sqlite_config(db), "ExpireAfter": 3600, "CheckInterval": 60}
    pre = run_reference(
        {
            "config": config,
            "encrypt": [{"partition": "p1", "data": base64.b64encode(b"pre").decode()}],
        },
        tmp_path,
    )
    assert "error" not in pre, pre["error"]
    pre_ik = json.loads(pre["records"][0])["Key"]["ParentKeyMeta"]["Created"]

    metastore = SqliteIdentityMetastore(db)
    load_sqlite(db, metastore)
    later = time.time() + 2 * 3600
    ours_config = {**our_config(), "ExpireAfter": 3600, "CheckInterval": 60}
    with SessionFactory(ours_config, metastore=metastore, clock=lambda: later) as factory:
        session = factory.get_session("p1")
        assert session.decrypt_bytes(pre["records"][0]) == b"pre"
        post = session.encrypt_bytes(b"post")
    post_ik = json.loads(post)["Key"]["ParentKeyMeta"]["Created"]
    assert post_ik > pre_ik + 3600
    with sqlite3.connect(db) as conn:  # add our new SK and IK rows to the shared table
        conn.executemany(
            "INSERT OR IGNORE INTO encryption_key (id, created, key_record) VALUES (?, ?, ?)",
            [(k, sqlite_text(c), r.to_json()) for k, c, r in metastore.rows()],
        )
    conn.close()

    out = run_reference(
        {
            "config": config,
            "decrypt": [{"partition": "p1", "record": post}],
            "encrypt": [{"partition": "p1", "data": base64.b64encode(b"post2").decode()}],
        },
        tmp_path,
    )
    assert "error" not in out, out["error"]
    assert base64.b64decode(out["plaintexts"][0]) == b"post"
    assert json.loads(out["records"][0])["Key"]["ParentKeyMeta"]["Created"] == post_ik
    with SessionFactory(ours_config, metastore=metastore, clock=lambda: later) as factory:
        assert factory.get_session("p1").decrypt_bytes(out["records"][0]) == b"post2"
