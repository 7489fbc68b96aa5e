"""Full session round trips through the drivers loaded from config by name."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from awskms_testlib import MASTER_KEY_HEX, OTHER, PREFERRED, raw_client

from asherah import ConfigDriftError, InMemoryMetastore, SessionFactory
from asherah_kms_aws import AwsKeyManagementService, AwsKmsError, KmsEnvelope
from testsupport.moto import MotoServer, closed_port


def aws_config(moto: MotoServer, region_map: dict[str, str], **kms_options: Any) -> dict[str, Any]:
    return {
        "ServiceName": "svc",
        "ProductID": "prod",
        "Metastore": "memory",
        "KMS": "aws",
        "RegionMap": region_map,
        "PreferredRegion": PREFERRED,
        "kms_options": {"endpoint": moto.endpoint, "max_attempts": 1, **kms_options},
    }


def system_key_envelope(metastore: InMemoryMetastore) -> KmsEnvelope:
    record = metastore.load_latest("_SK_svc_prod")
    assert record is not None
    return KmsEnvelope.from_json(record.encrypted_key)


def test_round_trip_through_a_fresh_factory(moto: MotoServer, region_map: dict[str, str]) -> None:
    metastore = InMemoryMetastore()
    with SessionFactory(aws_config(moto, region_map), metastore=metastore) as factory:
        assert isinstance(factory.kms, AwsKeyManagementService)
        record = factory.get_session("alice").encrypt_bytes(b"multi-region secret")
    assert system_key_envelope(metastore).regions == (OTHER, PREFERRED)
    # No cached keys: the system key comes back through KMS, from the other region alone.
    only_other = aws_config(moto, region_map, endpoints={PREFERRED: closed_port()})
    with SessionFactory(only_other, metastore=metastore) as fresh:
        assert fresh.get_session("alice").decrypt_bytes(record) == b"multi-region secret"


def test_region_down_at_system_key_creation_then_decrypt_elsewhere(
    moto: MotoServer, region_map: dict[str, str]
) -> None:
    metastore = InMemoryMetastore()
    degraded = aws_config(moto, region_map, endpoints={OTHER: closed_port()})
    with SessionFactory(degraded, metastore=metastore) as factory:
        record = factory.get_session("bob").encrypt_bytes(b"written while us-east-1 was down")
    assert system_key_envelope(metastore).regions == (PREFERRED,)
    with SessionFactory(aws_config(moto, region_map), metastore=metastore) as healthy:
        assert healthy.get_session("bob").decrypt_bytes(record) == (
            b"written while us-east-1 was down"
        )


def test_strict_regions_refuses_to_create_a_partial_system_key(
    moto: MotoServer, region_map: dict[str, str]
) -> None:
    metastore = InMemoryMetastore()
    strict = aws_config(moto, region_map, endpoints={OTHER: closed_port()}, strict_regions=True)
    with SessionFactory(strict, metastore=metastore) as factory:
        with pytest.raises(AwsKmsError, match="strict_regions") as info:
            factory.get_session("carol").encrypt_bytes(b"never written")
        assert [f.region for f in info.value.failures] == [OTHER]
    assert metastore.load_latest("_SK_svc_prod") is None


def test_a_changed_region_map_trips_the_drift_guard(
    moto: MotoServer, region_map: dict[str, str]
) -> None:
    metastore = InMemoryMetastore()
    with SessionFactory(aws_config(moto, region_map), metastore=metastore):
        pass
    changed = {PREFERRED: region_map[PREFERRED]}
    with pytest.raises(ConfigDriftError):
        SessionFactory(aws_config(moto, changed), metastore=metastore)


def test_secrets_manager_and_static_share_one_key_hierarchy(moto: MotoServer) -> None:
    name = f"asherah/test/{uuid.uuid4().hex[:12]}"
    raw_client(moto.endpoint, "secretsmanager", PREFERRED).create_secret(
        Name=name, SecretString=MASTER_KEY_HEX
    )
    static = {"ServiceName": "svc", "ProductID": "prod", "KMS": "static"}
    static["StaticMasterKeyHex"] = MASTER_KEY_HEX
    managed = {
        "ServiceName": "svc",
        "ProductID": "prod",
        "KMS": "secrets-manager",
        "SecretsManagerSecretId": name,
        "kms_options": {"region": PREFERRED, "endpoint": moto.endpoint},
    }
    # The drift guard records the KMS kind; moving between them is a deliberate force-update.
    forced = {"ConfigDriftForceUpdate": True}
    metastore = InMemoryMetastore()
    with SessionFactory(static, metastore=metastore) as factory:
        from_static = factory.get_session("dave").encrypt_bytes(b"sealed by static")
    with SessionFactory({**managed, **forced}, metastore=metastore) as factory:
        session = factory.get_session("dave")
        assert session.decrypt_bytes(from_static) == b"sealed by static"
        from_managed = factory.get_session("erin").encrypt_bytes(b"sealed by secrets manager")
    with SessionFactory({**static, **forced}, metastore=metastore) as factory:
        assert factory.get_session("erin").decrypt_bytes(from_managed) == (
            b"sealed by secrets manager"
        )
    # A fresh hierarchy made through Secrets Manager opens under static with the same key.
    fresh = InMemoryMetastore()
    with SessionFactory(managed, metastore=fresh) as factory:
        record = factory.get_session("frank").encrypt_bytes(b"new hierarchy")
    with SessionFactory({**static, **forced}, metastore=fresh) as factory:
        assert factory.get_session("frank").decrypt_bytes(record) == b"new hierarchy"
