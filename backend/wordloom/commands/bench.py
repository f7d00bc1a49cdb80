"""`cli.py bench [--quick]` (`make bench`, `make bench QUICK=1`): the benchmark harness of
wordloom.bench.  Exit 0 whatever the figures (a missed target is a finding, not a failure);
exit 1 on a crash or a broken invariant (an event not delivered, a document missing)."""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from ..ops.argtypes import positive_int
from .base import Command, CommandError


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


class BenchCommand(Command):
    name = "bench"
    help = "measure outbox throughput, latency, growth and rebuild against plain bulk (docs/BENCHMARKS.md)"
    default_env_file = None  # the harness starts its own servers; it must not read .env.dev's URLs

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--quick", action="store_true",
                            help="about one minute with small sizes (what CI runs); figures are a smoke signal only")
        parser.add_argument("--events", type=positive_int, help="1 KB search events for the throughput figure "
                            "(default 100000; quick 1500); also the chronicle event count")
        parser.add_argument("--big-rows", type=positive_int,
                            help="size of the 1,000,000-row parts: done history, RSS events, the large rebuild")
        parser.add_argument("--repeat", type=positive_int, help="runs per figure, median reported (default 3)")
        parser.add_argument("--latency-seconds", type=float, help="seconds of load per latency rate (default 20)")
        parser.add_argument("--only", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
                            help="comma-separated scenarios: search,chronicle,latency,claim,rss,scaling,rebuild")
        parser.add_argument("--rebuild-rows", type=_int_list, help="comma-separated rebuild sizes (default 100000,BIG_ROWS)")
        parser.add_argument("--database-url", help="external PostgreSQL (a role allowed to CREATE DATABASE) instead "
                            "of the embedded one")
        parser.add_argument("--elastic-url", help="external Elasticsearch instead of the embedded server")
        parser.add_argument("--no-fsync", action="store_true", help="embedded PostgreSQL with fsync off (not the default)")
        parser.add_argument("--run-dir", type=Path, help="output directory (default var/bench/<run_id>)")
        parser.add_argument("--write-docs", action=argparse.BooleanOptionalAction, default=None,
                            help="update the generated table in docs/BENCHMARKS.md (default: on for full runs, "
                                 "off for --quick)")

    def handle(self, args) -> int:
        from ..bench.harness import SCENARIOS, BenchConfig, run
        from ..bench.stack import BenchError

        cfg = BenchConfig.quick_defaults() if args.quick else BenchConfig()
        if args.events:
            cfg.events = cfg.chronicle_events = args.events
        if args.big_rows:
            cfg.big_rows = args.big_rows
            if not args.quick:
                cfg.rebuild_rows = [min(100_000, args.big_rows), args.big_rows] if args.big_rows > 100_000 \
                    else [args.big_rows]
        if args.rebuild_rows:
            cfg.rebuild_rows = args.rebuild_rows
        if args.repeat:
            cfg.repeat = args.repeat
        if args.latency_seconds:
            cfg.latency_seconds = args.latency_seconds
        if args.only:
            unknown = set(args.only) - set(SCENARIOS)
            if unknown:
                raise CommandError(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}",
                                   code=2)
            cfg.only = args.only
        cfg.fsync = not args.no_fsync
        write_docs = (not args.quick) if args.write_docs is None else args.write_docs
        command = "backend/scripts/cli.py " + " ".join(sys.argv[1:])
        # SIGTERM (CI timeout, honcho) unwinds like Ctrl-C, so the servers and workers it started stop.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            run(cfg, database_url=args.database_url, elastic_url=args.elastic_url, run_dir=args.run_dir,
                write_docs=write_docs, command=command)
        except BenchError as exc:
            raise CommandError(f"benchmark broken: {exc}") from None
        return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


COMMAND = BenchCommand()
