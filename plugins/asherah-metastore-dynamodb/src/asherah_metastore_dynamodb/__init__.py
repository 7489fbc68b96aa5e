"""DynamoDB metastore for asherah (entry point ``asherah.metastore: dynamodb``).

Reads and writes the canonical ``EncryptionKey`` table exactly as the Go, Java and Rust
Asherah implementations do, so all of them can share one table (and one global table, with
``EnableRegionSuffix``).
"""

from asherah_metastore_dynamodb._metastore import DynamoDBMetastore
from asherah_metastore_dynamodb._options import DynamoDBMetastoreOptions

__all__ = ["DynamoDBMetastore", "DynamoDBMetastoreOptions"]
