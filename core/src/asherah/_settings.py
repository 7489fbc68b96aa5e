"""Configuration from files and the environment, with one written-down precedence.

Highest first:

1. explicit arguments (``load_config(**overrides)``, CLI options);
2. ``ASHERAH_*`` environment variables (``ASHERAH_SERVICE_NAME``, ``ASHERAH_KMS=aws`` or
   ``ASHERAH_KMS__TYPE``, ``ASHERAH_KMS__<OPTION>``, ``ASHERAH_METASTORE__URL``,
   ``ASHERAH_POLICY__EXPIRE_AFTER``, ...; ``__`` separates a section from its key);
3. the config file: ``--config`` / ``load_config(config_file=...)``, else ``ASHERAH_CONFIG``,
   else ``./asherah.toml`` when it exists. TOML always; YAML (``.yaml``/``.yml``) with the
   ``asherah[yaml]`` extra.

Sections ``[kms]`` and ``[metastore]`` carry ``type = "<driver>"`` plus that driver's options;
``[policy]`` carries expiry, check interval and cache settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from asherah._config import Config, describe_validation_error, parse_config
from asherah._errors import ConfigError

DEFAULT_CONFIG_FILE = "asherah.toml"
CONFIG_ENV = "ASHERAH_CONFIG"


class DriverSection(BaseModel):
    """``type`` names the driver; every other key is that driver's option."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class PolicySection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    expire_after: int | None = None
    check_interval: int | None = None
    create_date_precision: int | None = None
    deny_revoked_on_decrypt: bool | None = None
    session_cache_max_size: int | None = None
    session_cache_duration: int | None = None
    enable_session_caching: bool | None = None


class _FileSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ASHERAH_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    service_name: str | None = None
    product_id: str | None = None
    region_suffix: str | None = None
    config_drift_force_run: bool | None = None
    config_drift_force_update: bool | None = None
    kms: DriverSection | None = None
    metastore: DriverSection | None = None
    policy: PolicySection | None = None

    #: The config file, read as the lowest-precedence source (set on a subclass per file).
    _config_file: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if cls._config_file is None:
            return (init_settings, env_settings)
        return (init_settings, env_settings, _file_source(settings_cls, cls._config_file))


def _settings_class(path: Path | None) -> type[_FileSettings]:
    """The settings class reading ``path`` as its lowest-precedence source."""
    if path is None:
        return _FileSettings

    class _WithFile(_FileSettings):
        _config_file: ClassVar[Path | None] = path

    return _WithFile


def _file_source(settings_cls: type[BaseSettings], path: Path) -> PydanticBaseSettingsSource:
    if path.suffix.lower() in {".yaml", ".yml"}:
        try:
            import yaml  # type: ignore[import-untyped]  # noqa: F401 - fail early, with a hint
            from pydantic_settings import YamlConfigSettingsSource
        except ImportError:
            raise ConfigError(
                f"{path} is YAML; install YAML support with: pip install 'asherah[yaml]'"
            ) from None
        return YamlConfigSettingsSource(settings_cls, yaml_file=path)
    return TomlConfigSettingsSource(settings_cls, toml_file=path)


def resolve_config_file(config_file: str | os.PathLike[str] | None) -> Path | None:
    """The file to read: the explicit one, else ``ASHERAH_CONFIG``, else ``./asherah.toml``."""
    if config_file is not None:
        path = Path(config_file)
    elif os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV])
    else:
        default = Path(DEFAULT_CONFIG_FILE)
        return default if default.is_file() else None
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    return path


def load_config(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Config:
    """Build a :class:`Config` from arguments, ``ASHERAH_*`` variables and the config file."""
    path = resolve_config_file(config_file)
    settings_class = _settings_class(path)
    try:
        settings = settings_class(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        where = f" (file {path})" if path else ""
        raise ConfigError(describe_validation_error(exc) + where) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    if not _ok(settings):
        _missing(settings)
    return parse_config(_flatten(settings))


def _flatten(settings: _FileSettings) -> dict[str, Any]:
    out: dict[str, Any] = {
        "service_name": settings.service_name,
        "product_id": settings.product_id,
    }
    for name in ("region_suffix", "config_drift_force_run", "config_drift_force_update"):
        value = getattr(settings, name)
        if value is not None:
            out[name] = value
    if settings.kms is not None:
        out["kms"] = settings.kms.type
        out["kms_options"] = settings.kms.options()
    if settings.metastore is not None:
        out["metastore"] = settings.metastore.type
        out["metastore_options"] = settings.metastore.options()
    if settings.policy is not None:
        out.update(settings.policy.model_dump(exclude_none=True))
    return {k: v for k, v in out.items() if v is not None}


def _ok(settings: _FileSettings) -> bool:
    return bool(settings.service_name and settings.product_id)


def _missing(settings: _FileSettings) -> None:
    missing = [n for n in ("service_name", "product_id") if not getattr(settings, n)]
    raise ConfigError(
        "invalid configuration: "
        + "; ".join(
            f"{n} is required (set it in the config file or ASHERAH_{n.upper()})" for n in missing
        )
    )
