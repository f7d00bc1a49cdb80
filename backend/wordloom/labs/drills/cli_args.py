"""Flags shared by the `labs run|verify|export|clean|report` commands (v3 names kept)."""
from __future__ import annotations

from .registry import SCENARIOS

EXIT_CODES_HELP = ("exit codes: 0 ok · 1 a verify check failed · 2 usage error · 3 no such run · "
                   "4 environment missing (server unreachable, cannot create the drill database, binary missing) · "
                   "5 the drill run aborted (timeout, a process died)")


def add_scenario(parser, allow_all: bool = False) -> None:
    choices = list(SCENARIOS) + (["all"] if allow_all else [])
    parser.add_argument("scenario", choices=choices, metavar="scenario",
                        help="one of: " + ", ".join(choices))


def add_outdir(parser) -> None:
    parser.add_argument("--outdir", help="evidence base folder (default docs/labs/_snapshot/auto/S3A-2A-3A, or "
                                         "$WORDLOOM_VAR_DIR/labs/S3A-2A-3A when WORDLOOM_VAR_DIR is set)")


def add_run_flags(parser) -> None:
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load / fault window (default %(default)s)")
    parser.add_argument("--run-id", help="name of the run folder (default: UTC timestamp + random suffix)")
    parser.add_argument("--metrics-port", type=int, default=0,
                        help="first worker's metrics port, next workers +1 (default 0: free ports)")
    parser.add_argument("--rate", type=float, default=20.0, help="events per second of load (default %(default)s)")
    parser.add_argument("--workers", type=int, help="worker count (db_claim_contention 3, multi_worker_convergence 4)")
    parser.add_argument("--batch-size", type=int, help="OUTBOX_BATCH_SIZE of the drill workers")
    parser.add_argument("--seed", type=int, default=7, help="seed for the load mix, kill point and 429 ratio")
    parser.add_argument("--every-n", type=int, help="es_429_inject: OUTBOX_EXPERIMENT_ES_429_EVERY_N (default 3)")
    parser.add_argument("--ratio", type=float, help="es_429_inject: OUTBOX_EXPERIMENT_ES_429_RATIO instead of every-n")
    parser.add_argument("--partial-status", type=int, default=400,
                        help="es_bulk_partial: OUTBOX_EXPERIMENT_ES_BULK_PARTIAL_STATUS (default %(default)s)")
    parser.add_argument("--max-latency", type=float, default=2.0,
                        help="collector_down: allowed p95 created->processed seconds (default %(default)s)")
    parser.add_argument("--drain-timeout", type=float, default=60.0,
                        help="seconds to wait for the outboxes to drain (default %(default)s)")
    parser.add_argument("--no-fault", action="store_true",
                        help="control run: everything but the fault (verify must then fail its fault check)")
