"""What every service launcher shares: a free loopback port, one child server process in its
own session with its output in a log file, waiting until it answers, and stopping it by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port nothing listens on right now (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _all_threads_stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is in the stopped state (``T`` in ``/proc``)."""
    tasks = Path(f"/proc/{pid}/task")
    for task in tasks.iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:  # the thread has exited
            continue
        # The state follows the command name, which is in parentheses and may hold spaces.
        if stat[stat.rindex(")") + 2] != "T":
            return False
    return True


class ServerProcess:
    """Base of the launchers: owns the child process; subclasses say how to start and probe."""

    log_path: Path
    port: int
    #: The launcher's own temporary directory (its log, data, certificates): removed by close.
    scratch_dir: Path
    _proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the server and remove its scratch directory."""
        self.stop()
        shutil.rmtree(self.scratch_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _launch(self, cmd: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> None:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )

    def _await_ready(
        self,
        ready: Callable[[], bool],
        timeout: float,
        interval: float,
        error: type[Exception],
        name: str,
        exit_hint: str = "",
    ) -> None:
        """Poll ``ready`` until it is true; raise ``error`` with the log tail if the process
        exits first or stays silent past ``timeout`` (then stop it)."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise error(
                    f"{name} exited with code {code} on port {self.port}{exit_hint}:\n"
                    f"{self._tail()}"
                )
            if ready():
                return
            time.sleep(interval)
        self.stop()
        raise error(
            f"{name} did not answer on port {self.port} within {timeout:.0f} s:\n{self._tail()}"
        )

    def stop(self) -> None:
        """Terminate this server by its PID (then kill it if it lingers). Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections open but nothing answers, like a hung host.

        Returns once every thread of it is stopped: ``kill`` only queues the stop, and a
        multi-threaded server (OpenBao is Go) could otherwise still answer the next request.
        """
        if self._proc is None:
            return
        pid = self._proc.pid
        os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while not _all_threads_stopped(pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"server pid {pid} did not stop within {STOP_TIMEOUT_S} s")
            time.sleep(0.001)

    def resume(self) -> None:
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGCONT)

    def _tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
