"""Scripts run in a fresh interpreter, for tests whose subject is process-wide or one-way
(hardening, rlimits, capabilities, deliberate faults, memory scans): the pytest process must
neither be changed by them nor taken down."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

#: Prelude for a child script: drop ``CAP_IPC_LOCK`` (root with it ignores RLIMIT_MEMLOCK),
#: then allow one page of locked memory, so a test means the same as root or as a user.
ONE_PAGE_MEMLOCK = """
import ctypes, resource

class Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

class Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]

libc = ctypes.CDLL(None, use_errno=True)
header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
assert libc.capget(ctypes.byref(header), data) == 0
CAP_IPC_LOCK = 1 << 14
for field in ("effective", "permitted", "inheritable"):
    setattr(data[0], field, getattr(data[0], field) & ~CAP_IPC_LOCK)
assert libc.capset(ctypes.byref(header), data) == 0, ctypes.get_errno()
resource.setrlimit(resource.RLIMIT_MEMLOCK, (4096, 4096))
"""


def run_python(script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (dedented) with ``args`` in a fresh interpreter; output captured, the
    exit status left to the caller."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_json(script: str, *args: str, timeout: float = 60) -> Any:
    """Run ``script``, which must exit 0 and print its result as JSON (and nothing else)."""
    child = run_python(script, *args, timeout=timeout)
    assert child.returncode == 0, child.stderr
    return json.loads(child.stdout)
