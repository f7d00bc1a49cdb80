"""Whole databases: create migrated ones, clone them from a template, drop them.

Tests, the bench and the drills each give every run its own database; cloning a migrated template
(`CREATE DATABASE … TEMPLATE`) is much faster than migrating each one.  Names are always quoted as
identifiers, never spliced into SQL as text.
"""
from __future__ import annotations

from psycopg import sql

from ..settings import database_name, with_database
from .connect import connect
from .migrate import migrate, set_environment_sentinel


def create_database(admin_url: str, name: str, *, template: str | None = None, replace: bool = False) -> str:
    """Create `name` on the server of `admin_url` (empty, or a copy of `template`); return its URL."""
    with connect(admin_url, autocommit=True) as conn:
        if replace:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if template:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(admin_url, name)


def create_migrated_database(admin_url: str, name: str, *, env: str | None = None, replace: bool = True) -> str:
    """A new database with the schema applied (and its environment sentinel, when `env` is given)."""
    url = create_database(admin_url, name, replace=replace)
    migrate(url)
    if env:
        set_environment_sentinel(url, env)
    return url


def clone_database(admin_url: str, template: str, name: str, *, env: str) -> str:
    """A copy of the migrated `template`, marked as environment `env`; return its URL."""
    url = create_database(admin_url, name, template=template)
    set_environment_sentinel(url, env)
    return url


def drop_database(admin_url: str, name_or_url: str) -> bool:
    """Drop a database (by name or URL), disconnecting its sessions; True when it existed."""
    name = database_name(name_or_url) if "://" in name_or_url else name_or_url
    with connect(admin_url, autocommit=True) as conn:
        existed = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return bool(existed)
