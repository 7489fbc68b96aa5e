"""The key management service interface: wraps and unwraps system keys with a master key."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any

from asherah._driver_base import DriverBase

Buffer = bytes | bytearray | memoryview


class KeyManagementService(DriverBase, ABC):
    """Wraps a 32-byte system key for storage and unwraps it again.

    ``decrypt_key`` returns a ``bytearray`` so the engine can wipe it once the key is held in
    its own key store; drivers should not keep other copies. Failures raise
    :class:`asherah.KmsError` naming the operation, never the key.
    """

    @abstractmethod
    def encrypt_key(self, key: Buffer) -> bytes:
        """Wrap ``key``; the result is stored base64-encoded as the SK row's ``Key``."""

    @abstractmethod
    def decrypt_key(self, blob: bytes) -> bytearray:
        """Unwrap a blob produced by :meth:`encrypt_key` (here or in another implementation)."""

    def drift_identity(self) -> dict[str, Any] | None:
        """The reference's ``kms_identity`` object for the drift guard (§1.7), without secrets;
        ``None`` when this backend has no reference equivalent."""
        return None

    def close(self) -> None:
        """Release clients. The default does nothing."""

    async def encrypt_key_async(self, key: Buffer) -> bytes:
        return await asyncio.to_thread(self.encrypt_key, key)

    async def decrypt_key_async(self, blob: bytes) -> bytearray:
        return await asyncio.to_thread(self.decrypt_key, blob)
