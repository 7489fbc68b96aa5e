"""What the kernel reports about this process's memory, for the secure-memory tests (Linux)."""

from __future__ import annotations


def vm_flags(address: int) -> set[str]:
    """The ``VmFlags`` of the mapping that holds ``address``, from ``/proc/self/smaps``."""
    with open("/proc/self/smaps", encoding="ascii") as smaps:
        inside = False
        for line in smaps:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                low, high = (int(part, 16) for part in head.split("-"))
                inside = low <= address < high
            elif inside and line.startswith("VmFlags:"):
                return set(line.split()[1:])
    raise AssertionError("mapping not found in /proc/self/smaps")
