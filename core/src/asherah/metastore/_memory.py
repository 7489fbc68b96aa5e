"""The in-memory metastore: thread-safe, insert-if-absent, gone with the process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from asherah._driver_base import NoOptions
from asherah._records import EnvelopeKeyRecord
from asherah.metastore._base import Metastore

_log = logging.getLogger("asherah.metastore.memory")


class InMemoryMetastore(Metastore):
    """A dict of rows plus the newest ``created`` per id. For tests and single-process demos."""

    Options = NoOptions

    def __init__(self) -> None:
        self._rows: dict[tuple[str, int], EnvelopeKeyRecord] = {}
        self._latest: dict[str, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, options: NoOptions, context: Any) -> InMemoryMetastore:
        _log.warning("Using the in-memory metastore: keys are lost when the process exits.")
        return cls()

    def load(self, key_id: str, created: int) -> EnvelopeKeyRecord | None:
        return self._rows.get((key_id, created))

    def load_latest(self, key_id: str) -> EnvelopeKeyRecord | None:
        with self._lock:
            created = self._latest.get(key_id)
            return None if created is None else self._rows[(key_id, created)]

    def store(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> bool:
        with self._lock:
            if (key_id, created) in self._rows:
                return False
            self._rows[(key_id, created)] = record
            if created > self._latest.get(key_id, created - 1):
                self._latest[key_id] = created
            return True

    def upsert(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> None:
        self.replace(key_id, created, record)

    def drift_identity(self) -> dict[str, Any]:
        return {"kind": "memory"}

    def rows(self) -> list[tuple[str, int, EnvelopeKeyRecord]]:
        """Every row, for tools and tests that inspect what was written."""
        with self._lock:
            return [(k, c, r) for (k, c), r in sorted(self._rows.items())]

    def list_rows(self, key_id_prefix: str = "") -> Iterator[tuple[str, int, EnvelopeKeyRecord]]:
        return iter([row for row in self.rows() if row[0].startswith(key_id_prefix)])

    def replace(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> None:
        """Overwrite a row (the revoke tool's job; the engine never calls this)."""
        with self._lock:
            self._rows[(key_id, created)] = record
            if created > self._latest.get(key_id, created - 1):
                self._latest[key_id] = created
