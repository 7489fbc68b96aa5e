"""Process hardening: no core dumps, and (on Linux) not dumpable, so not ptrace-attachable.

Both settings are one-way for an unprivileged process and harmless to repeat, so
:func:`harden_process` is idempotent and safe to call from every factory start.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from asherah.hazmat.memory import _libc
from asherah.hazmat.memory._errors import SecureMemoryError


@dataclass(frozen=True, slots=True)
class HardeningStatus:
    """What the process looks like now; ``None`` means "not applicable on this platform"."""

    core_limit: tuple[int, int] | None
    dumpable: bool | None

    @property
    def hardened(self) -> bool:
        core_off = self.core_limit is None or self.core_limit == (0, 0)
        return core_off and self.dumpable is not True


def hardening_status() -> HardeningStatus:
    """Read ``RLIMIT_CORE`` and the dumpable flag without changing anything."""
    core: tuple[int, int] | None = None
    try:
        import resource
    except ImportError:  # not POSIX: nothing to read
        pass
    else:
        core = resource.getrlimit(resource.RLIMIT_CORE)
    dumpable: bool | None = None
    if sys.platform == "linux" and _libc.unsupported_reason() is None:
        dumpable = _libc.prctl(_libc.PR_GET_DUMPABLE) != 0
    return HardeningStatus(core_limit=core, dumpable=dumpable)


def harden_process() -> HardeningStatus:
    """Turn core dumps off (``RLIMIT_CORE = 0/0``) and clear ``PR_SET_DUMPABLE``; idempotent.

    Clearing "dumpable" also stops other processes of the same user from attaching with
    ``ptrace`` or reading ``/proc/<pid>/mem``; the process can still read its own.
    """
    apply_hardening()
    return hardening_status()


def apply_hardening() -> None:
    """:func:`harden_process` without reading the status back (two system calls fewer on
    every factory start, which ignores it)."""
    try:
        import resource
    except ImportError:
        resource = None  # type: ignore[assignment]  # not POSIX: no rlimits to set
    if resource is not None:
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        except (OSError, ValueError) as exc:
            raise SecureMemoryError("setting RLIMIT_CORE to 0 failed") from exc
    if sys.platform == "linux" and _libc.unsupported_reason() is None:
        _libc.prctl(_libc.PR_SET_DUMPABLE, 0)
