"""asherah: application-layer envelope encryption with automatic key rotation.

Wire-compatible with the canonical Asherah implementations (Go, Java, C#) and the Rust core
behind PyPI ``asherah``. Start with :class:`SessionFactory`, or the module-level ``setup`` /
``encrypt_bytes`` API that mirrors PyPI ``asherah`` 0.5.56.
"""

from asherah._config import Config
from asherah._errors import (
    AsherahError,
    ConfigDriftError,
    ConfigError,
    DecryptionError,
    DriverLoadError,
    DriverNotFoundError,
    KeyCreationError,
    KmsError,
    MetastoreError,
    PayloadTooLargeError,
)
from asherah._factory import SessionFactory
from asherah._module_api import (
    decrypt_bytes,
    decrypt_bytes_async,
    decrypt_string,
    decrypt_string_async,
    encrypt_bytes,
    encrypt_bytes_async,
    encrypt_string,
    encrypt_string_async,
    get_setup_status,
    setenv,
    setup,
    setup_async,
    shutdown,
    shutdown_async,
    version,
)
from asherah._observe import set_log_hook, set_metrics_hook
from asherah._records import DataRowRecord, EnvelopeKeyRecord, KeyMeta
from asherah._session import Session
from asherah._settings import load_config
from asherah.kms import KeyManagementService, StaticKeyManagementService
from asherah.metastore import InMemoryMetastore, Metastore

__all__ = [
    "AsherahError",
    "Config",
    "ConfigDriftError",
    "ConfigError",
    "DataRowRecord",
    "DecryptionError",
    "DriverLoadError",
    "DriverNotFoundError",
    "EnvelopeKeyRecord",
    "InMemoryMetastore",
    "KeyCreationError",
    "KeyManagementService",
    "KeyMeta",
    "KmsError",
    "Metastore",
    "MetastoreError",
    "PayloadTooLargeError",
    "Session",
    "SessionFactory",
    "StaticKeyManagementService",
    "decrypt_bytes",
    "decrypt_bytes_async",
    "decrypt_string",
    "decrypt_string_async",
    "encrypt_bytes",
    "encrypt_bytes_async",
    "encrypt_string",
    "encrypt_string_async",
    "get_setup_status",
    "load_config",
    "set_log_hook",
    "set_metrics_hook",
    "setenv",
    "setup",
    "setup_async",
    "shutdown",
    "shutdown_async",
    "version",
]
