"""The contract kit, against OpenBao, with token auth and with AppRole auth."""

from __future__ import annotations

from typing import Any

import pytest

from asherah.testing import KmsContract, KmsFailureContract
from asherah_kms_vault import VaultTransitKms
from testsupport.openbao import free_port_pair


class TestTokenAuthContract(KmsContract, KmsFailureContract):
    @pytest.fixture
    def kms(self, token_kms: VaultTransitKms) -> VaultTransitKms:
        return token_kms

    @pytest.fixture
    def broken_kms(self, make_kms: Any, bao: Any) -> VaultTransitKms:
        """Nothing listens on the address."""
        kms: VaultTransitKms = make_kms(
            addr=f"http://127.0.0.1:{free_port_pair()}", token=bao.root_token
        )
        return kms


class TestAppRoleAuthContract(KmsContract, KmsFailureContract):
    @pytest.fixture
    def kms(self, approle_kms: VaultTransitKms) -> VaultTransitKms:
        return approle_kms

    @pytest.fixture
    def broken_kms(self, make_kms: Any, approle_options: dict[str, Any]) -> VaultTransitKms:
        """The role's policy does not cover this key name: Vault answers 403."""
        kms: VaultTransitKms = make_kms(transit_key="not-my-key", **approle_options)
        return kms
