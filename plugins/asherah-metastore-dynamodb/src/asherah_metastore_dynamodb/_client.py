"""Building the boto3 DynamoDB client the way the reference resolves region and endpoint."""

from __future__ import annotations

import os
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from asherah import ConfigError
from asherah_metastore_dynamodb._options import DynamoDBMetastoreOptions

#: Region prefix -> DNS suffix of that partition's endpoints (the reference's table).
_PARTITION_SUFFIXES = (
    ("cn-", "amazonaws.com.cn"),
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-iso-", "c2s.ic.gov"),
)


def regional_endpoint(region: str) -> str:
    """``https://dynamodb.{region}.{dns suffix}`` for the region's AWS partition."""
    suffix = next((s for prefix, s in _PARTITION_SUFFIXES if region.startswith(prefix)), None)
    return f"https://dynamodb.{region}.{suffix or 'amazonaws.com'}"


def resolve_endpoint(options: DynamoDBMetastoreOptions) -> str | None:
    """An explicit endpoint wins; two different region keys route to ``region``'s endpoint
    while signing for ``signing_region``; otherwise botocore decides (including the
    ``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL`` variables)."""
    if options.endpoint:
        return options.endpoint
    if options.region and options.signing_region and options.region != options.signing_region:
        return regional_endpoint(options.region)
    return None


def build_client(options: DynamoDBMetastoreOptions) -> Any:
    """A thread-safe low-level DynamoDB client; raises :class:`ConfigError` when no region
    resolves or the named profile does not exist."""
    try:
        session = boto3.session.Session(profile_name=options.profile_name)
    except botocore.exceptions.ProfileNotFound:
        raise ConfigError(
            f"DynamoDB metastore: AWS profile {options.profile_name!r} not found"
        ) from None
    # The AWS SDKs (and so the reference) read AWS_REGION before AWS_DEFAULT_REGION and the
    # profile; botocore reads only the latter two.
    region = options.sigv4_region or os.environ.get("AWS_REGION") or session.region_name
    if not region:
        raise ConfigError(
            "DynamoDB metastore: no AWS region resolved. "
            "Set AWS_REGION (or DynamoDBRegion) explicitly."
        )
    config = botocore.config.Config(
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        retries={"mode": options.retry_mode, "total_max_attempts": options.max_attempts},
        max_pool_connections=options.max_pool_connections,
        user_agent_extra="asherah-python",
    )
    try:
        return session.client(
            "dynamodb", region_name=region, endpoint_url=resolve_endpoint(options), config=config
        )
    except (botocore.exceptions.BotoCoreError, ValueError) as exc:
        raise ConfigError(
            f"DynamoDB metastore: cannot build the client: {type(exc).__name__}: {exc}"
        ) from exc
