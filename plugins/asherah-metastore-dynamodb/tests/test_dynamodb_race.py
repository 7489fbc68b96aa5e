"""Eight processes race to create the keys of one new partition on one table."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dynamodb_testlib import TABLE, session_config

from asherah import DataRowRecord, SessionFactory
from testsupport.dynamodb_local import DynamoDBLocal

PROCESSES = 8

# Each worker builds its own factory, waits for the start signal, then encrypts. The clock is
# pinned so every worker computes the same minute-truncated ``Created`` for the new keys.
WORKER = """
import json, os, sys, time
from asherah import SessionFactory
config, now, go = json.loads(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
factory = SessionFactory(config, clock=lambda: now)
session = factory.get_session("racer")
print("ready", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("no start signal")
    time.sleep(0.005)
print(session.encrypt_bytes(b"raced"), flush=True)
factory.close()
"""


def rows(raw_client: Any, key_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = raw_client.query(
        TableName=TABLE,
        KeyConditionExpression="Id = :id",
        ExpressionAttributeValues={":id": {"S": key_id}},
        ConsistentRead=True,
    )["Items"]
    return items


def test_processes_racing_on_a_new_partition_create_one_key(
    ddb: DynamoDBLocal, table: str, raw_client: Any, service: str, tmp_path: Path
) -> None:
    config = session_config(ddb.endpoint, service)
    now = time.time()
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(config), repr(now), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for worker in workers:  # every factory is built (drift guard included) before the race
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        go.touch()
        outputs = [worker.communicate(timeout=120) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert [w.returncode for w in workers] == [0] * PROCESSES, [err for _, err in outputs]
    records = [out.strip() for out, _ in outputs]

    ik_rows = rows(raw_client, f"_IK_racer_{service}_prod")
    sk_rows = rows(raw_client, f"_SK_{service}_prod")
    assert len(ik_rows) == 1
    assert len(sk_rows) == 1
    created = int(now) // 60 * 60
    assert ik_rows[0]["Created"] == {"N": str(created)}
    parents = set()
    for record in records:
        key = DataRowRecord.from_json(record).key
        assert key is not None
        assert key.parent_key_meta is not None
        parents.add((key.parent_key_meta.key_id, key.parent_key_meta.created))
    assert parents == {(f"_IK_racer_{service}_prod", created)}
    with SessionFactory(config) as fresh:
        session = fresh.get_session("racer")
        assert [session.decrypt_bytes(r) for r in records] == [b"raced"] * PROCESSES
