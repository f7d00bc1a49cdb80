"""The Elasticsearch-compatible server of the `noida-db` wheel, started with only that service.

It answers the Elasticsearch API well enough for the official client, keeps its data in memory and
snapshots it under its data directory on a clean stop (SIGTERM).
"""
from __future__ import annotations

import importlib.util
import os
import signal
from pathlib import Path

from .process import EmbeddedServiceError, ServerProcess


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


class EmbeddedElastic(ServerProcess):
    label = "Elasticsearch-compatible server"
    stop_signal = signal.SIGTERM  # snapshot to the data directory, then exit

    def __init__(self, data_dir: Path, port: int, host: str = "127.0.0.1"):
        self.data_dir = Path(data_dir).resolve()
        super().__init__(host, port, self.data_dir.parent / f"{self.data_dir.name}.log")

    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._launch([str(binary()), "start", "--data-dir", str(self.data_dir), "--host", self.host,
                      "--only", "elasticsearch", "--elasticsearch-port", str(self.port)],
                     cwd=str(self.data_dir), timeout=timeout)
