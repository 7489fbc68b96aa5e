"""The DynamoDB metastore: the canonical ``EncryptionKey`` table, read consistently."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Self

import botocore.exceptions

from asherah import ConfigError, EnvelopeKeyRecord, Metastore, MetastoreError
from asherah._driver_context import DriverContext
from asherah_metastore_dynamodb._client import build_client
from asherah_metastore_dynamodb._codec import from_item, item_key, to_item
from asherah_metastore_dynamodb._options import (
    DEFAULT_TABLE_NAME,
    DynamoDBMetastoreOptions,
    options_from_config,
)

_DUPLICATE = "ConditionalCheckFailedException"
_TABLE_EXISTS = "ResourceInUseException"
_TABLE_MISSING = "ResourceNotFoundException"
_BOTO_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


class DynamoDBMetastore(Metastore):
    """Key rows in a DynamoDB table (hash key ``Id`` S, range key ``Created`` N).

    Reads are strongly consistent; ``store`` is a conditional put, so of any number of writers
    racing on one ``(id, created)`` exactly one gets ``True``. With ``enable_region_suffix``
    key ids carry ``_{region}`` of the client's region, so the regions of a global table never
    overwrite each other's keys (last-writer-wins replication would otherwise fork them).

    Build it from config (``Metastore = "dynamodb"``), or around your own boto3 client:
    ``DynamoDBMetastore(boto3.client("dynamodb"), table_name="EncryptionKey")``.
    ``configured_region`` is what the drift guard records as the region (the reference records
    the configured ``DynamoDBSigningRegion or DynamoDBRegion``, ``None`` when neither is set);
    pass the same value the other implementations sharing the table are configured with.
    """

    Options = DynamoDBMetastoreOptions

    def __init__(
        self,
        client: Any,
        *,
        table_name: str = DEFAULT_TABLE_NAME,
        enable_region_suffix: bool = False,
        configured_region: str | None = None,
        schema_timeout: float = 300.0,
    ) -> None:
        self._client = client
        self.table_name = table_name or DEFAULT_TABLE_NAME
        self._suffix_requested = enable_region_suffix
        self._configured_region = configured_region
        self._schema_timeout = schema_timeout
        self._region: str | None = client.meta.region_name or None
        if enable_region_suffix and not self._region:
            raise ConfigError(
                "DynamoDB metastore: region_suffix=true but no AWS region resolved. "
                "Set AWS_REGION (or DynamoDBRegion) explicitly."
            )

    @classmethod
    def options_from_config(cls, config: Any) -> dict[str, Any]:
        return options_from_config(config)

    @classmethod
    def from_options(cls, options: Any, context: DriverContext) -> Self:
        assert isinstance(options, DynamoDBMetastoreOptions)  # noqa: S101 - loader validated it
        metastore = cls(
            build_client(options),
            table_name=options.table_name,
            enable_region_suffix=options.enable_region_suffix,
            configured_region=options.sigv4_region,
            schema_timeout=options.schema_timeout,
        )
        if options.create_schema:
            try:
                metastore.create_schema()
            except BaseException:
                metastore.close()
                raise
        return metastore

    @property
    def client(self) -> Any:
        """The boto3 DynamoDB client (thread-safe), for callers with needs beyond the ABC."""
        return self._client

    def __repr__(self) -> str:
        return (
            f"DynamoDBMetastore(table={self.table_name!r}, region={self._region!r}, "
            f"endpoint={self._client.meta.endpoint_url!r}, "
            f"region_suffix={self.region_suffix()!r})"
        )

    def load(self, key_id: str, created: int) -> EnvelopeKeyRecord | None:
        where = _where(self.table_name, key_id, created)
        try:
            response = self._client.get_item(
                TableName=self.table_name, Key=item_key(key_id, created), ConsistentRead=True
            )
        except _BOTO_ERRORS as exc:
            raise _error("GetItem", where, exc) from exc
        item = response.get("Item")
        return None if item is None else from_item(item, where)

    def load_latest(self, key_id: str) -> EnvelopeKeyRecord | None:
        where = _where(self.table_name, key_id)
        try:
            response = self._client.query(
                TableName=self.table_name,
                KeyConditionExpression="Id = :id",
                ExpressionAttributeValues={":id": {"S": key_id}},
                ScanIndexForward=False,
                Limit=1,
                ConsistentRead=True,
            )
        except _BOTO_ERRORS as exc:
            raise _error("Query", where, exc) from exc
        items = response.get("Items") or []
        return from_item(items[0], where) if items else None

    def store(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> bool:
        # If a put succeeds but its response is lost, botocore's retry sees the condition fail
        # and this returns False; the engine then loads the latest row, which is ours.
        where = _where(self.table_name, key_id, created)
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=to_item(key_id, created, record),
                ConditionExpression="attribute_not_exists(Id)",
            )
        except botocore.exceptions.ClientError as exc:
            if _code(exc) == _DUPLICATE:
                return False
            raise _error("PutItem", where, exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise _error("PutItem", where, exc) from exc
        return True

    def upsert(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> None:
        """Unconditional put; only the config drift guard row is ever written this way."""
        where = _where(self.table_name, key_id, created)
        try:
            self._client.put_item(TableName=self.table_name, Item=to_item(key_id, created, record))
        except _BOTO_ERRORS as exc:
            raise _error("PutItem (upsert)", where, exc) from exc

    def list_rows(self, key_id_prefix: str = "") -> Iterator[tuple[str, int, EnvelopeKeyRecord]]:
        """Every row whose id starts with the prefix, for ``asherah keys list``: a paginated,
        consistent Scan (operator tooling; the engine never scans)."""
        where = _where(self.table_name, key_id_prefix or "*")
        request: dict[str, Any] = {"TableName": self.table_name, "ConsistentRead": True}
        if key_id_prefix:
            request["FilterExpression"] = "begins_with(Id, :prefix)"
            request["ExpressionAttributeValues"] = {":prefix": {"S": key_id_prefix}}
        rows = []
        try:
            for page in self._client.get_paginator("scan").paginate(**request):
                for item in page.get("Items", []):
                    key_id, created = item["Id"]["S"], int(item["Created"]["N"])
                    rows.append(
                        (key_id, created, from_item(item, _where(self.table_name, key_id, created)))
                    )
        except _BOTO_ERRORS as exc:
            raise _error("Scan", where, exc) from exc
        return iter(sorted(rows, key=lambda row: (row[0], row[1])))

    def region_suffix(self) -> str | None:
        return self._region if self._suffix_requested else None

    def drift_identity(self) -> dict[str, Any]:
        # As the reference: the configured signing region (not the one the SDK found).
        return {
            "kind": "dynamo-db",
            "table": self.table_name,
            "region": self._configured_region,
            "region_suffix_requested": self._suffix_requested,
        }

    def create_schema(self) -> None:
        """Create the table with on-demand billing if it is missing, then wait until ACTIVE."""
        table = self.table_name
        try:
            self._client.create_table(
                TableName=table,
                KeySchema=[
                    {"AttributeName": "Id", "KeyType": "HASH"},
                    {"AttributeName": "Created", "KeyType": "RANGE"},
                ],
                AttributeDefinitions=[
                    {"AttributeName": "Id", "AttributeType": "S"},
                    {"AttributeName": "Created", "AttributeType": "N"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        except botocore.exceptions.ClientError as exc:
            if _code(exc) != _TABLE_EXISTS:
                raise _error("CreateTable", f"table={table}", exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise _error("CreateTable", f"table={table}", exc) from exc
        self._wait_until_active()

    def _wait_until_active(self) -> None:
        deadline = time.monotonic() + self._schema_timeout
        status = "unknown"
        while True:
            try:
                status = self._client.describe_table(TableName=self.table_name)["Table"][
                    "TableStatus"
                ]
            except botocore.exceptions.ClientError as exc:
                # Just after CreateTable some endpoints briefly answer "not found".
                if _code(exc) != _TABLE_MISSING:
                    raise _error("DescribeTable", f"table={self.table_name}", exc) from exc
            except botocore.exceptions.BotoCoreError as exc:
                raise _error("DescribeTable", f"table={self.table_name}", exc) from exc
            if status == "ACTIVE":
                return
            if time.monotonic() >= deadline:
                raise MetastoreError(
                    f"DynamoDB table {self.table_name!r} is not ACTIVE after "
                    f"{self._schema_timeout:.0f} s (status {status})"
                )
            time.sleep(0.5)

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if close is not None:
            close()


def _where(table: str, key_id: str, created: int | None = None) -> str:
    at = "" if created is None else f" created={created}"
    return f"table={table} id={key_id}{at}"


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _error(operation: str, where: str, exc: Exception) -> MetastoreError:
    """Our error naming the operation and the AWS error code; botocore messages name the
    endpoint and the failure, never credentials."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        detail = f"{error.get('Code', 'ClientError')}: {error.get('Message', '')}".rstrip(": ")
    else:
        detail = f"{type(exc).__name__}: {exc}"
    return MetastoreError(f"DynamoDB {operation} failed for {where}: {detail}")
