"""The local stack's servers: which to start, starting them, preparing databases, watching them.

A URL that points at a loopback address on the embedded port (PostgreSQL 5435, search 19200) is
served by the embedded server; any other URL is the person's own server and nothing is started on
top of it.  Both the dev and the test database live in the one embedded PostgreSQL.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from psycopg import sql

from ..db.connect import connect
from ..db.migrate import migrate, set_environment_sentinel
from ..envfile import REPO_ROOT
from ..redact import redact
from ..settings import Env, database_url, with_database
from .elastic import EmbeddedElastic
from .ports import LOOPBACK_HOSTS, port_open, url_endpoint
from .postgres import EmbeddedPostgres

log = logging.getLogger("wordloom.devstack")

EMBEDDED_PG_PORT = 5435
EMBEDDED_ES_PORT = 19200
# Every embedded cluster carries both environments, each marked by its sentinel.
ENV_DATABASES = {"wordloom_dev": "dev", "wordloom_test": "test"}


def var_dir() -> Path:
    return Path(Env().str("WORDLOOM_VAR_DIR") or REPO_ROOT / "var")


@dataclass
class Plan:
    database_url: str
    elastic_url: str
    embed_pg: bool
    embed_es: bool

    @classmethod
    def from_env(cls, env: Env | None = None) -> "Plan":
        env = env or Env()
        db = database_url(env)
        es = env.str("ELASTIC_URL", "http://localhost:9200")
        pg_host, pg_port = url_endpoint(db, 5432)
        es_host, es_port = url_endpoint(es, 9200)
        return cls(
            database_url=db,
            elastic_url=es,
            embed_pg=pg_host in LOOPBACK_HOSTS and pg_port == EMBEDDED_PG_PORT,
            embed_es=es_host in LOOPBACK_HOSTS and es_port == EMBEDDED_ES_PORT,
        )


def prepare_embedded_databases(app_url: str) -> None:
    """Create the application role and both databases, migrate them, set their sentinels."""
    p = urlsplit(app_url)
    role, password = p.username or "wordloom", p.password or "wordloom"
    admin = f"postgresql://postgres@127.0.0.1:{p.port or EMBEDDED_PG_PORT}/postgres"
    with connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)))
        for name in {**ENV_DATABASES, p.path.lstrip("/"): None}:
            if name and not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(role)))
    for name, env in ENV_DATABASES.items():
        url = with_database(app_url, name)
        migrate(url)
        set_environment_sentinel(url, env)
    if p.path.lstrip("/") not in ENV_DATABASES:
        migrate(app_url)


class Supervisor:
    """Runs in the foreground until SIGTERM/SIGINT; stops what it started, cleanly."""

    def __init__(self, plan: Plan, out=print):
        self.plan = plan
        self.out = out
        self.pg: EmbeddedPostgres | None = None
        self.es: EmbeddedElastic | None = None
        self.stopping = threading.Event()

    def start(self) -> None:
        base = var_dir()
        base.mkdir(parents=True, exist_ok=True)
        if self.plan.embed_pg:
            host, port = url_endpoint(self.plan.database_url, 5432)
            if port_open("127.0.0.1", port):
                self.out(f"PostgreSQL already answers on 127.0.0.1:{port}; not starting another, watching it")
            else:
                self.pg = EmbeddedPostgres(base / "pg", port)
                self.pg.start()
                self.out(f"PostgreSQL {self.pg.data_dir.name} running on 127.0.0.1:{port} (data: {self.pg.data_dir})")
            prepare_embedded_databases(self.plan.database_url)
            self.out("databases wordloom_dev and wordloom_test migrated, environment sentinels set")
        else:
            self.out(f"using your PostgreSQL at {redact(self.plan.database_url)}; no embedded server started")
            migrate(self.plan.database_url)
        if self.plan.embed_es:
            host, port = url_endpoint(self.plan.elastic_url, 9200)
            if port_open("127.0.0.1", port):
                self.out(f"search server already answers on 127.0.0.1:{port}; not starting another, watching it")
            else:
                self.es = EmbeddedElastic(base / "es", port)
                self.es.start()
                self.out(f"Elasticsearch-compatible server running on {self.es.url()} (data: {self.es.data_dir})")
        else:
            self.out(f"using your Elasticsearch at {redact(self.plan.elastic_url)}; no embedded server started")

    def watch(self) -> int:
        """Block until asked to stop (0) or until a server we started dies (1)."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: self.stopping.set())
        self.out("services ready; press Ctrl-C to stop")
        code = 0
        while not self.stopping.wait(1.0):
            for name, server in (("PostgreSQL", self.pg), ("search server", self.es)):
                if server is not None and not server.alive():
                    self.out(f"{name} exited unexpectedly (log: {server.log_path})")
                    code = 1
                    self.stopping.set()
        self.stop()
        return code

    def stop(self) -> None:
        if self.es is not None:
            self.es.stop()
        if self.pg is not None:
            self.pg.stop()
        if self.es or self.pg:
            self.out("services stopped")


def pid_file() -> Path:
    return var_dir() / "run" / "services.pid"


def read_pid() -> int | None:
    try:
        pid = int(pid_file().read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid
