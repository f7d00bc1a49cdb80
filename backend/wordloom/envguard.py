"""Refuse to run against another environment's database (CONTRACT.md section 1).

When WORDLOOM_ENV is set, the API and both workers compare it with the database's
environment_sentinel row; without that row the database name decides (`*_test` → test,
`*_dev` → dev).  v3 guarded only the search worker.
"""
from __future__ import annotations

import psycopg

from .settings import ConfigError, Env, database_name, database_url


class EnvironmentMismatch(ConfigError):
    pass


def database_environment(conn: psycopg.Connection, url: str) -> str | None:
    try:
        row = conn.execute("SELECT env FROM environment_sentinel WHERE id = 1").fetchone()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        row = None
    if row:
        return row[0]
    name = database_name(url)
    for suffix in ("test", "dev", "sandbox"):
        if name.endswith("_" + suffix):
            return suffix
    return None


def check_environment(conn: psycopg.Connection, url: str, wordloom_env: str | None) -> None:
    """Raise EnvironmentMismatch (one clear line) when WORDLOOM_ENV disagrees with the database."""
    if not wordloom_env:
        return
    actual = database_environment(conn, url)
    if not conn.autocommit:
        conn.commit()
    if actual != wordloom_env:
        raise EnvironmentMismatch(
            f"refusing to start: WORDLOOM_ENV={wordloom_env} but database {database_name(url)!r} "
            f"is marked {actual or 'unmarked'} (environment_sentinel); check DATABASE_URL in your env file"
        )


def guard_database_environment(environ=None) -> None:
    """The guard for a command about to write: connect to DATABASE_URL and check WORDLOOM_ENV."""
    from .db.connect import connect

    env = Env(environ)
    wordloom_env = env.str("WORDLOOM_ENV")
    if not wordloom_env:
        return
    url = database_url(env)
    with connect(url, autocommit=True) as conn:
        check_environment(conn, url, wordloom_env)
