"""`cli.py labs insert-chronicle-pending`: library -> bookshelf -> book -> chronicle event ->
pending chronicle outbox row, through the domain write path.  Prints one JSON object on stdout."""
from __future__ import annotations

import json
import logging

from ..db import connect
from ..domain import DomainError
from ..settings import database_url
from .base import Command, CommandError

log = logging.getLogger("wordloom.labs.inserters")

VARIABLES = """environment (empty = unset):
  DATABASE_URL                     required
  OUTBOX_LIBRARY_ID                put the book in this existing library (default: a new library)
  OUTBOX_BOOK_TITLE                the book's title (default: labs-009 chronicle book <random>)
  OUTBOX_TRACEPARENT/_TRACESTATE   W3C trace context stored on the rows (kept only when well-formed)

stdout: {"library_id", "bookshelf_id", "book_id", "chronicle_event_id", "event_type", "outbox_id",
"search_outbox_id"}; outbox_id is the pending chronicle outbox row."""


class InsertChroniclePending(Command):
    name = "labs insert-chronicle-pending"
    help = "create library, bookshelf and book: one chronicle event with a pending chronicle outbox row; prints JSON"
    guards_environment = True
    epilog = VARIABLES

    def handle(self, args) -> int:
        from ..labs.inserters import ChronicleInsertSpec, insert_chronicle_pending

        spec = ChronicleInsertSpec.from_env()
        url = database_url()
        with connect(url, autocommit=True) as conn:
            try:
                made = insert_chronicle_pending(conn, spec)
            except DomainError as exc:
                raise CommandError(str(exc)) from None
        log.info("inserted a pending chronicle outbox row", extra={"outbox_id": made["outbox_id"]})
        print(json.dumps(made, sort_keys=True))
        return 0


COMMAND = InsertChroniclePending()
