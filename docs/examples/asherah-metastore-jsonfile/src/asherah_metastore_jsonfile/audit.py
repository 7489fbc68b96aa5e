"""An audit hook plugin: appends key lifecycle events to ``$ASHERAH_AUDIT_FILE``.

It receives metadata only (event, key type, key id, created); never key bytes.
"""

from __future__ import annotations

import json
import os

from asherah.hooks import hookimpl


@hookimpl
def asherah_key_event(event: str, key_type: str, key_id: str, created: int) -> None:
    path = os.environ.get("ASHERAH_AUDIT_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(
                json.dumps({"event": event, "type": key_type, "id": key_id, "created": created})
                + "\n"
            )
