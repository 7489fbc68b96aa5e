"""Driver options, and how the canonical flat config keys map onto them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


def _blank_is_unset(value: Any) -> Any:
    """A blank or empty text option counts as not set (an empty config value is "unset")."""
    if isinstance(value, str):
        value = value.strip()
    return value or None


class AwsClientOptions(BaseModel):
    """How the boto3 clients reach AWS; shared by both drivers.

    Credentials always come from the standard boto3 chain (environment, shared files, SSO,
    container and instance roles), or from ``profile_name``. ``endpoint`` overrides the service
    endpoint; without it botocore honours ``AWS_ENDPOINT_URL_KMS`` /
    ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` and ``AWS_ENDPOINT_URL`` (as the reference does).
    One call may take up to ``max_attempts`` x (``connect_timeout`` + ``read_timeout``) plus
    botocore's retry back-off before it fails with :class:`asherah.KmsError`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str | None = None
    profile_name: str | None = None
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=10.0, gt=0)
    #: Total attempts per call, the first one included (botocore's ``total_max_attempts``).
    max_attempts: int = Field(default=3, ge=1, le=20)
    #: botocore retry mode; throttling and transient network errors are retried in all modes.
    retry_mode: Literal["standard", "adaptive", "legacy"] = "standard"
    max_pool_connections: int = Field(default=10, ge=1)

    _empty_is_unset = field_validator("endpoint", "profile_name", mode="before")(_blank_is_unset)


class AwsKmsOptions(AwsClientOptions):
    """Options of the ``aws`` KMS (config-file section ``[kms]``).

    Multi-region: ``region_map`` (region -> key ARN, key id or alias in that region) and
    ``preferred_region`` (required with more than one region). Single region: ``key_id`` in
    ``region`` (default: ``AWS_REGION``, then ``AWS_DEFAULT_REGION`` and the profile, then the
    region inside ``key_id`` when it is an ARN). ``region_map`` wins when both are given, as in
    the reference. ``endpoints`` overrides the endpoint of single regions (VPC or FIPS
    endpoints); it wins over ``endpoint``.

    By default a region that cannot wrap a new system key's data key is left out of the
    envelope with a warning (the canonical behaviour); ``strict_regions`` makes system-key
    creation fail instead, so every envelope always opens in every configured region.
    """

    region_map: dict[str, str] | None = None
    preferred_region: str | None = None
    key_id: str | None = None
    region: str | None = None
    endpoints: dict[str, str] = Field(default_factory=dict)
    strict_regions: bool = False

    _empty_text_is_unset = field_validator("preferred_region", "key_id", "region", mode="before")(
        _blank_is_unset
    )


class SecretsManagerKmsOptions(AwsClientOptions):
    """Options of the ``secrets-manager`` KMS (config-file section ``[kms]``).

    ``secret_id`` is the secret's name or ARN; the secret holds the 32-byte master key as hex
    text (``SecretString``, optional ``0x``, whitespace ignored) or as raw bytes
    (``SecretBinary``). ``region`` defaults to the standard chain (``AWS_REGION``,
    ``AWS_DEFAULT_REGION``, the profile), then the region inside an ARN ``secret_id``.
    ``refresh_interval`` (seconds) re-reads the secret in the background: new system keys
    then use the new value, while keys sealed under the values seen before still open.
    """

    secret_id: str | None = None
    region: str | None = None
    version_stage: str | None = None
    refresh_interval: float | None = Field(default=None, gt=0)

    _empty_text_is_unset = field_validator("secret_id", "region", "version_stage", mode="before")(
        _blank_is_unset
    )


def aws_kms_options_from_config(config: Any) -> dict[str, Any]:
    """``RegionMap``, ``PreferredRegion``, ``KmsKeyId``, ``AwsProfileName``; the single-key
    region is ``DynamoDBSigningRegion`` or ``DynamoDBRegion``, as in the reference."""
    out = _set_in(
        config,
        ("region_map", "region_map"),
        ("preferred_region", "preferred_region"),
        ("kms_key_id", "key_id"),
        ("aws_profile_name", "profile_name"),
    )
    region = getattr(config, "dynamodb_signing_region", None) or getattr(
        config, "dynamodb_region", None
    )
    if region:
        out["region"] = region
    return out


def secrets_manager_options_from_config(config: Any) -> dict[str, Any]:
    """``SecretsManagerSecretId`` and ``AwsProfileName`` (the region comes from the chain)."""
    return _set_in(
        config, ("secrets_manager_secret_id", "secret_id"), ("aws_profile_name", "profile_name")
    )


def _set_in(config: Any, *fields: tuple[str, str]) -> dict[str, Any]:
    """``{option: value}`` for each ``(config field, option)`` whose field is set in ``config``."""
    out: dict[str, Any] = {}
    for field, option in fields:
        value = getattr(config, field, None)
        if value is not None:
            out[option] = value
    return out
