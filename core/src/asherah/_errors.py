"""The exception hierarchy: one root, one type per thing that can go wrong.

Messages never carry key material or plaintext; drivers raise these ``from`` their cause.
"""

from __future__ import annotations


class AsherahError(RuntimeError):
    """Root of every error this library raises on purpose.

    It derives from ``RuntimeError`` because PyPI ``asherah`` raises ``RuntimeError`` for every
    failure: code written against that package keeps catching ours unchanged.
    """


class ConfigError(AsherahError, ValueError):
    """The configuration is incomplete, contradictory or names an unknown key."""


class DriverNotFoundError(ConfigError):
    """No installed distribution provides the KMS or metastore driver named in config."""


class DriverLoadError(AsherahError):
    """A driver was found but could not be imported or constructed."""


class KmsError(AsherahError):
    """The key management service failed to wrap or unwrap a system key."""


class MetastoreError(AsherahError):
    """The metastore failed for a reason other than "that row already exists"."""


class DecryptionError(AsherahError):
    """A data row record could not be parsed, authenticated or matched to its partition."""


class KeyCreationError(AsherahError):
    """A new system or intermediate key could not be created or loaded after retries."""


class ConfigDriftError(ConfigError):
    """The metastore's stored configuration snapshot differs from this configuration."""


class PayloadTooLargeError(AsherahError, ValueError):
    """A plaintext or record exceeds the size limits every Asherah implementation enforces."""
