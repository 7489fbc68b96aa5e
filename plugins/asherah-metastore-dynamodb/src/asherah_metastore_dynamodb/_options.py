"""Driver options, and how the canonical flat config keys map onto them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from asherah import Config

DEFAULT_TABLE_NAME = "EncryptionKey"

#: Canonical ``Config`` field -> option name.
_FROM_CONFIG = {
    "dynamodb_endpoint": "endpoint",
    "dynamodb_region": "region",
    "dynamodb_signing_region": "signing_region",
    "dynamodb_table_name": "table_name",
    "enable_region_suffix": "enable_region_suffix",
    "aws_profile_name": "profile_name",
}


class DynamoDBMetastoreOptions(BaseModel):
    """Options of the ``dynamodb`` metastore (config-file section ``[metastore]``).

    ``region`` and ``signing_region`` are the canonical ``DynamoDBRegion`` and
    ``DynamoDBSigningRegion``: requests are signed for ``signing_region or region``; when both
    are set and differ (and no ``endpoint`` is given) requests go to ``region``'s endpoint.
    Without either, the standard AWS chain decides (``AWS_REGION``, ``AWS_DEFAULT_REGION``,
    the profile). Credentials always come from the standard boto3 chain or ``profile_name``.

    One call may take up to ``max_attempts`` x (``connect_timeout`` + ``read_timeout``) plus
    botocore's retry back-off before it fails with :class:`asherah.MetastoreError`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    table_name: str = DEFAULT_TABLE_NAME
    region: str | None = None
    signing_region: str | None = None
    endpoint: str | None = None
    enable_region_suffix: bool = False
    profile_name: str | None = None
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=10.0, gt=0)
    #: Total attempts per call, first one included (botocore's ``max_attempts``).
    max_attempts: int = Field(default=5, ge=1, le=20)
    #: botocore retry mode; ``adaptive`` also rate-limits the client after throttling.
    retry_mode: Literal["adaptive", "standard", "legacy"] = "adaptive"
    max_pool_connections: int = Field(default=10, ge=1)
    #: Create the table (on-demand) at start-up when it is missing.
    create_schema: bool = False
    #: How long :meth:`create_schema` waits for the table to become ACTIVE.
    schema_timeout: float = Field(default=300.0, gt=0)

    @field_validator("table_name", mode="before")
    @classmethod
    def _default_table(cls, value: Any) -> Any:
        # The reference treats an empty table name as the default one.
        return value or DEFAULT_TABLE_NAME

    @field_validator("region", "signing_region", "endpoint", "profile_name", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
        return value or None

    @property
    def sigv4_region(self) -> str | None:
        """The configured signing region (also the drift guard's ``region``)."""
        return self.signing_region or self.region


def options_from_config(config: Config) -> dict[str, Any]:
    """The options named by the canonical keys that are set in ``config``."""
    out: dict[str, Any] = {}
    for field, option in _FROM_CONFIG.items():
        value = getattr(config, field, None)
        if value is not None:
            out[option] = value
    return out
