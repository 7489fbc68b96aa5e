"""Process hardening: core dumps and dumpability off, idempotent; self-scanning still works.

Hardening is one-way, so it runs in a child process, never in the pytest process itself.
"""

from __future__ import annotations

from asherah.hazmat.memory import HardeningStatus, hardening_status
from testsupport.child import run_json

CHILD = """
import json, resource
from asherah.hazmat.memory import MemoryScanner, harden_process, hardening_status, random_key

# Start from a process that *can* dump core, so the test sees hardening change something.
soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
if hard != 0:
    wanted = 1 << 20 if hard == resource.RLIM_INFINITY else min(hard, 1 << 20)
    resource.setrlimit(resource.RLIMIT_CORE, (wanted, hard))
before = hardening_status()
first = harden_process()
second = harden_process()
key = random_key()
needle = bytearray(key)
with MemoryScanner(needle) as scanner:
    copies = scanner.count()  # a non-dumpable process can still read its own memory
print(json.dumps({
    "before": [before.core_limit, before.dumpable],
    "first": [first.core_limit, first.dumpable, first.hardened],
    "second": [second.core_limit, second.dumpable, second.hardened],
    "copies": copies,
}))
"""


def test_harden_process_turns_core_dumps_and_dumpable_off_idempotently() -> None:
    result = run_json(CHILD)
    assert result["before"][1] is True  # a fresh interpreter is dumpable
    assert result["first"] == [[0, 0], False, True]
    assert result["second"] == result["first"]
    assert result["copies"] == 1  # the key itself; the scanner's copy is excluded


def test_hardening_status_reads_without_changing_anything() -> None:
    status = hardening_status()
    assert isinstance(status.dumpable, bool)  # Linux: prctl(PR_GET_DUMPABLE) was read
    assert status.core_limit is not None
    assert hardening_status() == status  # (other tests may have hardened this process)


def test_status_hardened_flag() -> None:
    assert HardeningStatus(core_limit=(0, 0), dumpable=False).hardened
    assert not HardeningStatus(core_limit=(0, 4096), dumpable=False).hardened
    assert not HardeningStatus(core_limit=(0, 0), dumpable=True).hardened
    assert HardeningStatus(core_limit=None, dumpable=None).hardened
