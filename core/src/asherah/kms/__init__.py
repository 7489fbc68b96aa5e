"""Key management service interface and the built-in static driver."""

from asherah.kms._base import KeyManagementService
from asherah.kms._static import StaticKeyManagementService, StaticKmsOptions

__all__ = ["KeyManagementService", "StaticKeyManagementService", "StaticKmsOptions"]
