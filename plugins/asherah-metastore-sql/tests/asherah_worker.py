"""Runs one batch of encrypt/decrypt calls with whichever ``asherah`` is importable.

Started as a subprocess: with ``PYTHONPATH=.reference`` it is the reference (PyPI asherah
0.5.56), without it ours, so both sides of an interop test run the very same script. Reads a
JSON job (one line) on stdin, writes a JSON list of results on stdout. With ``"barrier"`` it
builds the factory, prints ``ready`` and waits for a ``go`` line before the first call, so
several workers can race on one new partition at the same moment:

    {"config": {...PascalCase...}, "barrier": <bool, optional>,
     "ops": [{"op": "encrypt", "partition": "p", "data": "<b64>"},
             {"op": "decrypt", "partition": "p", "drr": "<json>"}]}
    -> [{"ok": true, "value": "<drr>" | "<b64 plaintext>"} | {"ok": false, "error": "..."}]
"""

from __future__ import annotations

import base64
import json
import sys

import asherah


def main() -> None:
    job = json.loads(sys.stdin.readline())
    out: list[dict[str, object]] = []
    try:
        factory = asherah.SessionFactory(job["config"])
    except Exception as exc:  # a refused start-up (drift guard, bad config) is a result too
        json.dump({"module": asherah.__file__, "factory_error": f"{exc}"}, sys.stdout)
        return
    if job.get("barrier"):
        print("ready", flush=True)
        sys.stdin.readline()
    try:
        for op in job["ops"]:
            session = factory.get_session(op["partition"])
            try:
                if op["op"] == "encrypt":
                    value = session.encrypt_bytes(base64.b64decode(op["data"]))
                else:
                    value = base64.b64encode(session.decrypt_bytes(op["drr"])).decode()
                out.append({"ok": True, "value": value})
            except Exception as exc:  # reported to the test, which asserts on it
                out.append({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
            finally:
                session.close()
    finally:
        factory.close()
    json.dump({"module": asherah.__file__, "results": out}, sys.stdout)


if __name__ == "__main__":
    main()
