"""Building boto3 clients: one session per driver, one client per region, made once."""

from __future__ import annotations

import os
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from asherah import ConfigError
from asherah_kms_aws._options import AwsClientOptions


def aws_session(profile_name: str | None, what: str) -> boto3.session.Session:
    """A boto3 session on the standard credential chain, or on a named profile."""
    try:
        return boto3.session.Session(profile_name=profile_name)
    except botocore.exceptions.ProfileNotFound:
        raise ConfigError(f"{what}: AWS profile {profile_name!r} not found") from None


def region_of_arn(arn: str) -> str | None:
    """The region field of an ARN (``arn:aws:kms:us-west-2:...``), else ``None``."""
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and parts[3]:
        return parts[3]
    return None


def resolve_region(
    session: boto3.session.Session, configured: str | None, arn: str | None = None
) -> str | None:
    """``configured``, else ``AWS_REGION`` (which the AWS SDKs, and so the reference, read
    first but botocore does not), else botocore's chain, else the region inside ``arn``."""
    return (
        configured
        or os.environ.get("AWS_REGION")
        or session.region_name
        or (region_of_arn(arn) if arn else None)
    )


def client_config(options: AwsClientOptions) -> botocore.config.Config:
    return botocore.config.Config(
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        retries={"mode": options.retry_mode, "total_max_attempts": options.max_attempts},
        max_pool_connections=options.max_pool_connections,
        user_agent_extra="asherah-python",
    )


def make_client(
    session: boto3.session.Session,
    service: str,
    region: str,
    endpoint: str | None,
    options: AwsClientOptions,
    what: str,
) -> Any:
    """A thread-safe low-level client; ``endpoint=None`` lets botocore apply
    ``AWS_ENDPOINT_URL_<SERVICE>`` / ``AWS_ENDPOINT_URL``."""
    try:
        return session.client(
            service, region_name=region, endpoint_url=endpoint, config=client_config(options)
        )
    except (botocore.exceptions.BotoCoreError, ValueError) as exc:
        raise ConfigError(
            f"{what}: cannot build the {service} client for {region}: {type(exc).__name__}: {exc}"
        ) from exc


def close_client(client: Any) -> None:
    """Close a botocore client's connection pool (botocore >= 1.29 has ``close``)."""
    close = getattr(client, "close", None)
    if callable(close):
        close()
