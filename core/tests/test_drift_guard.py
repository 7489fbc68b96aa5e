"""The config drift guard: first factory writes the snapshot row, later ones compare, and the
force-run / force-update overrides (config or environment) behave as the reference's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from asherah import (
    ConfigDriftError,
    EnvelopeKeyRecord,
    InMemoryMetastore,
    SessionFactory,
    StaticKeyManagementService,
)
from asherah._drift_guard import GUARD_CREATED, MISMATCH_MESSAGE, guard_id
from asherah.testing import CountingMetastore

from .conftest import KEY_HEX
from .conftest import static_config as config

pytestmark = pytest.mark.usefixtures("no_drift_overrides")

GUARD = guard_id("svc", "prod")


def stored_snapshot(memory: InMemoryMetastore) -> dict[str, Any]:
    record = memory.load(GUARD, GUARD_CREATED)
    assert record is not None
    snapshot: dict[str, Any] = json.loads(record.encrypted_key)
    return snapshot


@pytest.fixture
def guarded() -> InMemoryMetastore:
    """A metastore whose guard row was written by an unsuffixed factory."""
    memory = InMemoryMetastore()
    SessionFactory(config(), metastore=memory).close()
    assert stored_snapshot(memory)["effective_region_suffix"] is None
    return memory


def test_a_changed_region_suffix_is_refused_before_any_write(guarded: InMemoryMetastore) -> None:
    counting = CountingMetastore(guarded)
    with pytest.raises(ConfigDriftError) as caught:
        SessionFactory(config(RegionSuffix="us-west-2"), metastore=counting)
    assert str(caught.value) == MISMATCH_MESSAGE
    assert counting.writes == 0


def test_a_different_kms_identity_is_refused(guarded: InMemoryMetastore) -> None:
    class OtherKms(StaticKeyManagementService):
        def drift_identity(self) -> dict[str, Any]:
            return {"kind": "aws-kms-single", "key_id": "arn:example", "region": "us-west-2"}

    with pytest.raises(ConfigDriftError):
        SessionFactory(config(), metastore=guarded, kms=OtherKms(bytes.fromhex(KEY_HEX)))


def test_force_run_starts_without_rewriting(guarded: InMemoryMetastore) -> None:
    before = stored_snapshot(guarded)
    with SessionFactory(
        config(RegionSuffix="us-west-2", ConfigDriftForceRun=True), metastore=guarded
    ) as factory:
        record = factory.get_session("p").encrypt_bytes(b"x")
        assert "_IK_p_svc_prod_us-west-2" in record
    assert stored_snapshot(guarded) == before


def test_force_update_replaces_the_snapshot(guarded: InMemoryMetastore) -> None:
    SessionFactory(
        config(RegionSuffix="us-west-2", ConfigDriftForceUpdate=True), metastore=guarded
    ).close()
    snapshot = stored_snapshot(guarded)
    assert snapshot["effective_region_suffix"] == "us-west-2"
    assert snapshot["region_suffix_enabled"] is True
    SessionFactory(config(RegionSuffix="us-west-2"), metastore=guarded).close()
    with pytest.raises(ConfigDriftError):
        SessionFactory(config(), metastore=guarded)


@pytest.mark.parametrize(
    ("env", "config_flag", "starts"),
    [("true", False, True), ("1", False, True), ("false", True, False), ("", True, True)],
)
def test_the_environment_overrides_the_config_flag(
    guarded: InMemoryMetastore,
    monkeypatch: pytest.MonkeyPatch,
    env: str,
    config_flag: bool,
    starts: bool,
) -> None:
    monkeypatch.setenv("ASHERAH_CONFIG_DRIFT_FORCE_RUN", env)
    build = {"RegionSuffix": "eu-west-1", "ConfigDriftForceRun": config_flag}
    if starts:
        SessionFactory(config(**build), metastore=guarded).close()
    else:
        with pytest.raises(ConfigDriftError):
            SessionFactory(config(**build), metastore=guarded)


def test_unknown_snapshot_fields_are_ignored(guarded: InMemoryMetastore) -> None:
    snapshot = {**stored_snapshot(guarded), "future_field": [1, 2]}
    guarded.replace(
        GUARD, GUARD_CREATED, EnvelopeKeyRecord(GUARD_CREATED, json.dumps(snapshot).encode())
    )
    SessionFactory(config(), metastore=guarded).close()


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[]", b'{"schema_version":1}', b"\xff\xfe", b"x" * (8 * 1024 + 1)],
    ids=["not-json", "not-object", "missing-fields", "not-utf8", "too-large"],
)
def test_malformed_guard_row(guarded: InMemoryMetastore, payload: bytes) -> None:
    guarded.replace(GUARD, GUARD_CREATED, EnvelopeKeyRecord(GUARD_CREATED, payload))
    with pytest.raises(ConfigDriftError, match="load config drift guard"):
        SessionFactory(config(), metastore=guarded)
    SessionFactory(config(ConfigDriftForceRun=True), metastore=guarded).close()
    loaded = guarded.load(GUARD, GUARD_CREATED)
    assert loaded is not None
    assert loaded.encrypted_key == payload  # force-run leaves it alone
    SessionFactory(config(ConfigDriftForceUpdate=True), metastore=guarded).close()
    SessionFactory(config(), metastore=guarded).close()  # repaired


class LateGuardMetastore(InMemoryMetastore):
    """The guard row appears (written by another process) between our load and our store."""

    def __init__(self, other_snapshot: dict[str, Any]) -> None:
        super().__init__()
        self.other = other_snapshot

    def store(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> bool:
        if key_id == GUARD and self.load(GUARD, GUARD_CREATED) is None:
            payload = json.dumps(self.other, separators=(",", ":")).encode()
            super().store(key_id, created, EnvelopeKeyRecord(GUARD_CREATED, payload))
        return super().store(key_id, created, record)


@pytest.mark.parametrize("suffix", [None, "us-east-1"])
def test_lost_guard_race_compares_with_the_winner(suffix: str | None) -> None:
    reference = InMemoryMetastore()
    SessionFactory(
        config(**({"RegionSuffix": suffix} if suffix else {})), metastore=reference
    ).close()
    winner = stored_snapshot(reference)
    metastore = LateGuardMetastore(winner)
    if suffix is None:
        SessionFactory(config(), metastore=metastore).close()
    else:
        with pytest.raises(ConfigDriftError):
            SessionFactory(config(), metastore=metastore)


class UnguardedMetastore(InMemoryMetastore):
    def drift_identity(self) -> None:  # type: ignore[override]
        return None


def test_backends_without_an_identity_are_not_guarded() -> None:
    metastore = UnguardedMetastore()
    SessionFactory(config(), metastore=metastore).close()
    SessionFactory(config(RegionSuffix="us-west-2"), metastore=metastore).close()
    assert metastore.rows() == []
