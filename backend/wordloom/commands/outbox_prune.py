"""`cli.py outbox prune --older-than 7d [--dry-run] [--outbox search|chronicle|all]`."""
from __future__ import annotations

from ..db import connect
from ..ops.argtypes import duration_seconds
from ..ops.prune import prune_done
from ..settings import database_url
from .base import Command


class OutboxPrune(Command):
    name = "outbox prune"
    help = "delete `done` outbox rows processed before a cutoff (pending and failed rows are never touched)"
    guards_environment = True

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, type=duration_seconds, metavar="DURATION",
                            help="processed longer ago than this: 7d, 36h, 90m, 30s (required)")
        parser.add_argument("--outbox", choices=("search", "chronicle", "all"), default="all",
                            help="which outbox (default all)")
        parser.add_argument("--dry-run", action="store_true", help="count only; delete nothing")

    def handle(self, args) -> int:
        names = ("search", "chronicle") if args.outbox == "all" else (args.outbox,)
        with connect(database_url(), autocommit=True) as conn:
            for name in names:
                r = prune_done(conn, name, args.older_than, dry_run=args.dry_run)
                verb = "would delete" if args.dry_run else "deleted"
                count = r.prunable if args.dry_run else r.deleted
                print(f"Prune {name}: {verb} {count} done rows processed before {r.cutoff:%Y-%m-%d %H:%M:%S} UTC; "
                      f"kept pending={r.kept_pending} processing={r.kept_processing} failed={r.kept_failed}")
        if args.dry_run:
            print("Dry run: nothing changed.")
        return 0


COMMAND = OutboxPrune()
