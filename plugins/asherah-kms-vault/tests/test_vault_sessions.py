"""Whole sessions on the Vault KMS: the SQL metastore on SQLite, the drift guard, rotation of
the Transit key and ``asherah keys rewrap-system-keys``."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from asherah import SessionFactory
from asherah._cli import cli
from testsupport.openbao import AppRoleCredentials, OpenBao


def _sk_rows(db: Path, service: str = "svc", product: str = "prod") -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT key_record FROM encryption_key WHERE id = ? ORDER BY created",
            (f"_SK_{service}_{product}",),
        ).fetchall()
    return [json.loads(row[0]) for row in rows]


def _guard(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        (record,) = conn.execute(
            "SELECT key_record FROM encryption_key WHERE id LIKE '__asherah_internal%'"
        ).fetchone()
    payload: dict[str, Any] = json.loads(base64.b64decode(json.loads(record)["Key"]))
    return payload


@pytest.fixture
def config(
    tmp_path: Path, bao: OpenBao, transit_key: str, approle: AppRoleCredentials
) -> dict[str, Any]:
    """Canonical PascalCase keys, as an existing Asherah config has them."""
    return {
        "ServiceName": "svc",
        "ProductID": "prod",
        "Metastore": "sql",
        "ConnectionString": f"sqlite:///{tmp_path / 'keys.db'}",
        "KMS": "vault-transit",
        "VaultAddr": bao.addr,
        "VaultTransitKey": transit_key,
        "VaultAuthMethod": "approle",
        "VaultAuthMount": approle.mount,
        "VaultApproleRoleId": approle.role_id,
        "VaultApproleSecretId": approle.secret_id,
    }


def test_session_round_trip_on_sqlite_stores_a_vault_ciphertext(
    config: dict[str, Any], tmp_path: Path, bao: OpenBao, transit_key: str
) -> None:
    with SessionFactory(config) as factory:
        record = factory.get_session("alice").encrypt_bytes(b"hello vault")
        assert factory.get_session("alice").decrypt_bytes(record) == b"hello vault"
    (sk,) = _sk_rows(tmp_path / "keys.db")
    stored = base64.b64decode(sk["Key"])
    assert stored.startswith(b"vault:v1:")
    assert "ParentKeyMeta" not in sk
    assert _guard(tmp_path / "keys.db")["kms_identity"] == {
        "kind": "vault-transit",
        "addr": bao.addr,
        "transit_mount": "transit",
        "transit_key": transit_key,
    }
    # A new factory has no cached keys: the system key comes back through Vault.
    with SessionFactory(config) as fresh:
        assert fresh.get_session("alice").decrypt_bytes(record) == b"hello vault"


def test_rotation_and_rewrap_keep_old_data_readable(
    config: dict[str, Any], tmp_path: Path, bao: OpenBao, transit_key: str
) -> None:
    db = tmp_path / "keys.db"
    with SessionFactory(config) as factory:
        record = factory.get_session("bob").encrypt_bytes(b"before rotation")
    bao.rotate_transit_key(transit_key)
    with SessionFactory(config) as factory:
        assert factory.get_session("bob").decrypt_bytes(record) == b"before rotation"

    toml = tmp_path / "asherah.toml"
    toml.write_text(
        "\n".join(
            [
                'service_name = "svc"',
                'product_id = "prod"',
                "[metastore]",
                'type = "sql"',
                f'connection_string = "{config["ConnectionString"]}"',
                "[kms]",
                'type = "vault"',
                f'addr = "{bao.addr}"',
                f'transit_key = "{transit_key}"',
                f'auth_mount = "{config["VaultAuthMount"]}"',
                f'approle_role_id = "{config["VaultApproleRoleId"]}"',
                f'approle_secret_id = "{config["VaultApproleSecretId"]}"',
                "",
            ]
        )
    )
    runner = CliRunner()
    dry = runner.invoke(cli, ["--config", str(toml), "keys", "rewrap-system-keys"])
    assert dry.exit_code == 0, dry.output
    assert base64.b64decode(_sk_rows(db)[0]["Key"]).startswith(b"vault:v1:")
    done = runner.invoke(cli, ["--config", str(toml), "keys", "rewrap-system-keys", "--yes"])
    assert done.exit_code == 0, done.output
    assert "rewrapped 1 system key" in done.output
    (sk,) = _sk_rows(db)
    assert base64.b64decode(sk["Key"]).startswith(b"vault:v2:")
    assert config["VaultApproleSecretId"] not in dry.output + done.output
    with SessionFactory(config) as fresh:
        assert fresh.get_session("bob").decrypt_bytes(record) == b"before rotation"


def test_token_auth_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, bao: OpenBao, transit_key: str
) -> None:
    """The reference's variables alone (``VAULT_TOKEN``), no auth keys in config."""
    monkeypatch.setenv("VAULT_TOKEN", bao.root_token)
    config = {
        "ServiceName": "svc",
        "ProductID": "prod",
        "Metastore": "sql",
        "ConnectionString": f"sqlite:///{tmp_path / 'env.db'}",
        "KMS": "vault",
        "VaultAddr": bao.addr,
        "VaultTransitKey": transit_key,
    }
    with SessionFactory(config) as factory:
        record = factory.get_session("carol").encrypt_bytes(b"env token")
    with SessionFactory(config) as fresh:
        assert fresh.get_session("carol").decrypt_bytes(record) == b"env token"
