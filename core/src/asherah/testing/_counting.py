"""Driver wrappers that count calls, for tests of caching and single-flight behaviour."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence

from asherah._delegating import DelegatingKms, DelegatingMetastore
from asherah._records import EnvelopeKeyRecord
from asherah.kms._base import Buffer, KeyManagementService
from asherah.metastore._base import Metastore


class CountingMetastore(DelegatingMetastore):
    """Counts ``load``, ``load_latest``, ``load_many``, ``store`` and ``upsert`` calls on
    ``inner``."""

    def __init__(self, inner: Metastore) -> None:
        super().__init__(inner)
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1

    @property
    def writes(self) -> int:
        return self.calls["store"] + self.calls["upsert"]

    def load(self, key_id: str, created: int) -> EnvelopeKeyRecord | None:
        self._count("load")
        return self.inner.load(key_id, created)

    def load_latest(self, key_id: str) -> EnvelopeKeyRecord | None:
        self._count("load_latest")
        return self.inner.load_latest(key_id)

    def load_many(
        self, requests: Sequence[tuple[str, int | None]]
    ) -> list[EnvelopeKeyRecord | None]:
        self._count("load_many")
        return self.inner.load_many(requests)

    def store(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> bool:
        self._count("store")
        return self.inner.store(key_id, created, record)

    def upsert(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> None:
        self._count("upsert")
        self.inner.upsert(key_id, created, record)


class CountingKms(DelegatingKms):
    """Counts ``encrypt_key`` and ``decrypt_key`` calls on ``inner``."""

    def __init__(self, inner: KeyManagementService) -> None:
        super().__init__(inner)
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1

    def encrypt_key(self, key: Buffer) -> bytes:
        self._count("encrypt_key")
        return self.inner.encrypt_key(key)

    def decrypt_key(self, blob: bytes) -> bytearray:
        self._count("decrypt_key")
        return self.inner.decrypt_key(blob)
