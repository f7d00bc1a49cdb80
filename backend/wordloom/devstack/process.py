"""A server child process: launched in its own session, awaited on its port, stopped cleanly.

Each server says which signal is its clean stop (PostgreSQL: SIGINT = fast shutdown; the search
server: SIGTERM = snapshot and exit).  The same signal is what the kernel sends the child when
the supervisor itself dies (see lifetime.py), so no orphan outlives a SIGKILLed supervisor.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from .lifetime import die_with_parent
from .ports import wait_port


class EmbeddedServiceError(RuntimeError):
    pass


class ServerProcess:
    label = "server"
    stop_signal = signal.SIGTERM

    def __init__(self, host: str, port: int, log_path: Path):
        self.host = host
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def _launch(self, args: list[str], *, cwd: str, timeout: float, **popen_kwargs) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                start_new_session=True, preexec_fn=die_with_parent(self.stop_signal), **popen_kwargs,
            )
        deadline = time.monotonic() + timeout
        if not (wait_port(self.host, self.port, timeout, alive=self.alive)
                and self._wait_ready(deadline)):
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise EmbeddedServiceError(f"{self.label} did not start on {self.host}:{self.port}:\n{tail}")

    def _wait_ready(self, deadline: float) -> bool:
        """After the port opens: wait until the server really serves (override where it differs)."""
        return True

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Clean stop with the server's own signal; SIGKILL only if it does not exit in time."""
        if not self.alive():
            return
        self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """Crash the server and its children (SIGKILL to its process group), for fault tests."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
