"""Count copies of a byte pattern in this process's memory, via ``/proc/self/maps`` and ``mem``.

This is how the claims in ``docs/security.md`` are measured: put a known key through the
engine, then count where its bytes still are. The scanner must not add copies of its own, so the
pattern and the read buffer live in one private mapping that the scan skips, reads go straight
into that mapping (``os.preadv``), and matching uses ``mmap.find`` (no ``bytes`` are created).
"""

from __future__ import annotations

import ctypes
import mmap
import os
from collections.abc import Iterator

from asherah.hazmat.memory import _libc
from asherah.hazmat.memory._errors import SecureMemoryUnavailableError

_SKIPPED = ("[vvar]", "[vvar_vclock]", "[vsyscall]")
_MAX_PATTERN = 4096


class MemoryScanner:
    """Holds one pattern out of reach of its own scans; :meth:`count` may be called repeatedly.

    With ``wipe_source`` (the default) the caller's buffer is zeroed once copied, so the only
    remaining copy is the scanner's own, which is never counted.
    """

    def __init__(
        self,
        pattern: bytearray | memoryview | bytes,
        *,
        wipe_source: bool = True,
        chunk_size: int = 1 << 20,
    ) -> None:
        if not os.path.exists("/proc/self/mem"):
            raise SecureMemoryUnavailableError("memory scanning needs /proc/self/mem (Linux)")
        source = memoryview(pattern).cast("B")
        length = source.nbytes
        if not 0 < length <= _MAX_PATTERN:
            source.release()
            raise ValueError(f"the pattern must be 1 to {_MAX_PATTERN} bytes")
        if wipe_source and source.readonly:
            source.release()
            raise ValueError("wipe_source needs a writable pattern buffer (a bytearray)")
        self._length = length
        self._chunk = max(chunk_size, 2 * length)
        self._map = mmap.mmap(-1, length + self._chunk)
        self._map[:length] = source
        if wipe_source:
            _libc.wipe(source)
        source.release()
        anchor = ctypes.c_char.from_buffer(self._map)
        self._start = ctypes.addressof(anchor)
        del anchor
        self._end = self._start + length + self._chunk

    def __enter__(self) -> MemoryScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Zero the scanner's copy of the pattern and unmap it."""
        if not self._map.closed:
            self._map[: self._length] = bytes(self._length)
            self._map.close()

    def count(self, *, include_protected: bool = False) -> int:
        """Occurrences of the pattern in readable memory (plus ``PROT_NONE`` anonymous memory
        when ``include_protected``: ``/proc/self/mem`` can read it, so it shows what an idle
        protected buffer holds)."""
        total = 0
        with open("/proc/self/mem", "rb", buffering=0) as mem:
            fd = mem.fileno()
            for start, end in self._regions(include_protected):
                total += self._scan_region(fd, start, end)
        return total

    def _regions(self, include_protected: bool) -> Iterator[tuple[int, int]]:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            lines = maps.read().splitlines()
        for line in lines:
            fields = line.split(maxsplit=5)
            perms = fields[1]
            path = fields[5] if len(fields) > 5 else ""
            if path in _SKIPPED:
                continue
            if perms[0] != "r" and not (include_protected and not path):
                continue
            low, high = (int(part, 16) for part in fields[0].split("-"))
            # Cut the scanner's own mapping out (it may be merged with a neighbour).
            if (
                low < self._start < high
                or low < self._end <= high
                or (self._start <= low and high <= self._end)
            ):
                if low < self._start:
                    yield low, self._start
                if self._end < high:
                    yield self._end, high
                continue
            yield low, high

    def _scan_region(self, fd: int, start: int, end: int) -> int:
        length, chunk, found = self._length, self._chunk, 0
        needle = memoryview(self._map)[:length]
        window = memoryview(self._map)[length:]
        try:
            position = start
            while position < end:
                want = min(chunk, end - position)
                try:
                    got = os.preadv(fd, [window[:want]], position)
                except OSError:  # unreadable (e.g. a device mapping): skip the rest
                    break
                if got <= 0:
                    break
                last = position + got >= end or got < want
                # Count matches starting before ``advance``; the next chunk overlaps the rest.
                advance = got if last else got - length + 1
                limit = length + min(got, advance + length - 1)
                at = self._map.find(needle, length, limit)
                while at >= 0:
                    found += 1
                    at = self._map.find(needle, at + 1, limit)
                if last:
                    break
                position += advance
        finally:
            needle.release()
            window.release()
        return found


def count_in_memory(
    pattern: bytearray | memoryview | bytes, *, include_protected: bool = False
) -> int:
    """Copies of ``pattern`` in this process's memory, the caller's own copy included."""
    with MemoryScanner(pattern, wipe_source=False) as scanner:
        return scanner.count(include_protected=include_protected)
