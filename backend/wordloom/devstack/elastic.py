"""The Elasticsearch-compatible server of the `noida-db` wheel, started with only that service.

It answers the Elasticsearch API well enough for the official client, keeps its data in memory and
snapshots it under its data directory on a clean stop (SIGTERM).
"""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
from pathlib import Path

from .lifetime import die_with_parent
from .ports import wait_port
from .postgres import EmbeddedServiceError


def binary() -> Path:
    spec = importlib.util.find_spec("noida_db")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServiceError("the noida-db package is not installed (run `make setup`)")
    path = Path(list(spec.submodule_search_locations)[0]) / "noida-db"
    if not path.exists():
        raise EmbeddedServiceError(f"no noida-db binary at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


class EmbeddedElastic:
    def __init__(self, data_dir: Path, port: int, host: str = "127.0.0.1"):
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.host = host
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.proc: subprocess.Popen | None = None

    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(binary()), "start", "--data-dir", str(self.data_dir), "--host", self.host,
             "--only", "elasticsearch", "--elasticsearch-port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(self.data_dir),
            start_new_session=True, preexec_fn=die_with_parent(signal.SIGTERM),
        )
        log.close()
        if not wait_port(self.host, self.port, timeout, alive=lambda: self.proc.poll() is None):
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise EmbeddedServiceError(f"Elasticsearch-compatible server did not start on {self.host}:{self.port}:\n{tail}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
