"""The servers a drill talks to, and the drill's own namespace on them.

Every run gets its own database `wordloom_lab_<run>_<env>` on the PostgreSQL server of DATABASE_URL
(created, migrated and marked with the environment sentinel here) and its own index
`<ELASTIC_INDEX>-lab-<run>`.  Exported DATABASE_URL / ELASTIC_URL / ELASTIC_INDEX / WORDLOOM_ENV
win over the env file (the command base loads it that way).  A drill that must stop a server
(es_down_connect, postgres_restart) never stops the person's: it starts a private embedded server
on a free port with its data in the run folder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg
from elasticsearch import Elasticsearch

from ...db.connect import DatabaseUnavailable, connect
from ...db.databases import create_migrated_database, drop_database
from ...redact import redact
from ...settings import (
    ConfigError,
    Env,
    database_name,
    database_url,
    with_database,  # noqa: F401  (re-exported: core.py uses envmod.with_database)
)
from .paths import slug


class EnvironmentMissing(RuntimeError):
    """A server, a privilege or a binary the drill needs is not there (exit 4)."""


def environment_name(env: Env, url: str) -> str:
    named = env.str("WORDLOOM_ENV")
    if named:
        return named
    name = database_name(url)
    for suffix in ("test", "dev", "sandbox"):
        if name.endswith("_" + suffix):
            return suffix
    return "dev"


@dataclass
class Target:
    """Where one run's workers point."""

    base_database_url: str  # the configured database (used to create/drop the lab database)
    database_url: str       # the lab database
    elastic_url: str
    index: str
    env_name: str

    def as_recipe(self) -> dict:
        return {"database": redact(self.database_url), "base_database": redact(self.base_database_url),
                "elastic": redact(self.elastic_url), "index": self.index, "wordloom_env": self.env_name}


def configured(env: Env | None = None) -> tuple[str, str, str, str]:
    """(database url, elastic url, base index, env name) from the environment."""
    env = env or Env()
    try:
        url = database_url(env)
    except ConfigError as exc:
        raise EnvironmentMissing(str(exc)) from None
    return (url, env.str("ELASTIC_URL", "http://localhost:9200"), env.str("ELASTIC_INDEX", "wordloom-search-index"),
            environment_name(env, url))


def lab_names(run_id: str, base_index: str, env_name: str) -> tuple[str, str]:
    return f"wordloom_lab_{slug(run_id)}_{env_name}", f"{base_index}-lab-{slug(run_id).replace('_', '-')}"


def create_lab_database(base_url: str, name: str, env_name: str) -> str:
    try:
        return create_migrated_database(base_url, name, env=env_name)
    except DatabaseUnavailable as exc:
        raise EnvironmentMissing(f"database unreachable: {redact(exc)}") from None
    except psycopg.Error as exc:
        raise EnvironmentMissing(f"cannot create the drill database {name} (the role needs CREATEDB): "
                                 f"{redact(str(exc).strip())}") from None


def drop_lab_database(base_url: str, name: str) -> bool:
    try:
        return drop_database(base_url, name)
    except (DatabaseUnavailable, psycopg.Error):
        return False


def lab_database_exists(base_url: str, name: str) -> bool:
    try:
        with connect(base_url, autocommit=True, connect_timeout=3) as conn:
            return bool(conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone())
    except (DatabaseUnavailable, psycopg.Error):
        return False


def elastic(url: str) -> Elasticsearch:
    return Elasticsearch(url, request_timeout=10, max_retries=0)


def check_elastic(url: str) -> None:
    es = elastic(url)
    try:
        if not es.ping():
            raise EnvironmentMissing(f"Elasticsearch at {redact(url)} does not answer")
    finally:
        es.close()


def delete_index(url: str, index: str) -> bool:
    es = elastic(url)
    try:
        return bool(es.options(ignore_status=404).indices.delete(index=index).body.get("acknowledged"))
    except Exception:
        return False
    finally:
        es.close()


class PrivateServers:
    """Embedded servers of one run (data under the run folder), stopped when the run ends."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.es = None
        self.pg = None

    def start_elastic(self) -> str:
        from ...devstack.elastic import EmbeddedElastic
        from ...devstack.ports import free_port
        from ...devstack.postgres import EmbeddedServiceError

        try:
            self.es = EmbeddedElastic(self.run_dir / "private-es", free_port())
            self.es.start()
        except EmbeddedServiceError as exc:
            raise EnvironmentMissing(f"cannot start a private search server: {exc}") from None
        return self.es.url()

    def start_postgres(self) -> str:
        from ...devstack.ports import free_port
        from ...devstack.postgres import EmbeddedPostgres, EmbeddedServiceError

        try:
            self.pg = EmbeddedPostgres(self.run_dir / "private-pg", free_port(), fast_unsafe=True)
            self.pg.start()
        except EmbeddedServiceError as exc:
            raise EnvironmentMissing(f"cannot start a private PostgreSQL: {exc}") from None
        return self.pg.url("postgres")

    def stop(self) -> None:
        for server in (self.es, self.pg):
            if server is not None:
                server.stop()
