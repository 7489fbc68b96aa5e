"""Driver selection through entry points and every failure path of the loading wrapper."""

from __future__ import annotations

from pathlib import Path

import pytest

from asherah import (
    ConfigError,
    DriverLoadError,
    DriverNotFoundError,
    InMemoryMetastore,
    SessionFactory,
    StaticKeyManagementService,
    _drivers,
)
from testsupport.fake_dists import on_sys_path, write_distribution

KEY = "22" * 32

DRIVER_MODULE = """
from asherah.kms import KeyManagementService, StaticKeyManagementService
from asherah.metastore import InMemoryMetastore
from pydantic import BaseModel, ConfigDict


class FancyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    level: int = 1


class FancyMetastore(InMemoryMetastore):
    Options = FancyOptions

    @classmethod
    def from_options(cls, options, context):
        instance = cls()
        instance.level = options.level
        instance.service = context.service_name
        return instance


class ExplodingMetastore(InMemoryMetastore):
    @classmethod
    def from_options(cls, options, context):
        raise RuntimeError("cannot reach the backend at fancy://host")


class OtherFancyMetastore(FancyMetastore):
    pass


class NotADriver:
    pass
"""


def _config(**extra: object) -> dict[str, object]:
    return {
        "ServiceName": "svc",
        "ProductID": "prod",
        "KMS": "static",
        "StaticMasterKeyHex": KEY,
        **extra,
    }


def test_builtin_drivers_are_selected_by_name() -> None:
    with SessionFactory(_config(Metastore="memory")) as factory:
        assert isinstance(factory.metastore, InMemoryMetastore)
        assert isinstance(factory.kms, StaticKeyManagementService)


@pytest.mark.parametrize(
    ("kms", "metastore"), [("test-debug-static", "test-debug-memory"), ("STATIC", "Memory")]
)
def test_canonical_aliases_and_case_select_builtin_drivers(kms: str, metastore: str) -> None:
    with SessionFactory(_config(KMS=kms, Metastore=metastore)) as factory:
        assert isinstance(factory.metastore, InMemoryMetastore)
        assert isinstance(factory.kms, StaticKeyManagementService)


def test_unknown_driver_is_not_found_with_a_hint() -> None:
    with pytest.raises(DriverNotFoundError, match="no metastore driver named 'nosuch'"):
        SessionFactory(_config(Metastore="nosuch"))


def test_known_but_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    extras = {**_drivers.INSTALL_EXTRAS[_drivers.KMS_GROUP], "fancy-kms": "fancy"}
    monkeypatch.setitem(_drivers.INSTALL_EXTRAS, _drivers.KMS_GROUP, extras)
    with pytest.raises(DriverNotFoundError, match=r"pip install 'asherah\[fancy\]'"):
        SessionFactory(_config(Metastore="memory", KMS="fancy-kms"))


def test_a_plugin_distribution_provides_a_driver_with_validated_options(tmp_path: Path) -> None:
    write_distribution(
        tmp_path,
        "asherah-fancy",
        {"asherah.metastore": {"fancy": "fancy_driver:FancyMetastore"}},
        {"fancy_driver": DRIVER_MODULE},
    )
    with on_sys_path(tmp_path):
        config = _config(Metastore="fancy", metastore_options={"level": 3})
        with SessionFactory(config) as factory:
            assert type(factory.metastore).__name__ == "FancyMetastore"
            assert factory.metastore.level == 3  # type: ignore[attr-defined]
            assert factory.metastore.service == "svc"  # type: ignore[attr-defined]
            record = factory.get_session("p").encrypt_bytes(b"x")
            assert factory.get_session("p").decrypt_bytes(record) == b"x"
        with pytest.raises(ConfigError, match="unknown configuration key 'levle'"):
            SessionFactory(_config(Metastore="fancy", metastore_options={"levle": 3}))


def test_two_distributions_claiming_one_name_is_an_error(tmp_path: Path) -> None:
    for dist, target in (
        ("asherah-fancy-a", "FancyMetastore"),
        ("asherah-fancy-b", "OtherFancyMetastore"),
    ):
        write_distribution(
            tmp_path / dist, dist, {"asherah.metastore": {"fancy": f"fancy_driver:{target}"}}
        )
    (tmp_path / "fancy_driver.py").write_text(DRIVER_MODULE)
    with (
        on_sys_path(tmp_path),
        on_sys_path(tmp_path / "asherah-fancy-a"),
        on_sys_path(tmp_path / "asherah-fancy-b"),
        pytest.raises(DriverLoadError, match="more than one distribution") as info,
    ):
        SessionFactory(_config(Metastore="fancy"))
    assert "asherah-fancy-a" in str(info.value)
    assert "asherah-fancy-b" in str(info.value)


def test_import_failure_is_driver_load_error(tmp_path: Path) -> None:
    write_distribution(
        tmp_path,
        "asherah-broken",
        {"asherah.metastore": {"broken": "no_such_module_anywhere:Driver"}},
    )
    with on_sys_path(tmp_path), pytest.raises(DriverLoadError, match="failed to import") as info:
        SessionFactory(_config(Metastore="broken"))
    assert isinstance(info.value.__cause__, ImportError)


def test_constructor_failure_is_driver_load_error_from_the_cause(tmp_path: Path) -> None:
    write_distribution(
        tmp_path,
        "asherah-exploding",
        {"asherah.metastore": {"exploding": "fancy_driver:ExplodingMetastore"}},
        {"fancy_driver": DRIVER_MODULE},
    )
    with (
        on_sys_path(tmp_path),
        pytest.raises(DriverLoadError, match="could not be constructed") as info,
    ):
        SessionFactory(_config(Metastore="exploding"))
    assert isinstance(info.value.__cause__, RuntimeError)


def test_an_entry_point_that_is_not_a_driver_is_rejected(tmp_path: Path) -> None:
    write_distribution(
        tmp_path,
        "asherah-wrong",
        {"asherah.kms": {"wrong": "fancy_driver:NotADriver"}},
        {"fancy_driver": DRIVER_MODULE},
    )
    with on_sys_path(tmp_path), pytest.raises(DriverLoadError, match="does not implement"):
        SessionFactory(_config(Metastore="memory", KMS="wrong"))


def test_static_kms_option_typo_and_bad_key_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown configuration key 'master_key_hx'"):
        SessionFactory(_config(Metastore="memory", kms_options={"master_key_hx": KEY}))
    with pytest.raises(ConfigError, match="invalid hex at position 0"):
        SessionFactory(_config(Metastore="memory", StaticMasterKeyHex="zz" * 32))
    with pytest.raises(ConfigError, match="invalid key size 16"):
        SessionFactory(_config(Metastore="memory", StaticMasterKeyHex="22" * 16))


def test_static_master_key_from_file_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "master.key"
    key_file.write_text(KEY + "\n")
    base = {"ServiceName": "svc", "ProductID": "prod", "KMS": "static", "Metastore": "memory"}
    with SessionFactory({**base, "kms_options": {"master_key_file": str(key_file)}}) as f:
        record = f.get_session("p").encrypt_bytes(b"file key")
        rows = f.metastore.rows()  # type: ignore[attr-defined]
    monkeypatch.setenv("STATIC_MASTER_KEY_HEX", KEY)
    shared = InMemoryMetastore()
    for key_id, created, row in rows:
        shared.store(key_id, created, row)
    with SessionFactory(base, metastore=shared) as from_env:
        assert from_env.get_session("p").decrypt_bytes(record) == b"file key"
    monkeypatch.delenv("STATIC_MASTER_KEY_HEX")
    with pytest.raises(ConfigError, match="required when KMS=static"):
        SessionFactory(base)


def test_a_found_driver_class_is_remembered_per_sys_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    real = _drivers.DriverManager

    def counting(*args: object, **kwargs: object) -> object:
        lookups.append(str(kwargs["name"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(_drivers, "DriverManager", counting)
    monkeypatch.setattr(_drivers, "_FOUND", {})
    assert _drivers.driver_class("asherah.metastore", "memory") is InMemoryMetastore
    assert _drivers.driver_class("asherah.metastore", "test-debug-memory") is InMemoryMetastore
    assert lookups == ["memory"]  # the alias resolves to the remembered entry
    with pytest.raises(DriverNotFoundError):
        _drivers.driver_class("asherah.metastore", "fancy")
    with pytest.raises(DriverNotFoundError):
        _drivers.driver_class("asherah.metastore", "fancy")
    assert lookups == ["memory", "fancy", "fancy"]  # failures are looked up every time
    write_distribution(
        tmp_path,
        "asherah-fancy",
        {"asherah.metastore": {"fancy": "fancy_driver:FancyMetastore"}},
        {"fancy_driver": DRIVER_MODULE},
    )
    with on_sys_path(tmp_path):  # installed later: found, on the new sys.path
        assert _drivers.driver_class("asherah.metastore", "fancy").__name__ == "FancyMetastore"
        assert _drivers.driver_class("asherah.metastore", "memory") is InMemoryMetastore
    assert lookups == ["memory", "fancy", "fancy", "fancy", "memory"]
