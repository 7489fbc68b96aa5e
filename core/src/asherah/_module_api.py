"""The module-level API of PyPI ``asherah`` 0.5.56, as a drop-in: ``setup`` once, then
``encrypt_bytes(partition, data)`` and friends, with an LRU of sessions per partition."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from asherah._config import DEFAULT_SESSION_CACHE_MAX_SIZE, Config
from asherah._errors import AsherahError
from asherah._factory import SessionFactory
from asherah._session import Session


class _Module:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.factory: SessionFactory | None = None
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self.max_sessions = DEFAULT_SESSION_CACHE_MAX_SIZE
        self.caching = True

    def session(self, partition: str) -> Session:
        with self.lock:
            factory = self.factory
            if factory is None:
                raise AsherahError("Asherah not configured; call setup()")
            if not self.caching:
                return factory.get_session(partition)
            session = self.sessions.get(partition)
            if session is not None:
                self.sessions.move_to_end(partition)
                return session
            session = factory.get_session(partition)
            self.sessions[partition] = session
            # Evicted sessions are dropped, not closed: another thread may have fetched one
            # a moment ago and be using it outside the lock. A session holds no keys of its
            # own (the factory does), so there is nothing to release early.
            while len(self.sessions) > self.max_sessions:
                self.sessions.popitem(last=False)
            return session


_STATE = _Module()


def setup(config: Config | Mapping[str, Any]) -> None:
    """Configure the process-wide factory (PascalCase keys as in PyPI ``asherah``)."""
    with _STATE.lock:
        if _STATE.factory is not None:
            raise AsherahError("Asherah already configured; call shutdown() first")
        factory = SessionFactory(config)
        _STATE.factory = factory
        size = factory.config.session_cache_max_size
        _STATE.max_sessions = size if size and size > 0 else DEFAULT_SESSION_CACHE_MAX_SIZE
        _STATE.caching = factory.config.enable_session_caching is not False


def shutdown() -> None:
    """Close the process-wide factory and its sessions. Safe to call more than once."""
    with _STATE.lock:
        factory, _STATE.factory = _STATE.factory, None
        sessions = list(_STATE.sessions.values())
        _STATE.sessions.clear()
    for session in sessions:
        session.close()
    if factory is not None:
        factory.close()


def get_setup_status() -> bool:
    return _STATE.factory is not None


def encrypt_bytes(partition_id: str, data: bytes | bytearray | memoryview) -> str:
    return _STATE.session(partition_id).encrypt_bytes(data)


def encrypt_string(partition_id: str, text: str) -> str:
    return _STATE.session(partition_id).encrypt_text(text)


def decrypt_bytes(partition_id: str, data_row_record: str | bytes) -> bytes:
    return _STATE.session(partition_id).decrypt_bytes(data_row_record)


def decrypt_string(partition_id: str, data_row_record: str | bytes) -> str:
    return _STATE.session(partition_id).decrypt_text(data_row_record)


async def encrypt_bytes_async(partition_id: str, data: bytes | bytearray | memoryview) -> str:
    return await _STATE.session(partition_id).encrypt_bytes_async(data)


async def encrypt_string_async(partition_id: str, text: str) -> str:
    return await _STATE.session(partition_id).encrypt_text_async(text)


async def decrypt_bytes_async(partition_id: str, data_row_record: str | bytes) -> bytes:
    return await _STATE.session(partition_id).decrypt_bytes_async(data_row_record)


async def decrypt_string_async(partition_id: str, data_row_record: str | bytes) -> str:
    return await _STATE.session(partition_id).decrypt_text_async(data_row_record)


async def setup_async(config: Config | Mapping[str, Any]) -> None:
    """:func:`setup` off the event loop (building drivers may do I/O)."""
    await asyncio.get_running_loop().run_in_executor(None, setup, config)


async def shutdown_async() -> None:
    await asyncio.get_running_loop().run_in_executor(None, shutdown)


def setenv(env: Mapping[str, Any] | str) -> None:
    """Set (or with ``None`` delete) environment variables; non-strings are JSON-encoded."""
    if isinstance(env, str):
        env = json.loads(env)
    if not isinstance(env, Mapping):
        raise TypeError("setenv expects a dict or a JSON object string")
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        elif isinstance(value, str):
            os.environ[key] = value
        else:
            os.environ[key] = json.dumps(value)


def version() -> str:
    try:
        return importlib.metadata.version("asherah")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
