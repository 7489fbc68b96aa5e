"""Constants and helpers shared by this plugin's test modules (imported, not a conftest)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from asherah_kms_aws import AwsKeyManagementService
from testsupport import aws_env
from testsupport.moto import MotoServer

#: Two regions, one independent key each (moto's multi-region replicas do not decrypt across
#: regions, and neither does the canonical envelope need them).
PREFERRED = "us-west-2"
OTHER = "us-east-1"
REGIONS = (PREFERRED, OTHER)
ALIAS = "alias/asherah-test"
#: Distinctive fake credentials: tests assert they never appear in errors or reprs.
ACCESS_KEY_ID = "AKIAASHERAHKMSTEST01"
SECRET_ACCESS_KEY = "asherah-kms-test-secret-0123456789SECRET"
MASTER_KEY_HEX = "22" * 32


@dataclass(frozen=True)
class Key:
    region: str
    arn: str
    key_id: str

    @property
    def alias_arn(self) -> str:
        return self.arn.split(":key/")[0] + ":" + ALIAS


def raw_client(endpoint: str, service: str, region: str) -> Any:
    """A plain boto3 client with explicit credentials, for setting up and checking behind the
    driver's back."""
    return aws_env.local_client(service, region, endpoint, ACCESS_KEY_ID, SECRET_ACCESS_KEY)


def build(moto: MotoServer, region_map: dict[str, str], **options: Any) -> AwsKeyManagementService:
    """A multi-region driver on moto (``preferred_region`` defaults to :data:`PREFERRED`)."""
    return AwsKeyManagementService.build(
        region_map=region_map,
        preferred_region=options.pop("preferred_region", PREFERRED),
        endpoint=moto.endpoint,
        **options,
    )


def encrypt_once(
    driver: AwsKeyManagementService, system_key: bytes, caplog: pytest.LogCaptureFixture
) -> bytes:
    """Seal ``system_key`` with a driver built for this one call, capturing the driver's
    warnings; the driver is closed after, whatever happens."""
    try:
        with caplog.at_level(logging.WARNING, logger="asherah.kms.aws"):
            return driver.encrypt_key(system_key)
    finally:
        driver.close()


def create_key(endpoint: str, region: str, alias: str | None = None) -> Key:
    kms = raw_client(endpoint, "kms", region)
    meta = kms.create_key(Description=f"asherah test {region}")["KeyMetadata"]
    if alias:
        kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
    return Key(region, meta["Arn"], meta["KeyId"])


class CallLog:
    """Records which region served each KMS operation, through botocore's own event hooks on
    clients the driver uses (the calls still go to the real server)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def attach(self, client: Any) -> Any:
        region = client.meta.region_name

        def record(model: Any, **_: Any) -> None:
            with self._lock:
                self.calls.append((model.name, region, threading.current_thread().name))

        client.meta.events.register("before-call.kms", record)
        return client

    def regions(self, operation: str) -> list[str]:
        return [region for op, region, _ in self.calls if op == operation]

    def threads(self, operation: str) -> list[str]:
        return [thread for op, _, thread in self.calls if op == operation]


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """An endpoint that accepts TCP connections and never answers (a hung service)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
