"""``SessionFactory.from_env()``: the environment variables PyPI ``asherah`` reads (§5.2)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from asherah._errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

_INT_VARS = {
    "EXPIRE_AFTER_SECS": "expire_after",
    "REVOKE_CHECK_INTERVAL_SECS": "check_interval",
    "CREATE_DATE_PRECISION_SECS": "create_date_precision",
    "SESSION_CACHE_MAX_SIZE": "session_cache_max_size",
    "SESSION_CACHE_DURATION_SECS": "session_cache_duration",
    "ASHERAH_POOL_MAX_IDLE": "pool_max_idle",
    "ASHERAH_POOL_MAX_LIFETIME": "pool_max_lifetime",
    "ASHERAH_POOL_MAX_IDLE_TIME": "pool_max_idle_time",
}

_STR_VARS = {
    "STATIC_MASTER_KEY_HEX": "static_master_key_hex",
    "KMS_KEY_ID": "kms_key_id",
    "PREFERRED_REGION": "preferred_region",
    "SECRETS_MANAGER_SECRET_ID": "secrets_manager_secret_id",
    "VAULT_ADDR": "vault_addr",
    "VAULT_TRANSIT_KEY": "vault_transit_key",
    "VAULT_TRANSIT_MOUNT": "vault_transit_mount",
    "REPLICA_READ_CONSISTENCY": "replica_read_consistency",
    "REGION_SUFFIX": "region_suffix",
}


def parse_bool(value: str) -> bool | None:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


def _is_int(raw: str) -> bool:
    """An ASCII decimal integer; anything else is ignored, as the reference ignores it
    (``str.isdigit`` alone also accepts digits such as "²" that ``int`` refuses)."""
    digits = raw[1:] if raw.startswith("-") else raw
    return digits.isascii() and digits.isdigit()


def config_from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A config dict (snake_case keys) built from the reference's environment variables."""
    env = os.environ if env is None else env
    kms = env.get("KMS", "").strip()
    if not kms:
        raise ConfigError(
            "KMS is required; set KMS=aws for production or KMS=test-debug-static for "
            "explicit test-only static KMS"
        )
    out: dict[str, Any] = {
        "service_name": env.get("SERVICE_NAME") or "service",
        "product_id": env.get("PRODUCT_ID") or "product",
        "kms": kms,
    }
    out.update(_metastore_from_env(env))
    if kms.lower() in ("aws", "secrets-manager") and env.get("AWS_REGION"):
        # The reference takes the single-key KMS and Secrets Manager region from AWS_REGION.
        out["kms_options"] = {"region": env["AWS_REGION"]}
    for var, field in _STR_VARS.items():
        if env.get(var):
            out[field] = env[var]
    for var, field in _INT_VARS.items():
        raw = env.get(var, "").strip()
        if _is_int(raw):
            out[field] = int(raw)
    pool_open = env.get("ASHERAH_POOL_MAX_OPEN") or env.get("ASHERAH_POOL_SIZE") or ""
    if pool_open.strip().isascii() and pool_open.strip().isdigit():
        out["pool_max_open"] = int(pool_open)
    if env.get("REGION_MAP"):
        try:
            out["region_map"] = json.loads(env["REGION_MAP"])
        except ValueError:
            raise ConfigError("REGION_MAP must be a JSON object of region -> key ARN") from None
    if env.get("RECOVERY_REGION_SUFFIXES"):
        out["recovery_region_suffixes"] = [
            s.strip() for s in env["RECOVERY_REGION_SUFFIXES"].split(",") if s.strip()
        ]
    for var, field in (("SELF_HEAL_RECOVERED_KEYS", "self_heal_recovered_keys"),):
        if env.get(var) and parse_bool(env[var]) is not None:
            out[field] = parse_bool(env[var])
    return out


def _metastore_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    choice = env.get("Metastore", "").strip().lower()
    if choice == "sqlite" or env.get("SQLITE_PATH"):
        return {"metastore": "sqlite", "connection_string": env.get("SQLITE_PATH") or ":memory:"}
    if choice == "dynamodb" or env.get("DDB_TABLE"):
        out: dict[str, Any] = {"metastore": "dynamodb"}
        if env.get("DDB_TABLE"):
            out["dynamodb_table_name"] = env["DDB_TABLE"]
        if env.get("AWS_REGION"):
            out["dynamodb_region"] = env["AWS_REGION"]
        if env.get("AWS_ENDPOINT_URL"):
            out["dynamodb_endpoint"] = env["AWS_ENDPOINT_URL"]
        if env.get("DDB_REGION_SUFFIX"):
            out["enable_region_suffix"] = parse_bool(env["DDB_REGION_SUFFIX"]) or False
        return out
    if choice == "rdbms" or env.get("POSTGRES_URL"):
        url = env.get("POSTGRES_URL") or env.get("MYSQL_URL")
        if not url:
            raise ConfigError("Metastore=rdbms requires POSTGRES_URL or MYSQL_URL to be set")
        return {"metastore": "rdbms", "connection_string": url}
    if env.get("MYSQL_URL"):
        out = {"metastore": "rdbms", "connection_string": env["MYSQL_URL"]}
        tls = env.get("MYSQL_TLS_MODE", "").strip().lower()
        if tls:
            # The reference: "false" = no TLS, "skip-verify" = TLS without verification,
            # anything else = verified TLS.
            mode = {"false": "disable", "skip-verify": "require"}.get(tls, "verify-full")
            out["metastore_options"] = {"tls_mode": mode}
        return out
    return {"metastore": "memory"}
