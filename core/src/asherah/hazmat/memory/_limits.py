"""Reading ``RLIMIT_MEMLOCK`` and ``VmLck``, and turning an ``mlock`` refusal into advice."""

from __future__ import annotations

import errno
import os

from asherah.hazmat.memory._errors import MemlockLimitError

_HOW_TO_RAISE = (
    "raise the limit for this process: shell `ulimit -l <KiB>|unlimited`; "
    "/etc/security/limits.conf `memlock`; systemd `LimitMEMLOCK=`; "
    "docker `--ulimit memlock=-1:-1`; Kubernetes: grant the IPC_LOCK capability or raise the "
    "runtime's memlock default; or set secure_memory = 'encrypted' (keys stay AES-GCM sealed, "
    "nothing is locked) or allow the fallback to it"
)


def memlock_limit() -> tuple[int | None, int | None]:
    """``(soft, hard)`` of ``RLIMIT_MEMLOCK`` in bytes; ``None`` means unlimited or unknown."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None, None
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    return _finite(soft, resource.RLIM_INFINITY), _finite(hard, resource.RLIM_INFINITY)


def _finite(value: int, infinity: int) -> int | None:
    return None if value == infinity else value


def locked_bytes() -> int | None:
    """Bytes this process has locked now (``VmLck`` in ``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmLck:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _show(value: int | None) -> str:
    return "unlimited" if value is None else f"{value} bytes"


def memlock_error(code: int, requested: int) -> MemlockLimitError:
    """The error for a refused ``mlock``: the limit, its value, what is locked, how to raise it."""
    soft, hard = memlock_limit()
    locked = locked_bytes()
    name = errno.errorcode.get(code, str(code))
    already = "an unknown amount" if locked is None else f"{locked} bytes"
    message = (
        f"mlock of {requested} bytes failed ({name}: {os.strerror(code)}): RLIMIT_MEMLOCK is "
        f"{_show(soft)} (hard limit {_show(hard)}) and this process already has {already} "
        f"locked (VmLck). To fix it, {_HOW_TO_RAISE}"
    )
    return MemlockLimitError(message, requested=requested, soft=soft, hard=hard, locked=locked)
