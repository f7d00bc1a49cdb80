"""`cli.py outbox status [--json]`: both outboxes' backlog, failures, leases and last rebuilds."""
from __future__ import annotations

import json

from ..db import connect
from ..ops.status import collect_status, render_table
from ..settings import database_url
from .base import Command


class OutboxStatus(Command):
    name = "outbox status"
    help = "show both outboxes: counts by status, failed by reason, oldest pending, leases, stuck rows, last rebuild"
    description = help + ". --json prints the stable shape of backend/wordloom/ops/outbox_status.schema.json."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="one JSON document (stable schema) for scripts")

    def handle(self, args) -> int:
        with connect(database_url(), autocommit=True) as conn:
            status = collect_status(conn)
        print(json.dumps(status, indent=2, sort_keys=True) if args.json else render_table(status))
        return 0


COMMAND = OutboxStatus()
