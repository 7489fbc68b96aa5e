"""Constants and helpers shared by this plugin's test modules (imported, not a conftest)."""

from __future__ import annotations

from typing import Any

from asherah import Config
from asherah._driver_context import DriverContext
from asherah_metastore_dynamodb import DynamoDBMetastore, DynamoDBMetastoreOptions

REGION = "us-west-2"
OTHER_REGION = "us-east-1"
TABLE = "EncryptionKey"
MASTER_KEY_HEX = "22" * 32
#: Distinctive fake credentials: tests assert they never appear in errors or reprs.
ACCESS_KEY_ID = "AKIAASHERAHTESTKEY01"
SECRET_ACCESS_KEY = "asherah-test-secret-0123456789abcdefSECRET"


def build(endpoint: str, **options: Any) -> DynamoDBMetastore:
    """A driver built the way the loader builds it: options model, then ``from_options``."""
    validated = DynamoDBMetastoreOptions.model_validate({"endpoint": endpoint, **options})
    context = DriverContext("svc", "prod", Config(service_name="svc", product_id="prod"))
    return DynamoDBMetastore.from_options(validated, context)


def session_config(endpoint: str, service: str, **extra: Any) -> dict[str, Any]:
    """A canonical PascalCase config for our SessionFactory (and the reference's)."""
    return {
        "ServiceName": service,
        "ProductID": "prod",
        "Metastore": "dynamodb",
        "KMS": "static",
        "StaticMasterKeyHex": MASTER_KEY_HEX,
        "DynamoDBEndpoint": endpoint,
        "DynamoDBRegion": REGION,
        "DynamoDBTableName": TABLE,
        **extra,
    }
