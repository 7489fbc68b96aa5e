"""Opt-in pytest plugin for driver authors: ``pytest_plugins = ["asherah.testing.plugin"]``."""

from __future__ import annotations

import pytest

from asherah.kms._static import StaticKeyManagementService
from asherah.metastore._memory import InMemoryMetastore
from asherah.testing._counting import CountingKms, CountingMetastore

#: A fixed, public test master key (the ASCII text "thisIsAStaticMasterKeyForTesting").
TEST_MASTER_KEY_HEX = "746869734973415374617469634d61737465724b6579466f7254657374696e67"


@pytest.fixture
def asherah_static_kms() -> StaticKeyManagementService:
    """A static KMS on the public test master key."""
    return StaticKeyManagementService(bytes.fromhex(TEST_MASTER_KEY_HEX))


@pytest.fixture
def asherah_memory_metastore() -> InMemoryMetastore:
    return InMemoryMetastore()


@pytest.fixture
def asherah_counting_metastore(asherah_memory_metastore: InMemoryMetastore) -> CountingMetastore:
    """An in-memory metastore that counts its calls."""
    return CountingMetastore(asherah_memory_metastore)


@pytest.fixture
def asherah_counting_kms(asherah_static_kms: StaticKeyManagementService) -> CountingKms:
    """The static test KMS, counting its calls."""
    return CountingKms(asherah_static_kms)
