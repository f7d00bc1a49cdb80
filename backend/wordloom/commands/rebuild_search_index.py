"""`cli.py ops rebuild-search-index` (and the legacy rebuild_search_index.py): search_index from
books and blocks.  Prints `Rebuild OK: books=N blocks=M truncate=... emit_outbox=...`."""
from __future__ import annotations

from ..db import connect
from ..ops.argtypes import non_negative_int, positive_int
from ..ops.rebuild_runs import RebuildError, RebuildUsageError
from ..ops.rebuild_search import SearchRebuildOptions, rebuild_search_index
from ..settings import database_url
from .base import Command, CommandError


class RebuildSearchIndex(Command):
    name = "ops rebuild-search-index"
    help = "rebuild search_index from books and blocks (resumable; never empties the table)"
    guards_environment = True
    description = (
        "Upserts search_index from live books (title + newline + summary) and live blocks of live books, "
        "in keyset batches; each batch commits with a checkpoint so --resume continues after a crash. "
        "Changed rows get a new entity version. --truncate then deletes rows whose entity is gone "
        "(never an empty table); with --emit-outbox it also queues search outbox upserts for rebuilt "
        "rows and deletes for removed ones, so Elasticsearch keeps no orphan document. "
        "projection_status 'search_sot_to_search_index' is written at start and end."
    )

    def add_arguments(self, parser):
        parser.add_argument("--truncate", action="store_true",
                            help="also remove search_index rows whose entity no longer exists (after the upsert)")
        parser.add_argument("--emit-outbox", action="store_true", help="queue search outbox events for the result")
        parser.add_argument("--batch-size", type=positive_int, default=500, help="rows per batch (default 500)")
        parser.add_argument("--limit", type=non_negative_int, default=0,
                            help="at most N books and N blocks (default 0 = all; not with --truncate)")
        parser.add_argument("--resume", action="store_true",
                            help="continue an interrupted rebuild from its checkpoint (same options)")

    def handle(self, args) -> int:
        opts = SearchRebuildOptions(truncate=args.truncate, emit_outbox=args.emit_outbox,
                                    batch_size=args.batch_size, limit=args.limit)
        try:
            with connect(database_url(), autocommit=True) as conn:
                result = rebuild_search_index(conn, opts, resume=args.resume)
        except RebuildUsageError as exc:
            raise CommandError(str(exc), code=2) from None
        except RebuildError as exc:
            raise CommandError(str(exc)) from None
        print(f"Rebuild OK: books={result.books} blocks={result.blocks} "
              f"truncate={opts.truncate} emit_outbox={opts.emit_outbox}")
        print(f"  changed={result.changed} orphans_removed={result.orphans_removed} "
              f"outbox_upserts={result.emitted_upserts} outbox_deletes={result.emitted_deletes}"
              + (" (resumed)" if result.resumed else ""))
        return 0


COMMAND = RebuildSearchIndex()
