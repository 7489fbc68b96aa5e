"""Run ``moto_server`` (PyPI ``moto``) on loopback for tests: AWS KMS, Secrets Manager, DynamoDB.

moto_server is a real HTTP server speaking the AWS wire protocols; boto3 talks to it over TCP as
it would to AWS. One server serves every region (the region comes from each request's SigV4
scope, and state is kept per account and region); the account id is always ``123456789012``.
State lives in memory: :meth:`MotoServer.reset` wipes it without a restart, ``stop()`` loses it.

It runs as ``python -m moto.server`` with this interpreter (or ``executable``), so it needs
``pip install "moto[server]"`` or the lean set ``pip install "moto[dynamodb]" flask flask-cors``
(enough for KMS, Secrets Manager and DynamoDB) in the same environment. Every server gets a
fresh free port and is stopped by its own PID; ``stop()`` then ``start()`` reuses the port,
which is what fault tests need ("the service went away, then came back").

    with MotoServer() as moto:
        kms = moto.client("kms", "us-west-2")
        arn = kms.create_key()["KeyMetadata"]["Arn"]
        os.environ.update(moto.env())   # AWS_ENDPOINT_URL, fake credentials, no IMDS

:func:`closed_port` gives an address where nothing listens, to stand in for a region or
service that is down.
"""

from __future__ import annotations

import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from testsupport import aws_env
from testsupport._process import ServerProcess, free_port

READY_TIMEOUT_S = 30.0
INSTALL_HINT = 'pip install "moto[dynamodb]" flask flask-cors  (or "moto[server]")'

#: Credentials moto accepts (any strings sign a request); tests use these unless told otherwise.
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"
ACCOUNT_ID = "123456789012"


class MotoServerError(RuntimeError):
    """moto_server is not installed, or did not start."""


def closed_port() -> str:
    """An ``http://127.0.0.1:PORT`` endpoint that refuses connections (a service that is down)."""
    return f"http://127.0.0.1:{free_port()}"


class MotoServer(ServerProcess):
    """One moto_server process on a port of its own; ``start``/``stop`` may repeat."""

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        executable: str | None = None,
    ) -> None:
        self.python = executable or sys.executable
        self.host = host
        self.port = port or free_port()
        self.scratch_dir = Path(tempfile.mkdtemp(prefix="moto-"))
        self.log_path = self.scratch_dir / "moto.log"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = READY_TIMEOUT_S) -> MotoServer:
        """Start the server and wait until ``/moto-api/`` answers 200; raise with the log tail
        if it exits or stays silent."""
        if self.running:
            return self
        cmd = [self.python, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]
        try:
            self._launch(cmd, self.scratch_dir)
        except OSError as exc:
            raise MotoServerError(f"cannot run {self.python}: {exc}") from exc
        self._await_ready(
            self.ready,
            timeout,
            0.05,
            MotoServerError,
            "moto_server",
            f" (is moto installed? {INSTALL_HINT})",
        )
        return self

    def ready(self) -> bool:
        """Whether the server answers its management API right now."""
        try:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def reset(self) -> None:
        """Wipe every key, secret and table in every region (``POST /moto-api/reset``)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise MotoServerError(f"moto reset answered HTTP {response.status}")

    def env(self) -> dict[str, str]:
        """Environment variables that point every AWS SDK (boto3 and the Rust SDK) here."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self, service: str, region: str) -> Any:
        """A boto3 client for ``service`` in ``region`` on this server, with explicit fake
        credentials (so it works whatever the environment says)."""
        return aws_env.local_client(
            service, region, self.endpoint, ACCESS_KEY_ID, SECRET_ACCESS_KEY
        )

    def __repr__(self) -> str:
        return f"MotoServer(endpoint={self.endpoint!r}, pid={self.pid})"
