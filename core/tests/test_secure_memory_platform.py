"""Platform handling and the ``protect_idle`` trade-off."""

from __future__ import annotations

import os
import platform
import sys

import pytest

from asherah.hazmat.memory import (
    KeyStore,
    ProtectedBuffer,
    SecureMemoryUnavailableError,
    _libc,
    random_fill,
    random_key,
    unsupported_reason,
)
from asherah.hazmat.memory._store import _SealedBackend
from testsupport.procfs import vm_flags


def test_this_platform_is_supported() -> None:
    assert unsupported_reason() is None


@pytest.fixture
def pretend_macos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(_libc, "_LIBC", None)  # forget the bound libc: bind again, and fail


@pytest.mark.usefixtures("pretend_macos")
def test_other_platforms_get_a_clear_error_and_mode_none_still_works() -> None:
    assert unsupported_reason() == "protected memory needs Linux (this is darwin)"
    with pytest.raises(SecureMemoryUnavailableError, match="use secure_memory = 'none'"):
        ProtectedBuffer(32)
    with pytest.raises(SecureMemoryUnavailableError):
        KeyStore("mlock", allow_fallback=True)  # no fallback: encrypted needs mmap too
    with KeyStore("none") as store:
        key = random_key()  # the portable path: /dev/urandom into the buffer
        assert key != bytearray(32)
        copy = bytes(key)
        assert store.put(key).use(bytes) == copy


def test_unsupported_machine_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    assert (
        unsupported_reason() == "protected memory needs x86-64 or aarch64 Linux (this is riscv64)"
    )


def test_portable_random_fill_without_dev_urandom(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dev_urandom(*_args: object, **_kwargs: object) -> None:
        raise FileNotFoundError("/dev/urandom")

    monkeypatch.setattr("builtins.open", no_dev_urandom)
    buffer = bytearray(64)
    _libc._random_fill_portable(memoryview(buffer))
    assert buffer != bytearray(64)


def test_random_fill_refuses_read_only_buffers() -> None:
    with pytest.raises(TypeError, match="writable"):
        random_fill(memoryview(os.urandom(8)))
    empty = bytearray()
    random_fill(empty)
    assert empty == bytearray()


@pytest.mark.parametrize(("protect_idle", "idle_readable"), [(True, False), (False, True)])
def test_protect_idle_decides_what_the_slab_is_between_uses(
    protect_idle: bool, idle_readable: bool
) -> None:
    with KeyStore("mlock", slab_slots=4, protect_idle=protect_idle) as store:
        key = random_key()
        copy = bytes(key)
        handle = store.put(key)
        backend = store._backend
        assert isinstance(backend, _SealedBackend)
        address = backend.buffer.address
        assert handle.use(bytes) == copy
        flags = vm_flags(address)
        assert ("rd" in flags) is idle_readable
        assert "wr" not in flags  # never writable between uses
        assert "lo" in flags
