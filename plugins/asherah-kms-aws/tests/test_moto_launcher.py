"""The shared moto_server launcher (``testsupport.moto``): start, ready, reset, stop by PID."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from awskms_testlib import raw_client

from testsupport.moto import MotoServer, MotoServerError, closed_port


def test_session_server_runs_on_its_own_loopback_port(moto: MotoServer) -> None:
    assert moto.running
    assert moto.ready()
    assert moto.endpoint == f"http://127.0.0.1:{moto.port}"
    cmdline = Path(f"/proc/{moto.pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    assert cmdline[-4:] == [b"-H", b"127.0.0.1", b"-p", str(moto.port).encode()]
    env = moto.env()
    assert env["AWS_ENDPOINT_URL"] == moto.endpoint
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"


def test_reset_wipes_state_and_stop_start_keeps_the_port() -> None:
    with MotoServer() as server:
        kms = raw_client(server.endpoint, "kms", "eu-west-1")
        kms.create_key()
        assert len(kms.list_keys()["Keys"]) == 1
        server.reset()
        assert kms.list_keys()["Keys"] == []
        pid, port = server.pid, server.port
        server.stop()
        assert not server.running
        assert not server.ready()
        server.stop()  # idempotent
        server.start()
        assert server.port == port
        assert server.pid != pid
        assert server.client("kms", "eu-west-1").list_keys()["Keys"] == []
    assert not server.running
    assert not server.log_path.parent.exists()


def test_a_server_that_cannot_start_fails_with_its_log(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        server = MotoServer(port=taken.getsockname()[1])
        with pytest.raises(MotoServerError, match="exited with code"):
            server.start(timeout=30)
        server.close()
    python = tmp_path / "no-python"
    missing = MotoServer(executable=str(python))
    with pytest.raises(MotoServerError, match=r"cannot run .*no-python"):
        missing.start()
    missing.close()


def test_closed_port_refuses_connections() -> None:
    port = int(closed_port().rsplit(":", 1)[1])
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
        pytest.raises(ConnectionRefusedError),
    ):
        sock.connect(("127.0.0.1", port))
