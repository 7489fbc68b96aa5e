"""AWS master keys for asherah (entry points ``asherah.kms``: ``aws``, ``secrets-manager``).

``aws`` wraps system keys in the canonical multi-region AWS KMS envelope, byte-compatible with
the Go, Java and Rust Asherah implementations. ``secrets-manager`` reads a 32-byte master key
from AWS Secrets Manager and seals exactly as the ``static`` KMS does.
"""

from asherah_kms_aws._aws_kms import AwsKeyManagementService, RegionalKey
from asherah_kms_aws._envelope import EnvelopeFormatError, KmsEnvelope, RegionalKek
from asherah_kms_aws._errors import AwsKmsError, RegionFailure
from asherah_kms_aws._options import AwsClientOptions, AwsKmsOptions, SecretsManagerKmsOptions
from asherah_kms_aws._secrets_manager import SecretsManagerKeyManagementService, decode_secret

__all__ = [
    "AwsClientOptions",
    "AwsKeyManagementService",
    "AwsKmsError",
    "AwsKmsOptions",
    "EnvelopeFormatError",
    "KmsEnvelope",
    "RegionFailure",
    "RegionalKek",
    "RegionalKey",
    "SecretsManagerKeyManagementService",
    "SecretsManagerKmsOptions",
    "decode_secret",
]
