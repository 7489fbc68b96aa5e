"""``python -m benchmarks [--quick]``: every scenario, one table (``tasks.py bench``)."""

from __future__ import annotations

import sys

from benchmarks._cli import main
from benchmarks.run import SCENARIOS

sys.exit(main(SCENARIOS))
