"""Process-hardening probe, run at test-session start before any factory hardens pytest.

Hardening sets RLIMIT_CORE to 0/0, which children inherit and (without CAP_SYS_RESOURCE) cannot
raise again, so the probe must run while the test process is still unhardened.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

HARDENING_RESULT = pytest.StashKey[dict[str, Any]]()

PROBE = """
import ctypes, json, resource
from asherah import SessionFactory

libc = ctypes.CDLL(None, use_errno=True)
PR_GET_DUMPABLE = 3

def dumpable():
    return libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)

# Start from a process that *would* dump core, so the test can fail. The parent (pytest) may
# already be hardened by an earlier factory, and children inherit RLIMIT_CORE = 0/0: raise the
# hard limit again (root may), else use what the hard limit allows.
try:
    resource.setrlimit(resource.RLIMIT_CORE, (1 << 20, 1 << 20))
except (ValueError, OSError):
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    soft = 1 << 20 if hard == resource.RLIM_INFINITY else min(hard, 1 << 20)
    resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))
before = {"core": resource.getrlimit(resource.RLIMIT_CORE), "dumpable": dumpable()}

config = {"ServiceName": "svc", "ProductID": "prod", "Metastore": "memory", "KMS": "static",
          "StaticMasterKeyHex": "3f" * 32}
with SessionFactory(config) as factory, factory.get_session("p") as session:
    works = session.decrypt_bytes(session.encrypt_bytes(b"data")) == b"data"
after = {"core": resource.getrlimit(resource.RLIMIT_CORE), "dumpable": dumpable()}
with SessionFactory(config):  # a second start is harmless (idempotent)
    pass
again = {"core": resource.getrlimit(resource.RLIMIT_CORE), "dumpable": dumpable()}
print(json.dumps({"before": before, "after": after, "again": again, "works": works}))
"""


def run_probe() -> dict[str, Any]:
    """Start a factory in a fresh interpreter and report RLIMIT_CORE and dumpable around it."""
    child = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    if child.returncode != 0:
        return {"error": child.stderr[-2000:]}
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return result
