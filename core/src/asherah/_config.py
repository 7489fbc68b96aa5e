"""The configuration model.

One pydantic model accepts three spellings of the same settings: snake_case field names, the
canonical PascalCase keys of the PyPI ``asherah`` package (``ServiceName``, ``KMS``, ...), and
driver sections (``kms_options`` / ``metastore_options``). Unknown keys are a
:class:`ConfigError` naming the key, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from asherah._errors import ConfigError
from asherah._memo import Memo, items_key

DEFAULT_EXPIRE_AFTER_S = 90 * 24 * 3600
DEFAULT_CHECK_INTERVAL_S = 3600
DEFAULT_CREATE_DATE_PRECISION_S = 60
DEFAULT_SESSION_CACHE_MAX_SIZE = 1000
DEFAULT_SESSION_CACHE_DURATION_S = 7200
DEFAULT_KEY_CACHE_MAX_SIZE = 1000


def _alias(*names: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(*names))


class Config(BaseModel):
    """Everything a :class:`SessionFactory` needs. Secrets are ``SecretStr`` and never print."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    service_name: str = Field(validation_alias=AliasChoices("service_name", "ServiceName"))
    product_id: str = Field(validation_alias=AliasChoices("product_id", "ProductID"))
    # Required unless a driver instance is passed to SessionFactory directly.
    metastore: str | None = _alias("metastore", "Metastore")
    kms: str | None = _alias("kms", "KMS")

    # Driver options from config-file sections; validated by each driver's own model.
    kms_options: dict[str, Any] = Field(default_factory=dict)
    metastore_options: dict[str, Any] = Field(default_factory=dict)

    # Policy.
    expire_after: int | None = _alias("expire_after", "ExpireAfter")
    check_interval: int | None = _alias("check_interval", "CheckInterval")
    create_date_precision: int | None = _alias("create_date_precision", "CreateDatePrecision")
    deny_revoked_on_decrypt: bool = Field(
        default=False,
        validation_alias=AliasChoices("deny_revoked_on_decrypt", "DenyRevokedOnDecrypt"),
    )
    session_cache_max_size: int | None = _alias("session_cache_max_size", "SessionCacheMaxSize")
    session_cache_duration: int | None = _alias("session_cache_duration", "SessionCacheDuration")
    enable_session_caching: bool | None = _alias("enable_session_caching", "EnableSessionCaching")
    region_suffix: str | None = _alias("region_suffix", "RegionSuffix")
    session_cache_eviction_policy: str | None = _alias(
        "session_cache_eviction_policy", "SessionCacheEvictionPolicy"
    )
    intermediate_key_cache_max_size: int | None = _alias(
        "intermediate_key_cache_max_size", "IntermediateKeyCacheMaxSize"
    )
    intermediate_key_cache_eviction_policy: str | None = _alias(
        "intermediate_key_cache_eviction_policy", "IntermediateKeyCacheEvictionPolicy"
    )
    system_key_cache_max_size: int | None = _alias(
        "system_key_cache_max_size", "SystemKeyCacheMaxSize"
    )
    system_key_cache_eviction_policy: str | None = _alias(
        "system_key_cache_eviction_policy", "SystemKeyCacheEvictionPolicy"
    )
    shared_intermediate_key_cache: bool = Field(
        default=True,
        validation_alias=AliasChoices(
            "shared_intermediate_key_cache", "SharedIntermediateKeyCache"
        ),
    )
    cache_ttl_jitter: float = Field(default=0.1, ge=0.0, le=0.5)
    cache_key_schedules: bool = True
    async_max_workers: int = Field(default=8, ge=1)
    #: Free bytes glibc keeps at the top of its heaps (process-wide, raised only; 0 leaves
    #: glibc alone): large records then stop faulting pages in on every call. See _allocator.
    malloc_top_pad: int = Field(default=16 * 1024 * 1024, ge=0)

    # Secure memory (see docs/security.md).
    secure_memory: Literal["mlock", "encrypted", "none"] | None = None
    secure_memory_slab_slots: int | None = Field(default=None, ge=2)
    secure_memory_hot_cache_size: int | None = Field(default=None, ge=1)
    secure_memory_allow_fallback: bool = False
    secure_memory_protect_idle: bool = True

    # SQL metastore (canonical keys).
    connection_string: SecretStr | None = _alias("connection_string", "ConnectionString")
    sql_metastore_db_type: str | None = _alias("sql_metastore_db_type", "SQLMetastoreDBType")
    replica_read_consistency: str | None = _alias(
        "replica_read_consistency", "ReplicaReadConsistency"
    )
    pool_max_open: int | None = _alias("pool_max_open", "PoolMaxOpen")
    pool_max_idle: int | None = _alias("pool_max_idle", "PoolMaxIdle")
    pool_max_lifetime: int | None = _alias("pool_max_lifetime", "PoolMaxLifetime")
    pool_max_idle_time: int | None = _alias("pool_max_idle_time", "PoolMaxIdleTime")

    # DynamoDB metastore.
    dynamodb_endpoint: str | None = _alias("dynamodb_endpoint", "DynamoDBEndpoint")
    dynamodb_region: str | None = _alias("dynamodb_region", "DynamoDBRegion")
    dynamodb_signing_region: str | None = _alias("dynamodb_signing_region", "DynamoDBSigningRegion")
    dynamodb_table_name: str | None = _alias("dynamodb_table_name", "DynamoDBTableName")
    enable_region_suffix: bool | None = _alias("enable_region_suffix", "EnableRegionSuffix")

    # KMS drivers.
    static_master_key_hex: SecretStr | None = _alias("static_master_key_hex", "StaticMasterKeyHex")
    kms_key_id: str | None = _alias("kms_key_id", "KmsKeyId")
    region_map: dict[str, str] | None = _alias("region_map", "RegionMap")
    preferred_region: str | None = _alias("preferred_region", "PreferredRegion")
    aws_profile_name: str | None = _alias("aws_profile_name", "AwsProfileName")
    secrets_manager_secret_id: str | None = _alias(
        "secrets_manager_secret_id", "SecretsManagerSecretId"
    )
    vault_addr: str | None = _alias("vault_addr", "VaultAddr")
    vault_transit_key: str | None = _alias("vault_transit_key", "VaultTransitKey")
    vault_transit_mount: str | None = _alias("vault_transit_mount", "VaultTransitMount")
    vault_token: SecretStr | None = _alias("vault_token", "VaultToken")
    vault_auth_method: str | None = _alias("vault_auth_method", "VaultAuthMethod")
    vault_auth_role: str | None = _alias("vault_auth_role", "VaultAuthRole")
    vault_auth_mount: str | None = _alias("vault_auth_mount", "VaultAuthMount")
    vault_approle_role_id: str | None = _alias("vault_approle_role_id", "VaultApproleRoleId")
    vault_approle_secret_id: SecretStr | None = _alias(
        "vault_approle_secret_id", "VaultApproleSecretId"
    )
    vault_client_cert: str | None = _alias("vault_client_cert", "VaultClientCert")
    vault_client_key: str | None = _alias("vault_client_key", "VaultClientKey")
    vault_k8s_token_path: str | None = _alias("vault_k8s_token_path", "VaultK8sTokenPath")

    # Reference options accepted for compatibility (see docs/configuration.md for their effect).
    recovery_region_suffixes: list[str] | None = _alias(
        "recovery_region_suffixes", "RecoveryRegionSuffixes"
    )
    self_heal_recovered_keys: bool | None = _alias(
        "self_heal_recovered_keys", "SelfHealRecoveredKeys"
    )
    config_drift_force_run: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            "config_drift_force_run", "ConfigDriftForceRun", "ForceRunWithConfigDrift"
        ),
    )
    config_drift_force_update: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            "config_drift_force_update", "ConfigDriftForceUpdate", "ForceUpdateConfigDriftGuard"
        ),
    )
    verbose: bool | None = _alias("verbose", "Verbose")
    enable_canaries: bool | None = _alias("enable_canaries", "EnableCanaries")
    disable_zero_copy: bool | None = _alias("disable_zero_copy", "DisableZeroCopy")
    null_data_check: bool | None = _alias("null_data_check", "NullDataCheck")

    @field_validator("metastore", "kms")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("service_name", "product_id")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("expire_after", "check_interval")
    @classmethod
    def _positive(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise ValueError("must be a positive number of seconds")
        return value

    def __repr_args__(self) -> Any:
        # Only non-default values: a config repr in a log line should be short and secret-free.
        # Driver option values may be secrets (a key, a DSN with a password): names only.
        for name, value in super().__repr_args__():
            if name in ("kms_options", "metastore_options"):
                if value:
                    yield name, f"<options: {', '.join(sorted(value))}>"
            elif name is not None and value != type(self).model_fields[name].default:
                yield name, value

    # Resolved policy values.
    @property
    def expire_after_s(self) -> int:
        return self.expire_after or DEFAULT_EXPIRE_AFTER_S

    @property
    def check_interval_s(self) -> int:
        return self.check_interval or DEFAULT_CHECK_INTERVAL_S

    @property
    def create_date_precision_s(self) -> int:
        """Key ``Created`` precision: 60 s, or less when keys expire sooner (as the reference)."""
        precision = self.create_date_precision or DEFAULT_CREATE_DATE_PRECISION_S
        return max(1, min(precision, self.expire_after_s))


def parse_config(source: Config | Mapping[str, Any]) -> Config:
    """Turn a ``Config``, or a dict of snake_case or PascalCase keys, into a ``Config``."""
    if isinstance(source, Config):
        return source
    if not isinstance(source, Mapping):
        raise TypeError(f"config must be a Config or a dict, not {type(source).__name__}")
    # Config is frozen: the same flat dict (a re-created factory's) gives the same model.
    return _parsed.get(items_key(source), lambda: _validate(source))


def _validate(source: Mapping[str, Any]) -> Config:
    try:
        return Config.model_validate(dict(source))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


_parsed = Memo()


def describe_validation_error(exc: ValidationError) -> str:
    """One readable line per problem, naming the key; input values are left out (secrets)."""
    problems = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "config"
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown configuration key {key!r}")
        elif err["type"] == "missing":
            problems.append(f"{key} is required")
        else:
            problems.append(f"{key}: {err['msg']}")
    return "invalid configuration: " + "; ".join(problems)
