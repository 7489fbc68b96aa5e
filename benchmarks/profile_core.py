"""Where our encrypt or decrypt time goes: cProfile over many calls of one size.

``.venv/bin/python -m benchmarks.profile_core --size 64 --op decrypt``. The deterministic
profiler inflates Python-level calls several times over, so read the call counts and the
relative order, and confirm any change with ``benchmarks.bench_core``.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import sys
from collections.abc import Sequence

import asherah
from benchmarks.bench_core import CONFIG, DISTINCT_RECORDS, PARTITION


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=64, help="plaintext bytes (default 64)")
    parser.add_argument("--op", choices=["encrypt", "decrypt"], default="encrypt")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=25, help="rows to print")
    args = parser.parse_args(argv)
    logging.getLogger("asherah").setLevel(logging.ERROR)
    plaintext = os.urandom(args.size)
    with asherah.SessionFactory(CONFIG) as factory, factory.get_session(PARTITION) as session:
        records = [session.encrypt_bytes(plaintext) for _ in range(DISTINCT_RECORDS)]
        profiler = cProfile.Profile()
        if args.op == "encrypt":
            encrypt = session.encrypt_bytes
            profiler.enable()
            for _ in range(args.calls):
                encrypt(plaintext)
            profiler.disable()
        else:
            decrypt = session.decrypt_bytes
            profiler.enable()
            for i in range(args.calls):
                decrypt(records[i % DISTINCT_RECORDS])
            profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
