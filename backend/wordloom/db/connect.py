"""Opening PostgreSQL connections with errors a person can act on (host:port, never the password)."""
from __future__ import annotations

import psycopg

from ..redact import host_port, redact


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached; the message names host:port and hides credentials."""


def connect(url: str, *, autocommit: bool = False, connect_timeout: float = 5.0, **kwargs) -> psycopg.Connection:
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=max(1, int(connect_timeout)), **kwargs)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {host_port(url)}: {redact(first)}") from None
    # All times are computed by the database as timestamptz; pin the session zone so any text
    # rendering is UTC whatever the server or the worker's TZ says (C10).
    conn.execute("SET TIME ZONE 'UTC'")
    if not autocommit:
        conn.commit()
    return conn


def close_quietly(conn: psycopg.Connection | None) -> None:
    """Close a connection that may already be broken (the server went away): never raises."""
    if conn is None:
        return
    try:
        conn.close()
    except Exception:  # a dead socket can fail in many ways; closing is best effort by design
        pass
