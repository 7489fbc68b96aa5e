"""The built-in drivers pass the same contract kit third-party drivers use."""

from __future__ import annotations

import pytest

from asherah.kms import StaticKeyManagementService
from asherah.metastore import InMemoryMetastore
from asherah.testing import KmsContract, MetastoreContract


class TestInMemoryMetastoreContract(MetastoreContract):
    @pytest.fixture
    def metastore(self) -> InMemoryMetastore:
        return InMemoryMetastore()


class TestStaticKmsContract(KmsContract):
    @pytest.fixture
    def kms(self) -> StaticKeyManagementService:
        return StaticKeyManagementService(bytes(range(32)))
