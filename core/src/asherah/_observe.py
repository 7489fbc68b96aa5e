"""Process-wide observation: the compatibility metrics and log hooks of PyPI ``asherah``.

Events are delivered on one worker thread through a bounded queue (4096, drop on overflow),
as the reference does, so a slow or failing hook never slows or breaks an encrypt. Payloads
carry metadata only.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

Hook = Callable[[dict[str, Any]], object]

_QUEUE_SIZE = 4096
_log = logging.getLogger("asherah.hooks")

_LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}


class _Dispatcher:
    def __init__(self) -> None:
        self.metrics_hook: Hook | None = None
        self.log_hook: Hook | None = None
        self._queue: queue.Queue[tuple[Hook, dict[str, Any]] | None] = queue.Queue(_QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0

    def submit(self, hook: Hook, event: dict[str, Any]) -> None:
        self._ensure_thread()
        try:
            self._queue.put_nowait((hook, event))
        except queue.Full:
            self.dropped += 1

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued event has been delivered (tests and shutdown)."""
        done = threading.Event()

        def mark(_: dict[str, Any]) -> None:
            done.set()

        self.submit(mark, {})
        done.wait(timeout)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="asherah-hooks", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            hook, event = item
            try:
                hook(event)
            except Exception:  # a hook must never break us; say so once per failure
                _log.debug("hook %r raised", getattr(hook, "__name__", hook), exc_info=True)


DISPATCH = _Dispatcher()


class _MetricsSwitch:
    """A plain flag the hot path reads instead of calling a function."""

    on = False


METRICS = _MetricsSwitch()


def metrics_enabled() -> bool:
    return DISPATCH.metrics_hook is not None


def emit_metric(event: dict[str, Any]) -> None:
    hook = DISPATCH.metrics_hook
    if hook is not None:
        DISPATCH.submit(hook, event)


def timing(kind: str, duration_ns: int) -> None:
    emit_metric({"type": kind, "duration_ns": duration_ns})


def cache_event(kind: str, name: str) -> None:
    emit_metric({"type": kind, "name": name})


class _HookLogHandler(logging.Handler):
    """Forwards ``asherah`` warnings and errors to the log hook as ``{level, message, target}``."""

    def emit(self, record: logging.LogRecord) -> None:
        hook = DISPATCH.log_hook
        if hook is None:
            return
        level = _LEVELS.get(record.levelno, "warn")
        DISPATCH.submit(
            hook, {"level": level, "message": record.getMessage(), "target": record.name}
        )


_HANDLER = _HookLogHandler(level=logging.WARNING)


def set_metrics_hook(hook: Hook | None) -> None:
    """Install (or with ``None`` remove) the metrics callback."""
    if hook is not None and not callable(hook):
        raise TypeError("metrics hook must be callable or None")
    DISPATCH.metrics_hook = hook
    METRICS.on = hook is not None


def set_log_hook(hook: Hook | None) -> None:
    """Install (or with ``None`` remove) the log callback; it receives warnings and errors."""
    if hook is not None and not callable(hook):
        raise TypeError("log hook must be callable or None")
    DISPATCH.log_hook = hook
    logger = logging.getLogger("asherah")
    if hook is None:
        logger.removeHandler(_HANDLER)
    elif _HANDLER not in logger.handlers:
        logger.addHandler(_HANDLER)
