"""Metastore interface and the built-in in-memory driver."""

from asherah.metastore._base import Metastore, NoOptions
from asherah.metastore._memory import InMemoryMetastore

__all__ = ["InMemoryMetastore", "Metastore", "NoOptions"]
