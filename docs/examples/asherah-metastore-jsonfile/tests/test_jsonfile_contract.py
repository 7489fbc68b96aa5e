"""The example plugin passes asherah's contract kit, exactly as a third party would run it."""

from __future__ import annotations

from pathlib import Path

import pytest
from asherah_metastore_jsonfile import JsonFileMetastore

from asherah.testing import MetastoreContract, MetastoreFailureContract


class TestJsonFileMetastore(MetastoreContract, MetastoreFailureContract):
    @pytest.fixture
    def metastore(self, tmp_path: Path) -> JsonFileMetastore:
        return JsonFileMetastore(tmp_path / "keys.jsonl")

    @pytest.fixture
    def broken_metastore(self, tmp_path: Path) -> JsonFileMetastore:
        return JsonFileMetastore(tmp_path / "no-such-directory" / "keys.jsonl")
