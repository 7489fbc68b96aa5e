"""The shared OpenBao launcher (``testsupport/openbao.py``): loopback only, a private HOME
with no token file, stop by PID, restart on the same port."""

from __future__ import annotations

import socket

import hvac

from testsupport.openbao import OpenBao, free_port_pair


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_launcher_lifecycle() -> None:
    server = OpenBao()
    try:
        server.start()
        assert server.healthy()
        assert server.addr.startswith("http://127.0.0.1:")
        assert _listening(server.port)
        assert _listening(server.port + 1)  # the dev server's cluster listener
        # -dev-no-store-token: nothing in the private HOME, and so no ambient root token.
        assert not (server.home / ".vault-token").exists()
        assert hvac.Client(url=server.addr, token=server.root_token).is_authenticated()
        assert not hvac.Client(url=server.addr, token="").is_authenticated()
        assert len(server.unseal_key) > 20
        pid = server.pid
        server.stop()
        assert server.pid is None
        assert not server.running
        assert not _listening(server.port)
        server.start()  # same port, fresh in-memory state
        assert server.pid != pid
        assert server.healthy()
    finally:
        server.close()
    assert not server.home.exists()


def test_port_pairs_are_free() -> None:
    port = free_port_pair()
    assert not _listening(port)
    assert not _listening(port + 1)
