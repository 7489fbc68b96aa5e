"""Configuration: the reference's RegionMap rules and messages, option mapping, drift identity,
loading through the entry points. No server is needed: building a driver makes no call."""

from __future__ import annotations

from pathlib import Path

import pytest
from awskms_testlib import MASTER_KEY_HEX, OTHER, PREFERRED

from asherah import Config, ConfigError
from asherah._drivers import KMS_GROUP, driver_class, load_kms, validate_options
from asherah_kms_aws import (
    AwsKeyManagementService,
    AwsKmsOptions,
    SecretsManagerKeyManagementService,
    SecretsManagerKmsOptions,
)

ARN_W = "arn:aws:kms:us-west-2:123456789012:key/w"
ARN_E = "arn:aws:kms:us-east-1:123456789012:key/e"
BOTH = {PREFERRED: ARN_W, OTHER: ARN_E}


def build(**options: object) -> AwsKeyManagementService:
    return AwsKeyManagementService.build(endpoint="http://127.0.0.1:9", **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"region_map": {}}, "REGION_MAP must contain at least one region → key-ARN entry"),
        ({"region_map": {" ": ARN_W}}, "REGION_MAP contains an empty region name"),
        (
            {"region_map": {PREFERRED: " "}},
            "REGION_MAP entry for region 'us-west-2' has an empty key ARN",
        ),
        (
            {"region_map": BOTH, "preferred_region": "eu-west-1"},
            "PREFERRED_REGION 'eu-west-1' is not present in REGION_MAP; "
            'known: ["us-east-1", "us-west-2"]',
        ),
        (
            {"region_map": BOTH},
            "PREFERRED_REGION must be set when REGION_MAP contains multiple entries; got 2 regions",
        ),
        ({}, "KMS_KEY_ID required for KMS=aws"),
    ],
)
def test_region_map_rules_use_the_reference_messages(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        build(**options)
    assert str(info.value).startswith(message)


def test_one_region_needs_no_preferred_region() -> None:
    kms = build(region_map={OTHER: ARN_E})
    try:
        assert kms.preferred_region == OTHER
        assert kms.drift_identity() == {
            "kind": "aws-kms-envelope",
            "preferred_region": OTHER,
            "regions": {OTHER: ARN_E},
        }
    finally:
        kms.close()


def test_decrypt_order_is_preferred_then_by_name() -> None:
    arns = {"us-west-2": ARN_W, "eu-west-1": "k1", "us-east-1": ARN_E, "ap-south-1": "k2"}
    kms = build(region_map=arns, preferred_region="us-east-1")
    try:
        assert kms.regions == ("us-east-1", "ap-south-1", "eu-west-1", "us-west-2")
    finally:
        kms.close()


def test_envelope_identity_is_the_sorted_region_map() -> None:
    kms = build(region_map={PREFERRED: ARN_W, OTHER: ARN_E}, preferred_region=PREFERRED)
    try:
        identity = kms.drift_identity()
        assert identity == {
            "kind": "aws-kms-envelope",
            "preferred_region": PREFERRED,
            "regions": {OTHER: ARN_E, PREFERRED: ARN_W},
        }
        assert list(identity["regions"]) == [OTHER, PREFERRED]
    finally:
        kms.close()


def test_region_map_wins_over_key_id_as_in_the_reference() -> None:
    kms = build(region_map={OTHER: ARN_E}, key_id=ARN_W, region=PREFERRED)
    try:
        assert kms.drift_identity()["kind"] == "aws-kms-envelope"
        assert kms.regions == (OTHER,)
    finally:
        kms.close()


def test_single_key_region_comes_from_option_then_env_then_arn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configured = build(key_id="alias/k", region="eu-west-1")
    from_env_region = None
    try:
        assert configured.regions == ("eu-west-1",)
        assert configured.drift_identity() == {
            "kind": "aws-kms-single",
            "key_id": "alias/k",
            "region": "eu-west-1",
        }
        monkeypatch.setenv("AWS_DEFAULT_REGION", "ca-central-1")
        monkeypatch.setenv("AWS_REGION", "sa-east-1")
        from_env_region = build(key_id=ARN_W)
        # The chain chose the region: the identity records none (the reference's config path).
        assert from_env_region.regions == ("sa-east-1",)
        assert from_env_region.drift_identity()["region"] is None
    finally:
        configured.close()
        if from_env_region is not None:
            from_env_region.close()
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    from_arn = build(key_id=ARN_W)
    try:
        assert from_arn.regions == (PREFERRED,)
    finally:
        from_arn.close()
    with pytest.raises(ConfigError, match="no AWS region resolved"):
        build(key_id="alias/k")


def test_profile_selects_region_and_unknown_profile_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.write_text("[profile asherah-test]\nregion = eu-central-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    kms = build(key_id="alias/k", profile_name="asherah-test")
    try:
        assert kms.regions == ("eu-central-1",)
    finally:
        kms.close()
    with pytest.raises(ConfigError, match="AWS profile 'nope' not found"):
        build(key_id="alias/k", profile_name="nope")


def test_endpoints_for_unconfigured_regions_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"endpoints given for regions not configured: \['eu"):
        build(region_map=BOTH, preferred_region=PREFERRED, endpoints={"eu-west-1": "http://x"})


def test_unknown_and_invalid_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown configuration key 'regionmap'"):
        AwsKeyManagementService.build(regionmap=BOTH)
    with pytest.raises(ConfigError, match="max_attempts"):
        AwsKeyManagementService.build(key_id="k", region="r", max_attempts=0)
    with pytest.raises(ConfigError, match="unknown configuration key 'key_id'"):
        SecretsManagerKeyManagementService.build(key_id="k")


def test_canonical_keys_map_to_options() -> None:
    config = Config.model_validate(
        {
            "ServiceName": "s",
            "ProductID": "p",
            "KMS": "aws",
            "RegionMap": BOTH,
            "PreferredRegion": PREFERRED,
            "KmsKeyId": "alias/k",
            "AwsProfileName": "prof",
            "DynamoDBRegion": "eu-west-1",
            "DynamoDBSigningRegion": "eu-west-2",
            "SecretsManagerSecretId": "sec",
        }
    )
    assert AwsKeyManagementService.options_from_config(config) == {
        "region_map": BOTH,
        "preferred_region": PREFERRED,
        "key_id": "alias/k",
        "profile_name": "prof",
        "region": "eu-west-2",  # DynamoDBSigningRegion first, as the reference
    }
    assert SecretsManagerKeyManagementService.options_from_config(config) == {
        "secret_id": "sec",
        "profile_name": "prof",
    }
    only_region = Config.model_validate(
        {"ServiceName": "s", "ProductID": "p", "DynamoDBRegion": "eu-west-1"}
    )
    assert AwsKeyManagementService.options_from_config(only_region) == {"region": "eu-west-1"}


def test_config_file_section_overrides_canonical_keys() -> None:
    config = Config.model_validate(
        {
            "ServiceName": "s",
            "ProductID": "p",
            "KMS": "aws",
            "RegionMap": BOTH,
            "PreferredRegion": PREFERRED,
            "kms_options": {"preferred_region": OTHER, "strict_regions": True},
        }
    )
    options = validate_options(AwsKeyManagementService, "aws", config.kms_options, config)
    assert isinstance(options, AwsKmsOptions)
    assert options.preferred_region == OTHER
    assert options.strict_regions is True


def test_entry_points_resolve_to_the_drivers() -> None:
    assert driver_class(KMS_GROUP, "aws") is AwsKeyManagementService
    assert driver_class(KMS_GROUP, "secrets-manager") is SecretsManagerKeyManagementService
    assert driver_class(KMS_GROUP, "Secrets-Manager") is SecretsManagerKeyManagementService


def test_loader_builds_the_aws_driver_from_canonical_keys() -> None:
    config = Config.model_validate(
        {
            "ServiceName": "s",
            "ProductID": "p",
            "KMS": "AWS",
            "RegionMap": BOTH,
            "PreferredRegion": OTHER,
            "kms_options": {"endpoint": "http://127.0.0.1:9"},
        }
    )
    kms = load_kms(config)
    try:
        assert isinstance(kms, AwsKeyManagementService)
        assert kms.regions == (OTHER, PREFERRED)
        assert repr(kms) == (
            "AwsKeyManagementService(regions=['us-east-1', 'us-west-2'], "
            "preferred_region='us-east-1', strict_regions=False)"
        )
    finally:
        kms.close()


def test_loader_reports_missing_secret_id_with_the_reference_message() -> None:
    config = Config.model_validate({"ServiceName": "s", "ProductID": "p", "KMS": "secrets-manager"})
    with pytest.raises(
        ConfigError, match="SecretsManagerSecretId required for KMS=secrets-manager"
    ):
        load_kms(config)


def test_secrets_manager_options_defaults() -> None:
    options = SecretsManagerKmsOptions(secret_id=" name ")
    assert options.secret_id == "name"
    assert options.refresh_interval is None
    assert options.max_attempts == 3
    with pytest.raises(ValueError, match="refresh_interval"):
        SecretsManagerKmsOptions(secret_id="x", refresh_interval=0)
    assert MASTER_KEY_HEX not in repr(options)
