"""`cli.py labs insert-search-pending` (and the v3 labs_009_insert_search_outbox_pending.py):
queue pending search outbox rows.  Prints one outbox id per line on stdout and nothing else."""
from __future__ import annotations

import logging

from ..db import connect
from ..settings import database_url
from .base import Command

log = logging.getLogger("wordloom.labs.inserters")

VARIABLES = """environment (v3 names; empty = unset):
  DATABASE_URL                     required
  OUTBOX_INSERT_COUNT              rows to insert (default 1)
  OUTBOX_ENTITY_TYPE               entity_type of the rows (default book)
  OUTBOX_ENTITY_ID                 one entity for every row (default: a fresh UUID per row)
  OUTBOX_OP                        upsert | delete (default upsert)
  OUTBOX_CREATE_SEARCH_INDEX_ROW   1: also write (upsert) or remove (delete) the search_index row (default 0)
  OUTBOX_SEARCH_INDEX_TEXT         text of that search_index row
  OUTBOX_LIBRARY_ID                library_id of that search_index row
  OUTBOX_TRACEPARENT/_TRACESTATE   W3C trace context stored on the rows
  OUTBOX_EVENT_VERSION             event_version (default: the entity's next version, as the API writes it)"""


class InsertSearchPending(Command):
    name = "labs insert-search-pending"
    help = "insert pending search outbox rows (labs-009 supply); prints one outbox id per line"
    guards_environment = True
    epilog = VARIABLES
    description = help + ". All rows commit in one transaction; logs go to stderr."

    def handle(self, args) -> int:
        from ..labs.inserters import SearchInsertSpec, insert_search_pending

        spec = SearchInsertSpec.from_env()
        url = database_url()
        with connect(url, autocommit=True) as conn:
            ids = insert_search_pending(conn, spec)
        log.info("inserted pending search outbox rows", extra={
            "count": len(ids), "entity_type": spec.entity_type, "op": spec.op,
            "search_index_row": spec.create_search_index_row,
        })
        for outbox_id in ids:
            print(outbox_id)
        return 0


COMMAND = InsertSearchPending()
