"""A metastore in one JSON-lines file: an example of an out-of-tree asherah driver."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Self

from pydantic import BaseModel, ConfigDict

from asherah import EnvelopeKeyRecord, MetastoreError
from asherah.metastore import Metastore

__all__ = ["JsonFileMetastore", "JsonFileOptions"]


class JsonFileOptions(BaseModel):
    """Validated before the driver is built; a typo in an option is a clear error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path


class JsonFileMetastore(Metastore):
    """Rows are appended as ``{"id", "created", "record"}`` lines; the last line for a
    ``(id, created)`` wins, which is how ``upsert`` (revocation, drift guard) works."""

    Options = JsonFileOptions

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def from_options(cls, options: Any, context: Any) -> Self:
        return cls(options.path)

    def __repr__(self) -> str:
        return f"JsonFileMetastore(path={str(self.path)!r})"

    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[IO[str]]:
        try:
            handle = self.path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise MetastoreError(f"cannot open metastore file {self.path}: {exc}") from exc
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            handle.seek(0)
            yield handle

    def _rows(self, handle: IO[str]) -> dict[tuple[str, int], EnvelopeKeyRecord]:
        rows = {}
        for line in handle:
            if line.strip():
                item = json.loads(line)
                rows[(item["id"], item["created"])] = EnvelopeKeyRecord.from_json(item["record"])
        return rows

    def load(self, key_id: str, created: int) -> EnvelopeKeyRecord | None:
        with self._locked(exclusive=False) as handle:
            return self._rows(handle).get((key_id, created))

    def load_latest(self, key_id: str) -> EnvelopeKeyRecord | None:
        with self._locked(exclusive=False) as handle:
            mine = [(c, r) for (k, c), r in self._rows(handle).items() if k == key_id]
        return max(mine, key=lambda row: row[0])[1] if mine else None

    def _append(
        self, handle: IO[str], key_id: str, created: int, record: EnvelopeKeyRecord
    ) -> None:
        line = json.dumps({"id": key_id, "created": created, "record": record.to_json()})
        handle.seek(0, os.SEEK_END)
        handle.write(line + "\n")
        handle.flush()

    def store(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> bool:
        with self._locked(exclusive=True) as handle:
            if (key_id, created) in self._rows(handle):
                return False
            self._append(handle, key_id, created, record)
            return True

    def upsert(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> None:
        with self._locked(exclusive=True) as handle:
            self._append(handle, key_id, created, record)

    def list_rows(self, key_id_prefix: str = "") -> Iterator[tuple[str, int, EnvelopeKeyRecord]]:
        with self._locked(exclusive=False) as handle:
            rows = sorted(self._rows(handle).items())
        return iter([(k, c, r) for (k, c), r in rows if k.startswith(key_id_prefix)])

    def create_schema(self) -> None:
        self.path.touch(exist_ok=True)
