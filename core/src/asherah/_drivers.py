"""The one driver-loading wrapper: config name -> validated options -> constructed driver.

stevedore finds the entry point named in config (group ``asherah.kms`` or
``asherah.metastore``); every failure becomes one of our errors with a hint for the fix.
"""

from __future__ import annotations

import importlib.metadata
import sys
from typing import Any, cast

from pydantic import BaseModel, ValidationError
from stevedore import DriverManager
from stevedore.exception import MultipleMatches, NoMatches
from stevedore.extension import error_on_conflict

from asherah._config import Config, describe_validation_error
from asherah._driver_context import DriverContext
from asherah._errors import AsherahError, ConfigError, DriverLoadError, DriverNotFoundError
from asherah._memo import Memo, items_key
from asherah.kms._base import KeyManagementService
from asherah.metastore._base import Metastore

KMS_GROUP = "asherah.kms"
METASTORE_GROUP = "asherah.metastore"

#: Canonical names that select one of our drivers under another name.
ALIASES: dict[str, dict[str, str]] = {
    METASTORE_GROUP: {
        "rdbms": "sql",
        "sqlite": "sql",
        "test-debug-memory": "memory",
        "test-debug-sqlite": "sql",
        "mysql": "sql",
        "postgres": "sql",
        "postgresql": "sql",
    },
    KMS_GROUP: {"test-debug-static": "static", "vault-transit": "vault"},
}

#: Which ``pip install 'asherah[extra]'`` provides each known driver.
INSTALL_EXTRAS: dict[str, dict[str, str]] = {
    METASTORE_GROUP: {"sql": "sqlite", "dynamodb": "dynamodb"},
    KMS_GROUP: {"aws": "aws", "secrets-manager": "aws", "vault": "vault"},
}

_SQL_EXTRA_BY_ALIAS = {
    "postgres": "postgres",
    "postgresql": "postgres",
    "mysql": "mysql",
    "rdbms": "postgres,mysql",
}

# Abstract bases passed as values: mypy rejects them as type[T] arguments (type-abstract).
_KMS_BASE: type[Any] = KeyManagementService
_METASTORE_BASE: type[Any] = Metastore


def canonical_name(group: str, name: str) -> str:
    """The entry-point name a config value selects (aliases resolved, lower-cased)."""
    lowered = name.strip().lower()
    return ALIASES.get(group, {}).get(lowered, lowered)


def load_kms(config: Config) -> KeyManagementService:
    if not config.kms:
        raise ConfigError("KMS is required (for example KMS = 'static' or 'aws')")
    kms: KeyManagementService = _load(KMS_GROUP, config.kms, config.kms_options, config, _KMS_BASE)
    return kms


def load_metastore(config: Config) -> Metastore:
    if not config.metastore:
        raise ConfigError("Metastore is required (for example Metastore = 'memory' or 'sql')")
    metastore: Metastore = _load(
        METASTORE_GROUP, config.metastore, config.metastore_options, config, _METASTORE_BASE
    )
    return metastore


def driver_class(group: str, name: str) -> type[Any]:
    """Import the class behind a driver name, raising our errors for missing or clashing ones.

    A class found once is remembered per ``sys.path`` (a stevedore look-up costs tens of
    microseconds, several times per factory); failures are not, so installing later works.
    """
    entry = canonical_name(group, name)
    key = (group, entry, tuple(sys.path))
    found = _FOUND.get(key)
    if found is None:
        found = _find(group, entry, name)
        if len(_FOUND) >= _FOUND_MAX:
            _FOUND.clear()
        _FOUND[key] = found
    return found


_FOUND: dict[tuple[str, str, tuple[str, ...]], type[Any]] = {}
_FOUND_MAX = 64


def _find(group: str, entry: str, name: str) -> type[Any]:
    try:
        manager = DriverManager(
            namespace=group,
            name=entry,
            invoke_on_load=False,
            on_load_failure_callback=_reraise,
            on_missing_entrypoints_callback=None,
            conflict_resolver=error_on_conflict,
        )
    except NoMatches:
        raise DriverNotFoundError(_not_found_message(group, name, entry)) from None
    except MultipleMatches:
        providers = sorted(_providers(group, entry))
        raise DriverLoadError(
            f"{group} driver {entry!r} is provided by more than one distribution "
            f"({', '.join(providers)}); uninstall all but one"
        ) from None
    except _EntryPointImportError as exc:
        raise DriverLoadError(f"{group} driver {entry!r} failed to import: {exc.cause!r}") from (
            exc.cause
        )
    driver = cast("type[Any]", manager.driver)
    return driver


def _load(group: str, name: str, section: dict[str, Any], config: Config, base: type[Any]) -> Any:
    cls = driver_class(group, name)
    entry = canonical_name(group, name)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise DriverLoadError(
            f"{group} driver {entry!r} ({cls!r}) does not implement {base.__name__}"
        )
    options = validate_options(cls, entry, section, config)
    context = DriverContext(config.service_name, config.product_id, config)
    try:
        driver = cls.from_options(options, context)
    except AsherahError:
        raise
    except Exception as exc:
        raise DriverLoadError(f"{group} driver {entry!r} could not be constructed: {exc}") from exc
    return driver


def validate_options(
    cls: type[Any], entry: str, section: dict[str, Any], config: Config
) -> BaseModel:
    """Merge canonical flat keys with the driver's own section and validate them."""
    model: type[BaseModel] = cls.Options
    raw = {**cls.options_from_config(config), **{k: v for k, v in section.items() if k != "type"}}
    # A frozen options model validated from the same values is the same model (validators
    # must be pure: drivers read files and the environment in ``from_options``).
    key = items_key(raw) if model.model_config.get("frozen") else None
    return _validated.get(
        None if key is None else (model, key), lambda: _validate(model, entry, raw)
    )


def _validate(model: type[BaseModel], entry: str, raw: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{entry} driver options: {describe_validation_error(exc)}") from None


_validated = Memo()


class _EntryPointImportError(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _reraise(manager: Any, entrypoint: Any, exc: BaseException) -> None:
    raise _EntryPointImportError(exc)


def _providers(group: str, name: str) -> list[str]:
    found = []
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == group and ep.name == name:
                found.append(f"{dist.metadata['Name']} -> {ep.value}")
    return found


def _not_found_message(group: str, name: str, entry: str) -> str:
    kind = {KMS_GROUP: "KMS", METASTORE_GROUP: "metastore"}.get(group, group)
    extra = INSTALL_EXTRAS.get(group, {}).get(entry)
    lowered = name.strip().lower()
    if entry == "sql" and lowered in _SQL_EXTRA_BY_ALIAS:
        extra = _SQL_EXTRA_BY_ALIAS[lowered]
    hint = (
        f"; install it with: pip install 'asherah[{extra}]'"
        if extra
        else "; is the plugin distribution that provides it installed?"
    )
    return f"no {kind} driver named {name!r} is installed (entry-point group {group}){hint}"
