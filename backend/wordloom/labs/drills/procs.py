"""Worker processes of a drill: real `python -m wordloom.cli ops <projection>-worker` subprocesses
with the knobs in their environment, their logs in the run folder, their /metrics scraped."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ...devstack.ports import free_port
from ...envfile import REPO_ROOT

# Inherited variables that would point a drill worker somewhere else or change its behaviour.
_DROP = ("OUTBOX_", "SEARCH_OUTBOX_", "CHRONICLE_OUTBOX_", "OTEL_", "WORDLOOM_TRACES_", "CHRONICLE_PROJECTION")
# Drill timings: short leases, quick polls and retries, so a drill of seconds shows whole cycles.
DRILL_DEFAULTS = {
    "OUTBOX_POLL_INTERVAL_MS": "100",
    "OUTBOX_BASE_BACKOFF_SECONDS": "0.05",
    "OUTBOX_MAX_BACKOFF_SECONDS": "0.5",
    "OUTBOX_RECLAIM_INTERVAL_SECONDS": "0.5",
    "OUTBOX_SHUTDOWN_GRACE_SECONDS": "4",
    "LOG_JSON": "true",
    "LOG_LEVEL": "INFO",
}
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class ProcessFailed(RuntimeError):
    """A drill process died or never became ready (run aborted, exit 5)."""


def parse_metrics(text: str) -> list[tuple[str, dict, float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            try:
                out.append((m.group(1), dict(_LABEL.findall(m.group(3) or "")), float(m.group(4))))
            except ValueError:
                continue
    return out


def metric_sum(samples, name: str, **labels) -> float:
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == str(x) for k, x in labels.items()))


@dataclass
class WorkerProc:
    name: str
    projection: str
    env: dict
    log_path: Path
    port: int
    proc: subprocess.Popen | None = None
    events: list = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> "WorkerProc":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "wordloom.cli", "ops", f"{self.projection}-worker"],
                                         env=self.env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.events.append({"at": time.time(), "event": "started", "pid": self.proc.pid})
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def http(self, path: str, timeout: float = 2.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as resp:
                return resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")
        except OSError:
            return 0, ""

    def ready(self) -> bool:
        return self.http("/readyz")[0] == 200

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ProcessFailed(f"worker {self.name} exited with {self.proc.returncode} before it was ready "
                                    f"(log: {self.log_path})")
            if self.ready():
                return
            time.sleep(0.1)
        raise ProcessFailed(f"worker {self.name} not ready after {timeout:g}s (log: {self.log_path})")

    def scrape(self, dest: Path | None = None) -> list:
        code, text = self.http("/metrics")
        if code != 200:
            return []
        if dest is not None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text, encoding="utf-8")
        return parse_metrics(text)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, as honcho would; SIGKILL if it does not exit in time.  Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.events.append({"at": time.time(), "event": "stopped", "exit_code": self.proc.returncode})
        return self.proc.returncode

    def kill(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.events.append({"at": time.time(), "event": "sigkill", "exit_code": self.proc.returncode})
        return self.proc.returncode if self.proc else None

    def summary(self) -> dict:
        return {"name": self.name, "projection": self.projection, "pid": self.pid, "port": self.port,
                "worker_id": self.env.get("OUTBOX_WORKER_ID"), "log": self.log_path.name,
                "exit_code": self.proc.returncode if self.proc else None, "events": self.events,
                "knobs": {k: v for k, v in sorted(self.env.items())
                          if k.startswith(("OUTBOX_EXPERIMENT_", "OUTBOX_FAULT_INJECT_", "OTEL_EXPORTER_", "CHRONICLE_PROJ"))}}


def worker_env(base: dict, *, database_url: str, elastic_url: str, index: str, env_name: str, worker_id: str,
               port: int, var_dir: Path, knobs: dict | None = None) -> dict:
    env = {k: v for k, v in base.items() if not k.startswith(_DROP)}
    env.update(DRILL_DEFAULTS)
    env.update(
        DATABASE_URL=database_url, ELASTIC_URL=elastic_url, ELASTIC_INDEX=index, WORDLOOM_ENV=env_name,
        OUTBOX_WORKER_ID=worker_id, OUTBOX_METRICS_PORT=str(port), SEARCH_OUTBOX_METRICS_PORT=str(port),
        CHRONICLE_OUTBOX_METRICS_PORT=str(port), OUTBOX_METRICS_HOST="127.0.0.1",
        WORDLOOM_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "backend")] + ([base["PYTHONPATH"]] if base.get("PYTHONPATH") else [])),
    )
    env.update({k: str(v) for k, v in (knobs or {}).items()})
    return env


def log_records(path: Path) -> list[dict]:
    out = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def pid_is_drill_worker(pid: int) -> bool:
    """True when `pid` still runs a wordloom worker (guards clean against a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return "wordloom.cli" in cmdline and "-worker" in cmdline


__all__ = ["WorkerProc", "worker_env", "free_port", "parse_metrics", "metric_sum", "log_records", "ProcessFailed"]
