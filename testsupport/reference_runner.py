"""Run the reference implementation (PyPI ``asherah`` 0.5.56, installed in ``.reference/``) in
a child interpreter, for the plugins' interop tests (not shipped).

The child gets ``PYTHONPATH=.reference``, where the reference's ``asherah`` shadows ours, and
asserts that it imported that one. A job is a canonical config and a list of operations built
with :func:`encrypt_op` / :func:`decrypt_op`; the answer is one string per operation (the
record, or the base64 plaintext).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REFERENCE = Path(__file__).resolve().parents[1] / ".reference"
INSTALL = ".venv/bin/pip install --target .reference asherah==0.5.56"

RUNNER = """
import base64, json, sys
import asherah
assert asherah.__file__.startswith(sys.argv[1]), asherah.__file__
job = json.load(sys.stdin)
out = []
with asherah.SessionFactory(job["config"]) as factory:
    for op, partition, value in job["ops"]:
        session = factory.get_session(partition)
        if op == "encrypt":
            out.append(session.encrypt_bytes(base64.b64decode(value)))
        else:
            out.append(base64.b64encode(session.decrypt_bytes(value)).decode())
json.dump(out, sys.stdout)
"""


def installed_reference() -> Path:
    """The reference's directory; fails the test (never skips it) when it is not installed."""
    if not (REFERENCE / "asherah").is_dir():
        pytest.fail(f"the reference implementation is not installed; run: {INSTALL}")
    return REFERENCE


def run_reference(
    reference: Path,
    config: dict[str, Any],
    ops: list[list[str]],
    env: dict[str, str] | None = None,
) -> list[str]:
    """Run ``ops`` in the reference with ``config``; ``env`` defaults to this process's."""
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(reference)],
        input=json.dumps({"config": config, "ops": ops}),
        capture_output=True,
        text=True,
        env={**(os.environ if env is None else env), "PYTHONPATH": str(reference)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: list[str] = json.loads(done.stdout)
    return result


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def encrypt_op(partition: str, plaintext: bytes) -> list[str]:
    return ["encrypt", partition, b64(plaintext)]


def decrypt_op(partition: str, record: str) -> list[str]:
    return ["decrypt", partition, record]
