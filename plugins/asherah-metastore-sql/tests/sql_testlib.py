"""Helpers shared by the test modules and the subprocess workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from asherah import EnvelopeKeyRecord, KeyMeta
from asherah_metastore_sql import SqlMetastore, SqlMetastoreOptions, _raw

if TYPE_CHECKING:  # the subprocess workers import this module without testsupport
    from testsupport.sql import TempDatabase

BACKENDS = ["sqlite", "postgres", "mysql"]
ROOT = Path(__file__).resolve().parents[3]
REFERENCE_DIR = ROOT / ".reference"
WORKER = Path(__file__).resolve().parent / "asherah_worker.py"
MASTER_KEY_HEX = "22" * 32


def server_database(request: pytest.FixtureRequest, backend: str) -> TempDatabase:
    """This run's database on the server ``backend`` ("postgres" or "mysql"), made lazily."""
    db: TempDatabase = request.getfixturevalue("pg_db" if backend == "postgres" else "mysql_db")
    return db


def open_metastore(connection_string: str, **options: Any) -> SqlMetastore:
    return SqlMetastore.from_options(
        SqlMetastoreOptions(connection_string=connection_string, **options)
    )


def unique(label: str = "t") -> str:
    return f"{label}{uuid.uuid4().hex[:10]}"


def record(
    created: int, fill: int = 1, *, parent: str | None = "_SK_svc_prod"
) -> EnvelopeKeyRecord:
    meta = KeyMeta(parent, created) if parent is not None else None
    return EnvelopeKeyRecord(created, bytes([fill]) * 60, meta)


def record_raw_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL of every statement the metastores run on the driver's cursor from now on (the
    per-key statements and the start-up DDL), in order."""
    seen: list[str] = []
    original = _raw.RawRunner.run

    def spy(runner: _raw.RawRunner, statement: _raw.RawStatement, *args: Any) -> Any:
        seen.append(statement.sql)
        return original(runner, statement, *args)

    monkeypatch.setattr(_raw.RawRunner, "run", spy)
    return seen


def raw_engine(metastore: SqlMetastore) -> sa.Engine:
    """The driver's own engine, for reading and writing rows behind its back."""
    return metastore.engine


def metastore_kind(connection_string: str) -> str:
    """The canonical ``Metastore`` value the reference takes for this connection string."""
    return "sqlite" if connection_string.startswith("sqlite://") else "rdbms"


def config(connection_string: str, service: str, **extra: Any) -> dict[str, Any]:
    """A canonical PascalCase config both implementations accept."""
    out: dict[str, Any] = {
        "ServiceName": service,
        "ProductID": "prod",
        "Metastore": metastore_kind(connection_string),
        "ConnectionString": connection_string,
        "KMS": "static",
        "StaticMasterKeyHex": MASTER_KEY_HEX,
    }
    out.update(extra)
    return out


def require_reference() -> None:
    if not (REFERENCE_DIR / "asherah" / "__init__.py").is_file():
        raise RuntimeError(
            f"the reference implementation is missing from {REFERENCE_DIR}; run "
            "`python3 tasks.py setup` (pip install --target .reference asherah==0.5.56)"
        )


def worker_command(implementation: str) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASHERAH_")}
    env.pop("PYTHONPATH", None)
    if implementation == "reference":
        require_reference()
        env["PYTHONPATH"] = str(REFERENCE_DIR)
    return [sys.executable, str(WORKER)], env


def start_worker(implementation: str, job: dict[str, Any]) -> subprocess.Popen[str]:
    command, env = worker_command(implementation)
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(ROOT),
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(job) + "\n")
    proc.stdin.flush()  # the worker reads one line; communicate() closes stdin
    return proc


def wait_ready(proc: subprocess.Popen[str]) -> None:
    """Block until a barrier worker has built its factory (it prints ``ready``)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        rest, err = proc.communicate(timeout=60)
        raise AssertionError(f"worker did not get ready: {line}{rest[-1000:]} {err[-2000:]}")


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def finish_worker(proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, f"worker exited {proc.returncode}: {err[-2000:]}"
    result: dict[str, Any] = json.loads(out)
    return result


def run_worker(implementation: str, job: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    result = finish_worker(start_worker(implementation, job), timeout)
    expected = "/.reference/" if implementation == "reference" else "/core/src/"
    assert expected in result["module"], result["module"]
    return result
