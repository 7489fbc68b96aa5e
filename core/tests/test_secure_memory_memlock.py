"""A tiny RLIMIT_MEMLOCK: a clear error naming the limit, or the fallback to ``encrypted``.

The child process lowers its own limit and drops ``CAP_IPC_LOCK`` first (a root process with
that capability ignores ``RLIMIT_MEMLOCK``), so the test means the same as root or as a user.
"""

from __future__ import annotations

import textwrap

from asherah.hazmat.memory import memlock_limit
from asherah.hazmat.memory._errors import MemlockLimitError
from asherah.hazmat.memory._limits import memlock_error
from testsupport.child import ONE_PAGE_MEMLOCK, run_json

PRELUDE = (
    ONE_PAGE_MEMLOCK
    + """
import json

from asherah.hazmat.memory import KeyStore, MemlockLimitError, ProtectedBuffer, random_key
from asherah.hazmat.memory import locked_bytes
"""
)


def run_child(body: str) -> dict[str, object]:
    result: dict[str, object] = run_json(PRELUDE + textwrap.dedent(body))
    return result


def test_mlock_beyond_the_limit_names_the_limit_and_how_to_raise_it() -> None:
    result = run_child(
        """
        one_page = ProtectedBuffer(32)  # 4096 bytes: exactly the limit, so it works
        try:
            ProtectedBuffer(32)
        except MemlockLimitError as exc:
            error = exc
        one_page.close()
        try:
            KeyStore("mlock", slab_slots=256)  # three pages
        except MemlockLimitError as exc:
            store_error = str(exc)
        print(json.dumps({"error": str(error), "soft": error.soft, "hard": error.hard,
                          "requested": error.requested, "locked": error.locked,
                          "store_error": store_error, "after": locked_bytes()}))
        """
    )
    message = str(result["error"])
    assert "RLIMIT_MEMLOCK is 4096 bytes (hard limit 4096 bytes)" in message
    assert "this process already has 4096 bytes locked (VmLck)" in message
    assert "mlock of 4096 bytes failed (ENOMEM" in message
    assert "ulimit -l" in message
    assert "LimitMEMLOCK" in message
    assert "--ulimit memlock" in message
    assert "secure_memory = 'encrypted'" in message
    assert (result["soft"], result["hard"], result["requested"], result["locked"]) == (
        4096,
        4096,
        4096,
        4096,
    )
    assert "mlock of 12288 bytes failed" in str(result["store_error"])
    assert result["after"] == 0  # the refused mappings were released, nothing stays locked


def test_fallback_to_encrypted_when_allowed() -> None:
    result = run_child(
        """
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        events = []
        store = KeyStore("mlock", slab_slots=256, allow_fallback=True,
                         on_event=lambda kind, label: events.append(kind))
        key = random_key()
        copy = bytes(key)
        handle = store.put(key)
        sealed = handle.use(lambda k: AESGCM(k).encrypt(b"n" * 12, b"data", None))
        ok = AESGCM(copy).decrypt(b"n" * 12, sealed, None) == b"data"
        stats = store.stats()
        print(json.dumps({"mode": store.mode, "requested": store.requested_mode,
                          "reason": store.fallback_reason, "events": events, "ok": ok,
                          "locked": stats.locked_bytes, "vmlck": locked_bytes()}))
        store.close()
        """
    )
    assert result["mode"] == "encrypted"
    assert result["requested"] == "mlock"
    assert "RLIMIT_MEMLOCK is 4096 bytes" in str(result["reason"])
    assert result["events"] == ["fallback", "miss", "promotion", "eviction"]
    assert result["ok"] is True
    assert result["locked"] == 0
    assert result["vmlck"] == 0


def test_error_text_for_an_unlimited_process() -> None:
    error = memlock_error(1, 8192)  # EPERM: e.g. a limit of 0 without CAP_IPC_LOCK
    assert isinstance(error, MemlockLimitError)
    soft, _ = memlock_limit()
    shown = "unlimited" if soft is None else f"{soft} bytes"
    assert f"RLIMIT_MEMLOCK is {shown}" in str(error)
    assert "mlock of 8192 bytes failed (EPERM" in str(error)


def test_zero_limit_is_refused_with_eperm() -> None:
    result = run_child(
        """
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))
        try:
            ProtectedBuffer(32)
        except MemlockLimitError as exc:
            print(json.dumps({"error": str(exc)}))
        """
    )
    assert "(EPERM" in str(result["error"])
    assert "RLIMIT_MEMLOCK is 0 bytes" in str(result["error"])
