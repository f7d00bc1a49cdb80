"""`cli.py dev migrate`: apply the schema migrations to DATABASE_URL (idempotent, advisory-locked)."""
from __future__ import annotations

from ..db.migrate import migrate
from ..settings import database_name, database_url
from .base import Command


class DevMigrate(Command):
    name = "dev migrate"
    help = "apply pending schema migrations to the database of DATABASE_URL"

    def handle(self, args) -> int:
        url = database_url()
        applied = migrate(url)
        if applied:
            print(f"Migrated {database_name(url)}: applied {len(applied)} ({', '.join(applied)})")
        else:
            print(f"Database {database_name(url)} is up to date")
        return 0


COMMAND = DevMigrate()
