"""Fixtures: one moto_server for the whole run, one KMS key (with an alias) per region in it.

Tests share the server and its keys; each test that needs other state (more keys, secrets)
creates its own under fresh names, so no test depends on another's leftovers.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# This directory, for ``awskms_testlib`` (the repo root, for ``testsupport``, comes from the
# root pytest config).
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from awskms_testlib import (  # noqa: E402
    ACCESS_KEY_ID,
    ALIAS,
    REGIONS,
    SECRET_ACCESS_KEY,
    Key,
    build,
    create_key,
)

from asherah_kms_aws import AwsKeyManagementService  # noqa: E402
from testsupport.aws_env import isolate  # noqa: E402
from testsupport.moto import MotoServer  # noqa: E402


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and no ambient AWS settings, so every test says what it uses."""
    isolate(monkeypatch, ACCESS_KEY_ID, SECRET_ACCESS_KEY)


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def keys(moto: MotoServer) -> dict[str, Key]:
    """One key per region, each with the alias ``alias/asherah-test``."""
    return {region: create_key(moto.endpoint, region, ALIAS) for region in REGIONS}


@pytest.fixture(scope="session")
def region_map(keys: dict[str, Key]) -> dict[str, str]:
    return {region: key.arn for region, key in keys.items()}


@pytest.fixture
def kms(moto: MotoServer, region_map: dict[str, str]) -> Iterator[AwsKeyManagementService]:
    driver = build(moto, region_map)
    yield driver
    driver.close()
