"""Configuration from files, ASHERAH_* variables and arguments, in the documented precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from asherah import ConfigError, SessionFactory, load_config

KEY = "22" * 32

TOML = f"""
service_name = "file-service"
product_id = "file-product"

[kms]
type = "static"
master_key_hex = "{KEY}"

[metastore]
type = "memory"

[policy]
expire_after = 3600
check_interval = 600
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ASHERAH_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _write(tmp_path: Path, text: str = TOML, name: str = "asherah.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_file_sections_become_drivers_options_and_policy(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path))
    assert (config.service_name, config.product_id) == ("file-service", "file-product")
    assert (config.kms, config.metastore) == ("static", "memory")
    assert config.kms_options == {"master_key_hex": KEY}
    assert (config.expire_after_s, config.check_interval_s) == (3600, 600)
    with SessionFactory(config) as factory:
        session = factory.get_session("p")
        assert session.decrypt_bytes(session.encrypt_bytes(b"from file")) == b"from file"


def test_default_file_in_the_working_directory(tmp_path: Path) -> None:
    _write(tmp_path)
    assert load_config().service_name == "file-service"


def test_asherah_config_env_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, name="custom.toml")
    monkeypatch.setenv("ASHERAH_CONFIG", str(path))
    assert load_config().product_id == "file-product"


def test_precedence_arguments_over_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path)
    monkeypatch.setenv("ASHERAH_PRODUCT_ID", "env-product")
    monkeypatch.setenv("ASHERAH_SERVICE_NAME", "env-service")
    monkeypatch.setenv("ASHERAH_POLICY__EXPIRE_AFTER", "120")
    monkeypatch.setenv("ASHERAH_KMS__MASTER_KEY_HEX", "33" * 32)
    config = load_config(path, service_name="arg-service")
    assert config.service_name == "arg-service"
    assert config.product_id == "env-product"
    assert config.expire_after_s == 120
    assert config.check_interval_s == 600  # untouched file value survives the deep merge
    assert config.kms_options == {"master_key_hex": "33" * 32}
    assert config.kms == "static"


def test_env_alone_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASHERAH_SERVICE_NAME", "svc")
    monkeypatch.setenv("ASHERAH_PRODUCT_ID", "prod")
    monkeypatch.setenv("ASHERAH_KMS", "static")
    monkeypatch.setenv("ASHERAH_METASTORE", "memory")
    monkeypatch.setenv("STATIC_MASTER_KEY_HEX", KEY)
    with SessionFactory.from_file() as factory:
        assert factory.config.kms == "static"
        assert factory.config.metastore == "memory"


def test_unknown_key_in_the_file_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "expire_afer = 5\n" + TOML)
    with pytest.raises(ConfigError, match="unknown configuration key 'expire_afer'"):
        load_config(path)
    bad_policy = TOML.replace("check_interval = 600", "check_intreval = 600")
    with pytest.raises(ConfigError, match=r"unknown configuration key 'policy\.check_intreval'"):
        load_config(_write(tmp_path, bad_policy))


def test_driver_option_typo_fails_before_connecting(tmp_path: Path) -> None:
    path = _write(tmp_path, TOML.replace("master_key_hex", "master_kye_hex"))
    with pytest.raises(ConfigError, match=r"static driver options.*'master_kye_hex'"):
        SessionFactory.from_file(path)


def test_missing_identity_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="service_name is required"):
        load_config(_write(tmp_path, "[kms]\ntype = 'static'\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_malformed_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(_write(tmp_path, "service_name = \n"))


def test_yaml_file(tmp_path: Path) -> None:
    yaml_text = (
        "service_name: y-service\nproduct_id: y-product\n"
        f"kms:\n  type: static\n  master_key_hex: '{KEY}'\nmetastore: memory\n"
    )
    config = load_config(_write(tmp_path, yaml_text, "asherah.yaml"))
    assert (config.service_name, config.metastore, config.kms) == ("y-service", "memory", "static")


def test_secrets_never_in_repr(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path))
    assert KEY not in repr(config)
    assert KEY not in str(config)
    with SessionFactory(config) as factory:
        assert KEY not in repr(factory)
        assert KEY not in repr(factory.kms)
