"""Metastore interface and the built-in in-memory driver."""

from asherah._driver_base import NoOptions
from asherah.metastore._base import Metastore
from asherah.metastore._memory import InMemoryMetastore

__all__ = ["InMemoryMetastore", "Metastore", "NoOptions"]
