"""Driver wrappers' shared part: what a wrapper answers exactly as the driver it wraps does.

The engine's timing wrappers (:mod:`asherah._instrumented`) and the test kit's counting ones
(:mod:`asherah.testing`) observe different calls, but a wrapped driver must describe itself as
the driver inside: its drift-guard identity, its region suffix, whether it batches loads.
"""

from __future__ import annotations

from typing import Any

from asherah.kms._base import KeyManagementService
from asherah.metastore._base import Metastore


class DelegatingMetastore(Metastore):
    """A metastore wrapper around ``inner``; subclasses implement the calls they observe."""

    def __init__(self, inner: Metastore) -> None:
        self.inner = inner

    @property
    def batches_loads(self) -> bool:  # type: ignore[override]  # the inner driver's answer
        return self.inner.batches_loads

    def drift_identity(self) -> dict[str, Any] | None:
        return self.inner.drift_identity()

    def region_suffix(self) -> str | None:
        return self.inner.region_suffix()


class DelegatingKms(KeyManagementService):
    """A KMS wrapper around ``inner``; subclasses implement the calls they observe."""

    def __init__(self, inner: KeyManagementService) -> None:
        self.inner = inner

    def drift_identity(self) -> dict[str, Any] | None:
        return self.inner.drift_identity()
