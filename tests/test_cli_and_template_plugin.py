"""The example out-of-tree plugin, built and installed into a fresh virtual environment the
way a third party would: selected from a TOML file, passing the contract kit, its hook called,
and the CLI round-tripping through it across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from asherah import ConfigError, DriverNotFoundError, SessionFactory

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "asherah-metastore-jsonfile"
KEY = "22" * 32


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv that sees this environment's packages (asherah, pytest) through a .pth file
    and gets the example plugin installed into its own site-packages."""
    env_dir = tmp_path_factory.mktemp("fresh-venv")
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # addsitedir (not a bare path) so the outer env's own .pth files, such as the editable
    # install of asherah core, are processed too.
    outer = sysconfig.get_paths()["purelib"]
    Path(purelib, "_outer_env.pth").write_text(f"import site; site.addsitedir({outer!r})\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            str(EXAMPLE),
        ],
        check=True,
    )
    return python


def _run(
    python: Path, *args: str, env: dict[str, str], stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(python), *args], input=stdin, capture_output=True, env=env, timeout=120
    )


def test_not_installed_here_means_driver_not_found() -> None:
    config = {
        "ServiceName": "s",
        "ProductID": "p",
        "KMS": "static",
        "StaticMasterKeyHex": KEY,
        "Metastore": "jsonfile",
    }
    with pytest.raises(DriverNotFoundError, match="jsonfile"):
        SessionFactory(config)


def test_example_plugin_passes_the_contract_kit_in_a_fresh_venv(fresh_python: Path) -> None:
    result = _run(
        fresh_python,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "--rootdir",
        str(EXAMPLE),
        "-c",
        os.devnull,
        str(EXAMPLE / "tests"),
        env={**os.environ},
    )
    output = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, output
    assert " passed" in output
    assert "failed" not in output


def test_example_plugin_selected_from_toml_round_trips_through_the_cli(
    fresh_python: Path, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.jsonl"
    audit = tmp_path / "audit.jsonl"
    config = tmp_path / "asherah.toml"
    config.write_text(
        'service_name = "tmpl"\nproduct_id = "prod"\n'
        f'[kms]\ntype = "static"\nmaster_key_hex = "{KEY}"\n'
        f'[metastore]\ntype = "jsonfile"\npath = "{keys}"\n'
    )
    env = {**os.environ, "ASHERAH_CONFIG": str(config), "ASHERAH_AUDIT_FILE": str(audit)}
    encrypted = _run(
        fresh_python,
        "-m",
        "asherah",
        "encrypt",
        "-p",
        "tenant-1",
        env=env,
        stdin=b"through a third-party driver",
    )
    assert encrypted.returncode == 0, encrypted.stderr.decode()
    record = json.loads(encrypted.stdout)
    assert record["Key"]["ParentKeyMeta"]["KeyId"] == "_IK_tenant-1_tmpl_prod"
    decrypted = _run(
        fresh_python, "-m", "asherah", "decrypt", "-p", "tenant-1", env=env, stdin=encrypted.stdout
    )
    assert decrypted.returncode == 0, decrypted.stderr.decode()
    assert decrypted.stdout == b"through a third-party driver"
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    assert {"event": "created", "type": "intermediate", "id": "_IK_tenant-1_tmpl_prod"} in [
        {k: e[k] for k in ("event", "type", "id")} for e in events
    ]
    assert all(KEY not in line for line in audit.read_text().splitlines())
    listed = _run(fresh_python, "-m", "asherah", "keys", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr.decode()
    ids = {json.loads(line)["id"] for line in listed.stdout.decode().splitlines()}
    assert ids == {"_SK_tmpl_prod", "_IK_tenant-1_tmpl_prod"}


def test_example_plugin_option_typo_is_a_clear_error(fresh_python: Path, tmp_path: Path) -> None:
    config = tmp_path / "asherah.toml"
    config.write_text(
        'service_name = "tmpl"\nproduct_id = "prod"\n'
        f'[kms]\ntype = "static"\nmaster_key_hex = "{KEY}"\n'
        '[metastore]\ntype = "jsonfile"\npaht = "/tmp/x"\n'
    )
    result = _run(
        fresh_python,
        "-m",
        "asherah",
        "encrypt",
        "-p",
        "x",
        env={**os.environ, "ASHERAH_CONFIG": str(config)},
        stdin=b"x",
    )
    assert result.returncode == 1
    err = result.stderr.decode().strip().splitlines()
    assert err[-1].startswith("Error: ConfigError: jsonfile driver options")
    assert "'paht'" in err[-1]
    assert "Traceback" not in result.stderr.decode()
    assert issubclass(DriverNotFoundError, ConfigError)


@pytest.fixture
def cli_env(fresh_python: Path, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "asherah.toml"
    config.write_text(
        'service_name = "cli"\nproduct_id = "prod"\n'
        f'[kms]\ntype = "static"\nmaster_key_hex = "{KEY}"\n'
        f'[metastore]\ntype = "jsonfile"\npath = "{tmp_path / "keys.jsonl"}"\n'
    )
    return {**os.environ, "ASHERAH_CONFIG": str(config)}


def _one_line_error(result: subprocess.CompletedProcess[bytes]) -> str:
    err = result.stderr.decode()
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_cli_bad_input_gives_one_line_and_exit_1(
    fresh_python: Path, cli_env: dict[str, str]
) -> None:
    record = _run(fresh_python, "-m", "asherah", "encrypt", "-p", "a", env=cli_env, stdin=b"x")
    assert record.returncode == 0
    wrong = _run(
        fresh_python, "-m", "asherah", "decrypt", "-p", "b", env=cli_env, stdin=record.stdout
    )
    assert wrong.returncode == 1
    assert _one_line_error(wrong).startswith("Error: DecryptionError: ")
    garbage = _run(
        fresh_python, "-m", "asherah", "decrypt", "-p", "a", env=cli_env, stdin=b"{not json"
    )
    assert garbage.returncode == 1
    assert "DecryptionError" in _one_line_error(garbage)
    usage = _run(fresh_python, "-m", "asherah", "encrypt", env=cli_env)
    assert usage.returncode == 2
    assert "--partition" in usage.stderr.decode()


def test_cli_config_show_masks_secrets_and_names_providers(
    fresh_python: Path, cli_env: dict[str, str]
) -> None:
    result = _run(fresh_python, "-m", "asherah", "config", "show", env=cli_env)
    assert result.returncode == 0, result.stderr.decode()
    shown = json.loads(result.stdout)
    assert KEY not in result.stdout.decode()
    assert shown["kms"]["options"]["master_key_hex"] == "**********"
    assert shown["kms"]["distribution"].startswith("asherah ")
    assert shown["metastore"]["distribution"].startswith("asherah-metastore-jsonfile ")


def test_cli_revoke_is_a_dry_run_until_yes_and_rotates(
    fresh_python: Path, cli_env: dict[str, str]
) -> None:
    first = _run(fresh_python, "-m", "asherah", "encrypt", "-p", "r", env=cli_env, stdin=b"1")
    old_ik = json.loads(first.stdout)["Key"]["ParentKeyMeta"]
    dry = _run(fresh_python, "-m", "asherah", "keys", "revoke", "-p", "r", env=cli_env)
    assert dry.returncode == 0
    assert b"dry run" in dry.stdout
    listed = _run(fresh_python, "-m", "asherah", "keys", "list", "-p", "r", "--json", env=cli_env)
    assert [json.loads(x)["revoked"] for x in listed.stdout.decode().splitlines()] == [False]
    done = _run(fresh_python, "-m", "asherah", "keys", "revoke", "-p", "r", "--yes", env=cli_env)
    assert done.returncode == 0, done.stderr.decode()
    listed = _run(fresh_python, "-m", "asherah", "keys", "list", "-p", "r", "--json", env=cli_env)
    assert [json.loads(x)["revoked"] for x in listed.stdout.decode().splitlines()] == [True]
    second = _run(fresh_python, "-m", "asherah", "encrypt", "-p", "r", env=cli_env, stdin=b"2")
    new_ik = json.loads(second.stdout)["Key"]["ParentKeyMeta"]
    assert new_ik["KeyId"] == old_ik["KeyId"]
    assert new_ik["Created"] > old_ik["Created"]
    old = _run(fresh_python, "-m", "asherah", "decrypt", "-p", "r", env=cli_env, stdin=first.stdout)
    assert old.stdout == b"1"


def test_cli_doctor_reports_and_fails_with_the_reason(
    fresh_python: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    ok = _run(fresh_python, "-m", "asherah", "doctor", env=cli_env)
    assert ok.returncode == 0, ok.stdout.decode() + ok.stderr.decode()
    assert ok.stdout.decode().count("ok    ") == 4
    wrong_key = {**cli_env, "ASHERAH_KMS__MASTER_KEY_HEX": "33" * 32}
    bad = _run(fresh_python, "-m", "asherah", "doctor", env=wrong_key)
    assert bad.returncode == 1
    assert "FAIL" in bad.stdout.decode()
    assert "KmsError" in bad.stdout.decode()
    assert "33" * 32 not in bad.stdout.decode() + bad.stderr.decode()
