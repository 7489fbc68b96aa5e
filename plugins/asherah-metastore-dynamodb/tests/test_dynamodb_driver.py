"""The driver on its own: items on the wire, decoding, errors, region and client settings."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from dynamodb_testlib import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, TABLE, build

from asherah import Config, ConfigError, EnvelopeKeyRecord, KeyMeta, MetastoreError
from asherah._drivers import load_metastore
from asherah_metastore_dynamodb import DynamoDBMetastore, DynamoDBMetastoreOptions
from testsupport.dynamodb_local import DynamoDBLocal, free_port


def new_id(kind: str = "IK") -> str:
    return f"_{kind}_{uuid.uuid4().hex[:10]}_svc_prod"


def get_raw(raw_client: Any, key_id: str, created: int) -> dict[str, Any]:
    item: dict[str, Any] = raw_client.get_item(
        TableName=TABLE,
        Key={"Id": {"S": key_id}, "Created": {"N": str(created)}},
        ConsistentRead=True,
    )["Item"]
    return item


# --- the item shape -------------------------------------------------------------------------


def test_intermediate_key_item_is_the_canonical_map(
    metastore: DynamoDBMetastore, raw_client: Any
) -> None:
    key_id = new_id()
    record = EnvelopeKeyRecord(
        1_700_000_040, b"\x01\x02\x03\xff", KeyMeta("_SK_svc_prod", 1_700_000_000)
    )
    assert metastore.store(key_id, 1_700_000_040, record) is True
    assert get_raw(raw_client, key_id, 1_700_000_040) == {
        "Id": {"S": key_id},
        "Created": {"N": "1700000040"},
        "KeyRecord": {
            "M": {
                "Created": {"N": "1700000040"},
                "Key": {"S": "AQID/w=="},
                "ParentKeyMeta": {
                    "M": {"KeyId": {"S": "_SK_svc_prod"}, "Created": {"N": "1700000000"}}
                },
            }
        },
    }


def test_system_key_item_has_no_parent_and_revoked_only_when_set(
    metastore: DynamoDBMetastore, raw_client: Any
) -> None:
    key_id = new_id("SK")
    assert metastore.store(key_id, 1_700_000_000, EnvelopeKeyRecord(1_700_000_000, b"k"))
    revoked = EnvelopeKeyRecord(1_700_000_060, b"k", None, True)
    assert metastore.store(key_id, 1_700_000_060, revoked)
    not_revoked = EnvelopeKeyRecord(1_700_000_120, b"k", None, False)
    assert metastore.store(key_id, 1_700_000_120, not_revoked)
    maps = [
        get_raw(raw_client, key_id, c)["KeyRecord"]["M"]
        for c in (1_700_000_000, 1_700_000_060, 1_700_000_120)
    ]
    assert maps[0] == {"Created": {"N": "1700000000"}, "Key": {"S": "aw=="}}
    assert maps[1] == {
        "Revoked": {"BOOL": True},
        "Created": {"N": "1700000060"},
        "Key": {"S": "aw=="},
    }
    assert maps[2]["Revoked"] == {"BOOL": False}
    assert metastore.load(key_id, 1_700_000_060) == revoked
    assert metastore.load(key_id, 1_700_000_120) == not_revoked


def test_reads_items_written_by_other_implementations(
    metastore: DynamoDBMetastore, raw_client: Any
) -> None:
    # As canonical Go writes an IK (no Revoked), and as an operator's revoke script leaves one
    # (Revoked BOOL true), with an attribute this library does not know about.
    key_id = new_id()
    parent = {"M": {"KeyId": {"S": "_SK_svc_prod_us-west-2"}, "Created": {"N": "1699999980"}}}
    for created, extra in ((1_699_999_980, {}), (1_700_000_040, {"Revoked": {"BOOL": True}})):
        raw_client.put_item(
            TableName=TABLE,
            Item={
                "Id": {"S": key_id},
                "Created": {"N": str(created)},
                "KeyRecord": {
                    "M": {
                        "Created": {"N": str(created)},
                        "Key": {"S": "YWJj"},
                        "ParentKeyMeta": parent,
                        "Comment": {"S": "ignored"},
                        **extra,
                    }
                },
            },
        )
    meta = KeyMeta("_SK_svc_prod_us-west-2", 1_699_999_980)
    assert metastore.load(key_id, 1_699_999_980) == EnvelopeKeyRecord(1_699_999_980, b"abc", meta)
    assert metastore.load_latest(key_id) == EnvelopeKeyRecord(1_700_000_040, b"abc", meta, True)


CORRUPT_KEY_RECORDS: dict[str, tuple[dict[str, Any] | None, str]] = {
    "missing": (None, "no KeyRecord map"),
    "json string": ({"S": '{"Created":1,"Key":"YWJj"}'}, "no KeyRecord map"),
    "no Key": ({"M": {"Created": {"N": "1"}}}, "KeyRecord.Key"),
    "Key as binary": ({"M": {"Created": {"N": "1"}, "Key": {"B": b"abc"}}}, "KeyRecord.Key"),
    "bad base64": ({"M": {"Created": {"N": "1"}, "Key": {"S": "AR=="}}}, "not valid base64"),
    "url-safe base64": ({"M": {"Created": {"N": "1"}, "Key": {"S": "-_-_"}}}, "not valid base64"),
    "no Created": ({"M": {"Key": {"S": "YWJj"}}}, "KeyRecord.Created"),
    "fractional Created": ({"M": {"Created": {"N": "1.5"}, "Key": {"S": "YWJj"}}}, "whole number"),
    "Revoked as string": (
        {"M": {"Created": {"N": "1"}, "Key": {"S": "YWJj"}, "Revoked": {"S": "true"}}},
        "KeyRecord.Revoked",
    ),
    "parent as string": (
        {"M": {"Created": {"N": "1"}, "Key": {"S": "YWJj"}, "ParentKeyMeta": {"S": "x"}}},
        "ParentKeyMeta",
    ),
    "parent without KeyId": (
        {
            "M": {
                "Created": {"N": "1"},
                "Key": {"S": "YWJj"},
                "ParentKeyMeta": {"M": {"Created": {"N": "1"}}},
            }
        },
        "ParentKeyMeta.KeyId",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_KEY_RECORDS))
def test_corrupt_items_are_errors_not_misses(
    metastore: DynamoDBMetastore, raw_client: Any, case: str
) -> None:
    key_record, expected = CORRUPT_KEY_RECORDS[case]
    key_id = new_id()
    item: dict[str, Any] = {"Id": {"S": key_id}, "Created": {"N": "1"}}
    if key_record is not None:
        item["KeyRecord"] = key_record
    raw_client.put_item(TableName=TABLE, Item=item)
    with pytest.raises(MetastoreError, match=expected) as by_load:
        metastore.load(key_id, 1)
    with pytest.raises(MetastoreError, match=expected):
        metastore.load_latest(key_id)
    assert key_id in str(by_load.value)
    assert "AR==" not in str(by_load.value)


def test_upsert_round_trips_a_guard_row(metastore: DynamoDBMetastore, raw_client: Any) -> None:
    key_id = f"__asherah_internal_config_drift_guard_v1__:{uuid.uuid4().hex}"
    metastore.upsert(key_id, 946_684_800, EnvelopeKeyRecord(946_684_800, b'{"a":1}'))
    metastore.upsert(key_id, 946_684_800, EnvelopeKeyRecord(946_684_800, b'{"a":2}'))
    assert get_raw(raw_client, key_id, 946_684_800)["KeyRecord"] == {
        "M": {"Created": {"N": "946684800"}, "Key": {"S": "eyJhIjoyfQ=="}}
    }
    assert metastore.load(key_id, 946_684_800) == EnvelopeKeyRecord(946_684_800, b'{"a":2}')


def test_async_methods_match_the_sync_ones(metastore: DynamoDBMetastore) -> None:
    key_id = new_id()
    record = EnvelopeKeyRecord(1_700_000_000, b"async", KeyMeta("_SK_svc_prod", 1_700_000_000))

    async def scenario() -> None:
        assert await metastore.store_async(key_id, 1_700_000_000, record) is True
        assert await metastore.store_async(key_id, 1_700_000_000, record) is False
        assert await metastore.load_async(key_id, 1_700_000_000) == record
        assert await metastore.load_latest_async(key_id) == record

    asyncio.run(scenario())


# --- failures ---------------------------------------------------------------------------------


def test_missing_table_names_the_operation_and_aws_code(ddb: DynamoDBLocal, table: str) -> None:
    driver = build(ddb.endpoint, region=REGION, table_name="NoSuchTable")
    record = EnvelopeKeyRecord(1, b"k")
    calls: dict[str, Callable[[], object]] = {
        "GetItem": lambda: driver.load("_IK_x", 1),
        "Query": lambda: driver.load_latest("_IK_x"),
        "PutItem": lambda: driver.store("_IK_x", 1, record),
        "PutItem (upsert)": lambda: driver.upsert("_IK_x", 1, record),
    }
    for operation, call in calls.items():
        with pytest.raises(MetastoreError) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"DynamoDB {operation} failed for table=NoSuchTable id=_IK_x")
        assert "ResourceNotFoundException" in message
        assert info.value.__cause__ is not None


def test_unreachable_server_fails_fast_with_the_cause() -> None:
    driver = build(
        f"http://127.0.0.1:{free_port()}", region=REGION, max_attempts=2, connect_timeout=1
    )
    with pytest.raises(MetastoreError, match="EndpointConnectionError") as info:
        driver.load_latest("_IK_x")
    assert type(info.value.__cause__).__name__ == "EndpointConnectionError"


def test_credentials_never_appear_in_errors_or_repr(ddb: DynamoDBLocal, table: str) -> None:
    texts = []
    for driver in (
        build(ddb.endpoint, region=REGION, table_name="NoSuchTable"),
        build(f"http://127.0.0.1:{free_port()}", region=REGION, max_attempts=1),
    ):
        texts.append(repr(driver))
        with pytest.raises(MetastoreError) as info:
            driver.store("_IK_x", 1, EnvelopeKeyRecord(1, b"k"))
        texts += [str(info.value), repr(info.value)]
    joined = "\n".join(texts)
    assert SECRET_ACCESS_KEY not in joined
    assert ACCESS_KEY_ID not in joined


def test_missing_credentials_is_a_metastore_error(
    ddb: DynamoDBLocal, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    driver = build(ddb.endpoint, region=REGION, max_attempts=1)
    with pytest.raises(MetastoreError, match="NoCredentialsError"):
        driver.load_latest("_IK_x")


# --- configuration ----------------------------------------------------------------------------


def test_canonical_keys_reach_the_driver_through_the_loader(ddb: DynamoDBLocal, table: str) -> None:
    config = Config.model_validate(
        {
            "ServiceName": "svc",
            "ProductID": "prod",
            "Metastore": "DynamoDB",
            "DynamoDBEndpoint": ddb.endpoint,
            "DynamoDBRegion": "eu-west-1",
            "DynamoDBSigningRegion": REGION,
            "DynamoDBTableName": TABLE,
            "EnableRegionSuffix": True,
            "metastore_options": {"max_attempts": 2, "read_timeout": 3.5},
        }
    )
    driver = load_metastore(config)
    assert isinstance(driver, DynamoDBMetastore)
    assert driver.table_name == TABLE
    assert driver.client.meta.endpoint_url == ddb.endpoint  # the explicit endpoint wins
    assert driver.client.meta.region_name == REGION  # requests are signed for this region
    assert driver.region_suffix() == REGION
    assert driver.client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 2}
    assert driver.client.meta.config.read_timeout == 3.5
    assert driver.client.meta.config.connect_timeout == 5.0
    assert driver.load_latest(new_id()) is None


def test_unknown_option_is_a_config_error() -> None:
    config = Config.model_validate(
        {
            "ServiceName": "svc",
            "ProductID": "prod",
            "Metastore": "dynamodb",
            "DynamoDBRegion": REGION,
            "metastore_options": {"tabel_name": "typo"},
        }
    )
    with pytest.raises(ConfigError, match="tabel_name"):
        load_metastore(config)


@pytest.mark.parametrize(
    ("region", "endpoint"),
    [
        ("eu-west-1", "https://dynamodb.eu-west-1.amazonaws.com"),
        ("cn-north-1", "https://dynamodb.cn-north-1.amazonaws.com.cn"),
        ("us-iso-east-1", "https://dynamodb.us-iso-east-1.c2s.ic.gov"),
        ("us-isob-east-1", "https://dynamodb.us-isob-east-1.sc2s.sgov.gov"),
    ],
)
def test_differing_region_keys_route_to_the_region_and_sign_for_the_signing_region(
    region: str, endpoint: str
) -> None:
    options = DynamoDBMetastoreOptions(region=region, signing_region="us-east-1")
    driver = DynamoDBMetastore.from_options(options, None)  # type: ignore[arg-type]
    assert driver.client.meta.endpoint_url == endpoint
    assert driver.client.meta.region_name == "us-east-1"
    assert driver.drift_identity()["region"] == "us-east-1"


def test_region_from_aws_region_env(
    ddb: DynamoDBLocal, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_REGION", REGION)  # the AWS SDKs read this one first
    driver = build(ddb.endpoint, enable_region_suffix=True)
    assert driver.region_suffix() == REGION
    assert driver.drift_identity() == {
        "kind": "dynamo-db",
        "table": TABLE,
        "region": None,
        "region_suffix_requested": True,
    }
    assert driver.load_latest(new_id()) is None


def test_endpoint_from_aws_endpoint_url_dynamodb(
    ddb: DynamoDBLocal, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", ddb.endpoint)
    driver = DynamoDBMetastore.from_options(
        DynamoDBMetastoreOptions(region=REGION),
        None,  # type: ignore[arg-type]
    )
    key_id = new_id()
    assert driver.store(key_id, 5, EnvelopeKeyRecord(5, b"env"))
    assert driver.load(key_id, 5) == EnvelopeKeyRecord(5, b"env")


def test_no_region_is_a_config_error_naming_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"no AWS region resolved\. Set AWS_REGION"):
        build("http://127.0.0.1:1")


def test_named_profile_supplies_region_and_credentials(
    ddb: DynamoDBLocal, table: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config").write_text("[profile asherah-test]\nregion = eu-west-1\n")
    (tmp_path / "credentials").write_text(
        "[asherah-test]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = profile-secret\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    driver = build(ddb.endpoint, profile_name="asherah-test", enable_region_suffix=True)
    assert driver.region_suffix() == "eu-west-1"
    credentials = driver.client._request_signer._credentials  # what the requests are signed with
    assert credentials.access_key == "AKIAPROFILE"
    key_id = new_id()
    assert driver.store(key_id, 7, EnvelopeKeyRecord(7, b"profile"))
    assert driver.load(key_id, 7) == EnvelopeKeyRecord(7, b"profile")
    with pytest.raises(ConfigError, match="profile 'nope' not found"):
        build(ddb.endpoint, profile_name="nope")


def test_region_suffix_and_drift_identity_as_the_reference(ddb: DynamoDBLocal) -> None:
    plain = build(ddb.endpoint, region=REGION)
    assert plain.region_suffix() is None
    assert plain.drift_identity() == {
        "kind": "dynamo-db",
        "table": "EncryptionKey",
        "region": REGION,
        "region_suffix_requested": False,
    }
    suffixed = build(ddb.endpoint, region="us-east-1", table_name="", enable_region_suffix=True)
    assert suffixed.region_suffix() == "us-east-1"
    assert suffixed.drift_identity() == {
        "kind": "dynamo-db",
        "table": "EncryptionKey",
        "region": "us-east-1",
        "region_suffix_requested": True,
    }


# --- schema -----------------------------------------------------------------------------------


def test_create_schema_makes_the_canonical_on_demand_table_and_is_idempotent(
    ddb: DynamoDBLocal, raw_client: Any
) -> None:
    name = f"Keys{uuid.uuid4().hex[:8]}"
    driver = build(ddb.endpoint, region=REGION, table_name=name, create_schema=True)
    driver.create_schema()  # a second time: the table exists, nothing changes
    described = raw_client.describe_table(TableName=name)["Table"]
    assert described["TableStatus"] == "ACTIVE"
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert sorted((k["AttributeName"], k["KeyType"]) for k in described["KeySchema"]) == [
        ("Created", "RANGE"),
        ("Id", "HASH"),
    ]
    assert sorted(
        (a["AttributeName"], a["AttributeType"]) for a in described["AttributeDefinitions"]
    ) == [("Created", "N"), ("Id", "S")]
    assert driver.store("_SK_x", 1, EnvelopeKeyRecord(1, b"x")) is True
    raw_client.delete_table(TableName=name)


def test_create_schema_failure_is_a_metastore_error() -> None:
    driver = build(f"http://127.0.0.1:{free_port()}", region=REGION, max_attempts=1)
    with pytest.raises(MetastoreError, match="CreateTable failed for table=EncryptionKey"):
        driver.create_schema()


# --- retries ----------------------------------------------------------------------------------


class _ThrottlingHandler(http.server.BaseHTTPRequestHandler):
    """Answers every DynamoDB call the way DynamoDB answers when it throttles."""

    calls: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.calls.append(self.headers.get("X-Amz-Target", ""))
        body = json.dumps(
            {
                "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                "message": "Rate of requests exceeds the allowed throughput.",
            }
        ).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_throttling_is_retried_then_reported() -> None:
    _ThrottlingHandler.calls.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ThrottlingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        driver = build(endpoint, region=REGION, max_attempts=2)
        with pytest.raises(MetastoreError, match="ThrottlingException") as info:
            driver.store("_IK_x", 1, EnvelopeKeyRecord(1, b"k"))
        assert "PutItem failed" in str(info.value)
        assert _ThrottlingHandler.calls == ["DynamoDB_20120810.PutItem"] * 2
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
