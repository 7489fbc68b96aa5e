"""A test process's AWS environment: fake credentials and none of the developer's own settings.

boto3 reads profiles, regions, endpoints and instance metadata from the environment and from
``~/.aws``; a test that forgot to say which it uses would otherwise pass or fail by machine.
"""

from __future__ import annotations

from typing import Any

import pytest

#: Cleared for every test: the ambient settings boto3 (and the drift guard) would pick up.
AMBIENT = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_KMS",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_SESSION_TOKEN",
    "ASHERAH_CONFIG_DRIFT_FORCE_RUN",
    "ASHERAH_CONFIG_DRIFT_FORCE_UPDATE",
)


def isolate(monkeypatch: pytest.MonkeyPatch, access_key_id: str, secret_access_key: str) -> None:
    """Clear :data:`AMBIENT`, set the fake credentials and keep boto3 off IMDS and ``~/.aws``."""
    for name in AMBIENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_access_key)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/asherah-test-aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/asherah-test-aws-credentials")


def local_client(
    service: str, region: str, endpoint: str, access_key_id: str, secret_access_key: str
) -> Any:
    """A boto3 client for ``service`` on a local ``endpoint`` with explicit credentials, so it
    works whatever the environment says (for setting up and checking behind a driver's back)."""
    import boto3  # imported here: only the callers that want a client need boto3

    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
    )
