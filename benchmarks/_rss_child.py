"""Memory probes run in a fresh interpreter, one implementation each, so RSS is clean.

``python -m benchmarks._rss_child IMPL JOB COUNT [REFERENCE_PATH]`` prints one JSON object:

- ``partitions``: RSS growth per partition over ``COUNT`` new partitions (session, 64 B
  encrypt, close), caches large enough to keep every intermediate key;
- ``churn``: ``COUNT`` new partitions through the default 1,000-entry session cache; RSS
  sampled along the way and the peak (``VmHWM``).

``IMPL`` is ``ours`` or ``reference``. Both use the memory metastore, which keeps every
intermediate key row: that is part of what grows, for both alike.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
from typing import Any

from benchmarks.bench_core import CONFIG

PLAINTEXT = b"x" * 64
#: Ours keeps every IK of the partitions run (the reference's IK cache is unbounded).
OUR_PARTITION_OVERRIDES = {"intermediate_key_cache_max_size": 20_000}


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _module(impl: str, reference_path: str | None) -> Any:
    if impl == "ours":
        import asherah

        logging.getLogger("asherah").setLevel(logging.ERROR)
        return asherah
    from benchmarks import _reference

    return _reference.load(reference_path)


def _touch(factory: Any, partition: str) -> None:
    session = factory.get_session(partition)
    session.encrypt_bytes(PLAINTEXT)
    session.close()


def partitions(module: Any, config: dict[str, Any], count: int) -> dict[str, float]:
    with module.SessionFactory(config) as factory:
        for i in range(200):  # warm-up: allocator arenas, first keys, code paths
            _touch(factory, f"warm{i}")
        gc.collect()
        before = status_kib("VmRSS")
        for i in range(count):
            _touch(factory, f"p{i}")
        gc.collect()
        after = status_kib("VmRSS")
    return {"bytes_per_partition": (after - before) * 1024 / count}


def churn(module: Any, config: dict[str, Any], count: int) -> dict[str, float]:
    samples = []
    step = max(count // 10, 1)
    with module.SessionFactory(config) as factory:
        for i in range(count):
            _touch(factory, f"c{i}")
            if (i + 1) % step == 0:
                samples.append(status_kib("VmRSS"))
    half = len(samples) // 2
    growth = (samples[-1] - samples[half - 1]) / (step * (len(samples) - half)) * 1000
    return {
        "peak_mib": status_kib("VmHWM") / 1024,
        "final_mib": samples[-1] / 1024,
        "kib_per_1k_second_half": growth,
    }


def main(argv: list[str]) -> int:
    impl, job, count = argv[0], argv[1], int(argv[2])
    module = _module(impl, argv[3] if len(argv) > 3 else None)
    config: dict[str, Any] = dict(CONFIG)
    if impl == "ours" and job == "partitions":
        config |= OUR_PARTITION_OVERRIDES
    result = (
        partitions(module, config, count) if job == "partitions" else churn(module, config, count)
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
