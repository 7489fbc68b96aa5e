"""Driver wrappers that time every metastore and KMS call for the hooks.

They sit between the engine and the configured drivers, so every driver is observed the same
way without each one having to report on itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from asherah._delegating import DelegatingKms, DelegatingMetastore
from asherah._records import EnvelopeKeyRecord
from asherah.hooks._manager import Hooks
from asherah.kms._base import Buffer, KeyManagementService
from asherah.metastore._base import Metastore


class InstrumentedMetastore(DelegatingMetastore):
    """Delegates to ``inner`` and reports each call's duration and failure type."""

    def __init__(self, inner: Metastore, hooks: Hooks) -> None:
        super().__init__(inner)
        self._hooks = hooks

    def __repr__(self) -> str:
        return f"InstrumentedMetastore({self.inner!r})"

    def _timed(self, operation: str, key_id: str, call: Any, *args: Any) -> Any:
        if not self._hooks.external_metastore:
            # Only the built-in listens, and it logs failures alone: no clock reads.
            try:
                return call(*args)
            except BaseException as exc:
                self._hooks.metastore_call(operation, key_id, 0, type(exc).__name__)
                raise
        started = time.perf_counter_ns()
        try:
            result = call(*args)
        except BaseException as exc:
            self._hooks.metastore_call(
                operation, key_id, time.perf_counter_ns() - started, type(exc).__name__
            )
            raise
        self._hooks.metastore_call(operation, key_id, time.perf_counter_ns() - started, None)
        return result

    def load(self, key_id: str, created: int) -> EnvelopeKeyRecord | None:
        result: EnvelopeKeyRecord | None = self._timed(
            "load", key_id, self.inner.load, key_id, created
        )
        return result

    def load_latest(self, key_id: str) -> EnvelopeKeyRecord | None:
        result: EnvelopeKeyRecord | None = self._timed(
            "load_latest", key_id, self.inner.load_latest, key_id
        )
        return result

    def load_many(
        self, requests: Sequence[tuple[str, int | None]]
    ) -> list[EnvelopeKeyRecord | None]:
        key_ids = ",".join(key_id for key_id, _ in requests)
        result: list[EnvelopeKeyRecord | None] = self._timed(
            "load_many", key_ids, self.inner.load_many, requests
        )
        return result

    def store(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> bool:
        return bool(self._timed("store", key_id, self.inner.store, key_id, created, record))

    def upsert(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> None:
        self._timed("upsert", key_id, self.inner.upsert, key_id, created, record)

    def create_schema(self) -> None:
        self.inner.create_schema()

    def list_rows(self, key_id_prefix: str = "") -> Iterator[tuple[str, int, EnvelopeKeyRecord]]:
        return self.inner.list_rows(key_id_prefix)

    def close(self) -> None:
        self.inner.close()


class InstrumentedKms(DelegatingKms):
    """Delegates to ``inner`` and reports each call's duration and failure type."""

    def __init__(self, inner: KeyManagementService, hooks: Hooks) -> None:
        super().__init__(inner)
        self._hooks = hooks

    def __repr__(self) -> str:
        return f"InstrumentedKms({self.inner!r})"

    def _timed(self, operation: str, call: Any, arg: Any) -> Any:
        if not self._hooks.external_kms:
            # Only the built-in listens, and it logs failures alone: no clock reads.
            try:
                return call(arg)
            except BaseException as exc:
                self._hooks.kms_call(operation, 0, type(exc).__name__)
                raise
        started = time.perf_counter_ns()
        try:
            result = call(arg)
        except BaseException as exc:
            self._hooks.kms_call(operation, time.perf_counter_ns() - started, type(exc).__name__)
            raise
        self._hooks.kms_call(operation, time.perf_counter_ns() - started, None)
        return result

    def encrypt_key(self, key: Buffer) -> bytes:
        return bytes(self._timed("encrypt_key", self.inner.encrypt_key, key))

    def decrypt_key(self, blob: bytes) -> bytearray:
        result: bytearray = self._timed("decrypt_key", self.inner.decrypt_key, blob)
        return result

    def close(self) -> None:
        self.inner.close()
