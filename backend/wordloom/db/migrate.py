"""Apply the ordered `.sql` migrations once each, under an advisory lock (safe to run concurrently)."""
from __future__ import annotations

import logging
from pathlib import Path

from .connect import connect

log = logging.getLogger(__name__)
MIGRATION_DIR = Path(__file__).with_name("migrations")
# An arbitrary constant shared by every process that migrates this schema.
MIGRATION_LOCK_KEY = 7_404_771_001


def migration_files() -> list[Path]:
    return sorted(MIGRATION_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def migrate(url: str) -> list[str]:
    """Apply pending migrations; return the versions applied now (empty when up to date)."""
    applied_now: list[str] = []
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for path in migration_files():
                version = path.stem
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(path.read_text(encoding="utf-8"))
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                log.info("applied migration %s", version)
                applied_now.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now


def set_environment_sentinel(url: str, env: str, project: str = "wordloom") -> None:
    with connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO environment_sentinel (id, project, env) VALUES (1, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET project = EXCLUDED.project, env = EXCLUDED.env",
            (project, env),
        )
