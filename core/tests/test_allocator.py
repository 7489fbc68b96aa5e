"""The malloc top pad: applied once per process on glibc, and large records stop faulting
their pages in on every call (counted as minor page faults, not timed)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from asherah import _allocator

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the pad is a glibc setting (CI runs on glibc)"
)

_CHILD = textwrap.dedent(
    """
    import json, os, resource, sys
    import asherah
    config = {"ServiceName": "s", "ProductID": "p", "Metastore": "memory", "KMS": "static",
              "StaticMasterKeyHex": "22" * 32, "malloc_top_pad": int(sys.argv[1])}
    with asherah.SessionFactory(config) as factory, factory.get_session("a") as session:
        data = os.urandom(1 << 20)
        record = session.encrypt_bytes(data)
        for _ in range(3):  # settle
            session.decrypt_bytes(session.encrypt_bytes(data))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(10):
            assert session.decrypt_bytes(session.encrypt_bytes(data)) == data
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    print(json.dumps({"faults": faults}))
    """
)


def _faults(pad: int, env: dict[str, str] | None = None) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(pad)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    return int(json.loads(out.splitlines()[-1])["faults"])


def test_large_records_stop_faulting_pages_with_the_pad() -> None:
    # The bare child gets the same fixed mmap threshold the pad comes with, and glibc's
    # initial trim threshold, fixed: glibc's adaptive thresholds otherwise make whether freed
    # memory goes back to the kernel depend on the process's layout (in one shell 9,070 faults,
    # in another 0, for the same code). So the two children differ by the pad alone.
    fixed = {
        **os.environ,
        "MALLOC_MMAP_THRESHOLD_": str(_allocator._MMAP_THRESHOLD),
        "MALLOC_TRIM_THRESHOLD_": str(128 * 1024),
    }
    padded, bare = _faults(16 * 1024 * 1024), _faults(0, fixed)
    # 10 round trips of 1 MiB touch ~10 MB of fresh buffers: ~2,500+ faults when each call's
    # memory goes back to the kernel, a handful when it stays mapped.
    assert bare > 2000
    assert padded < bare / 10


def test_an_operator_setting_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    # As in a process whose first factory finds the operator's setting (once applied, the pad
    # stays in effect whatever the environment says later: glibc reads it only at start-up).
    monkeypatch.setattr(_allocator, "_applied", 0)
    monkeypatch.setenv("MALLOC_TOP_PAD_", "0")
    assert _allocator.keep_top_pad(1 << 20) is False
    monkeypatch.delenv("MALLOC_TOP_PAD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1")
    assert _allocator.keep_top_pad(1 << 20) is False


def test_applied_once_and_only_raised() -> None:
    assert _allocator.keep_top_pad(0) is False
    assert _allocator.keep_top_pad(16 * 1024 * 1024) is True
    applied = _allocator._applied
    assert applied >= 16 * 1024 * 1024
    assert _allocator.keep_top_pad(1024) is True  # already covered: nothing lowered
    assert _allocator._applied == applied


def test_once_applied_the_environment_is_not_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _allocator.keep_top_pad(16 * 1024 * 1024) is True

    def read_environment() -> bool:
        raise AssertionError("the environment was read again")

    monkeypatch.setattr(_allocator, "_operator_tuned", read_environment)
    assert _allocator.keep_top_pad(1 << 20) is True
