"""`cli.py ops replay-failed --outbox search|chronicle`: failed -> pending, audited, --limit applied.

The legacy scripts search_outbox_replay_failed.py / chronicle_outbox_replay_failed.py call this
module with `--outbox search` / `--outbox chronicle` put in front of the person's arguments.
"""
from __future__ import annotations

from ..db import connect
from ..ops.argtypes import error_reason, non_empty, positive_float, positive_int, uuid_arg
from ..ops.replay import ReplayFilters, plan_replay, replay_failed
from ..settings import database_url
from .base import Command


class ReplayFailed(Command):
    name = "ops replay-failed"
    help = "move failed outbox rows back to pending (audited; at most --limit rows)"
    guards_environment = True
    description = (
        "Replays failed rows of one outbox: status pending, attempts 0, replay_count+1, "
        "last_replayed_at/by/reason set, next_retry_at spread over a window that grows with the count. "
        "Each real replay writes one row in outbox_replay_audit. error/error_reason are kept until the "
        "next attempt overwrites them. Prints 'Matched failed rows: T; will replay: N (limit=L)' "
        "then 'Replayed rows: K'."
    )

    def add_arguments(self, parser):
        parser.add_argument("--outbox", required=True, choices=("search", "chronicle"), help="which outbox")
        parser.add_argument("--by", required=True, type=non_empty, help="who replays (recorded)")
        parser.add_argument("--reason", required=True, type=non_empty, help="why (recorded)")
        parser.add_argument("--limit", type=positive_int, default=1000, help="at most this many rows (default 1000)")
        parser.add_argument("--entity-type", type=non_empty, help="only rows of this entity_type")
        parser.add_argument("--since-hours", type=positive_float, help="only rows created within the last N hours")
        parser.add_argument("--error-reason", type=error_reason,
                            help="only rows failed with this error_reason (e.g. es_4xx; "
                                 "`outbox status` shows the counts by reason)")
        parser.add_argument("--ids", nargs="+", type=uuid_arg, metavar="ID", help="only these outbox row ids")
        parser.add_argument("--spread-seconds", type=positive_float,
                            help="spread next_retry_at over this many seconds (default: 1 s per 100 rows, max 900)")
        parser.add_argument("--dry-run", action="store_true", help="show what would be replayed; change nothing")

    def handle(self, args) -> int:
        filters = ReplayFilters(
            entity_type=args.entity_type, since_hours=args.since_hours,
            ids=tuple(args.ids) if args.ids else None, error_reason=args.error_reason,
        )
        with connect(database_url()) as conn:
            plan = plan_replay(conn, args.outbox, filters, args.limit)
            print(f"Matched failed rows: {plan.matched}; will replay: {plan.will_replay} (limit={plan.limit})")
            if args.dry_run:
                reasons = ", ".join(f"{k}={v}" for k, v in plan.by_reason.items()) or "-"
                print(f"By error_reason: {reasons}")
                print(f"First ids: {', '.join(map(str, plan.preview_ids)) or '-'}")
                print("Dry run: nothing changed.")
                return 0
            result = replay_failed(conn, args.outbox, filters, args.limit, by=args.by, reason=args.reason,
                                   matched=plan.matched, spread_seconds=args.spread_seconds)
        print(f"Replayed rows: {len(result.replayed_ids)}")
        return 0


COMMAND = ReplayFailed()
