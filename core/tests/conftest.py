"""Shared fixtures for the engine tests: a controllable clock, a counting in-memory metastore
and a factory builder that closes what it builds."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from asherah import EnvelopeKeyRecord, InMemoryMetastore, SessionFactory
from asherah.testing import CountingMetastore

KEY_HEX = "22" * 32

#: A whole minute (1699999980 % 60 == 0), so key timestamps are easy to predict.
START = 1_699_999_980


@pytest.fixture
def no_drift_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """The drift guard's force switches unset, whatever the developer's shell exports."""
    monkeypatch.delenv("ASHERAH_CONFIG_DRIFT_FORCE_RUN", raising=False)
    monkeypatch.delenv("ASHERAH_CONFIG_DRIFT_FORCE_UPDATE", raising=False)


class FakeClock:
    """Seconds since the epoch that only move when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = float(now)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def static_config(**overrides: Any) -> dict[str, Any]:
    """The smallest working config (memory metastore, static KMS with ``KEY_HEX``) plus
    ``overrides``; one definition, so the engine tests all start from the same one."""
    return {
        "ServiceName": "svc",
        "ProductID": "prod",
        "Metastore": "memory",
        "KMS": "static",
        "StaticMasterKeyHex": KEY_HEX,
        **overrides,
    }


def _base_config(**overrides: Any) -> dict[str, Any]:
    # Exact check intervals: these tests step a fake clock to the second. The jitter itself is
    # tested in test_key_caches.py.
    return static_config(**{"cache_ttl_jitter": 0.0, **overrides})


def _revoke(metastore: InMemoryMetastore, key_id: str, created: int | None = None) -> int:
    """Mark a key row ``Revoked: true`` the way an operator does; returns its ``created``."""
    record = metastore.load_latest(key_id) if created is None else metastore.load(key_id, created)
    assert record is not None, f"no row {key_id} to revoke"
    metastore.replace(key_id, record.created, record.with_revoked(True))
    return record.created


def _key_rows(metastore: InMemoryMetastore, key_id: str) -> list[EnvelopeKeyRecord]:
    return [record for row_id, _, record in metastore.rows() if row_id == key_id]


@pytest.fixture
def revoke() -> Callable[..., int]:
    """``revoke(metastore, key_id, created=None)``: mark a row revoked (latest by default)."""
    return _revoke


@pytest.fixture
def key_rows() -> Callable[[InMemoryMetastore, str], list[EnvelopeKeyRecord]]:
    """``key_rows(metastore, key_id)``: every stored row of one key id, oldest first."""
    return _key_rows


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def memory() -> InMemoryMetastore:
    return InMemoryMetastore()


@pytest.fixture
def counting(memory: InMemoryMetastore) -> CountingMetastore:
    return CountingMetastore(memory)


FactoryBuilder = Callable[..., SessionFactory]


@pytest.fixture
def make_factory(counting: CountingMetastore, clock: FakeClock) -> Iterator[FactoryBuilder]:
    """``make_factory(metastore=..., kms=..., **config_overrides)``; the metastore defaults to
    the test's counting one, and every factory runs on the test's fake clock and is closed at
    teardown."""
    built: list[SessionFactory] = []

    def build(
        *,
        metastore: Any = None,
        kms: Any = None,
        **overrides: Any,
    ) -> SessionFactory:
        factory = SessionFactory(
            _base_config(**overrides),
            metastore=counting if metastore is None else metastore,
            kms=kms,
            clock=clock,
        )
        built.append(factory)
        return factory

    yield build
    for factory in built:
        factory.close()
