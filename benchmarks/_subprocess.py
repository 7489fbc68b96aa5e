"""Running a benchmark probe module in a fresh interpreter and reading its JSON answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from benchmarks import _reference
from benchmarks._cli import Context


def run_probe(context: Context, module: str, *args: object) -> Any:
    """``python -m <module> <args...> <reference path>`` from the repository root; the last
    line of its standard output, parsed as JSON."""
    root = str(_reference.REPO_ROOT)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", module, *map(str, args), str(context.reference.__file__)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])
