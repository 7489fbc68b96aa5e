"""One implementation alone in a fresh interpreter, calling encrypt or decrypt in a plain loop.

``python -m benchmarks._loop_child IMPL OP SIZE CALLS REFERENCE_PATH`` prints one JSON object:
``{"seconds": [...]}``, the time of each call. ``IMPL`` is ``ours``, ``ours-no-pad`` (our
engine with ``malloc_top_pad = 0``) or ``reference``. Nothing else runs in the process and nothing
is kept between calls (decrypt gets each record as a fresh string, as from storage), so the
allocator sees what one service handling such records sees, unlike the interleaved core
scenario, where three implementations share one heap.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from time import perf_counter_ns
from typing import Any

from benchmarks.bench_core import CONFIG, PARTITION

DISTINCT_RECORDS = 16


def main(argv: list[str]) -> int:
    impl, op, size, calls, reference_path = argv[0], argv[1], int(argv[2]), int(argv[3]), argv[4]
    config: dict[str, Any] = dict(CONFIG)
    module: Any
    if impl.startswith("ours"):
        import asherah

        logging.getLogger("asherah").setLevel(logging.ERROR)
        module = asherah
        if impl == "ours-no-pad":
            config["malloc_top_pad"] = 0
    else:
        from benchmarks import _reference

        module = _reference.load(reference_path)
    plaintext = os.urandom(size)
    seconds = []
    with module.SessionFactory(config) as factory, factory.get_session(PARTITION) as session:
        if op == "encrypt":
            for _ in range(calls + max(calls // 4, 2)):
                start = perf_counter_ns()
                session.encrypt_bytes(plaintext)
                seconds.append((perf_counter_ns() - start) / 1e9)
        else:
            stored = [session.encrypt_bytes(plaintext).encode() for _ in range(DISTINCT_RECORDS)]
            for i in range(calls + max(calls // 4, 2)):
                # As a service does: a record fresh from storage, decrypted, both dropped.
                record = stored[i % DISTINCT_RECORDS].decode()
                start = perf_counter_ns()
                session.decrypt_bytes(record)
                seconds.append((perf_counter_ns() - start) / 1e9)
                del record
        del seconds[: max(calls // 4, 2)]  # warm-up
    print(json.dumps({"seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
