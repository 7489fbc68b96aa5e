"""The metastore interface: where system and intermediate key rows live."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from asherah._driver_base import DriverBase
from asherah._records import EnvelopeKeyRecord


class Metastore(DriverBase, ABC):
    """Stores ``(key_id, created) -> EnvelopeKeyRecord`` rows, insert-if-absent.

    Implementations raise :class:`asherah.MetastoreError` for every backend failure and return
    ``False`` from :meth:`store` only when the row already exists: the engine reads that as
    "another process created this key first" and loads the winner.

    The ``*_async`` methods default to running the sync method in a worker thread; drivers with
    a native async client override them.
    """

    #: :meth:`load_many` answers in one round trip (the driver overrides it): the factory then
    #: reads the latest system key together with its drift-guard row at start.
    batches_loads: ClassVar[bool] = False

    @abstractmethod
    def load(self, key_id: str, created: int) -> EnvelopeKeyRecord | None:
        """The row at exactly ``(key_id, created)``, or ``None``."""

    @abstractmethod
    def load_latest(self, key_id: str) -> EnvelopeKeyRecord | None:
        """The row with the greatest ``created`` for ``key_id``, or ``None``."""

    @abstractmethod
    def store(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> bool:
        """Insert the row if absent; ``True`` when inserted, ``False`` when it already existed."""

    def load_many(
        self, requests: Sequence[tuple[str, int | None]]
    ) -> list[EnvelopeKeyRecord | None]:
        """Several reads at once, one result per request in order: ``(key_id, created)`` as
        :meth:`load`, ``(key_id, None)`` as :meth:`load_latest`. The default makes them one by
        one; a driver that can answer them in one round trip overrides this (and sets
        :attr:`batches_loads`). Raises :class:`asherah.MetastoreError` if any read fails."""
        return [
            self.load_latest(key_id) if created is None else self.load(key_id, created)
            for key_id, created in requests
        ]

    def upsert(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> None:
        """Insert or overwrite a row. Used only for the config drift-guard row, never for keys."""
        raise NotImplementedError(f"{type(self).__name__} does not support upsert")

    def drift_identity(self) -> dict[str, Any] | None:
        """The reference's ``metastore_identity`` object for the drift guard (§1.7), or ``None``
        when this backend has no reference equivalent (then no guard row is written)."""
        return None

    def list_rows(self, key_id_prefix: str = "") -> Iterator[tuple[str, int, EnvelopeKeyRecord]]:
        """Every row whose id starts with ``key_id_prefix``, for ``asherah keys list``/``revoke``
        (operator tooling; the engine never scans)."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its rows")

    def create_schema(self) -> None:
        """Create the table if absent (``asherah metastore init``). Drivers never do this on their
        own at start-up unless their options ask for it."""
        raise NotImplementedError(f"{type(self).__name__} has no schema to create")

    def region_suffix(self) -> str | None:
        """A region appended to key ids (DynamoDB global tables); ``None`` for no suffix."""
        return None

    def close(self) -> None:
        """Release connections. The default does nothing."""

    async def load_async(self, key_id: str, created: int) -> EnvelopeKeyRecord | None:
        return await asyncio.to_thread(self.load, key_id, created)

    async def load_latest_async(self, key_id: str) -> EnvelopeKeyRecord | None:
        return await asyncio.to_thread(self.load_latest, key_id)

    async def store_async(self, key_id: str, created: int, record: EnvelopeKeyRecord) -> bool:
        return await asyncio.to_thread(self.store, key_id, created, record)
