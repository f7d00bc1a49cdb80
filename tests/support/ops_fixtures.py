"""Rows for the ops tests, inserted by plain SQL (the ops tools must not depend on how the domain
module writes them), and a runner for the real command-line entry point."""
from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import psycopg

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_cli(env: dict, *args: str, timeout: float = 120, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m wordloom.cli <args>` as a person would run it, with the test's environment."""
    return subprocess.run([sys.executable, "-m", "wordloom.cli", *args], env={**env, **(extra_env or {})},
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


def start_cli(env: dict, *args: str, extra_env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "wordloom.cli", *args], env={**env, **(extra_env or {})},
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def add_library(conn: psycopg.Connection, name: str = "lib") -> uuid.UUID:
    lib = uuid.uuid4()
    conn.execute("INSERT INTO libraries (id, name) VALUES (%s, %s)", (lib, name))
    return lib


def add_book(conn, library_id, title: str, summary: str = "", deleted: bool = False) -> uuid.UUID:
    book = uuid.uuid4()
    conn.execute("INSERT INTO books (id, library_id, title, summary, deleted_at) VALUES "
                 "(%s, %s, %s, %s, CASE WHEN %s THEN now() END)", (book, library_id, title, summary, deleted))
    return book


def add_block(conn, book_id, content: str, deleted: bool = False) -> uuid.UUID:
    block = uuid.uuid4()
    conn.execute("INSERT INTO blocks (id, book_id, content, deleted_at) VALUES "
                 "(%s, %s, %s, CASE WHEN %s THEN now() END)", (block, book_id, content, deleted))
    return block


def add_search_row(conn, entity_type: str, entity_id, text: str, version: int, library_id=None) -> None:
    conn.execute("INSERT INTO search_index (id, entity_type, entity_id, library_id, text, snippet, event_version) "
                 "VALUES (gen_random_uuid(), %s, %s, %s, %s, left(%s, 200), %s)",
                 (entity_type, entity_id, library_id, text, text, version))


def add_outbox_rows(conn, outbox: str, n: int, *, status: str = "failed", error_reason: str | None = "es_4xx",
                    entity_type: str = "book", op: str = "upsert", age_seconds: float = 3600,
                    processed_age_seconds: float | None = None, owner: str | None = None,
                    lease_seconds: float | None = None) -> list[uuid.UUID]:
    """n rows, created `age_seconds` ago (one microsecond apart so their order is defined)."""
    table = {"search": "search_outbox_events", "chronicle": "chronicle_outbox_events"}[outbox]
    rows = conn.execute(
        f"INSERT INTO {table} (id, entity_type, entity_id, op, event_version, status, error, error_reason, "
        "  attempts, created_at, processed_at, owner, lease_until) "
        "SELECT gen_random_uuid(), %(entity_type)s, gen_random_uuid(), %(op)s, 1, %(status)s::text, "
        "  CASE WHEN %(status)s::text = 'failed' THEN 'boom' END, CASE WHEN %(status)s::text = 'failed' THEN %(reason)s::text END, "
        "  CASE WHEN %(status)s::text = 'failed' THEN 10 ELSE 0 END, "
        "  now() - make_interval(secs => %(age)s) + g * interval '1 microsecond', "
        "  CASE WHEN %(processed)s::float8 IS NOT NULL THEN now() - make_interval(secs => %(processed)s) END, "
        "  %(owner)s, CASE WHEN %(lease)s::float8 IS NOT NULL THEN now() + make_interval(secs => %(lease)s) END "
        "FROM generate_series(1, %(n)s) AS g ORDER BY g RETURNING id",
        {"entity_type": entity_type, "op": op, "status": status, "reason": error_reason, "age": age_seconds,
         "processed": processed_age_seconds, "owner": owner, "lease": lease_seconds, "n": n}).fetchall()
    return [r[0] for r in rows]


def add_chronicle_event(conn, book_id, event_type: str = "book_created", block_id=None) -> uuid.UUID:
    event = uuid.uuid4()
    conn.execute("INSERT INTO chronicle_events (id, event_type, book_id, block_id, payload) "
                 "VALUES (%s, %s, %s, %s, '{\"k\": 1}'::jsonb)", (event, event_type, book_id, block_id))
    return event


def expected_search_rows(conn) -> set[tuple]:
    """What search_index must hold after a full rebuild, computed straight from the source tables."""
    rows = conn.execute(
        "SELECT 'book', id, library_id, title || E'\\n' || summary FROM books WHERE deleted_at IS NULL "
        "UNION ALL SELECT 'block', bl.id, bk.library_id, bl.content FROM blocks bl JOIN books bk ON bk.id = bl.book_id "
        "WHERE bl.deleted_at IS NULL AND bk.deleted_at IS NULL").fetchall()
    return {(t, i, lib, text, text[:200]) for t, i, lib, text in rows}


def actual_search_rows(conn) -> set[tuple]:
    return {tuple(r) for r in conn.execute(
        "SELECT entity_type, entity_id, library_id, text, snippet FROM search_index").fetchall()}
