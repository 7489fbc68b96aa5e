"""Interop with the reference implementation (PyPI asherah 0.5.56) on one shared table.

The reference runs in subprocesses (``asherah_worker.py`` with ``PYTHONPATH=.reference``) on
the same SQLite file, PostgreSQL database or MariaDB database as this process's factory: each
side decrypts what the other encrypted, they share one intermediate key per partition, each
accepts the other's drift-guard row, rotation works across both, and eight processes of both
kinds racing on one new partition end with one key row each.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sql_testlib import (
    config,
    finish_worker,
    open_metastore,
    release,
    run_worker,
    start_worker,
    unique,
    wait_ready,
)

import asherah
from asherah import ConfigDriftError
from asherah._drift_guard import GUARD_CREATED, encode_snapshot, guard_id, snapshot
from asherah_metastore_sql import SqlMetastore

pytestmark = pytest.mark.reference

PAYLOADS: dict[str, bytes] = {
    "empty": b"",
    "one byte": b"\x00",
    "1 KiB": os.urandom(1024),
    "1 MiB": os.urandom(1 << 20),
    "unicode": "héllo wörld — 日本語 — 🔐".encode(),
    "binary": bytes(range(256)) * 4,
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def encrypt_ops(partition: str, payloads: dict[str, bytes]) -> list[dict[str, str]]:
    return [{"op": "encrypt", "partition": partition, "data": _b64(p)} for p in payloads.values()]


def decrypt_ops(partition: str, records: list[str]) -> list[dict[str, str]]:
    return [{"op": "decrypt", "partition": partition, "drr": r} for r in records]


def values(result: dict[str, Any]) -> list[str]:
    assert "factory_error" not in result, result.get("factory_error")
    failures = [r["error"] for r in result["results"] if not r["ok"]]
    assert failures == []
    return [r["value"] for r in result["results"]]


def key_rows(metastore: SqlMetastore, key_id: str) -> list[int]:
    """The ``created`` of every row of exactly ``key_id``."""
    return [created for row_id, created, _ in metastore.list_rows(key_id) if row_id == key_id]


def parent_created(drr: str) -> int:
    created: int = json.loads(drr)["Key"]["ParentKeyMeta"]["Created"]
    return created


@pytest.fixture
def shared_url(url_for: Callable[[str], str], backend: str) -> str:
    """The run's database on ``backend`` with the canonical table in place."""
    url = url_for(backend)
    open_metastore(url, create_schema=True).close()
    return url


def test_reference_first_then_ours(shared_url: str) -> None:
    url, service = shared_url, unique("svc")
    cfg = config(url, service)
    inspect = open_metastore(url, create_schema=True)
    theirs = values(run_worker("reference", {"config": cfg, "ops": encrypt_ops("alice", PAYLOADS)}))

    # The reference wrote the guard row: ours is the same snapshot, byte for byte.
    guard = inspect.load(guard_id(service, "prod"), GUARD_CREATED)
    assert guard is not None
    identity = json.loads(guard.encrypted_key)["metastore_identity"]
    assert identity == inspect.drift_identity()
    expected = snapshot(service, "prod", None, identity, {"kind": "static"})
    assert guard.encrypted_key == encode_snapshot(expected)

    with asherah.SessionFactory(cfg) as factory:  # passes the reference's guard
        session = factory.get_session("alice")
        for name, record in zip(PAYLOADS, theirs, strict=True):
            assert session.decrypt_bytes(record) == PAYLOADS[name], name
        ours = [session.encrypt_bytes(p) for p in PAYLOADS.values()]
    back = values(run_worker("reference", {"config": cfg, "ops": decrypt_ops("alice", ours)}))
    assert [base64.b64decode(v) for v in back] == list(PAYLOADS.values())
    # One intermediate key for the partition, used by both sides.
    assert len(key_rows(inspect, f"_IK_alice_{service}_prod")) == 1
    assert {parent_created(r) for r in theirs + ours} == set(
        key_rows(inspect, f"_IK_alice_{service}_prod")
    )
    assert len(key_rows(inspect, f"_SK_{service}_prod")) == 1
    inspect.close()


def test_ours_first_then_reference(shared_url: str) -> None:
    url, service = shared_url, unique("svc")
    cfg = config(url, service)
    with asherah.SessionFactory(cfg) as factory:  # writes the guard row first
        ours = [factory.get_session("bob").encrypt_bytes(p) for p in PAYLOADS.values()]
    job = {"config": cfg, "ops": decrypt_ops("bob", ours) + encrypt_ops("bob", PAYLOADS)}
    results = values(run_worker("reference", job))  # accepts our guard row
    decrypted, theirs = results[: len(PAYLOADS)], results[len(PAYLOADS) :]
    assert [base64.b64decode(v) for v in decrypted] == list(PAYLOADS.values())
    with asherah.SessionFactory(cfg) as factory:
        session = factory.get_session("bob")
        assert [session.decrypt_bytes(r) for r in theirs] == list(PAYLOADS.values())
    inspect = open_metastore(url)
    assert len(key_rows(inspect, f"_IK_bob_{service}_prod")) == 1
    assert len(key_rows(inspect, guard_id(service, "prod"))) == 1
    inspect.close()


def test_drift_guard_mismatch_is_refused_by_both(tmp_path: Path) -> None:
    """The same SQLite file under another path is another identity to the reference; each
    side refuses the other's guard row, and force-run lets ours through."""
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    real, alias = f"sqlite://{tmp_path}/real/k.db", f"sqlite://{tmp_path}/alias/k.db"
    service = unique("svc")
    values(run_worker("reference", {"config": config(real, service), "ops": []}))
    with pytest.raises(ConfigDriftError, match="config drift guard mismatch"):
        asherah.SessionFactory(config(alias, service))
    asherah.SessionFactory(config(alias, service, ConfigDriftForceRun=True)).close()

    other = unique("svc")
    asherah.SessionFactory(config(alias, other)).close()
    refused = run_worker("reference", {"config": config(real, other), "ops": []})
    assert "config drift guard mismatch" in refused["factory_error"]


def test_rotation_parity(shared_url: str) -> None:
    """ExpireAfter 1 s: records from before and after rotation decrypt on both sides, and each
    side's newer intermediate key has a strictly newer ``created``."""
    url, service = shared_url, unique("rot")
    cfg = config(url, service, ExpireAfter=1, CheckInterval=1)
    pre = {"ref-pre": b"reference before rotation", "ours-pre": b"ours before rotation"}
    post = {"ref-post": b"reference after rotation", "ours-post": b"ours after rotation"}
    records: dict[str, str] = {}
    with asherah.SessionFactory(cfg) as factory:
        session = factory.get_session("p1")
        (records["ref-pre"],) = values(
            run_worker("reference", {"config": cfg, "ops": encrypt_ops("p1", {"": pre["ref-pre"]})})
        )
        records["ours-pre"] = session.encrypt_bytes(pre["ours-pre"])
        time.sleep(2.2)
        (records["ref-post"],) = values(
            run_worker(
                "reference", {"config": cfg, "ops": encrypt_ops("p1", {"": post["ref-post"]})}
            )
        )
        records["ours-post"] = session.encrypt_bytes(post["ours-post"])
        for name, plaintext in {**pre, **post}.items():
            assert session.decrypt_bytes(records[name]) == plaintext, name
    names = list(records)
    back = values(
        run_worker(
            "reference", {"config": cfg, "ops": decrypt_ops("p1", [records[n] for n in names])}
        )
    )
    assert dict(zip(names, (base64.b64decode(v) for v in back), strict=True)) == {**pre, **post}
    assert parent_created(records["ref-post"]) > parent_created(records["ref-pre"])
    assert parent_created(records["ours-post"]) > parent_created(records["ours-pre"])
    inspect = open_metastore(url)
    assert len(key_rows(inspect, f"_IK_p1_{service}_prod")) >= 2
    inspect.close()


def test_eight_processes_race_on_a_new_partition(shared_url: str) -> None:
    """Four reference and four of our processes encrypt for one new partition (and a new
    service) at the same moment: one SK and one IK row, every record decrypts everywhere."""
    url, service = shared_url, unique("race")
    cfg = config(url, service)
    # Stay inside one minute: keys are created at minute precision.
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)
    job = {"config": cfg, "barrier": True, "ops": encrypt_ops("racer", {"": b"race payload"})}
    workers = [start_worker(kind, job) for kind in ("reference", "ours") * 4]
    try:
        for worker in workers:
            wait_ready(worker)
        for worker in workers:
            release(worker)
        results = [finish_worker(worker) for worker in workers]
        records = [values(result)[0] for result in results]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    modules = [Path(result["module"]).parent.parent.name for result in results]
    assert modules == [".reference", "src"] * 4  # both implementations took part
    inspect = open_metastore(url)
    ik_rows = key_rows(inspect, f"_IK_racer_{service}_prod")
    assert len(ik_rows) == 1
    assert len(key_rows(inspect, f"_SK_{service}_prod")) == 1
    assert {parent_created(r) for r in records} == set(ik_rows)
    with asherah.SessionFactory(cfg) as factory:
        session = factory.get_session("racer")
        assert all(session.decrypt_bytes(r) == b"race payload" for r in records)
    back = values(run_worker("reference", {"config": cfg, "ops": decrypt_ops("racer", records)}))
    assert {base64.b64decode(v) for v in back} == {b"race payload"}
    inspect.close()
