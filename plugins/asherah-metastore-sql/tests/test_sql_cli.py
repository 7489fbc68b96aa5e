"""The ``asherah`` command line on the SQL metastore: ``metastore init`` creates the table, and
encrypt/decrypt/keys list/revoke work through the driver from a TOML config file."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sql_testlib import MASTER_KEY_HEX, open_metastore, unique

from asherah._cli import cli
from testsupport.sql import TempDatabase


def write_config(path: Path, service: str, metastore_section: str) -> Path:
    path.write_text(
        f'service_name = "{service}"\nproduct_id = "prod"\n\n'
        f'[kms]\ntype = "static"\nmaster_key_hex = "{MASTER_KEY_HEX}"\n\n'
        f"[metastore]\n{metastore_section}"
    )
    return path


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ASHERAH_CONFIG", "ASHERAH_METASTORE", "ASHERAH_KMS"):
        monkeypatch.delenv(name, raising=False)


def test_metastore_init_then_round_trip_on_postgres(pg_db: TempDatabase, tmp_path: Path) -> None:
    table = unique("cli_")
    service = unique("svc")
    config = write_config(
        tmp_path / "asherah.toml",
        service,
        f'type = "rdbms"\nconnection_string = "{pg_db.url}"\ntable_name = "{table}"\n',
    )
    runner = CliRunner()
    base = ["--config", str(config)]
    # Before init the server has no table: the driver does not create one by itself.
    refused = runner.invoke(cli, [*base, "encrypt", "-p", "alice"], input=b"x")
    assert refused.exit_code == 1
    assert "does not exist" in refused.output
    init = runner.invoke(cli, [*base, "metastore", "init"])
    assert init.exit_code == 0, init.output
    assert "metastore ready" in init.output
    assert runner.invoke(cli, [*base, "metastore", "init"]).exit_code == 0  # idempotent
    encrypted = runner.invoke(cli, [*base, "encrypt", "-p", "alice"], input=b"secret text")
    assert encrypted.exit_code == 0, encrypted.output
    decrypted = runner.invoke(cli, [*base, "decrypt", "-p", "alice"], input=encrypted.output)
    assert decrypted.exit_code == 0, decrypted.output
    assert decrypted.stdout_bytes == b"secret text"
    listed = runner.invoke(cli, [*base, "keys", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert f"_IK_alice_{service}_prod" in listed.output
    revoked = runner.invoke(cli, [*base, "keys", "revoke", "-p", "alice", "--yes"])
    assert revoked.exit_code == 0, revoked.output
    metastore = open_metastore(pg_db.url, table_name=table)
    latest = metastore.load_latest(f"_IK_alice_{service}_prod")
    assert latest is not None
    assert latest.revoked is True  # rewritten in place by upsert, same (id, created)
    assert len(list(metastore.list_rows(f"_IK_alice_{service}_prod"))) == 1
    with metastore.engine.connect() as conn:
        conn.execute(sa.text(f"DROP TABLE {table}"))
    metastore.close()


def test_sqlalchemy_url_with_create_schema_as_the_demo_uses(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    config = write_config(
        tmp_path / "asherah.toml",
        "demo",
        f'type = "sql"\nurl = "sqlite:///{db}"\ncreate_schema = true\n',
    )
    runner = CliRunner()
    encrypted = runner.invoke(cli, ["--config", str(config), "encrypt", "-p", "u"], input=b"hi")
    assert encrypted.exit_code == 0, encrypted.output
    assert db.is_file()  # an absolute path: sqlite:/// + /tmp/...
    decrypted = runner.invoke(
        cli, ["--config", str(config), "decrypt", "-p", "u"], input=encrypted.output
    )
    assert decrypted.stdout_bytes == b"hi"
