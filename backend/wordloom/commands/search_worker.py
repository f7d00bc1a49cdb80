"""`wordloom ops search-worker`: project search_index into Elasticsearch, until stopped.

Environment: CONTRACT.md section 2 (DATABASE_URL, ELASTIC_URL, ELASTIC_INDEX, OUTBOX_*).
"""
from __future__ import annotations

from .base import Command


class WorkerCommand(Command):
    def __init__(self, projection: str, help_text: str):
        self.projection = projection
        self.name = f"{projection}-worker"
        self.help = help_text

    def handle(self, args) -> int:
        from ..outbox.worker import run_worker

        return run_worker(self.projection)


COMMAND = WorkerCommand("search", "Search outbox worker: search_index -> Elasticsearch (runs until SIGTERM)")
