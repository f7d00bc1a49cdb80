"""`cli.py ops rebuild-chronicle` (and the legacy rebuild_chronicle_entries.py): chronicle_entries
from chronicle_events.  Prints `Rebuild OK: events=N truncate=... emit_outbox=...`."""
from __future__ import annotations

from ..db import connect
from ..ops.argtypes import non_negative_int, positive_int
from ..ops.rebuild_chronicle import ChronicleRebuildOptions, projection_version_from_env, rebuild_chronicle_entries
from ..ops.rebuild_runs import RebuildError, RebuildUsageError
from ..settings import database_url
from .base import Command, CommandError


class RebuildChronicleEntries(Command):
    name = "ops rebuild-chronicle"
    help = "rebuild chronicle_entries from chronicle_events (resumable; never touches pending/failed outbox rows)"
    guards_environment = True
    description = (
        "Upserts one chronicle entry per chronicle event with projection_version from "
        "CHRONICLE_PROJECTION_VERSION / OUTBOX_PROJECTION_VERSION (default 1); a lower version never "
        "overwrites a higher one. --truncate then deletes entries whose event is gone (never an empty "
        "table). --emit-outbox queues a chronicle outbox upsert per event and deletes no outbox row. "
        "projection_status 'chronicle_events_to_entries' is written at start and end."
    )

    def add_arguments(self, parser):
        parser.add_argument("--truncate", action="store_true",
                            help="also remove entries whose event no longer exists (after the upsert)")
        parser.add_argument("--emit-outbox", action="store_true",
                            help="queue a chronicle outbox upsert per event (existing outbox rows are kept)")
        parser.add_argument("--batch-size", type=positive_int, default=500, help="events per batch (default 500)")
        parser.add_argument("--limit", type=non_negative_int, default=0,
                            help="at most N events (default 0 = all; not with --truncate)")
        parser.add_argument("--resume", action="store_true",
                            help="continue an interrupted rebuild from its checkpoint (same options)")

    def handle(self, args) -> int:
        opts = ChronicleRebuildOptions(truncate=args.truncate, emit_outbox=args.emit_outbox,
                                       batch_size=args.batch_size, limit=args.limit,
                                       projection_version=projection_version_from_env())
        try:
            with connect(database_url(), autocommit=True) as conn:
                result = rebuild_chronicle_entries(conn, opts, resume=args.resume)
        except RebuildUsageError as exc:
            raise CommandError(str(exc), code=2) from None
        except RebuildError as exc:
            raise CommandError(str(exc)) from None
        print(f"Rebuild OK: events={result.events} truncate={opts.truncate} emit_outbox={opts.emit_outbox}")
        print(f"  written={result.written} orphans_removed={result.orphans_removed} outbox_upserts={result.emitted}"
              f" projection_version={opts.projection_version}" + (" (resumed)" if result.resumed else ""))
        return 0


COMMAND = RebuildChronicleEntries()
