"""`wordloom ops chronicle-worker`: project chronicle_events into chronicle_entries, until stopped.

Environment: CONTRACT.md section 2 (DATABASE_URL, OUTBOX_*, CHRONICLE_PROJECTION_VERSION).
"""
from __future__ import annotations

from .search_worker import WorkerCommand

COMMAND = WorkerCommand("chronicle", "Chronicle outbox worker: chronicle_events -> chronicle_entries (runs until SIGTERM)")
